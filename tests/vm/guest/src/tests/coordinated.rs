//! The framework's reset coordinator on the real two-function slot (issue 5): a coordinated bus
//! reset under write load with a ledger of every write, and a refused one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::{VfioContext, VfioFunction};
use userpci_framework::device::{PciFunction, ResetTarget};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    claim_reset_group, CoordinatorConfig, ParticipantConfig, ResetCause, ResetCoordinator,
    ResetKind, ResetReport, ResetRequest, ResetScope,
};
use userpci_framework::Error as FwError;
use userpci_nvme::{Controller, ControllerOptions, ControllerState, NvmeParticipant, QpairState};

use super::ledger::{settle, Workload};
use super::support;
use crate::harness::{Ctx, Failure, TestResult, SLOT1_FN0, SLOT1_FN1};
use crate::{ensure, fail, note};

type Function = Arc<VfioFunction>;

/// Opens `addresses` in one context, brings a controller up on each, registers its participant
/// with a new coordinator (on the functions' clock), and starts a workload on each.
fn rig(ctx: &Ctx, addresses: &[PciAddress]) -> Result<Rig, Failure> {
    let vfio = support::context(ctx)?;
    let functions: Vec<Function> = addresses
        .iter()
        .map(|a| support::open(ctx, &vfio, *a).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(functions[0].clock()),
        CoordinatorConfig::default(),
    ));
    let mut loads = Vec::new();
    for (i, f) in functions.iter().enumerate() {
        let ctrl = Controller::new(Arc::clone(f), ControllerOptions::default())?;
        coordinator.register(
            Arc::clone(f) as Arc<dyn ResetTarget>,
            Box::new(NvmeParticipant::new(
                ctrl.clone(),
                format!("nvme {}", f.address()),
            )),
            ParticipantConfig {
                priority: i as u32,
                // Generous under TCG; the report shows what it really took.
                quiesce_budget: Duration::from_secs(1),
                recover_budget: Duration::from_secs(10),
            },
        )?;
        loads.push(Workload::new(ctrl, 0x21 + i as u64)?);
    }
    Ok(Rig {
        vfio,
        coordinator,
        loads,
        functions,
    })
}

/// What [`rig`] set up.
struct Rig {
    vfio: VfioContext,
    coordinator: Arc<ResetCoordinator>,
    loads: Vec<Workload>,
    functions: Vec<Function>,
}

/// The report as note lines: kind, totals, then every phase of every member.
pub(super) fn print_report(label: &str, report: &ResetReport) {
    let ms = |ns: u64| ns as f64 / 1e6;
    note!(
        "{label}: {} reset of {:?}, cause {}, total {:.2} ms, device waits {:.2} ms, framework \
         overhead {:.2} ms (wall clock, without the device waits), all recovered: {}",
        report.kind,
        report
            .members
            .iter()
            .map(|m| m.address.to_string())
            .collect::<Vec<_>>(),
        report.request.cause.as_str(),
        ms(report.total_ns),
        ms(report.device_wait_ns),
        ms(report.framework_overhead_ns),
        report.all_recovered()
    );
    for p in &report.timeline.phases {
        note!(
            "{label}:   {:<14} {:<10} {:>9.3} .. {:>9.3} ms ({:>8.3} ms){} {:?}",
            p.member,
            p.phase.to_string(),
            ms(p.start_ns),
            ms(p.end_ns),
            ms(p.end_ns.saturating_sub(p.start_ns)),
            p.deadline_ns
                .map(|d| format!(", deadline {:.0} ms", ms(d)))
                .unwrap_or_default(),
            p.outcome
        );
    }
}

fn check_bus_report(report: &ResetReport) -> TestResult {
    ensure!(
        report.kind == ResetKind::Bus,
        "{:?} reset, expected bus",
        report.kind
    );
    let members: Vec<PciAddress> = report.members.iter().map(|m| m.address).collect();
    ensure!(
        members == [SLOT1_FN0, SLOT1_FN1],
        "reset hit {members:?}, expected both functions of slot 1"
    );
    ensure!(
        report.all_recovered(),
        "not every member recovered: {:?}",
        report.members
    );
    Ok(())
}

