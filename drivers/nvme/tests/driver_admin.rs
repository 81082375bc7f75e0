//! The driver's admin paths against the controller model: normal shutdown (on request, on
//! drop, with a timeout), the SMART / Health and Error Information logs, asynchronous events
//! (enabled, fired, cleared, re-armed, across a reset) and the in-use LBA format.

mod driver_support;

use std::time::Duration;

use driver_support::*;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::DmaBuffer;
use userpci_nvme::model::NvmeModel;
use userpci_nvme::spec::features::{AsyncEventConfig, ThresholdKind};
use userpci_nvme::spec::log::{AsyncEvent, LogPageId, SmartHealthLog};
use userpci_nvme::spec::registers::Csts;
use userpci_nvme::spec::NSID_ALL;
use userpci_nvme::{
    AsyncEventNotice, ControllerState, Error, EventLog, IoQueuePair, QpairOptions,
    DEFAULT_SHUTDOWN_TIMEOUT,
};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

fn model_csts(bus: &userpci_framework::backend::sim::SimBus) -> Csts {
    bus.with_model(addr(), |m: &mut NvmeModel| m.csts())
        .unwrap()
}

#[test]
fn shutdown_on_request_deletes_queues_then_waits_for_shst() {
    let bus = bus("latency_ns = 1000000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    // One write in flight when the shutdown starts.
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 7)
        .unwrap();
    qp.commit().unwrap();
    assert_eq!(
        ctrl.shutdown_timeout(),
        DEFAULT_SHUTDOWN_TIMEOUT,
        "no RTD3E"
    );
    let report = ctrl.shutdown().unwrap();
    assert_eq!(report.csts.shst(), Csts::SHST_COMPLETE);
    assert_eq!(report.queues_deleted, 1);
    assert_eq!(report.waited, Duration::ZERO, "the model completes at once");
    assert_eq!(ctrl.state(), ControllerState::ShutDown);
    let stats = model_stats(&bus);
    assert_eq!((stats.sq_deletes, stats.cq_deletes), (1, 1));
    assert_eq!(stats.shutdowns, 1);
    let csts = model_csts(&bus);
    assert!(
        !csts.rdy(),
        "disabled after the shutdown (a reset is required before reuse)"
    );
    // The write in flight comes back retriable, with its buffer.
    let done = drain(&mut qp, 1, 10);
    let err = done[0].result.as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: queue 1: command not completed: the controller was shut down (its \
         queues deleted); safe to retry"
    );
    assert!(done[0].buffer.is_some());
    // New work and a second shutdown are refused, naming why.
    let rejected = qp.submit_read(&ns, 0, zeroed(&bus, 512), 8).unwrap_err();
    assert_eq!(
        rejected.error.to_string(),
        "0000:01:00.0: the controller was shut down (CC.SHN); bring it up again to use it"
    );
    assert!(matches!(ctrl.shutdown(), Err(Error::ShutDown { .. })));
    assert!(matches!(
        ctrl.create_io_qpair::<u64, DmaBuffer>(QpairOptions::default()),
        Err(Error::ShutDown { .. })
    ));
    // A reset of its group (the coordinator's quiesce and recover) leaves it shut down.
    ctrl.quiesce_for_reset();
    ctrl.recover().unwrap();
    assert_eq!(ctrl.state(), ControllerState::ShutDown);
    assert!(!model_csts(&bus).rdy());
    drop(qp);
    drop(ctrl);
    assert_eq!(model_stats(&bus).shutdowns, 1, "no second shutdown on drop");
    // It comes up again.
    let again = controller(&bus);
    assert_eq!(again.state(), ControllerState::Enabled);
}

#[test]
fn dropping_the_last_handle_shuts_the_controller_down() {
    let bus = bus("");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 512, 3), 1).unwrap();
    assert!(one(&mut qp).result.is_ok());
    let handle = ctrl.clone();
    drop(qp);
    let stats = model_stats(&bus);
    // Dropping the queue pair deleted its SQ before its CQ: the model refuses a CQ with an
    // SQ still on it, so both succeeding shows the order.
    assert_eq!(
        (stats.sq_deletes, stats.cq_deletes, stats.errors),
        (1, 1, 0)
    );
    drop(ctrl);
    assert_eq!(model_stats(&bus).shutdowns, 0, "another handle is alive");
    drop(handle);
    let stats = model_stats(&bus);
    assert_eq!(stats.shutdowns, 1);
    assert_eq!(
        (stats.sq_deletes, stats.cq_deletes),
        (1, 1),
        "nothing left to delete"
    );
    assert!(!model_csts(&bus).rdy());
}

