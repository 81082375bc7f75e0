//! Error handling against the model's fault injection, on the bus's virtual clock: untrusted
//! completions, error statuses, timeouts with abort and controller reset, fatal status,
//! surprise removal, failed recovery.

mod driver_support;

use std::collections::BTreeMap;
use std::time::Duration;

use driver_support::*;
use userpci_framework::backend::sim::{SimBus, SimFault, SimFunction};
use userpci_framework::dma::DmaBuffer;
use userpci_nvme::model::{CommandClass, Corruption, NvmeModel, Recovery};
use userpci_nvme::spec::Status;
use userpci_nvme::{
    ControllerState, Error, IoCompletion, IoQueuePair, Namespace, QpairOptions, QpairState,
    StatusKind,
};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

fn inject(bus: &SimBus, f: impl FnOnce(&mut NvmeModel)) {
    bus.with_model(addr(), f).unwrap();
}

fn poll(qp: &mut Qp, into: &mut Vec<IoCompletion<u64, DmaBuffer>>) {
    qp.process_completions(0, &mut |c| into.push(c));
}

/// Tokens seen, with how often.
fn counts(done: &[IoCompletion<u64, DmaBuffer>]) -> BTreeMap<u64, usize> {
    let mut map = BTreeMap::new();
    for c in done {
        *map.entry(c.token).or_default() += 1;
    }
    map
}

fn read_back(qp: &mut Qp, bus: &SimBus, ns: &Namespace, lba: u64, len: usize) -> DmaBuffer {
    qp.submit_read(ns, lba, zeroed(bus, len), u64::MAX).unwrap();
    let c = one(qp);
    c.result.unwrap();
    c.buffer.unwrap()
}

fn assert_clean_protocol(bus: &SimBus) {
    let stats = model_stats(bus);
    assert_eq!(stats.violations.total(), 0, "{:?}", stats.violations);
    assert_eq!(
        (stats.sq_deletes, stats.cq_deletes),
        (0, 0),
        "no Delete SQ/CQ around a reset"
    );
}

#[test]
fn untrusted_completions_are_counted_ignored_and_never_complete_the_wrong_request() {
    let bus = bus("blocks = 4096");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 16,
            ..QpairOptions::default()
        })
        .unwrap();
    let mut done = Vec::new();

    // An SQ head past the queue: counted, not used; the CID is intact, so it completes.
    inject(&bus, |m| {
        m.corrupt_next_completion(CommandClass::Io, Corruption::SqHeadOutOfRange)
    });
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    poll(&mut qp, &mut done);
    assert_eq!(counts(&done), BTreeMap::from([(1, 1)]));
    assert_eq!(qp.stats().bogus.sq_head_invalid, 1);

    // The completion of write 2 carries the previous command's CID (a duplicate), and the one
    // of write 3 CID FFFFh (reserved): both are ignored, the commands stay in flight.
    inject(&bus, |m| {
        m.corrupt_next_completion(CommandClass::Io, Corruption::DuplicateCid)
    });
    qp.submit_write(&ns, 100, patterned(&bus, 8192, 2), 2)
        .unwrap();
    poll(&mut qp, &mut done);
    inject(&bus, |m| {
        m.corrupt_next_completion(CommandClass::Io, Corruption::CidOutOfRange)
    });
    qp.submit_write(&ns, 200, patterned(&bus, 4096, 3), 3)
        .unwrap();
    for _ in 0..5 {
        poll(&mut qp, &mut done);
    }
    assert_eq!(done.len(), 1, "nothing completed by a bogus entry");
    let bogus = qp.stats().bogus;
    assert_eq!(
        (
            bogus.cid_not_in_flight,
            bogus.cid_reserved,
            bogus.cid_out_of_range
        ),
        (1, 1, 0)
    );
    assert_eq!(qp.in_flight(), 2);

    // Their timeout: Abort (the model has nothing to abort), then after the abort timeout a
    // controller reset, and both are re-issued and complete once.
    bus.clock().advance(Duration::from_secs(5));
    poll(&mut qp, &mut done);
    assert_eq!(qp.stats().timeouts, 2);
    assert_eq!(qp.stats().aborts, 2);
    assert_eq!(done.len(), 1);
    bus.clock().advance(Duration::from_secs(1));
    for _ in 0..3 {
        poll(&mut qp, &mut done);
    }
    assert_eq!(counts(&done), BTreeMap::from([(1, 1), (2, 1), (3, 1)]));
    assert!(done.iter().all(|c| c.result.is_ok()));
    assert_eq!(ctrl.resets(), 1);
    let stats = qp.stats();
    assert_eq!((stats.reissued, stats.reconnects), (2, 1));
    assert_clean_protocol(&bus);
    assert!(check(
        read_back(&mut qp, &bus, &ns, 100, 8192).as_slice(),
        2
    ));
    assert!(check(
        read_back(&mut qp, &bus, &ns, 200, 4096).as_slice(),
        3
    ));
}

