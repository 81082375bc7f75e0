//! `userpci demo`: coordinated reset recovery on a simulated PCI topology.
//!
//! A root port 00:02.0 with a three-function NVMe slot (01:00.0-2: one reset group) and a
//! root port 00:03.0 with one more NVMe controller (02:00.0, outside the group). A
//! write-verify workload runs on every controller; a fault is injected; the reset coordinator
//! plans and runs the reset; the workload goes on; every block is read back and verified.
//!
//! Scenarios: `bus` (01:00.0's link goes down: only a bus reset of the whole group helps),
//! `flr` (01:00.1's controller goes fatal: an FLR of that function suffices), `refused`
//! (01:00.2 is held by another process, so the bus reset that 01:00.0 needs is refused with
//! the blocker named, and the demo exits non-zero).
//!
//! `--nic`: 01:00.2 is an Intel 82599 port (model "ixgbe") with a packet workload instead of
//! an NVMe controller; its driver recovers after the NVMe controllers, and the summary reports
//! the packets before and after the reset and whether the link came back within its budget.

mod nic;
mod render;
mod scenario;
mod workload;

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use userpci::framework::backend::sim::topology::TopologyBuilder;
use userpci::framework::backend::sim::{ModelRegistry, SimBus, SimFault, SimFunction};
use userpci::framework::device::{ResetMethod, ResetTarget};
use userpci::framework::pci::PciAddress;
use userpci::framework::reset::{
    claim_reset_group, group_report, CoordinatorConfig, ParticipantConfig, ResetCoordinator,
    ResetRequest,
};
use userpci::framework::time::Clock;
use userpci::nvme::model::{self, NvmeModel, Recovery};
use userpci::nvme::{Controller, ControllerOptions, NvmeParticipant, ResetHandler};

use crate::error::{CliError, CliResult};
use scenario::Scenario;
use workload::Workload;

#[derive(clap::Args)]
pub struct Args {
    /// Which fault to inject.
    #[arg(long, value_enum, default_value_t = Scenario::Bus)]
    scenario: Scenario,
    /// Writes per controller before the fault and again after the recovery.
    #[arg(long, default_value_t = 2000)]
    writes: u64,
    /// Writes kept in flight per controller.
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Seed of the data patterns.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Write the timeline as an SVG picture to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Make 01:00.2 an Intel 82599 NIC (model "ixgbe") with a packet workload, taking part
    /// in the reset after the NVMe controllers.
    #[arg(long)]
    nic: bool,
}

const MEMBERS: [&str; 3] = ["01:00.0", "01:00.1", "01:00.2"];
const OUTSIDE: &str = "02:00.0";
const HOLDER: &str = "pid 4242 (another userpci process)";

fn address(text: &str) -> PciAddress {
    text.parse().expect("demo addresses are valid")
}

fn topology_bus(with_nic: bool) -> CliResult<Arc<SimBus>> {
    let params: toml::Table = "latency_ns = 100000\nblocks = 131072\nserial = \"DEMO\""
        .parse()
        .expect("static parameters parse");
    let mut builder = TopologyBuilder::new().root_port("00:02.0", 1);
    for (i, at) in MEMBERS.iter().enumerate() {
        // As the kernel shows a multifunction slot: `bus` only on the function probed first.
        let methods: &[ResetMethod] = if i == 0 {
            &[ResetMethod::Flr, ResetMethod::Bus]
        } else {
            &[ResetMethod::Flr]
        };
        builder = if with_nic && *at == nic::NIC {
            builder
                .function(at, "ixgbe")
                .params(nic::params())
                .reset_methods(methods)
        } else {
            builder
                .function(at, "nvme")
                .params(params.clone())
                .reset_methods(methods)
        };
    }
    let topology = builder
        .root_port("00:03.0", 2)
        .function(OUTSIDE, "nvme")
        .params(params)
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .build()?;
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    if with_nic {
        userpci::ixgbe::model::register(&mut registry);
    }
    Ok(SimBus::new(topology, &registry)?)
}

struct Member {
    ctrl: Controller<Arc<SimFunction>>,
    workload: Workload,
}

