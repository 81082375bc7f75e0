//! The NVMe driver's admin paths on QEMU's controller (issue 12 item 3): normal shutdown
//! (`CC.SHN`, `CSTS.SHST`), the SMART / Health and Error Information log pages, and an
//! Asynchronous Event that QEMU raises when a temperature threshold is set below its
//! temperature (`hw/nvme/ctrl.c`: Set Features FID 04h calls `nvme_smart_event`, which needs
//! Asynchronous Event Configuration's SMART bit 1). All on controller C (02:00.0).

use std::time::{Duration, Instant};

use userpci_framework::device::PciFunction;
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_nvme::spec::features::{AsyncEventConfig, ThresholdKind};
use userpci_nvme::spec::log::{AsyncEvent, LogPageId, SmartHealthLog};
use userpci_nvme::spec::registers::Csts;
use userpci_nvme::{
    AsyncEventNotice, Controller, ControllerOptions, ControllerState, Error, EventLog, IoQueuePair,
    QpairOptions,
};

use super::support;
use crate::harness::{Ctx, Failure, TestResult, SLOT2_FN0};
use crate::{ensure, fail, note};

/// QEMU's constant Composite Temperature (`NVME_TEMPERATURE`, 0x143) and default over
/// threshold (`NVME_TEMPERATURE_WARNING`, 0x157), kelvins.
const QEMU_TEMPERATURE: u16 = 0x143;
const QEMU_OVER_THRESHOLD: u16 = 0x157;
/// How long an expected asynchronous event may take (QEMU posts it at once; TCG is slow).
const EVENT_LIMIT: Duration = Duration::from_secs(5);

/// Writes then reads `blocks` blocks at LBA 0 through one queue pair, so that the SMART
/// counters have something to count.
fn write_and_read<F: PciFunction>(ctrl: &Controller<F>, blocks: usize) -> TestResult {
    let ns = ctrl.namespaces()[0].clone();
    let len = blocks * ns.block_size() as usize;
    let mut qp: IoQueuePair<F, u32, DmaBuffer> = ctrl.create_io_qpair(QpairOptions::default())?;
    let space = ctrl.function().dma_space();
    let mut buf = space.allocate_buffer(len, DmaDirection::Bidirectional)?;
    buf.as_mut_slice().fill(0x5a);
    for (token, write) in [(1, true), (2, false)] {
        let submitted = if write {
            qp.submit_write(&ns, 0, buf, token)
        } else {
            qp.submit_read(&ns, 0, buf, token)
        };
        if let Err(rejected) = submitted {
            fail!("{}: submit refused: {}", ctrl.device(), rejected.error);
        }
        let mut done = support::drain(&mut qp, 1, Duration::from_secs(10))?;
        let c = done.pop().expect("drain returns what it was asked for");
        if let Err(err) = c.result {
            fail!("{}: I/O {token} failed: {err}", ctrl.device());
        }
        buf = c.buffer.expect("data requests return their buffer");
    }
    ensure!(
        buf.as_slice().iter().all(|&b| b == 0x5a),
        "{}: read back differs from what was written",
        ctrl.device()
    );
    Ok(())
}

/// Normal shutdown with a queue pair still open: its queues are deleted first, `CC.SHN` = 01b
/// is answered with `CSTS.SHST` = 10b, the queue pair then refuses work, and the controller
/// comes up again afterwards.
pub fn nvme_shutdown_completes(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let addr = SLOT2_FN0;
    let ctrl = Controller::new(
        support::open(ctx, &vfio, addr)?,
        ControllerOptions::default(),
    )?;
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: IoQueuePair<_, u32, DmaBuffer> = ctrl.create_io_qpair(QpairOptions::default())?;
    note!(
        "{addr}: RTD3E {} us, shutdown deadline {} ms",
        ctrl.info().rtd3e_us,
        ctrl.shutdown_timeout().as_millis()
    );
    let report = ctrl.shutdown()?;
    note!(
        "{addr}: CSTS {:#x} after {} us (deadline {} ms), {} queue pair(s) deleted first",
        report.csts.0,
        report.waited.as_micros(),
        report.deadline.as_millis(),
        report.queues_deleted
    );
    ensure!(
        report.csts.shst() == Csts::SHST_COMPLETE,
        "{addr}: CSTS.SHST {:02b}b, expected 10b",
        report.csts.shst()
    );
    ensure!(
        report.queues_deleted == 1,
        "{addr}: {} queue pairs deleted before CC.SHN, expected the one open",
        report.queues_deleted
    );
    ensure!(
        ctrl.state() == ControllerState::ShutDown,
        "{addr}: state {:?} after shutdown",
        ctrl.state()
    );
    let buf = ctrl
        .function()
        .dma_space()
        .allocate_buffer(512, DmaDirection::Bidirectional)?;
    match qp.submit_read(&ns, 0, buf, 1) {
        Err(rejected) if matches!(rejected.error, Error::ShutDown { .. }) => {
            note!("submit after shutdown: {}", rejected.error)
        }
        Err(rejected) => fail!("{addr}: submit after shutdown: {}", rejected.error),
        Ok(()) => fail!("{addr}: a submit after shutdown was accepted"),
    }
    match ctrl.shutdown() {
        Err(Error::ShutDown { .. }) => {}
        other => fail!("{addr}: a second shutdown gave {other:?}"),
    }
    drop(qp);
    drop(ctrl);
    // The controller was left disabled (a reset is required after shutdown): it comes up.
    let again = Controller::new(
        support::open(ctx, &vfio, addr)?,
        ControllerOptions::default(),
    )?;
    ensure!(
        again.state() == ControllerState::Enabled,
        "{addr}: state {:?} after bring-up following shutdown",
        again.state()
    );
    write_and_read(&again, 8)?;
    // Dropping the last handle shuts it down again (best effort, logged on failure).
    drop(again);
    Ok(())
}

