//! Controller model: injected faults, resets (controller, function, bus) keeping the data,
//! shadow doorbells and interrupt coalescing.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_framework::dma::DmaDirection;
use userpci_nvme::model::{CommandClass, Corruption, Recovery};
use userpci_nvme::spec::features::{FeatureId, InterruptCoalescing};
use userpci_nvme::spec::registers::{self as regs, Aqa, Cc, Csts};
use userpci_nvme::spec::{Status, SubmissionEntry};

#[test]
fn the_nth_command_fails_with_the_injected_status_and_no_effect() {
    let mut ctrl = Ctrl::enabled("");
    let mut pair = ctrl.create_io(1, 8);
    let buf = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(1));
    ctrl.model(|m| m.fail_command(CommandClass::Io, 2, Status::WRITE_FAULT));
    // Admin commands do not count for an I/O fault.
    ctrl.admin_ok(SubmissionEntry::get_features(FeatureId::NumberOfQueues));
    let statuses: Vec<Status> = (0..3)
        .map(|i| {
            let sqe = SubmissionEntry::write(1, i * 8, 7, buf.iova(), 0);
            pair.run(&ctrl.regs, sqe).status()
        })
        .collect();
    assert_eq!(
        statuses,
        [Status::SUCCESS, Status::WRITE_FAULT, Status::SUCCESS]
    );
    assert_eq!(
        ctrl.stored(1, 8 * 512, PAGE),
        vec![0; PAGE],
        "the failed write did nothing"
    );
    assert_eq!(ctrl.stored(1, 16 * 512, PAGE), buf.as_slice());

    ctrl.model(|m| m.fail_command(CommandClass::Admin, 1, Status::INTERNAL_ERROR));
    let cqe = ctrl.admin(SubmissionEntry::get_features(FeatureId::NumberOfQueues));
    assert_eq!(cqe.status(), Status::INTERNAL_ERROR);
    assert_eq!(
        pair.run(&ctrl.regs, SubmissionEntry::flush(1)).status(),
        Status::SUCCESS
    );
}

#[test]
fn a_hang_swallows_work_until_the_controller_reset() {
    let mut ctrl = Ctrl::enabled("");
    let mut pair = ctrl.create_io(1, 8);
    ctrl.model(|m| m.hang(Recovery::ControllerReset));
    pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    ctrl.bus.clock().advance(Duration::from_secs(1));
    assert!(pair.poll().is_none());
    let stats = ctrl.stats();
    assert_eq!(stats.flushes, 0, "nothing fetched");
    assert!(stats.sq_doorbell_writes >= 4, "doorbells still accepted");
    assert!(
        ctrl.csts().rdy() && !ctrl.csts().cfs(),
        "a hang looks healthy"
    );

    ctrl.disable();
    ctrl.enable(8);
    let mut pair = ctrl.create_io(1, 8);
    assert_eq!(
        pair.run(&ctrl.regs, SubmissionEntry::flush(1)).status(),
        Status::SUCCESS
    );
}

#[test]
fn a_deep_hang_needs_a_function_reset() {
    let mut ctrl = Ctrl::enabled("timeout_500ms = 1");
    ctrl.model(|m| m.hang(Recovery::FunctionReset));
    ctrl.regs.write32(regs::CC, 0);
    assert_eq!(
        ctrl.wait_ready(false),
        None,
        "CSTS.RDY stays up past CAP.TO"
    );
    ctrl.function.reset_function().unwrap();
    assert_eq!(ctrl.csts(), Csts::new());
    assert_eq!(ctrl.cc(), Cc::new(), "registers at power-on values");
    assert_eq!(ctrl.regs.read32(regs::AQA), 0);
    ctrl.enable(8);
    ctrl.admin_ok(SubmissionEntry::get_features(FeatureId::NumberOfQueues));
    assert_eq!(ctrl.stats().function_resets, 1);
}