pub fn run(args: Args) -> CliResult {
    if args.writes == 0 || args.depth == 0 || args.depth > 1023 {
        return Err(CliError::InvalidArgument {
            name: "--writes/--depth",
            value: format!("{}/{}", args.writes, args.depth),
            expected: "writes ≥ 1 and depth in 1..=1023",
        });
    }
    // Checked before the run: an unwritable --svg path must not cost a run's results.
    let svg_file =
        match &args.svg {
            Some(path) => Some(std::fs::File::create(path).map_err(|source| {
                userpci::framework::Error::Io {
                    context: format!("--svg {}: cannot create the file", path.display()),
                    source,
                }
            })?),
            None => None,
        };
    let wall = std::time::Instant::now();
    let bus = topology_bus(args.nic)?;
    if args.scenario == Scenario::Refused {
        bus.hold_elsewhere(address("01:00.2"), HOLDER)?;
    }
    let clock = Arc::clone(bus.clock());
    let coordinator = Arc::new(ResetCoordinator::new(
        clock.clone() as Arc<dyn Clock>,
        CoordinatorConfig::default(),
    ));

    // Open what we may, and claim the reset group so a bus reset stays possible.
    let mut functions: Vec<Arc<SimFunction>> = Vec::new();
    for at in MEMBERS.iter().chain([&OUTSIDE]) {
        match bus.open(address(at)) {
            Ok(f) => functions.push(Arc::new(f)),
            Err(err) => {
                if !args.json {
                    userpci::outln!("not opened: {err}")?;
                }
            }
        }
    }
    let claim = claim_reset_group(&bus, functions[0].as_ref() as &dyn ResetTarget);
    if let Err(err) = &claim {
        if !args.json {
            userpci::outln!("claiming the reset group fails at start-up: {err}")?;
        }
    }
    let targets: Vec<&dyn ResetTarget> = functions.iter().map(|f| f.as_ref() as _).collect();
    let groups = group_report(&targets)?;
    if !args.json {
        userpci::outln!("{}", userpci::framework::reset::render_table(&groups))?;
    }

    let mut members = Vec::new();
    let mut nic_workload = None;
    for (priority, function) in functions.iter().enumerate() {
        let at = function.as_ref().target_address();
        if args.nic && at == address(nic::NIC) {
            nic_workload = Some(nic::NicWorkload::new(
                Arc::clone(function),
                coordinator.as_ref(),
            )?);
            continue;
        }
        let ctrl = Controller::new(
            Arc::clone(function),
            ControllerOptions {
                reset_handler: Some(ResetHandler::coordinator(Arc::clone(&coordinator))),
                ..ControllerOptions::default()
            },
        )?;
        let name = format!("nvme{priority} {}", short(at));
        coordinator.register(
            Arc::clone(function) as Arc<dyn ResetTarget>,
            Box::new(NvmeParticipant::new(ctrl.clone(), name.clone())),
            ParticipantConfig {
                priority: priority as u32,
                quiesce_budget: Duration::from_millis(50),
                recover_budget: Duration::from_secs(2),
            },
        )?;
        let workload = Workload::new(name, &ctrl, args.depth, args.seed)?;
        members.push(Member { ctrl, workload });
    }

    // Phase 1: writes until every controller has `writes` acknowledged.
    // Between NVMe polls: the NIC's packet workload runs, then virtual time moves on.
    let nic_workload = RefCell::new(nic_workload);
    let idle = || {
        if let Some(nic) = nic_workload.borrow_mut().as_mut() {
            nic.pump();
        }
        clock.advance(Duration::from_micros(50));
    };
    drive(&mut members, args.writes, &idle)?;

    // The fault.
    match args.scenario {
        Scenario::Bus | Scenario::Refused => bus.inject(address("01:00.0"), SimFault::LinkDown)?,
        Scenario::Flr => bus.with_model(address("01:00.1"), |m: &mut NvmeModel| {
            m.fatal(Recovery::FunctionReset)
        })?,
    }
    if !args.json {
        userpci::outln!("fault injected: {}", describe(args.scenario))?;
    }

    // Phase 2: the workload goes on; the drivers notice (timeouts, CSTS), the coordinator
    // resets and recovers, and `writes` more get acknowledged everywhere still alive.
    drive(&mut members, 2 * args.writes, &idle)?;
    for member in &mut members {
        member.workload.stopped = true;
    }
    settle(&mut members, &idle);

    let report = coordinator.last_report();
    let refusal = match args.scenario {
        Scenario::Refused => Some(
            coordinator
                .request(ResetRequest::new(
                    address("01:00.0"),
                    userpci::framework::reset::ResetCause::NotResponding,
                ))
                .expect_err("the bus reset must be refused while 01:00.2 is held elsewhere")
                .to_string(),
        ),
        _ => None,
    };

    // Verify every block of every controller that answers.
    let mut summary = render::Summary::new(args.scenario, report.as_deref());
    for member in &mut members {
        let reachable = member.ctrl.check_health().is_ok();
        summary.writes_acknowledged += member.workload.acknowledged();
        summary.writes_duplicated += member.workload.duplicated();
        summary.writes_failed += member.workload.failed();
        if reachable {
            let (verified, lost) = member.workload.verify(&idle)?;
            summary.blocks_verified += verified;
            summary.writes_lost += lost;
        } else {
            summary.unreachable.push(member.workload.name.clone());
        }
    }
    summary.refusal = refusal.clone();
    summary.nic = nic_workload.borrow().as_ref().map(|n| n.summary(&bus));
    summary.wall_ns = wall.elapsed().as_nanos() as u64;

    if args.json {
        userpci::outln!("{}", summary.to_json(&groups))?;
    } else {
        summary.print_text(report.as_deref())?;
    }
    // After the results are out: a failure here costs the picture, not the figures.
    let svg_note = match (svg_file, &args.svg) {
        (Some(file), Some(path)) => Some(write_svg(file, path, report.as_deref())?),
        _ => None,
    };
    if let Some(refusal) = refusal {
        let svg = svg_note.map(|note| format!("; {note}")).unwrap_or_default();
        return Err(CliError::DemoFailed(format!(
            "reset refused: {refusal}{svg}"
        )));
    }
    if let (Some(nic), Some(report)) = (&summary.nic, &report) {
        let reset = report
            .members
            .iter()
            .any(|m| m.address == address(nic::NIC) && m.outcome.is_ok());
        if reset && (nic.received_after_reset == 0 || !nic.link_within_budget) {
            return Err(CliError::DemoFailed(format!(
                "{}: {} packets after the reset, link back within its budget: {}",
                nic.name, nic.received_after_reset, nic.link_within_budget
            )));
        }
    }
    if summary.writes_lost > 0 || summary.writes_duplicated > 0 || summary.blocks_verified == 0 {
        return Err(CliError::DemoFailed(format!(
            "{} writes lost, {} duplicated, {} blocks verified",
            summary.writes_lost, summary.writes_duplicated, summary.blocks_verified
        )));
    }
    Ok(())
}