/// SMART / Health and Error Information logs as QEMU fills them; a bad length is refused
/// before anything reaches the controller.
pub fn nvme_smart_and_error_logs(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let addr = SLOT2_FN0;
    let ctrl = Controller::new(
        support::open(ctx, &vfio, addr)?,
        ControllerOptions::default(),
    )?;
    let info = ctrl.info().clone();
    note!(
        "{addr}: LPA {:#x} ELPE {} AERL {} WCTEMP {} K CCTEMP {} K",
        info.lpa,
        info.elpe,
        info.aerl,
        info.warning_temperature,
        info.critical_temperature
    );
    let before = ctrl.smart_health_log()?;
    write_and_read(&ctrl, 16)?;
    let smart: SmartHealthLog = ctrl.smart_health_log()?;
    let temperature = smart.composite_temperature();
    note!(
        "{addr}: SMART: critical warning {:#x}, temperature {temperature} K, spare {}%, used {}%, \
         data units read {} written {}, host reads {} writes {}, power on hours {}, errors {}",
        smart.critical_warning,
        smart.available_spare,
        smart.percentage_used,
        smart.data_units_read.get(),
        smart.data_units_written.get(),
        smart.host_read_commands.get(),
        smart.host_write_commands.get(),
        smart.power_on_hours.get(),
        smart.error_log_entries.get()
    );
    ensure!(
        (273..400).contains(&temperature),
        "{addr}: composite temperature {temperature} K is not plausible (273..400)"
    );
    ensure!(
        temperature == QEMU_TEMPERATURE,
        "{addr}: composite temperature {temperature} K, QEMU reports {QEMU_TEMPERATURE}"
    );
    ensure!(
        info.warning_temperature == 0 || temperature < info.warning_temperature,
        "{addr}: temperature {temperature} K at or over WCTEMP {}",
        info.warning_temperature
    );
    ensure!(
        smart.critical_warning & SmartHealthLog::WARNING_TEMPERATURE == 0,
        "{addr}: temperature warning set below the threshold (critical warning {:#x})",
        smart.critical_warning
    );
    let reads = smart.host_read_commands.get() - before.host_read_commands.get();
    let writes = smart.host_write_commands.get() - before.host_write_commands.get();
    ensure!(
        reads >= 1 && writes >= 1,
        "{addr}: host commands counted {reads} reads, {writes} writes; expected at least one each"
    );
    ensure!(
        smart.data_units_written.get() >= 1,
        "{addr}: no data units written after a write"
    );
    let over = ctrl.temperature_threshold(ThresholdKind::Over)?;
    ensure!(
        over == QEMU_OVER_THRESHOLD,
        "{addr}: over temperature threshold {over} K, QEMU's default is {QEMU_OVER_THRESHOLD}"
    );
    let errors = ctrl.error_log()?;
    note!("{addr}: error log: {} entries in use", errors.len());
    ensure!(
        errors
            .windows(2)
            .all(|w| w[0].error_count > w[1].error_count),
        "{addr}: error log entries not newest first: {errors:?}"
    );
    let mut odd = [0u8; 6];
    match ctrl.read_log_page(LogPageId::SmartHealth as u8, u32::MAX, 0, &mut odd) {
        Err(err @ Error::InvalidLogPageRequest { .. }) => {
            ensure!(
                err.to_string().contains("multiple of 4 bytes"),
                "{addr}: the error does not say why: {err}"
            );
            note!("{err}");
        }
        other => fail!("{addr}: a 6-byte log read gave {other:?}"),
    }
    let mut raw = [0u8; 512];
    ctrl.read_log_page(LogPageId::SmartHealth as u8, u32::MAX, 0, &mut raw)?;
    ensure!(
        u16::from_le_bytes([raw[1], raw[2]]) == temperature,
        "{addr}: the raw SMART page disagrees with the typed one"
    );
    support::disable(&ctrl)
}