#[test]
fn error_statuses_become_typed_errors_and_dnr_is_honoured() {
    let bus = bus("blocks = 4096\nmdts = 1");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();

    inject(&bus, |m| {
        m.fail_command(
            CommandClass::Io,
            1,
            Status::UNRECOVERED_READ_ERROR.with_dnr(),
        )
    });
    qp.submit_read(&ns, 0, zeroed(&bus, 512), 1).unwrap();
    let c = one(&mut qp);
    assert!(c.buffer.is_some(), "the buffer comes back with the error");
    let err = c.result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Command {
                qid: 1,
                opcode: 0x02,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), Some(StatusKind::Media));
    assert!(err.status().unwrap().dnr());
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("Unrecovered Read Error"), "{err}");

    inject(&bus, |m| {
        m.fail_command(CommandClass::Io, 1, Status::INTERNAL_ERROR)
    });
    qp.submit_write(&ns, 0, patterned(&bus, 512, 1), 2).unwrap();
    let err = one(&mut qp).result.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert_eq!(err.kind(), Some(StatusKind::Generic));

    // MDTS 1 (8 KiB): a 24 KiB write is three commands; the second fails. The request
    // completes once, after all three, with that error.
    inject(&bus, |m| {
        m.fail_command(CommandClass::Io, 2, Status::WRITE_FAULT)
    });
    qp.submit_write(&ns, 64, patterned(&bus, 24 * 1024, 3), 3)
        .unwrap();
    let done = drain(&mut qp, 1, 5);
    assert_eq!(qp.in_flight(), 0);
    let err = done.into_iter().next().unwrap().result.unwrap_err();
    assert_eq!(err.status().map(|s| s.code()), Some(Status::WRITE_FAULT));
    assert_eq!(qp.stats().errors, 3);
    assert_eq!(qp.stats().submitted, 5);
}

#[test]
fn a_hang_times_out_aborts_resets_and_reissues_each_command_once() {
    let bus = bus("blocks = 8192");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    inject(&bus, |m| m.hang(Recovery::ControllerReset));
    for i in 0..5u64 {
        qp.submit_write(&ns, i * 64, patterned(&bus, 16 * 1024, 10 + i), i)
            .unwrap();
    }
    let mut done = Vec::new();
    poll(&mut qp, &mut done);
    bus.clock().advance(Duration::from_secs(4));
    poll(&mut qp, &mut done);
    assert!(done.is_empty());
    assert_eq!(qp.stats().timeouts, 0, "not yet");
    bus.clock().advance(Duration::from_secs(1));
    // Timeout: the Abort itself hangs (admin timeout), so the controller is reset; the
    // reset clears the hang and the five writes are re-issued, in this same call.
    poll(&mut qp, &mut done);
    assert_eq!(counts(&done), (0..5).map(|i| (i, 1)).collect());
    assert!(done.iter().all(|c| c.result.is_ok()));
    let stats = qp.stats();
    assert!(stats.timeouts >= 1 && stats.aborts >= 1, "{stats:?}");
    assert_eq!(stats.reissued, 5);
    assert_eq!(ctrl.resets(), 1);
    assert_eq!(ctrl.state(), ControllerState::Enabled);
    // The device saw each write once: the hung instances were never fetched.
    assert_eq!(model_stats(&bus).writes, 5);
    assert_clean_protocol(&bus);
    for i in 0..5u64 {
        assert!(check(
            read_back(&mut qp, &bus, &ns, i * 64, 16 * 1024).as_slice(),
            10 + i
        ));
    }
    // Later polls complete nothing twice.
    let mut late = Vec::new();
    bus.clock().advance(Duration::from_secs(10));
    poll(&mut qp, &mut late);
    assert!(late.is_empty());
}