#[test]
fn a_fatal_status_stops_the_controller_until_reset() {
    let mut ctrl = Ctrl::enabled("timeout_500ms = 1");
    let mut pair = ctrl.create_io(1, 8);
    ctrl.model(|m| m.fatal(Recovery::ControllerReset));
    assert!(ctrl.csts().cfs());
    pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    assert!(pair.poll().is_none());
    ctrl.disable();
    assert!(!ctrl.csts().cfs());
    ctrl.enable(8);
    let mut pair = ctrl.create_io(1, 8);
    assert_eq!(
        pair.run(&ctrl.regs, SubmissionEntry::flush(1)).status(),
        Status::SUCCESS
    );

    // One that survives controller resets: the enable fails until an FLR.
    ctrl.model(|m| m.fatal(Recovery::FunctionReset));
    ctrl.disable();
    ctrl.regs.write32(regs::CC, Ctrl::enable_value().0);
    assert_eq!(ctrl.wait_ready(true), None);
    assert!(ctrl.csts().cfs());
    ctrl.function.reset_function().unwrap();
    assert!(!ctrl.csts().cfs());
    ctrl.enable(8);
    assert!(ctrl.csts().rdy());
}

#[test]
fn a_completion_the_controller_cannot_write_is_fatal() {
    let mut ctrl = Ctrl::enabled("");
    let pair = QueuePair::new(&ctrl, 1, 8, 8);
    let read_only = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0);
    ctrl.admin_ok(SubmissionEntry::create_io_cq(
        1,
        7,
        read_only.iova(),
        1,
        true,
    ));
    ctrl.admin_ok(SubmissionEntry::create_io_sq(1, 7, pair.sq.iova(), 1, 0));
    let mut pair = pair;
    pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    assert!(ctrl.csts().cfs());
    assert_eq!(ctrl.bus.iommu().take_faults().len(), 1);
    ctrl.disable();
    assert_eq!(ctrl.csts(), Csts::new());
}

#[test]
fn corrupt_completions() {
    let mut ctrl = Ctrl::enabled("");
    let mut pair = ctrl.create_io(1, 8);
    let next = |ctrl: &Ctrl, pair: &mut QueuePair| {
        let cid = pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
        let cqe = pair.poll().unwrap();
        pair.ring_cq(&ctrl.regs);
        (cid, cqe)
    };
    let (previous, _) = next(&ctrl, &mut pair);

    ctrl.model(|m| m.corrupt_next_completion(CommandClass::Io, Corruption::CidOutOfRange));
    let (_, cqe) = next(&ctrl, &mut pair);
    assert_eq!(cqe.cid(), 0xffff);
    let (cid, cqe) = next(&ctrl, &mut pair);
    assert_eq!(cqe.cid(), cid, "one-shot");

    ctrl.model(|m| m.corrupt_next_completion(CommandClass::Io, Corruption::DuplicateCid));
    let (_, cqe) = next(&ctrl, &mut pair);
    assert_eq!(cqe.cid(), cid, "the CID of the completion before");
    assert_ne!(cid, previous);

    ctrl.model(|m| m.corrupt_next_completion(CommandClass::Io, Corruption::SqHeadOutOfRange));
    let (_, cqe) = next(&ctrl, &mut pair);
    assert_eq!(
        cqe.sq_head(),
        8,
        "one past the last slot of an 8-entry queue"
    );

    // An admin-only corruption leaves I/O completions alone.
    ctrl.model(|m| m.corrupt_next_completion(CommandClass::Admin, Corruption::CidOutOfRange));
    let (cid, cqe) = next(&ctrl, &mut pair);
    assert_eq!(cqe.cid(), cid);
    let regs = ctrl.regs.clone();
    ctrl.admin_queue().submit(
        &regs,
        SubmissionEntry::get_features(FeatureId::NumberOfQueues),
    );
    assert_eq!(ctrl.admin_queue().drain(&regs)[0].cid(), 0xffff);
    ctrl.model(|m| m.clear_faults());
}

