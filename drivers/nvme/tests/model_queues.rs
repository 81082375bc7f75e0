//! Controller model: queue management, completion posting (full queues, phase), latency
//! mode, Abort, asynchronous events and doorbell protocol violations.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::RegisterIo;
use userpci_framework::dma::DmaDirection;
use userpci_nvme::model::ProtocolViolations;
use userpci_nvme::spec::features::FeatureId;
use userpci_nvme::spec::log::{AsyncEvent, LogPageId};
use userpci_nvme::spec::registers::{self as regs, cq_head_doorbell, sq_tail_doorbell};
use userpci_nvme::spec::{Status, SubmissionEntry, NSID_ALL};

#[test]
fn queue_creation_and_deletion_errors() {
    let mut ctrl = Ctrl::enabled("mqes = 63\nmax_queues = 4");
    let pair = QueuePair::new(&ctrl, 1, 64, 64);
    let (sq, cq) = (pair.sq.iova(), pair.cq.iova());
    let cases = [
        (
            SubmissionEntry::create_io_cq(0, 7, cq, 0, true),
            Status::INVALID_QUEUE_IDENTIFIER,
        ),
        (
            SubmissionEntry::create_io_cq(5, 7, cq, 0, true),
            Status::INVALID_QUEUE_IDENTIFIER,
        ),
        (
            SubmissionEntry::create_io_cq(1, 0, cq, 0, true),
            Status::INVALID_QUEUE_SIZE,
        ),
        (
            SubmissionEntry::create_io_cq(1, 64, cq, 0, true),
            Status::INVALID_QUEUE_SIZE,
        ),
        (
            SubmissionEntry::create_io_cq(1, 7, cq + 64, 0, true),
            Status::PRP_OFFSET_INVALID,
        ),
        (
            SubmissionEntry::create_io_cq(1, 7, cq, 5, true),
            Status::INVALID_INTERRUPT_VECTOR,
        ),
        (
            SubmissionEntry {
                cdw11: 0,
                ..SubmissionEntry::create_io_cq(1, 7, cq, 0, false)
            },
            Status::INVALID_FIELD,
        ),
        (
            SubmissionEntry::create_io_sq(1, 7, sq, 1, 0),
            Status::COMPLETION_QUEUE_INVALID,
        ),
        (
            SubmissionEntry::create_io_sq(1, 7, sq, 0, 0),
            Status::COMPLETION_QUEUE_INVALID,
        ),
    ];
    for (sqe, expected) in cases {
        assert_eq!(ctrl.admin(sqe).status(), expected.with_dnr(), "{sqe:?}");
    }
    // Size MQES + 1 is the largest allowed.
    ctrl.admin_ok(SubmissionEntry::create_io_cq(1, 63, cq, 4, true));
    let again = ctrl.admin(SubmissionEntry::create_io_cq(1, 7, cq, 0, true));
    assert_eq!(again.status(), Status::INVALID_QUEUE_IDENTIFIER.with_dnr());
    for (sqe, expected) in [
        (
            SubmissionEntry::create_io_sq(0, 7, sq, 1, 0),
            Status::INVALID_QUEUE_IDENTIFIER,
        ),
        (
            SubmissionEntry::create_io_sq(5, 7, sq, 1, 0),
            Status::INVALID_QUEUE_IDENTIFIER,
        ),
        (
            SubmissionEntry::create_io_sq(1, 64, sq, 1, 0),
            Status::INVALID_QUEUE_SIZE,
        ),
        (
            SubmissionEntry::create_io_sq(1, 7, sq + 8, 1, 0),
            Status::PRP_OFFSET_INVALID,
        ),
        (
            SubmissionEntry {
                cdw11: 1 << 16,
                ..SubmissionEntry::create_io_sq(1, 7, sq, 1, 0)
            },
            Status::INVALID_FIELD,
        ),
    ] {
        assert_eq!(ctrl.admin(sqe).status(), expected.with_dnr(), "{sqe:?}");
    }
    ctrl.admin_ok(SubmissionEntry::create_io_sq(1, 63, sq, 1, 0));
    let second = QueuePair::new(&ctrl, 2, 8, 8);
    ctrl.admin_ok(SubmissionEntry::create_io_sq(2, 7, second.sq.iova(), 1, 0));

    // A completion queue with submission queues attached cannot go (and may be retried).
    let busy = ctrl.admin(SubmissionEntry::delete_io_cq(1));
    assert_eq!(busy.status(), Status::INVALID_QUEUE_DELETION);
    assert!(!busy.status().dnr());
    for qid in [0, 3] {
        let sqe = SubmissionEntry::delete_io_sq(qid);
        assert_eq!(
            ctrl.admin(sqe).status(),
            Status::INVALID_QUEUE_IDENTIFIER.with_dnr()
        );
    }
    ctrl.admin_ok(SubmissionEntry::delete_io_sq(1));
    ctrl.admin_ok(SubmissionEntry::delete_io_sq(2));
    ctrl.admin_ok(SubmissionEntry::delete_io_cq(1));
    let gone = ctrl.admin(SubmissionEntry::delete_io_cq(1));
    assert_eq!(gone.status(), Status::INVALID_QUEUE_IDENTIFIER.with_dnr());
    let stats = ctrl.stats();
    assert_eq!((stats.sq_deletes, stats.cq_deletes), (4, 3));
}