/// Polls until an asynchronous event arrives or [`EVENT_LIMIT`] passes.
fn wait_for_event<F: PciFunction>(ctrl: &Controller<F>) -> Result<AsyncEventNotice, Failure> {
    let start = Instant::now();
    loop {
        let mut got = None;
        ctrl.poll_async_events(&mut |notice| got = Some(notice));
        if let Some(notice) = got {
            note!(
                "{}: event after {:.1} ms: {:?}",
                ctrl.device(),
                start.elapsed().as_secs_f64() * 1e3,
                notice.event
            );
            return Ok(notice);
        }
        if start.elapsed() > EVENT_LIMIT {
            fail!(
                "{}: no asynchronous event within {} s ({} requests outstanding)",
                ctrl.device(),
                EVENT_LIMIT.as_secs(),
                ctrl.async_events_outstanding()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Checks a notice is QEMU's temperature threshold event with the SMART page read.
fn check_temperature_event(addr: impl std::fmt::Display, notice: AsyncEventNotice) -> TestResult {
    let event = notice.event;
    ensure!(
        event.event_type == AsyncEvent::TYPE_SMART_HEALTH
            && event.info == AsyncEvent::INFO_SMART_TEMPERATURE_THRESHOLD
            && event.log_page == LogPageId::SmartHealth as u8,
        "{addr}: event {event:?}, expected SMART / Health, temperature threshold, log page 02h"
    );
    match notice.log? {
        EventLog::SmartHealth(smart) => ensure!(
            smart.critical_warning & SmartHealthLog::WARNING_TEMPERATURE != 0,
            "{addr}: the SMART page read for the event has no temperature warning ({:#x})",
            smart.critical_warning
        ),
        other => fail!("{addr}: the event's page decoded as {other:?}"),
    }
    Ok(())
}

/// An Asynchronous Event Request that fires: QEMU raises a SMART / Health event when the
/// over temperature threshold is set at or below its temperature. The driver reads the SMART
/// page (clearing the event), arms the request again, and a second threshold change raises a
/// second event.
pub fn nvme_async_event_fires(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let addr = SLOT2_FN0;
    let ctrl = Controller::new(
        support::open(ctx, &vfio, addr)?,
        ControllerOptions::default(),
    )?;
    let wanted = usize::from(ctrl.info().aerl) + 1;
    let outstanding =
        ctrl.enable_async_events(AsyncEventConfig(AsyncEventConfig::SMART_CRITICAL_WARNINGS))?;
    note!(
        "{addr}: AERL {} -> {outstanding} requests outstanding",
        ctrl.info().aerl
    );
    ensure!(
        outstanding == wanted.min(8),
        "{addr}: {outstanding} requests outstanding, expected AERL + 1 = {wanted} (at most 8)"
    );
    // Nothing has happened yet: no event.
    std::thread::sleep(Duration::from_millis(50));
    let mut early = 0;
    ctrl.poll_async_events(&mut |_| early += 1);
    ensure!(
        early == 0,
        "{addr}: {early} events before any threshold change"
    );
    let temperature = ctrl.smart_health_log()?.composite_temperature();
    for round in 1..=2 {
        ctrl.set_temperature_threshold(ThresholdKind::Over, temperature - 10)?;
        check_temperature_event(addr, wait_for_event(&ctrl)?)?;
        ensure!(
            ctrl.async_events_outstanding() == outstanding,
            "{addr}: round {round}: {} requests outstanding after the event, expected {outstanding}",
            ctrl.async_events_outstanding()
        );
        ctrl.set_temperature_threshold(ThresholdKind::Over, QEMU_OVER_THRESHOLD)?;
    }
    ensure!(
        ctrl.async_event_failures() == 0,
        "{addr}: {} Asynchronous Event Requests failed",
        ctrl.async_event_failures()
    );
    let smart = ctrl.smart_health_log()?;
    ensure!(
        smart.critical_warning & SmartHealthLog::WARNING_TEMPERATURE == 0,
        "{addr}: temperature warning still set with the threshold restored ({:#x})",
        smart.critical_warning
    );
    // Dropped with requests outstanding: the shutdown's disable drops them.
    drop(ctrl);
    Ok(())
}