#[test]
fn an_accepted_abort_completes_the_command_once_as_a_timeout_without_a_reset() {
    // I/O commands take 7 s in the model; the timeout is 5 s. The Abort (admin commands run
    // at once) takes the write back, which completes with Command Abort Requested: a
    // retriable timeout for the caller, and no reset.
    let bus = bus("latency_ns = 7000000000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 5), 5)
        .unwrap();
    let mut done = Vec::new();
    poll(&mut qp, &mut done);
    bus.clock().advance(Duration::from_secs(5));
    poll(&mut qp, &mut done);
    assert_eq!(counts(&done), BTreeMap::from([(5, 1)]));
    let err = done[0].result.as_ref().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                qid: 1,
                opcode: 0x01,
                waited_ms: 5000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retriable());
    assert_eq!((qp.stats().timeouts, qp.stats().aborts), (1, 1));
    // The aborted write never completes a second time.
    bus.clock().advance(Duration::from_secs(10));
    poll(&mut qp, &mut done);
    assert_eq!(done.len(), 1);
    assert_eq!(ctrl.resets(), 0);
    assert_eq!(qp.stats().bogus.total(), 0);
}

#[test]
fn fatal_status_resets_the_controller_and_recovers() {
    let bus = bus("blocks = 4096");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    inject(&bus, |m| m.fatal(Recovery::ControllerReset));
    let err = ctrl.check_health().unwrap_err();
    assert!(matches!(err, Error::ControllerFatal { .. }), "{err}");
    qp.submit_write(&ns, 8, patterned(&bus, 4096, 9), 9)
        .unwrap();
    let mut done = Vec::new();
    poll(&mut qp, &mut done);
    bus.clock().advance(Duration::from_secs(5));
    poll(&mut qp, &mut done);
    assert_eq!(counts(&done), BTreeMap::from([(9, 1)]));
    assert_eq!(qp.stats().aborts, 0, "CFS: straight to the reset");
    assert_eq!(ctrl.resets(), 1);
    ctrl.check_health().unwrap();
    assert_clean_protocol(&bus);
    assert!(check(read_back(&mut qp, &bus, &ns, 8, 4096).as_slice(), 9));
}

#[test]
fn an_explicit_reset_takes_back_and_reissues_in_flight_commands() {
    // 1 ms per command: at the reset the writes are fetched but not executed.
    let bus = bus("latency_ns = 1000000\nblocks = 4096\nshadow_doorbells = true");
    let ctrl = controller(&bus);
    assert!(ctrl.info().shadow_doorbells);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    for i in 0..4u64 {
        qp.submit_write(&ns, i * 8, patterned(&bus, 4096, 20 + i), i)
            .unwrap();
    }
    qp.commit().unwrap();
    ctrl.reset().unwrap();
    assert_eq!(qp.state(), QpairState::NeedsReconnect);
    let mut done = Vec::new();
    poll(&mut qp, &mut done);
    assert!(done.is_empty());
    assert_eq!(qp.stats().reissued, 4);
    bus.clock().advance(Duration::from_millis(10));
    poll(&mut qp, &mut done);
    assert_eq!(counts(&done), (0..4).map(|i| (i, 1)).collect());
    assert_clean_protocol(&bus);
    for i in 0..4u64 {
        qp.submit_read(&ns, i * 8, zeroed(&bus, 4096), 100 + i)
            .unwrap();
    }
    qp.commit().unwrap();
    bus.clock().advance(Duration::from_millis(10));
    let reads = drain(&mut qp, 4, 10);
    for c in reads {
        assert!(check(c.buffer.unwrap().as_slice(), 20 + c.token - 100));
    }
    // quiesce / recover, as the reset coordinator calls them.
    ctrl.quiesce().unwrap();
    assert_eq!(ctrl.state(), ControllerState::Resetting);
    let err = qp.submit_flush(&ns, 1).unwrap_err();
    assert!(
        matches!(err.error, Error::Resetting { .. }),
        "{}",
        err.error
    );
    ctrl.recover().unwrap();
    qp.submit_flush(&ns, 1).unwrap();
    qp.commit().unwrap();
    bus.clock().advance(Duration::from_millis(10));
    one(&mut qp).result.unwrap();
    assert_eq!(ctrl.resets(), 2);
}