#[test]
fn a_shutdown_that_does_not_complete_times_out_naming_the_state() {
    // Shutdown takes 10 s; RTD3E says 1 s.
    let bus = bus("shutdown_delay_us = 10000000\nrtd3e_us = 1000000");
    let ctrl = controller(&bus);
    assert_eq!(ctrl.info().rtd3e_us, 1_000_000);
    assert_eq!(ctrl.shutdown_timeout(), Duration::from_secs(1));
    let err = ctrl.shutdown().unwrap_err();
    assert!(
        matches!(err, Error::ShutdownTimeout { shst: 0b01, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: normal shutdown not complete after 1000 ms (deadline 1000 ms): \
         CSTS.SHST is 01b (shutdown processing occurring), expected 10b (shutdown processing \
         complete)"
    );
    assert_eq!(ctrl.state(), ControllerState::Failed);
    assert!(!model_csts(&bus).rdy(), "stopped anyway");
    drop(ctrl);
    // With a deadline long enough it completes, after the model's delay.
    let ctrl = controller(&bus);
    let report = ctrl.shutdown_within(Duration::from_secs(20)).unwrap();
    assert_eq!(report.csts.shst(), Csts::SHST_COMPLETE);
    assert!(
        report.waited >= Duration::from_secs(10) && report.waited < Duration::from_secs(11),
        "{:?}",
        report.waited
    );
}

#[test]
fn smart_and_error_logs_are_read_and_decoded() {
    let bus = bus("");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    for i in 0..3 {
        qp.submit_write(&ns, i * 8, patterned(&bus, 4096, i), i)
            .unwrap();
        assert!(one(&mut qp).result.is_ok());
    }
    qp.submit_read(&ns, 0, zeroed(&bus, 4096), 9).unwrap();
    assert!(one(&mut qp).result.is_ok());
    let smart: SmartHealthLog = ctrl.smart_health_log().unwrap();
    assert_eq!(smart.composite_temperature(), 0x143);
    assert_eq!(smart.critical_warning, 0);
    assert_eq!(smart.host_write_commands.get(), 3);
    assert_eq!(smart.host_read_commands.get(), 1);
    assert_eq!(
        smart.data_units_written.get(),
        1,
        "24 blocks round up to one thousand"
    );
    assert_eq!(ctrl.info().warning_temperature, 0x157);
    assert!(ctrl.error_log().unwrap().is_empty(), "no error yet");
    // Two failed commands: a log page the model does not have, twice.
    let mut page = [0u8; 64];
    for _ in 0..2 {
        let err = ctrl
            .read_log_page(0x7f, NSID_ALL, 0, &mut page)
            .unwrap_err();
        assert!(err.to_string().contains("Invalid Log Page"), "{err}");
    }
    let errors = ctrl.error_log().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (errors[0].error_count, errors[1].error_count),
        (2, 1),
        "newest first"
    );
    assert_eq!(errors[0].sqid, 0);
    assert_eq!(ctrl.smart_health_log().unwrap().error_log_entries.get(), 2);
    // A bad length never reaches the controller.
    let admin_before = model_stats(&bus).admin_commands;
    let mut odd = [0u8; 10];
    let err = ctrl
        .read_log_page(LogPageId::SmartHealth as u8, NSID_ALL, 0, &mut odd)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: invalid Get Log Page request for log page 0x02: 10 bytes at offset 0: \
         the length must be a non-zero multiple of 4 bytes (NUMD counts whole dwords)"
    );
    let mut big = vec![0u8; 8192];
    let err = ctrl
        .read_log_page(LogPageId::SmartHealth as u8, NSID_ALL, 0, &mut big)
        .unwrap_err();
    assert!(err.to_string().contains("4096-byte log buffer"), "{err}");
    assert_eq!(model_stats(&bus).admin_commands, admin_before);
    // An offset (the model offers LPA extended data): bytes 0..4 of the page from byte 0, and
    // the temperature's high byte and more from byte 2... offsets are dwords: from byte 4.
    let mut whole = [0u8; 512];
    ctrl.read_log_page(LogPageId::SmartHealth as u8, NSID_ALL, 0, &mut whole)
        .unwrap();
    let mut tail = [0u8; 8];
    ctrl.read_log_page(LogPageId::SmartHealth as u8, NSID_ALL, 32, &mut tail)
        .unwrap();
    assert_eq!(&tail[..], &whole[32..40], "Data Units Read, from offset 32");
}

/// Polls the events, returning them.
fn events(ctrl: &userpci_nvme::Controller<SimFunction>) -> Vec<AsyncEventNotice> {
    let mut out = Vec::new();
    ctrl.poll_async_events(&mut |n| out.push(n));
    out
}

