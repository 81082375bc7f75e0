//! The model's hostile-write hook (`model::hostile`), and the driver bugs it found: each
//! test states the device behaviour and what the driver must do.

mod driver_support;

use std::sync::{Arc, Mutex};

use driver_support::*;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::DmaBuffer;
use userpci_nvme::model::{CommandClass, DeviceWrite, NvmeModel, Recovery};
use userpci_nvme::spec::Status;
use userpci_nvme::{
    Controller, ControllerOptions, ControllerState, Error, IoQueuePair, QpairOptions, QpairState,
};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

fn set_hook(
    bus: &userpci_framework::backend::sim::SimBus,
    hook: impl FnMut(DeviceWrite<'_>) + Send + 'static,
) {
    bus.with_model(addr(), |m: &mut NvmeModel| {
        m.set_hostile(Some(Box::new(hook)))
    })
    .unwrap();
}

fn hostile_writes(bus: &userpci_framework::backend::sim::SimBus) -> u64 {
    bus.with_model(addr(), |m: &mut NvmeModel| m.hostile_writes())
        .unwrap()
}

#[test]
fn the_hook_rewrites_a_completion_entry() {
    let bus = bus("blocks = 1024");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 8,
            ..QpairOptions::default()
        })
        .unwrap();
    // The I/O completion's CID becomes FFFFh; the driver counts and ignores it.
    set_hook(&bus, |write| {
        if let DeviceWrite::Completion { sqid: 1, entry } = write {
            entry[12..14].copy_from_slice(&[0xff, 0xff]);
        }
    });
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    let mut done = 0;
    qp.process_completions(0, &mut |_| done += 1);
    assert_eq!(done, 0);
    assert_eq!(qp.stats().bogus.cid_reserved, 1);
    assert_eq!(qp.in_flight(), 1);
    assert_eq!(hostile_writes(&bus), 1);
}

#[test]
fn the_hook_rewrites_identify_data_and_sees_eventidx() {
    let bus = bus("blocks = 1024\nshadow_doorbells = true");
    set_hook(&bus, |write| {
        if let DeviceWrite::Identify { cns: 1, data, .. } = write {
            data[4..12].copy_from_slice(b"HOSTILE!");
        }
    });
    let ctrl = controller(&bus);
    assert!(
        ctrl.info().serial.starts_with("HOSTILE!"),
        "{}",
        ctrl.info().serial
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    set_hook(&bus, move |write| {
        if let DeviceWrite::EventIdx { qid, sq, value } = write {
            log.lock().unwrap().push((qid, sq, *value));
        }
    });
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 8,
            ..QpairOptions::default()
        })
        .unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    let c = one(&mut qp);
    c.result.unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.contains(&(1, true, 1)),
        "SQ 1 EventIdx after fetching one: {seen:?}"
    );
    assert!(
        seen.iter().any(|&(qid, sq, _)| qid == 1 && !sq),
        "CQ 1 EventIdx: {seen:?}"
    );
}

/// A list page that names the next 1024 NSIDs after the command's, every time.
fn endless_list(transfers: Arc<Mutex<u32>>) -> impl FnMut(DeviceWrite<'_>) + Send {
    move |write| {
        if let DeviceWrite::Identify { cns: 2, nsid, data } = write {
            let mut n = transfers.lock().unwrap();
            *n += 1;
            if *n > 64 {
                return; // let a runaway bring-up end so the assertion can report it
            }
            for (i, id) in data.chunks_exact_mut(4).enumerate() {
                id.copy_from_slice(&(nsid + 1 + i as u32).to_le_bytes());
            }
        }
    }
}

/// Found by `fuzz_admin_data` (corpus `03-ns-list-counting-up.hex`): the driver followed the
/// Active Namespace ID list for as long as pages came back full, up to NSID FFFFFFFEh (four
/// million Identify commands and 16 GiB of IDs). It now keeps IDs up to `NN` only.
#[test]
fn an_endless_namespace_list_is_bounded_by_nn() {
    let bus = bus("blocks = 1024");
    let pages = Arc::new(Mutex::new(0));
    set_hook(&bus, endless_list(pages.clone()));
    let ctrl = Controller::new(bus.open(addr()).unwrap(), ControllerOptions::default()).unwrap();
    assert_eq!(*pages.lock().unwrap(), 1, "one list page: NN is 1");
    let ids: Vec<u32> = ctrl.namespaces().iter().map(|ns| ns.nsid()).collect();
    assert_eq!(ids, vec![1]);
}