#[test]
fn io_queues_need_the_entry_sizes_in_cc() {
    let mut ctrl = Ctrl::open(&bus(""));
    ctrl.enable(4);
    ctrl.disable();
    let admin = QueuePair::new(&ctrl, 0, 4, 4);
    ctrl.regs.write64(regs::ASQ, admin.sq.iova());
    ctrl.regs.write64(regs::ACQ, admin.cq.iova());
    ctrl.regs.write32(
        regs::CC,
        Ctrl::enable_value().with_iosqes(0).with_iocqes(0).0,
    );
    assert!(ctrl.csts().rdy());
    ctrl.admin = Some(admin);
    let pair = QueuePair::new(&ctrl, 1, 8, 8);
    let cqe = ctrl.admin(SubmissionEntry::create_io_cq(1, 7, pair.cq.iova(), 1, true));
    assert_eq!(
        cqe.status(),
        Status::INVALID_QUEUE_SIZE.with_dnr(),
        "as QEMU"
    );
}

#[test]
fn a_full_completion_queue_holds_completions_until_the_head_moves() {
    let mut ctrl = Ctrl::enabled("");
    // A 4-entry CQ holds at most 3 completions; the SQ has 16 entries.
    let mut pair = QueuePair::new(&ctrl, 1, 16, 4);
    ctrl.admin_ok(SubmissionEntry::create_io_cq(1, 3, pair.cq.iova(), 1, true));
    ctrl.admin_ok(SubmissionEntry::create_io_sq(1, 15, pair.sq.iova(), 1, 0));
    let cids: Vec<u16> = (0..6)
        .map(|_| pair.place(SubmissionEntry::flush(1)))
        .collect();
    pair.ring_sq(&ctrl.regs);
    let first: Vec<u16> = std::iter::from_fn(|| pair.poll())
        .map(|c| c.cid())
        .collect();
    assert_eq!(first, cids[..3]);
    assert_eq!(
        pair.cq.get(3).dw3,
        0,
        "the slot before the head is never written"
    );
    assert_eq!(ctrl.stats().completions, 2 + 3, "two admin, three I/O");

    // Consumed but not acknowledged: still nothing new.
    ctrl.regs
        .write32(sq_tail_doorbell(1, 0), u32::from(pair.sq_tail));
    assert!(pair.poll().is_none());
    pair.ring_cq(&ctrl.regs);
    let rest: Vec<_> = std::iter::from_fn(|| pair.poll()).collect();
    assert_eq!(rest.iter().map(|c| c.cid()).collect::<Vec<_>>(), cids[3..]);
    assert!(rest
        .iter()
        .all(|c| c.sq_head() == 6 && c.status().is_success()));
}