fn assert_temperature_event(notice: &AsyncEventNotice) {
    assert_eq!(
        notice.event,
        AsyncEvent {
            event_type: AsyncEvent::TYPE_SMART_HEALTH,
            info: AsyncEvent::INFO_SMART_TEMPERATURE_THRESHOLD,
            log_page: LogPageId::SmartHealth as u8,
        }
    );
    match notice.log.as_ref().unwrap() {
        EventLog::SmartHealth(smart) => {
            assert_eq!(smart.critical_warning, SmartHealthLog::WARNING_TEMPERATURE)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn asynchronous_events_fire_are_cleared_and_rearmed() {
    let bus = bus("");
    let ctrl = controller(&bus);
    assert!(events(&ctrl).is_empty(), "not enabled: nothing");
    let config = AsyncEventConfig(AsyncEventConfig::SMART_CRITICAL_WARNINGS);
    assert_eq!(ctrl.enable_async_events(config).unwrap(), 4, "AERL 3");
    assert_eq!(ctrl.async_events_outstanding(), 4);
    assert!(events(&ctrl).is_empty());
    assert_eq!(
        ctrl.temperature_threshold(ThresholdKind::Over).unwrap(),
        0x157
    );
    // The event completes a request while Set Features runs; the admin queue keeps it.
    ctrl.set_temperature_threshold(ThresholdKind::Over, 300)
        .unwrap();
    assert_eq!(ctrl.async_events_outstanding(), 3);
    let got = events(&ctrl);
    assert_eq!(got.len(), 1);
    assert_temperature_event(&got[0]);
    assert_eq!(ctrl.async_events_outstanding(), 4, "armed again");
    assert!(events(&ctrl).is_empty());
    // Cleared by the driver's read: the next crossing reports again.
    ctrl.set_temperature_threshold(ThresholdKind::Over, 0x157)
        .unwrap();
    ctrl.set_temperature_threshold(ThresholdKind::Under, 330)
        .unwrap();
    let got = events(&ctrl);
    assert_eq!(got.len(), 1);
    assert_temperature_event(&got[0]);
    ctrl.set_temperature_threshold(ThresholdKind::Under, 0)
        .unwrap();
    // An Error event from the model's hook: the error log is read for it.
    bus.with_model_ctx(addr(), |m: &mut NvmeModel, ctx| {
        m.inject_async_event(
            ctx,
            AsyncEvent {
                event_type: AsyncEvent::TYPE_ERROR,
                info: AsyncEvent::INFO_ERROR_PERSISTENT_INTERNAL,
                log_page: LogPageId::ErrorInformation as u8,
            },
        )
    })
    .unwrap();
    let got = events(&ctrl);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.event_type, AsyncEvent::TYPE_ERROR);
    assert!(
        matches!(
            got[0].log,
            Ok(EventLog::ErrorInformation {
                newest: None,
                in_use: 0
            })
        ),
        "{:?}",
        got[0].log
    );
    // A reset drops held requests; recovery sets the configuration and arms them again.
    ctrl.reset().unwrap();
    assert_eq!(ctrl.async_events_outstanding(), 4);
    ctrl.set_temperature_threshold(ThresholdKind::Over, 300)
        .unwrap();
    let got = events(&ctrl);
    assert_eq!(got.len(), 1, "events still reported after the reset");
    assert_temperature_event(&got[0]);
    assert_eq!(ctrl.async_event_failures(), 0);
    // The callback may use the controller (the lock is released first).
    ctrl.set_temperature_threshold(ThresholdKind::Over, 0x157)
        .unwrap();
    ctrl.set_temperature_threshold(ThresholdKind::Over, 301)
        .unwrap();
    let mut temperature = 0;
    let n = ctrl.poll_async_events(&mut |_| {
        temperature = ctrl.smart_health_log().unwrap().composite_temperature();
    });
    assert_eq!((n, temperature), (1, 0x143));
}

#[test]
fn asynchronous_events_need_room_in_the_admin_queue() {
    let bus = bus("");
    let ctrl = controller_with(
        &bus,
        userpci_nvme::ControllerOptions {
            admin_entries: 4,
            ..Default::default()
        },
    );
    let config = AsyncEventConfig(AsyncEventConfig::SMART_CRITICAL_WARNINGS);
    assert_eq!(
        ctrl.enable_async_events(config).unwrap(),
        2,
        "4 entries leave room for 2"
    );
    ctrl.set_temperature_threshold(ThresholdKind::Over, 300)
        .unwrap();
    assert_eq!(events(&ctrl).len(), 1);
    assert_eq!(ctrl.async_events_outstanding(), 2);
}

#[test]
fn the_lba_format_in_use_is_reported() {
    let bus = bus("lba_size = 4096");
    let ctrl = controller(&bus);
    let ns = &ctrl.namespaces()[0];
    let format = ns.lba_format();
    assert_eq!(format.index, 0);
    assert_eq!(format.block_size, Some(4096));
    assert_eq!(format.metadata_size, 0);
    assert_eq!(format.relative_performance, 0);
    assert_eq!(u64::from(ns.block_size()), format.block_size.unwrap());
}