/// The same with `NN` FFFFFFFFh as well: at most 4096 NSIDs (four pages) are taken; the
/// model has one namespace, so Identify Namespace of NSID 2 fails bring-up with its status.
#[test]
fn an_endless_namespace_list_with_a_huge_nn_stops_at_the_driver_limit() {
    let bus = bus("blocks = 1024");
    let pages = Arc::new(Mutex::new(0));
    let mut list = endless_list(pages.clone());
    set_hook(&bus, move |write| match write {
        DeviceWrite::Identify { cns: 1, data, .. } => data[516..520].fill(0xff),
        other => list(other),
    });
    let err = Controller::new(bus.open(addr()).unwrap(), ControllerOptions::default()).unwrap_err();
    // Four full pages give the 4096 taken; the fifth shows there are more.
    assert_eq!(*pages.lock().unwrap(), 5, "list pages read");
    let text = err.to_string();
    assert!(text.contains("Invalid Namespace or Format"), "{text}");
}

/// Found by `fuzz_completions` (corpus `10-failed-reset-keeps-buffer.hex`): when a reset
/// brought the controller back but could not recreate one pair's queues (here Create I/O SQ
/// fails, the sixth admin command of the recovery), that pair failed its requests and kept
/// their buffers, as if the controller might still use them; the controller was disabled in
/// that reset and has no such queue, so the buffers now come back with the error.
#[test]
fn a_pair_not_recreated_after_a_reset_hands_its_buffers_back() {
    let bus = bus("blocks = 1024");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 8,
            ..QpairOptions::default()
        })
        .unwrap();
    // The write stays in flight: the controller fetches nothing until the reset.
    bus.with_model(addr(), |m: &mut NvmeModel| {
        m.hang(Recovery::ControllerReset)
    })
    .unwrap();
    let buffer = patterned(&bus, 4096, 5);
    let iova = buffer.iova();
    qp.submit_write(&ns, 0, buffer, 5).unwrap();
    qp.commit().unwrap();
    bus.with_model(addr(), |m: &mut NvmeModel| {
        m.fail_command(CommandClass::Admin, 6, Status::INVALID_FIELD)
    })
    .unwrap();
    ctrl.reset().unwrap();
    assert_eq!(ctrl.state(), ControllerState::Enabled);
    assert_eq!(qp.state(), QpairState::Failed, "Create I/O SQ failed");
    let c = one(&mut qp);
    assert_eq!(c.token, 5);
    assert!(
        matches!(c.result, Err(Error::Retriable { .. })),
        "{:?}",
        c.result
    );
    let buffer = c.buffer.expect("the buffer comes back");
    assert_eq!(buffer.iova(), iova);
    assert!(check(buffer.as_slice(), 5));
}

/// Found by `fuzz_completions` (seed-2 long run, corpus `11-honest-write-refused.hex`):
/// completions whose `SQHD` stays at the old head (in range, so accepted) left the driver
/// counting every entry as unfetched; once all commands had completed nothing could correct
/// it, and the pair refused every request with "queue full" for good. A completed command
/// now moves the head past its own slot.
#[test]
fn a_head_that_never_moves_does_not_wedge_the_queue() {
    let bus = bus("blocks = 1024");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 5,
            ..QpairOptions::default()
        })
        .unwrap();
    set_hook(&bus, |write| {
        if let DeviceWrite::Completion { sqid: 1, entry } = write {
            entry[8..10].copy_from_slice(&[0, 0]); // SQHD 0, always
        }
    });
    for round in 0..3u64 {
        for i in 0..4 {
            let token = round * 4 + i;
            let submitted = qp.submit_write(&ns, token * 8, patterned(&bus, 4096, token), token);
            assert!(
                submitted.is_ok(),
                "round {round}: {:?}",
                submitted.err().map(|r| r.error)
            );
        }
        let done = drain(&mut qp, 4, 10);
        assert!(done.iter().all(|c| c.result.is_ok()));
    }
    assert_eq!(qp.stats().completed, 12);
}
