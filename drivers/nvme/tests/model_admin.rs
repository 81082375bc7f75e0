//! Controller model: shutdown processing (`CC.SHN` / `CSTS.SHST`) with and without a delay,
//! `RTD3E` and the temperature fields of Identify, and the Temperature Threshold feature with
//! the SMART warning and asynchronous event it raises (as QEMU's `hw/nvme/ctrl.c`).

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::RegisterIo;
use userpci_framework::dma::DmaDirection;
use userpci_framework::time::Clock;
use userpci_nvme::spec::admin::GetFeatures;
use userpci_nvme::spec::features::{
    AsyncEventConfig, FeatureId, TemperatureThreshold, ThresholdKind,
};
use userpci_nvme::spec::identify::{Cns, IdentifyController};
use userpci_nvme::spec::log::{AsyncEvent, LogPageId, SmartHealthLog};
use userpci_nvme::spec::registers::{self as regs, Csts};
use userpci_nvme::spec::{AdminCommand, CompletionEntry, Status, SubmissionEntry, NSID_ALL};

/// Runs an admin command; returns its completion and the others posted meanwhile (held
/// Asynchronous Event Requests completing).
fn admin_with_events(
    ctrl: &mut Ctrl,
    sqe: SubmissionEntry,
) -> (CompletionEntry, Vec<CompletionEntry>) {
    let regs = ctrl.regs.clone();
    let cid = ctrl.admin_queue().submit(&regs, sqe);
    let (own, others): (Vec<_>, Vec<_>) = ctrl
        .admin_queue()
        .drain(&regs)
        .into_iter()
        .partition(|c| c.cid() == cid);
    assert_eq!(own.len(), 1, "one completion for {sqe:?}");
    (own[0], others)
}

/// The SMART / Health log and the events its read released.
fn smart_events(ctrl: &mut Ctrl, rae: bool) -> (SmartHealthLog, Vec<CompletionEntry>) {
    let buf = ctrl.buffer(512, DmaDirection::FromDevice, |_| 0);
    let sqe = AdminCommand::GetLogPage(userpci_nvme::spec::admin::GetLogPage {
        nsid: NSID_ALL,
        lid: LogPageId::SmartHealth as u8,
        rae,
        numd: 127,
        offset: 0,
        prp1: buf.iova(),
        prp2: 0,
    })
    .encode();
    let (cqe, events) = admin_with_events(ctrl, sqe);
    assert_eq!(cqe.status(), Status::SUCCESS);
    (bytemuck::pod_read_unaligned(&buf.as_slice()[..512]), events)
}

fn smart(ctrl: &mut Ctrl, rae: bool) -> SmartHealthLog {
    let (log, events) = smart_events(ctrl, rae);
    assert!(events.is_empty(), "{events:?}");
    log
}

/// Set Features Temperature Threshold: the status and the events it raised.
fn set_threshold(ctrl: &mut Ctrl, t: TemperatureThreshold) -> (Status, Vec<CompletionEntry>) {
    let sqe = SubmissionEntry::set_features(FeatureId::TemperatureThreshold, t.to_dword());
    let (cqe, events) = admin_with_events(ctrl, sqe);
    (cqe.status(), events)
}

fn get_threshold(ctrl: &mut Ctrl, sel: u8, kind: ThresholdKind) -> u16 {
    let sqe = AdminCommand::GetFeatures(GetFeatures {
        nsid: 0,
        fid: FeatureId::TemperatureThreshold as u8,
        sel,
        cdw11: TemperatureThreshold::composite(kind, 0).to_dword(),
    })
    .encode();
    ctrl.admin_ok(sqe) as u16
}

#[test]
fn shutdown_completes_at_once_and_clears_with_shn() {
    let mut ctrl = Ctrl::enabled("");
    assert_eq!(ctrl.csts().shst(), Csts::SHST_NORMAL);
    let cc = ctrl.cc();
    ctrl.regs.write32(
        regs::CC,
        cc.with_shn(userpci_nvme::spec::registers::Cc::SHN_NORMAL).0,
    );
    let csts = ctrl.csts();
    assert_eq!(csts.shst(), Csts::SHST_COMPLETE);
    assert!(
        csts.rdy(),
        "as QEMU, the controller stays ready until CC.EN is cleared"
    );
    assert_eq!(ctrl.stats().shutdowns, 1);
    // Commands still run (QEMU does not stop them either).
    ctrl.admin_ok(SubmissionEntry::get_features(FeatureId::NumberOfQueues));
    // CC.EN 1 -> 0 resets the controller, and SHST with it.
    ctrl.regs.write32(regs::CC, ctrl.cc().with_en(false).0);
    assert_eq!(ctrl.csts().shst(), Csts::SHST_NORMAL);
    assert!(!ctrl.csts().rdy());
}

#[test]
fn shutdown_processing_takes_the_configured_delay() {
    let mut ctrl = Ctrl::enabled("shutdown_delay_us = 2000000");
    let cc = ctrl.cc();
    let start = ctrl.now();
    ctrl.regs.write32(
        regs::CC,
        cc.with_shn(userpci_nvme::spec::registers::Cc::SHN_NORMAL).0,
    );
    assert_eq!(ctrl.csts().shst(), Csts::SHST_OCCURRING);
    ctrl.bus.clock().sleep(Duration::from_millis(1999));
    assert_eq!(ctrl.csts().shst(), Csts::SHST_OCCURRING);
    ctrl.bus.clock().sleep(Duration::from_millis(1));
    assert_eq!(ctrl.csts().shst(), Csts::SHST_COMPLETE);
    assert_eq!(ctrl.now() - start, Duration::from_secs(2));
    // Clearing SHN returns to normal operation; a reset during processing cancels it.
    ctrl.regs.write32(regs::CC, cc.0);
    assert_eq!(ctrl.csts().shst(), Csts::SHST_NORMAL);
    ctrl.regs.write32(
        regs::CC,
        cc.with_shn(userpci_nvme::spec::registers::Cc::SHN_NORMAL).0,
    );
    ctrl.disable();
    ctrl.bus.clock().sleep(Duration::from_secs(3));
    assert_eq!(
        ctrl.csts().shst(),
        Csts::SHST_NORMAL,
        "the reset cancelled it"
    );
}

