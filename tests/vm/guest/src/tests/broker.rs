//! The reset-group broker across processes on real VFIO (issue 10 item 4): this process claims
//! the two-function NVMe slot (01:00.0 + 01:00.1: one reset group, one IOMMU group) and lends
//! each function to a client process of its own, which drives it with write-verify through the
//! lent fds, in an IOVA window of its own (of the broker's IOAS in cdev mode, of its container
//! in group mode: functions of one IOMMU group share one address space either way). A hot reset coordinated by
//! the broker quiesces and recovers the client across the socket; its ledger: 0 lost,
//! 0 duplicated.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::ModeChoice;
use userpci_framework::backend::vfio::{VfioMode, VfioOptions};
use userpci_framework::broker::{Broker, BrokerClient, BrokerConfig, VfioCollector, VfioLending};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    ParticipantConfig, ResetCause, ResetKind, ResetRequest, ResetScope,
};
use userpci_nvme::{Controller, ControllerOptions, NvmeParticipant};

use super::ledger::{settle, Workload};
use super::support;
use crate::harness::{
    spawn_helper_piped, Ctx, Failure, TestResult, SLOT1_FN0, SLOT1_FN1, SLOT2_FN0,
};
use crate::{ensure, fail, note};

/// Acknowledged writes the client reaches before it says it is ready, and again after the
/// reset.
const WRITES: usize = 200;
/// Writes at most (32 KiB each from LBA 100,000 of the 128 MiB disk).
const MAX_WRITES: usize = 1_500;

fn paths() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir();
    (
        dir.join("userpci-broker.sock"),
        dir.join("userpci-broker.stop"),
    )
}