/// Both controllers of the slot under write load, each a participant of one coordinator; a
/// coordinated bus reset (scope Group) is requested twice: once right after a batch of writes
/// was rung in (every one still in flight for the driver, so every one is re-issued), once from
/// another thread while the main thread keeps polling and submitting around it. Afterwards no
/// acknowledged write is lost and none is acknowledged twice. The coordinator's report (phases,
/// totals, framework overhead) is printed for each.
///
/// Doorbells are rung right up to each request: QEMU 10 copes with CC.EN cleared while an SQ
/// doorbell is pending (QEMU 7.2 did not; tests/vm/README.md).
pub fn coordinated_hot_reset_under_io(ctx: &Ctx) -> TestResult {
    let Rig {
        coordinator,
        mut loads,
        ..
    } = rig(ctx, &[SLOT1_FN0, SLOT1_FN1])?;
    let request = ResetRequest::new(SLOT1_FN0, ResetCause::Api).with_scope(ResetScope::Group);

    // Round 1: a batch rung in on both, the reset requested before any completion is reaped:
    // every write is in flight for the driver (the device may have executed it; its
    // completion is lost in the reset), and must be re-issued and acknowledged once.
    for w in loads.iter_mut() {
        let n = w.write(24)?;
        ensure!(n == 24, "{}: only {n} writes went in", w.address);
    }
    let in_flight: Vec<usize> = loads.iter().map(|w| w.qp.in_flight()).collect();
    let outcome = coordinator.request(request)?;
    let report1 = Arc::clone(&outcome.report);
    note!("round 1: in flight for the driver at the request: {in_flight:?}");
    print_report("round 1", &report1);
    check_bus_report(&report1)?;
    settle(&mut loads, Duration::from_secs(30))?;
    for w in loads.iter_mut() {
        w.write(16)?;
    }
    settle(&mut loads, Duration::from_secs(30))?;

    // Round 2: the reset comes from another thread while this one keeps submitting and
    // polling on both controllers, through the quiesce, the reset and the recovery: submits
    // are refused while a queue is stopped (it rings no doorbell then) and go in again as
    // soon as that controller is recovered.
    let requester = {
        let coordinator = Arc::clone(&coordinator);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            coordinator.request(request)
        })
    };
    let start = Instant::now();
    let (mut submitted_during, mut stopped_iterations, mut refused_while_stopped) =
        (0usize, 0usize, 0usize);
    while !requester.is_finished() {
        for w in loads.iter_mut() {
            let queue = w.qp.state();
            let n = w.write(8)?;
            submitted_during += n;
            if n == 0 && queue == QpairState::Disabled {
                refused_while_stopped += 1;
            }
            if w.ctrl.state() == ControllerState::Resetting {
                stopped_iterations += 1;
            }
            w.poll();
        }
        if start.elapsed() > Duration::from_secs(60) {
            fail!("the coordinated reset of round 2 did not finish within 60 s");
        }
    }
    let outcome = requester
        .join()
        .map_err(|_| Failure("the requesting thread panicked".into()))??;
    let report2 = Arc::clone(&outcome.report);
    print_report("round 2", &report2);
    check_bus_report(&report2)?;
    note!(
        "round 2: {submitted_during} writes submitted while the requester ran; \
         {stopped_iterations} poll iterations found a controller resetting, \
         {refused_while_stopped} submits refused by a stopped queue"
    );
    ensure!(
        refused_while_stopped > 0,
        "no submit was attempted (and refused) while a queue was stopped"
    );
    for w in loads.iter_mut() {
        w.write(16)?;
    }
    settle(&mut loads, Duration::from_secs(30))?;

    // Every write: acknowledged once and on the disk, or failed (retriable); none doubled.
    for w in loads.iter_mut() {
        let verdict = w.verify()?;
        let stats = w.qp.stats();
        note!(
            "{}: {} writes: {} acknowledged, {} failed, {} duplicated, {} lost; driver resets {}, \
             queue {:?}",
            w.address,
            w.ledger.len(),
            verdict.acknowledged,
            verdict.failed,
            verdict.duplicated,
            verdict.lost,
            w.ctrl.resets(),
            stats
        );
        ensure!(
            verdict.duplicated == 0,
            "{}: {} writes acknowledged twice",
            w.address,
            verdict.duplicated
        );
        ensure!(
            verdict.lost == 0,
            "{}: {} acknowledged writes lost",
            w.address,
            verdict.lost
        );
        ensure!(
            verdict.acknowledged + verdict.failed == w.ledger.len(),
            "{}: writes neither acknowledged nor failed",
            w.address
        );
        ensure!(
            w.ctrl.resets() == 2,
            "{}: {} driver recoveries, expected 2",
            w.address,
            w.ctrl.resets()
        );
        ensure!(
            stats.reconnects == 2,
            "{}: {} reconnects, expected 2",
            w.address,
            stats.reconnects
        );
        ensure!(
            stats.reissued > 0,
            "{}: nothing re-issued, though writes were in flight",
            w.address
        );
    }
    finish(coordinator, loads)
}