#[test]
fn a_wrong_phase_tag_hides_the_completion_from_the_host() {
    let mut ctrl = Ctrl::enabled("");
    let mut pair = ctrl.create_io(1, 8);
    ctrl.model(|m| m.corrupt_next_completion(CommandClass::Io, Corruption::WrongPhase));
    let posted = ctrl.stats().completions;
    let cid = pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    assert_eq!(
        ctrl.stats().completions,
        posted + 1,
        "the controller posted it"
    );
    let raw = pair.cq.get(usize::from(pair.cq_head));
    assert_eq!(raw.cid(), cid);
    assert_ne!(raw.phase(), pair.phase, "with the old phase");
    assert!(pair.poll().is_none(), "so the host sees nothing");

    // One-shot: the next completion carries the right phase, one slot further on.
    let next = pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    let behind = pair.cq.get(usize::from(pair.cq_head) + 1);
    assert_eq!((behind.cid(), behind.phase()), (next, pair.phase));
}

#[test]
fn resets_keep_the_namespace_data_and_drop_work_in_flight() {
    let mut ctrl = Ctrl::enabled("latency_ns = 10000");
    let mut pair = ctrl.create_io(1, 8);
    let buf = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(2));
    pair.submit(&ctrl.regs, SubmissionEntry::write(1, 0, 7, buf.iova(), 0));
    ctrl.bus.clock().advance(Duration::from_micros(10));
    assert_eq!(pair.drain(&ctrl.regs)[0].status(), Status::SUCCESS);

    // A write in flight when the controller is reset never happens and never completes.
    let other = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(3));
    pair.submit(&ctrl.regs, SubmissionEntry::write(1, 0, 7, other.iova(), 0));
    ctrl.disable();
    ctrl.bus.clock().advance(Duration::from_millis(1));
    assert!(pair.poll().is_none(), "no completion after the reset");
    assert_eq!(ctrl.stored(1, 0, PAGE), buf.as_slice());

    for reset in ["flr", "bus"] {
        match reset {
            "flr" => ctrl.function.reset_function().unwrap(),
            _ => ctrl.function.reset_group_hot().unwrap(),
        }
        assert_eq!(ctrl.csts(), Csts::new(), "{reset}");
        assert_eq!(Aqa(ctrl.regs.read32(regs::AQA)), Aqa(0), "{reset}");
        ctrl.enable(8);
        let mut pair = ctrl.create_io(1, 8);
        let sink = ctrl.buffer(PAGE, DmaDirection::FromDevice, |_| 0);
        pair.submit(&ctrl.regs, SubmissionEntry::read(1, 0, 7, sink.iova(), 0));
        ctrl.bus.clock().advance(Duration::from_micros(10));
        assert_eq!(pair.drain(&ctrl.regs)[0].status(), Status::SUCCESS);
        assert_eq!(sink.as_slice(), buf.as_slice(), "{reset}: data survives");
    }
    let stats = ctrl.stats();
    assert_eq!((stats.controller_resets, stats.function_resets), (1, 2));
}