#[test]
fn the_phase_tag_flips_on_every_wrap() {
    let mut ctrl = Ctrl::enabled("");
    let mut pair = ctrl.create_io(1, 4);
    let mut phases = Vec::new();
    for _ in 0..10 {
        let cid = pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
        let slot = pair.cq_head;
        let cqe = pair.cq.get(usize::from(slot));
        assert_eq!(cqe.cid(), cid);
        phases.push(cqe.phase());
        assert_eq!(pair.poll().map(|c| c.cid()), Some(cid));
        pair.ring_cq(&ctrl.regs);
    }
    let t = true;
    assert_eq!(phases, [t, t, t, t, !t, !t, !t, !t, t, t]);
    assert!(ctrl.model(|m| m.stats().interrupts) >= 10);
    assert!(
        ctrl.vectors[1].take().unwrap() >= 10,
        "each completion signals vector 1"
    );
}

#[test]
fn with_a_latency_io_completes_only_as_the_clock_advances() {
    let mut ctrl = Ctrl::enabled("latency_ns = 5000");
    let mut pair = ctrl.create_io(1, 8);
    let buf = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(1));
    let cid = pair.submit(&ctrl.regs, SubmissionEntry::write(1, 0, 7, buf.iova(), 0));
    let later = pair.submit(&ctrl.regs, SubmissionEntry::flush(1));
    assert!(pair.poll().is_none());
    assert_eq!(ctrl.model(|m| m.allocated_chunks(1)), 0, "not executed yet");
    ctrl.bus.clock().advance(Duration::from_nanos(4999));
    assert!(pair.poll().is_none());
    ctrl.bus.clock().advance(Duration::from_nanos(1));
    let done: Vec<_> = pair.drain(&ctrl.regs);
    assert_eq!(
        done.iter().map(|c| c.cid()).collect::<Vec<_>>(),
        [cid, later]
    );
    assert_eq!(done[0].sq_head(), 2, "both were fetched at the doorbell");
    assert_eq!(ctrl.stored(1, 0, PAGE), buf.as_slice());
}

#[test]
fn abort_reaches_a_delayed_command_and_held_event_requests() {
    let mut ctrl = Ctrl::enabled("latency_ns = 1000000");
    let mut pair = ctrl.create_io(1, 8);
    let buf = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(2));
    let cid = pair.submit(&ctrl.regs, SubmissionEntry::write(1, 0, 7, buf.iova(), 0));
    // Admin commands are not delayed.
    assert_eq!(
        ctrl.admin_ok(SubmissionEntry::abort(1, cid)) & 1,
        0,
        "aborted"
    );
    let aborted = pair.drain(&ctrl.regs);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].cid(), aborted[0].status()),
        (cid, Status::ABORT_REQUESTED)
    );
    ctrl.bus.clock().advance(Duration::from_millis(2));
    assert!(pair.poll().is_none(), "no second completion");
    assert_eq!(
        ctrl.model(|m| m.allocated_chunks(1)),
        0,
        "the write never ran"
    );
    assert_eq!(
        ctrl.admin_ok(SubmissionEntry::abort(1, cid)) & 1,
        1,
        "nothing to abort"
    );
    let unknown_queue = ctrl.admin(SubmissionEntry::abort(7, 1));
    assert_eq!(unknown_queue.status(), Status::INVALID_FIELD.with_dnr());

    let regs = ctrl.regs.clone();
    let aer = ctrl
        .admin_queue()
        .submit(&regs, SubmissionEntry::async_event_request());
    let abort = ctrl
        .admin_queue()
        .submit(&regs, SubmissionEntry::abort(0, aer));
    let cqes = ctrl.admin_queue().drain(&regs);
    assert_eq!(cqes.len(), 2);
    assert_eq!(
        (cqes[0].cid(), cqes[0].status()),
        (aer, Status::ABORT_REQUESTED)
    );
    assert_eq!((cqes[1].cid(), cqes[1].status()), (abort, Status::SUCCESS));
    assert_eq!(cqes[1].dw0 & 1, 0, "aborted");
}