pub fn broker_lends_across_processes(ctx: &Ctx) -> TestResult {
    let (socket, stop) = paths();
    let _ = std::fs::remove_file(&stop);
    let vfio = support::context(ctx)?;
    let functions = [
        support::open(ctx, &vfio, SLOT1_FN0)?,
        support::open(ctx, &vfio, SLOT1_FN1)?,
    ];
    let broker = Broker::start(VfioLending::new(functions), BrokerConfig::new(&socket))?;
    let mode = ctx.mode.to_string();
    let mut clients = Vec::new();
    for device in [SLOT1_FN0, SLOT1_FN1] {
        let mut child = spawn_helper_piped(
            "broker_nvme_client",
            &[
                &socket.display().to_string(),
                &stop.display().to_string(),
                &device.to_string(),
                &mode,
            ],
        )
        .map_err(|e| Failure(format!("spawn the client of {device}: {e}")))?;
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        clients.push((device, child, lines));
    }
    let next_line = |device: PciAddress, lines: &mut Lines, what: &str| match lines.next() {
        Some(Ok(line)) => Ok(line),
        _ => Err(Failure(format!(
            "the client of {device} ended before {what}"
        ))),
    };
    for (device, _, lines) in clients.iter_mut() {
        let ready = next_line(*device, lines, "it was ready")?;
        ensure!(ready.starts_with("ready"), "client of {device}: {ready}");
        note!("client of {device}: {ready}");
    }
    // Both clients have writes in flight: one bus reset of the slot, coordinated by the broker.
    let outcome = broker.request_reset(
        ResetRequest::new(SLOT1_FN0, ResetCause::Timeout).with_scope(ResetScope::Group),
    )?;
    let report = &outcome.report;
    note!(
        "reset: {} members, {} ms",
        report.members.len(),
        report.total_ns / 1_000_000
    );
    std::fs::write(&stop, b"stop").map_err(|e| Failure(format!("{}: {e}", stop.display())))?;
    let mut verdicts = Vec::new();
    for (device, mut child, mut lines) in clients {
        let verdict = next_line(device, &mut lines, "its verdict")?;
        let status = child.wait().map_err(|e| Failure(format!("wait: {e}")))?;
        note!("client of {device}: {verdict}");
        verdicts.push((device, verdict, status));
    }
    drop(broker);
    ensure!(report.kind == ResetKind::Bus, "a {} reset", report.kind);
    ensure!(report.members.len() == 2, "members: {:?}", report.members);
    for member in &report.members {
        ensure!(
            member.outcome.is_ok()
                && member
                    .participant
                    .as_deref()
                    .is_some_and(|p| p.contains("(nvme-client, pid")),
            "member: {member:?}"
        );
    }
    for (device, verdict, status) in verdicts {
        ensure!(status.success(), "client of {device} exited with {status}");
        ensure!(
            verdict.contains(" lost=0 ") && verdict.ends_with(" duplicated=0"),
            "client of {device}: {verdict}"
        );
    }
    Ok(())
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// `--helper broker_nvme_client SOCKET STOPFILE BDF MODE`: a client process. Prints `ready ...`
/// after WRITES acknowledged writes, keeps writing until STOPFILE exists and WRITES more are
/// acknowledged, then reads every write back and prints its verdict.
pub fn helper_broker_nvme_client(args: &[String]) -> u8 {
    let run = || -> Result<String, Failure> {
        let [socket, stop, bdf, mode] = args else {
            fail!("usage: broker_nvme_client SOCKET STOPFILE BDF cdev|group");
        };
        let device: PciAddress = bdf.parse()?;
        let (choice, expected) = match mode.as_str() {
            "cdev" => (ModeChoice::Iommufd, VfioMode::Iommufd),
            "group" => (ModeChoice::Group, VfioMode::Group),
            other => fail!("mode {other:?}: expected cdev or group"),
        };
        let collector = VfioCollector::new(VfioOptions::new().mode(choice));
        let client = BrokerClient::connect(socket, "nvme-client", collector)?;
        let function = client.open(device)?;
        ensure!(
            function.mode() == expected,
            "lent in {} mode",
            function.mode()
        );
        let ctrl = Controller::new(Arc::new(function), ControllerOptions::default())?;
        client.register(
            Box::new(NvmeParticipant::new(ctrl.clone(), "nvme-client")),
            ParticipantConfig {
                priority: 0,
                quiesce_budget: Duration::from_secs(5),
                recover_budget: Duration::from_secs(10),
            },
        )?;
        let mut load = Workload::new(ctrl, 0xb20c)?;
        let acknowledged =
            |load: &Workload| load.ledger.values().filter(|w| w.acknowledged > 0).count();
        let run_until = |load: &mut Workload, target: usize, stop: Option<&Path>| -> TestResult {
            let start = Instant::now();
            let mut stopped = stop.is_none();
            while !(stopped && acknowledged(load) >= target) {
                // Each write has its own LBA range of the 128 MiB disk.
                if load.ledger.len() < MAX_WRITES {
                    load.write(8)?;
                }
                load.poll();
                if !stopped {
                    stopped = stop.is_some_and(Path::exists);
                }
                if start.elapsed() > Duration::from_secs(120) {
                    fail!("{} acknowledged after 120 s", acknowledged(load));
                }
            }
            Ok(())
        };
        run_until(&mut load, WRITES, None)?;
        println!("ready {} acknowledged", acknowledged(&load));
        // Writes keep going through the reset until the broker's side says it is over...
        run_until(&mut load, 0, Some(Path::new(stop)))?;
        // ...then WRITES more, or as many as the disk range has left.
        let target = (acknowledged(&load) + WRITES).min(MAX_WRITES);
        run_until(&mut load, target, None)?;
        settle(std::slice::from_mut(&mut load), Duration::from_secs(60))?;
        let verdict = load.verify()?;
        Ok(format!(
            "verdict acknowledged={} failed={} lost={} duplicated={}",
            verdict.acknowledged, verdict.failed, verdict.lost, verdict.duplicated
        ))
    };
    match run() {
        Ok(verdict) => {
            println!("{verdict}");
            0
        }
        Err(Failure(why)) => {
            println!("failed: {why}");
            1
        }
    }
}

/// `userpci broker` (the CLI in the initramfs) serves controller C to this process: leased,
/// a function reset coordinated by the CLI's broker recovers it, Ctrl-C stops the broker.
pub fn broker_cli_serves_a_client(ctx: &Ctx) -> TestResult {
    let socket = std::env::temp_dir().join("userpci-cli-broker.sock");
    let mut cli = std::process::Command::new("/bin/userpci")
        .args(["broker", &SLOT2_FN0.to_string(), "--socket"])
        .arg(&socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("spawn /bin/userpci broker: {e}")))?;
    let mut lines = BufReader::new(cli.stdout.take().expect("piped")).lines();
    let mut next_line = |what: &str| match lines.next() {
        Some(Ok(line)) => Ok(line),
        _ => Err(Failure(format!("userpci broker ended before {what}"))),
    };
    let serving = next_line("serving")?;
    ensure!(serving.contains("serving on"), "{serving}");
    let free = next_line("listing its functions")?;
    ensure!(free.trim() == format!("{SLOT2_FN0}: free"), "{free}");
    let collector = VfioCollector::new(VfioOptions::new().mode(support::mode_choice(ctx)));
    let client = BrokerClient::connect(&socket, "vmtest", collector)?;
    let function = client.open(SLOT2_FN0)?;
    let ctrl = Controller::new(Arc::new(function), ControllerOptions::default())?;
    client.register(
        Box::new(NvmeParticipant::new(ctrl.clone(), "vmtest")),
        ParticipantConfig {
            priority: 0,
            quiesce_budget: Duration::from_secs(5),
            recover_budget: Duration::from_secs(10),
        },
    )?;
    let leased = next_line("the lease")?;
    ensure!(
        leased.contains("leased to client") && leased.contains("(vmtest, pid"),
        "{leased}"
    );
    let outcome = client.request_reset(
        ResetRequest::new(SLOT2_FN0, ResetCause::Timeout).with_scope(ResetScope::Function),
    )?;
    ensure!(outcome.all_recovered(), "{:?}", outcome.members);
    ensure!(
        outcome.report["kind"] == "flr",
        "{}",
        outcome.report["kind"]
    );
    // The controller serves I/O after the brokered FLR.
    let mut load = Workload::new(ctrl, 0xc11)?;
    load.write(8)?;
    settle(std::slice::from_mut(&mut load), Duration::from_secs(30))?;
    let verdict = load.verify()?;
    ensure!(
        verdict.acknowledged == 8 && verdict.lost == 0,
        "after the reset: {verdict:?}"
    );
    drop(load);
    drop(client);
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &cli.id().to_string()])
        .status()
        .map_err(|e| Failure(format!("kill -INT: {e}")))?;
    ensure!(interrupted.success(), "kill -INT: {interrupted}");
    let mut rest = Vec::new();
    while let Ok(line) = next_line("it stopped") {
        rest.push(line);
    }
    let status = cli.wait().map_err(|e| Failure(format!("wait: {e}")))?;
    ensure!(
        rest.last().is_some_and(|l| l.contains("stopped")),
        "userpci broker said: {rest:?}"
    );
    ensure!(status.success(), "userpci broker exited with {status}");
    Ok(())
}