#[test]
fn shadow_doorbells_are_read_and_event_indices_written() {
    let mut ctrl = Ctrl::enabled("shadow_doorbells = true");
    let mut pair = QueuePair::new(&ctrl, 1, 8, 4);
    ctrl.admin_ok(SubmissionEntry::create_io_cq(1, 3, pair.cq.iova(), 1, true));
    ctrl.admin_ok(SubmissionEntry::create_io_sq(1, 7, pair.sq.iova(), 1, 0));
    let shadow = ctrl.buffer(PAGE, DmaDirection::Bidirectional, |_| 0xff);
    let eventidx = ctrl.buffer(PAGE, DmaDirection::Bidirectional, |_| 0xff);
    let slot = |buffer: &userpci_framework::dma::DmaBuffer, at: usize| {
        u32::from_le_bytes(buffer.as_slice()[at..at + 4].try_into().unwrap())
    };
    let misaligned = SubmissionEntry::doorbell_buffer_config(shadow.iova() + 8, eventidx.iova());
    assert_eq!(
        ctrl.admin(misaligned).status(),
        Status::INVALID_FIELD.with_dnr()
    );
    ctrl.admin_ok(SubmissionEntry::doorbell_buffer_config(
        shadow.iova(),
        eventidx.iova(),
    ));
    // The shadow buffer starts with the current doorbell values; the admin queue's are
    // mirrored from MMIO afterwards.
    assert_eq!((slot(&shadow, 8), slot(&shadow, 12)), (0, 0));
    let admin_tail = u32::from(ctrl.admin_queue().sq_tail);
    assert_eq!(slot(&shadow, 0), admin_tail);

    // The host moves SQ 1's tail in the shadow buffer and rings MMIO with a stale value: the
    // controller takes the shadow value.
    let cids: Vec<u16> = (0..3)
        .map(|_| pair.place(SubmissionEntry::flush(1)))
        .collect();
    let mut shadow = shadow;
    shadow.as_mut_slice()[8..12].copy_from_slice(&3u32.to_le_bytes());
    ctrl.regs.write32(regs::DOORBELLS + 8, 0);
    let done: Vec<u16> = std::iter::from_fn(|| pair.poll())
        .map(|c| c.cid())
        .collect();
    assert_eq!(done, cids);
    assert_eq!(slot(&eventidx, 8), 3, "EventIdx: the tail fetched");

    // The CQ (4 entries) is full. The host frees it through the shadow head only; the next
    // submissions find room because the controller reads the shadow head before posting.
    shadow.as_mut_slice()[12..16].copy_from_slice(&u32::from(pair.cq_head).to_le_bytes());
    let more: Vec<u16> = (0..3)
        .map(|_| pair.place(SubmissionEntry::flush(1)))
        .collect();
    shadow.as_mut_slice()[8..12].copy_from_slice(&u32::from(pair.sq_tail).to_le_bytes());
    pair.ring_sq(&ctrl.regs);
    let done: Vec<u16> = std::iter::from_fn(|| pair.poll())
        .map(|c| c.cid())
        .collect();
    assert_eq!(done, more);
    assert_eq!(
        slot(&eventidx, 12),
        3,
        "EventIdx: the head the controller read"
    );
    assert_eq!(ctrl.stats().violations.total(), 0);
}

#[test]
fn interrupt_coalescing_on_io_queues() {
    let mut ctrl = Ctrl::enabled("");
    let mut pair = ctrl.create_io(1, 16);
    // Threshold 4 entries (zero-based 3), time 1 ms.
    let coalescing = InterruptCoalescing { thr: 3, time: 10 }.to_dword();
    ctrl.admin_ok(SubmissionEntry::set_features(
        FeatureId::InterruptCoalescing,
        coalescing,
    ));
    assert!(
        ctrl.vectors[0].take().unwrap() > 0,
        "the admin queue is never coalesced"
    );
    for _ in 0..2 {
        pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    }
    assert_eq!(ctrl.vectors[1].take().unwrap(), 0);
    ctrl.bus.clock().advance(Duration::from_micros(999));
    assert_eq!(ctrl.vectors[1].take().unwrap(), 0);
    ctrl.bus.clock().advance(Duration::from_micros(1));
    assert_eq!(
        ctrl.vectors[1].take().unwrap(),
        1,
        "the aggregation time ran out"
    );
    for _ in 0..4 {
        pair.place(SubmissionEntry::flush(1));
    }
    pair.ring_sq(&ctrl.regs);
    assert_eq!(
        ctrl.vectors[1].take().unwrap(),
        1,
        "the threshold was reached"
    );
    assert_eq!(pair.drain(&ctrl.regs).len(), 6);
}