#[test]
fn event_requests_are_held_until_an_event_and_limited() {
    let mut ctrl = Ctrl::enabled("");
    let regs = ctrl.regs.clone();
    // An invalid doorbell with no request held is not reported later.
    regs.write32(sq_tail_doorbell(3, 0), 1);
    let held: Vec<u16> = (0..4)
        .map(|_| {
            ctrl.admin_queue()
                .submit(&regs, SubmissionEntry::async_event_request())
        })
        .collect();
    assert!(
        ctrl.admin_queue().poll().is_none(),
        "no event, no completion"
    );
    let fifth = ctrl.admin(SubmissionEntry::async_event_request());
    assert_eq!(fifth.status(), Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED);

    // SMART events need their configuration bits; Error events do not.
    let smart = AsyncEvent {
        event_type: AsyncEvent::TYPE_SMART_HEALTH,
        info: 0x01,
        log_page: LogPageId::SmartHealth as u8,
    };
    let inject = |ctrl: &Ctrl, event| {
        ctrl.bus
            .with_model_ctx(addr(), |m: &mut userpci_nvme::model::NvmeModel, ctx| {
                m.inject_async_event(ctx, event)
            })
            .unwrap()
    };
    inject(&ctrl, smart);
    assert!(ctrl.admin_queue().poll().is_none());
    ctrl.admin_ok(SubmissionEntry::set_features(
        FeatureId::AsyncEventConfiguration,
        0xff,
    ));
    inject(&ctrl, smart);
    let cqe = ctrl.admin_queue().drain(&regs);
    assert_eq!(cqe.len(), 1);
    assert_eq!(
        (cqe[0].cid(), AsyncEvent::from_dword(cqe[0].dw0)),
        (held[0], smart)
    );

    // A doorbell for a queue that does not exist: an Error event (Invalid Doorbell Register).
    regs.write32(sq_tail_doorbell(3, 0), 1);
    let cqe = ctrl.admin_queue().drain(&regs);
    let event = AsyncEvent::from_dword(cqe[0].dw0);
    assert_eq!(cqe[0].cid(), held[1]);
    assert_eq!(event.event_type, AsyncEvent::TYPE_ERROR);
    assert_eq!(event.info, AsyncEvent::INFO_ERROR_INVALID_DOORBELL_REGISTER);
    assert_eq!(event.log_page, LogPageId::ErrorInformation as u8);
    // Masked until the host reads the Error Information log.
    regs.write32(cq_head_doorbell(0, 0), 15);
    assert!(ctrl.admin_queue().poll().is_none());
    let log = ctrl.buffer(64, DmaDirection::FromDevice, |_| 0);
    let read_log =
        SubmissionEntry::get_log_page(NSID_ALL, LogPageId::ErrorInformation, 15, 0, log.iova(), 0);
    let cid = ctrl.admin_queue().submit(&regs, read_log);
    let cqes = ctrl.admin_queue().drain(&regs);
    // As QEMU: reading the log clears the events waiting behind the mask (the log has them).
    assert_eq!(cqes.iter().map(|c| c.cid()).collect::<Vec<_>>(), [cid]);
    // The next error is reported again.
    regs.write32(sq_tail_doorbell(0, 0), 16);
    let cqes = ctrl.admin_queue().drain(&regs);
    assert_eq!(cqes.iter().map(|c| c.cid()).collect::<Vec<_>>(), [held[2]]);
    let event = AsyncEvent::from_dword(cqes[0].dw0);
    assert_eq!(event.info, AsyncEvent::INFO_ERROR_INVALID_DOORBELL_VALUE);
}