#[test]
fn identify_reports_rtd3e_and_temperature_thresholds() {
    let mut ctrl = Ctrl::enabled("rtd3e_us = 1500000");
    let buf = ctrl.buffer(4096, DmaDirection::FromDevice, |_| 0);
    ctrl.admin_ok(SubmissionEntry::identify(Cns::Controller, 0, buf.iova()));
    let id: IdentifyController = bytemuck::pod_read_unaligned(buf.as_slice());
    assert_eq!(id.rtd3e, 1_500_000);
    assert_eq!((id.wctemp, id.cctemp), (0x157, 0x175), "QEMU's values");
    assert_eq!(id.aerl, 3);
}

#[test]
fn temperature_thresholds_raise_the_warning_and_a_smart_event() {
    let mut ctrl = Ctrl::enabled("");
    assert_eq!(get_threshold(&mut ctrl, 0, ThresholdKind::Over), 0x157);
    assert_eq!(get_threshold(&mut ctrl, 0, ThresholdKind::Under), 0);
    let log = smart(&mut ctrl, false);
    assert_eq!(log.composite_temperature(), 0x143);
    assert_eq!(log.critical_warning, 0);
    // SMART warnings enabled, one request held.
    ctrl.admin_ok(SubmissionEntry::set_features(
        FeatureId::AsyncEventConfiguration,
        AsyncEventConfig::SMART_CRITICAL_WARNINGS,
    ));
    let regs = ctrl.regs.clone();
    let aer = ctrl
        .admin_queue()
        .submit(&regs, SubmissionEntry::async_event_request());
    assert!(ctrl.admin_queue().poll().is_none(), "held");
    // A threshold above the temperature changes nothing.
    let over = |k| TemperatureThreshold::composite(ThresholdKind::Over, k);
    let (status, events) = set_threshold(&mut ctrl, over(330));
    assert_eq!(status, Status::SUCCESS);
    assert!(events.is_empty(), "{events:?}");
    // At the temperature: the warning and the event.
    let (status, events) = set_threshold(&mut ctrl, over(0x143));
    assert_eq!(status, Status::SUCCESS);
    assert_eq!(events.len(), 1, "the held request completes");
    assert_eq!(events[0].cid(), aer);
    assert_eq!(
        AsyncEvent::from_dword(events[0].dw0),
        AsyncEvent {
            event_type: AsyncEvent::TYPE_SMART_HEALTH,
            info: AsyncEvent::INFO_SMART_TEMPERATURE_THRESHOLD,
            log_page: LogPageId::SmartHealth as u8,
        }
    );
    assert_eq!(get_threshold(&mut ctrl, 0, ThresholdKind::Over), 0x143);
    assert_eq!(
        get_threshold(&mut ctrl, 1, ThresholdKind::Over),
        0x157,
        "default"
    );
    let log = smart(&mut ctrl, true);
    assert_eq!(log.critical_warning, SmartHealthLog::WARNING_TEMPERATURE);
    // Under threshold at the temperature: another event, once the first is cleared.
    let aer = ctrl
        .admin_queue()
        .submit(&regs, SubmissionEntry::async_event_request());
    let (_, events) = set_threshold(&mut ctrl, over(0x157));
    assert!(events.is_empty());
    let under = TemperatureThreshold::composite(ThresholdKind::Under, 330);
    let (_, events) = set_threshold(&mut ctrl, under);
    assert!(
        events.is_empty(),
        "masked: the first event's page was read with RAE set"
    );
    // Reading without RAE clears the type, dropping what waited meanwhile (as QEMU's
    // nvme_clear_events); the condition raises a new event at the next threshold change.
    let (log, events) = smart_events(&mut ctrl, false);
    assert_eq!(log.critical_warning, SmartHealthLog::WARNING_TEMPERATURE);
    assert!(events.is_empty(), "{events:?}");
    let (_, events) = set_threshold(&mut ctrl, under);
    assert_eq!(events.len(), 1, "delivered once the first was cleared");
    assert_eq!(events[0].cid(), aer);
    assert_eq!(
        AsyncEvent::from_dword(events[0].dw0).info,
        AsyncEvent::INFO_SMART_TEMPERATURE_THRESHOLD
    );
    // Other sensors are ignored (as QEMU); a reserved THSEL is refused.
    let sensor3 = TemperatureThreshold {
        kelvin: 1,
        sensor: 3,
        select: 0,
    };
    assert_eq!(set_threshold(&mut ctrl, sensor3).0, Status::SUCCESS);
    let reserved = TemperatureThreshold {
        kelvin: 1,
        sensor: 0,
        select: 2,
    };
    assert_eq!(
        set_threshold(&mut ctrl, reserved).0,
        Status::INVALID_FIELD.with_dnr()
    );
    // A reset restores the defaults.
    ctrl.disable();
    ctrl.enable(16);
    assert_eq!(get_threshold(&mut ctrl, 0, ThresholdKind::Under), 0);
    assert_eq!(smart(&mut ctrl, false).critical_warning, 0);
}