#[test]
fn surprise_removal_fails_in_flight_commands_with_device_gone() {
    let bus = bus("latency_ns = 1000000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    qp.commit().unwrap();
    bus.inject(addr(), SimFault::SurpriseRemoval).unwrap();
    let mut done = Vec::new();
    bus.clock().advance(Duration::from_secs(6));
    poll(&mut qp, &mut done);
    poll(&mut qp, &mut done);
    assert_eq!(done.len(), 1);
    let c = done.pop().unwrap();
    assert!(
        c.buffer.is_some(),
        "no DMA after removal: the buffer comes back"
    );
    let err = c.result.unwrap_err();
    assert!(matches!(err, Error::DeviceGone { .. }), "{err}");
    assert_eq!(ctrl.state(), ControllerState::Gone);
    let err = qp.submit_flush(&ns, 2).unwrap_err().error;
    assert!(matches!(err, Error::DeviceGone { .. }), "{err}");
    assert!(matches!(ctrl.reset(), Err(Error::DeviceGone { .. })));
    assert!(matches!(ctrl.check_health(), Err(Error::DeviceGone { .. })));
}

#[test]
fn a_failed_recovery_returns_commands_as_retriable() {
    let bus = bus("latency_ns = 1000000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    qp.commit().unwrap();
    // Fatal until a function reset: a controller reset cannot bring it back.
    inject(&bus, |m| m.fatal(Recovery::FunctionReset));
    let err = ctrl.reset().unwrap_err();
    assert!(matches!(err, Error::ControllerFatal { .. }), "{err}");
    assert_eq!(ctrl.state(), ControllerState::Failed);
    let mut done = Vec::new();
    poll(&mut qp, &mut done);
    assert_eq!(done.len(), 1);
    let c = done.pop().unwrap();
    assert!(c.buffer.is_some());
    let err = c.result.unwrap_err();
    assert!(matches!(err, Error::Retriable { .. }), "{err}");
    assert!(err.is_retriable());
    let err = qp.submit_flush(&ns, 2).unwrap_err().error;
    assert!(matches!(err, Error::ControllerFailed { .. }), "{err}");
    // A function reset clears the fault; the controller can then be recovered.
    use userpci_framework::device::PciFunction;
    ctrl.function().reset_function().unwrap();
    ctrl.recover().unwrap();
    assert_eq!(ctrl.state(), ControllerState::Enabled);
}

#[test]
fn commands_past_max_reissues_fail_as_retriable_at_the_next_poll() {
    let bus = bus("latency_ns = 1000000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            max_reissues: 0,
            ..QpairOptions::default()
        })
        .unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    qp.commit().unwrap();
    ctrl.reset().unwrap();
    // The submit reconnects; the write taken back by the reset is not sent again.
    qp.submit_flush(&ns, 2).unwrap();
    qp.commit().unwrap();
    bus.clock().advance(Duration::from_millis(5));
    let done = drain(&mut qp, 2, 5);
    assert_eq!(counts(&done), BTreeMap::from([(1, 1), (2, 1)]));
    for c in done {
        match c.token {
            1 => {
                assert!(c.buffer.is_some());
                let err = c.result.unwrap_err();
                assert!(matches!(err, Error::Retriable { qid: 1, .. }), "{err}");
            }
            _ => c.result.unwrap(),
        }
    }
    assert_eq!(qp.stats().reissued, 0);
    assert_eq!(model_stats(&bus).writes, 1, "fetched before the reset only");
}