/// Unregisters every participant and disables every controller.
fn finish(coordinator: Arc<ResetCoordinator>, loads: Vec<Workload>) -> TestResult {
    let mut ctrls = Vec::new();
    for w in loads {
        drop(coordinator.unregister(w.address));
        ctrls.push(w.ctrl.clone());
        drop(w);
    }
    drop(coordinator);
    for ctrl in &ctrls {
        support::disable(ctrl)?;
    }
    Ok(())
}

/// The coordinator refuses a bus reset when a member of the slot is not this process's, naming
/// it, and resets nothing.
///
/// As `hot_reset_refused_second_process` explains, a second process cannot hold 01:00.1 while
/// this one holds 01:00.0 (one IOMMU group, one owner); so 01:00.1 is taken out of the VFIO
/// device set instead (unbound), which is what the kernel would refuse for as well. With it
/// out: claiming the reset group fails at start-up naming 01:00.1; a coordinated bus reset of
/// 01:00.0 under write load is refused naming 01:00.1; no participant was quiesced, no write
/// was disturbed, and the controller was not reset.
pub fn coordinated_reset_refused(ctx: &Ctx) -> TestResult {
    support::unbind_to_no_driver(ctx, SLOT1_FN1)?;
    let outcome = refused_under_io(ctx);
    let restored = support::rebind_vfio(ctx, SLOT1_FN1);
    outcome?;
    restored
}

fn refused_under_io(ctx: &Ctx) -> TestResult {
    let Rig {
        vfio,
        coordinator,
        mut loads,
        functions,
    } = rig(ctx, &[SLOT1_FN0])?;
    match claim_reset_group(&vfio, functions[0].as_ref()) {
        Ok(opened) => fail!(
            "claimed the reset group ({} opened) with {SLOT1_FN1} unbound",
            opened.len()
        ),
        Err(err) => {
            let text = err.to_string();
            note!("claim_reset_group: {text}");
            ensure!(
                text.contains(&SLOT1_FN1.to_string()),
                "the claim refusal does not name {SLOT1_FN1}"
            );
        }
    }
    let w = &mut loads[0];
    ensure!(w.write(24)? == 24, "writes did not go in");
    let in_flight = w.qp.in_flight();
    let request = ResetRequest::new(SLOT1_FN0, ResetCause::Api).with_scope(ResetScope::Group);
    let t0 = Instant::now();
    match coordinator.request(request) {
        Ok(outcome) => fail!(
            "the coordinator reset the slot: {:?}",
            outcome.report.members
        ),
        Err(err @ FwError::HotResetRefused { .. }) => {
            let text = err.to_string();
            note!(
                "refused in {:.2} ms with {in_flight} writes in flight: {text}",
                t0.elapsed().as_secs_f64() * 1e3
            );
            ensure!(
                text.contains(&SLOT1_FN1.to_string()),
                "the refusal does not name {SLOT1_FN1}: {text}"
            );
        }
        Err(other) => fail!("the request failed, but not as a refusal: {other}"),
    }
    ensure!(
        coordinator.last_report().is_none(),
        "a reset report exists: something ran"
    );
    ensure!(
        w.ctrl.state() == ControllerState::Enabled,
        "controller {:?} after a refused reset",
        w.ctrl.state()
    );
    settle(&mut loads, Duration::from_secs(30))?;
    let w = &mut loads[0];
    let verdict = w.verify()?;
    let stats = w.qp.stats();
    note!("after the refusal: {verdict:?}, queue {stats:?}");
    ensure!(
        verdict.acknowledged == w.ledger.len() && verdict.failed == 0 && verdict.lost == 0,
        "writes disturbed by a refused reset: {verdict:?}"
    );
    ensure!(
        w.ctrl.resets() == 0 && stats.reconnects == 0 && stats.reissued == 0,
        "something was reset: {} resets, {stats:?}",
        w.ctrl.resets()
    );
    finish(coordinator, loads)
}