fn short(address: PciAddress) -> String {
    address.to_string()[5..].to_string()
}

fn describe(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Bus => "01:00.0 link down (registers read all ones)",
        Scenario::Flr => "01:00.1 controller fatal (CSTS.CFS)",
        Scenario::Refused => "01:00.0 link down, and 01:00.2 is held by another process",
    }
}

/// Keeps every workload busy until each live one has `target` acknowledged writes, or no
/// progress is possible (every remaining controller failed).
fn drive(members: &mut [Member], target: u64, idle: &impl Fn()) -> CliResult {
    for _ in 0..2_000_000u32 {
        let mut progress = 0;
        let mut live = 0;
        for member in members.iter_mut() {
            let w = &mut member.workload;
            if w.acknowledged() >= target {
                continue;
            }
            if member.ctrl.state() == userpci::nvme::ControllerState::Failed
                || member.ctrl.state() == userpci::nvme::ControllerState::Gone
            {
                w.stopped = true;
            }
            if w.stopped {
                progress += w.poll();
                continue;
            }
            live += 1;
            w.top_up();
            progress += w.poll();
        }
        if live == 0 {
            return Ok(());
        }
        if progress == 0 {
            idle();
        }
    }
    Err(CliError::DemoFailed(
        "the workload made no progress within its iteration budget".to_string(),
    ))
}

/// Polls until every write has an answer.
fn settle(members: &mut [Member], idle: &impl Fn()) {
    for _ in 0..400_000u32 {
        let mut open = 0;
        for member in members.iter_mut() {
            member.workload.poll();
            if !member.workload.settled() {
                open += 1;
            }
        }
        if open == 0 {
            return;
        }
        idle();
    }
}

/// Writes the timeline to `--svg`'s file (created before the run), or, when there is no
/// timeline (the reset was refused), removes the empty file. Returns what happened.
fn write_svg(
    mut file: std::fs::File,
    path: &std::path::Path,
    report: Option<&userpci::framework::reset::ResetReport>,
) -> Result<String, CliError> {
    use std::io::Write as _;
    let Some(report) = report else {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Ok(format!(
            "no SVG written to {}: no reset ran",
            path.display()
        ));
    };
    let title = format!(
        "userpci reset recovery: {} reset of {} member(s), {:.1} ms",
        report.kind,
        report.members.len(),
        report.total_ns as f64 / 1e6
    );
    file.write_all(userpci::framework::reset::render_svg(&report.timeline, &title).as_bytes())
        .map_err(|source| userpci::framework::Error::Io {
            context: format!("writing {}", path.display()),
            source,
        })?;
    Ok(format!("timeline written to {}", path.display()))
}