#[test]
fn doorbell_protocol_violations_are_counted_and_ignored() {
    let mut ctrl = Ctrl::open(&bus("ready_delay_us = 100"));
    let regs = ctrl.regs.clone();
    regs.write32(sq_tail_doorbell(0, 0), 1);
    assert_eq!(ctrl.stats().violations.doorbell_while_disabled, 1);
    ctrl.enable(8);
    let mut pair = ctrl.create_io(1, 8);

    // Between CC.EN 1 -> 0 and CSTS.RDY 0, doorbells are violations too.
    regs.write32(regs::CC, Ctrl::enable_value().with_en(false).0);
    assert!(ctrl.csts().rdy());
    pair.submit(&regs, SubmissionEntry::flush(1));
    regs.write32(cq_head_doorbell(0, 0), 0);
    assert!(pair.poll().is_none(), "the queues are gone");
    ctrl.wait_ready(false).unwrap();
    let violations = ctrl.stats().violations;
    assert_eq!(violations.doorbell_while_disabled, 3);

    // Enabled again: nonexistent queues and out-of-range values.
    ctrl.enable(8);
    let mut pair = ctrl.create_io(1, 8);
    regs.write32(sq_tail_doorbell(2, 0), 1);
    regs.write32(cq_head_doorbell(8, 0), 1);
    regs.write32(sq_tail_doorbell(9, 0), 0);
    regs.write32(sq_tail_doorbell(1, 0), 8);
    regs.write32(cq_head_doorbell(1, 0), 1);
    assert_eq!(
        pair.run(&regs, SubmissionEntry::flush(1)).status(),
        Status::SUCCESS
    );
    let stats = ctrl.stats();
    assert_eq!(
        stats.violations,
        ProtocolViolations {
            doorbell_while_disabled: 3,
            doorbell_invalid_register: 3,
            doorbell_invalid_value: 2,
            enable_before_not_ready: 0,
        }
    );
    assert_eq!(stats.violations.total(), 8);
    assert!(stats.sq_doorbell_writes >= 8 && stats.cq_doorbell_writes >= 4);
}

#[test]
fn deleting_a_queue_aborts_its_delayed_commands() {
    let mut ctrl = Ctrl::enabled("latency_ns = 1000");
    let mut pair = ctrl.create_io(1, 8);
    let cids: Vec<u16> = (0..2)
        .map(|_| pair.submit(&ctrl.regs, SubmissionEntry::flush(1)))
        .collect();
    ctrl.admin_ok(SubmissionEntry::delete_io_sq(1));
    let cqes = pair.drain(&ctrl.regs);
    assert_eq!(cqes.iter().map(|c| c.cid()).collect::<Vec<_>>(), cids);
    assert!(cqes
        .iter()
        .all(|c| c.status() == Status::ABORTED_SQ_DELETION));
    ctrl.bus.clock().advance(Duration::from_millis(1));
    assert!(pair.poll().is_none());
    ctrl.admin_ok(SubmissionEntry::delete_io_cq(1));
}

#[test]
fn doorbells_follow_the_stride() {
    let mut ctrl = Ctrl::enabled("dstrd = 2");
    let mut pair = ctrl.create_io(1, 8);
    assert_eq!(sq_tail_doorbell(1, 2), 0x1020);
    for _ in 0..10 {
        assert_eq!(
            pair.run(&ctrl.regs, SubmissionEntry::flush(1)).status(),
            Status::SUCCESS
        );
    }
    // Inside a 16-byte stride only the first dword is a doorbell.
    ctrl.regs.write32(sq_tail_doorbell(1, 2) + 4, 1);
    let violations = ctrl.stats().violations;
    assert_eq!(violations.doorbell_invalid_register, 1);
    assert_eq!(violations.total(), 1);
}
