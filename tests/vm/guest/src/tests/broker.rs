//! The reset-group broker across processes on real VFIO (issue 10 item 4): this process claims
//! the heterogeneous slot (NVMe 03:00.0 + 82576 03:00.1, one reset group, separate IOMMU
//! groups) and lends the NVMe function to a second process, which drives it with write-verify
//! through the lent fds: in an IOAS of its own (cdev mode), or in an IOVA window of its own in
//! the broker's container (group mode). A hot reset coordinated by
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
use crate::harness::{spawn_helper_piped, Ctx, Failure, TestResult, HET_NVME, IGB_A};
use crate::{ensure, fail, note};

/// Acknowledged writes the client reaches before it says it is ready, and again after the
/// reset.
const WRITES: usize = 200;

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
    let nvme = support::open(ctx, &vfio, HET_NVME)?;
    let igb = support::open(ctx, &vfio, IGB_A)?;
    let broker = Broker::start(VfioLending::new([nvme, igb]), BrokerConfig::new(&socket))?;
    let mode = ctx.mode.to_string();
    let mut child = spawn_helper_piped(
        "broker_nvme_client",
        &[
            &socket.display().to_string(),
            &stop.display().to_string(),
            &HET_NVME.to_string(),
            &mode,
        ],
    )
    .map_err(|e| Failure(format!("spawn the client: {e}")))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next_line = |what: &str| -> Result<String, Failure> {
        match lines.next() {
            Some(Ok(line)) => Ok(line),
            _ => Err(Failure(format!("the client ended before {what}"))),
        }
    };
    let ready = next_line("it was ready")?;
    ensure!(ready.starts_with("ready"), "client: {ready}");
    note!("client: {ready}");
    let outcome = broker.request_reset(
        ResetRequest::new(HET_NVME, ResetCause::Timeout).with_scope(ResetScope::Group),
    )?;
    let report = &outcome.report;
    note!(
        "reset: {} members, {} ms",
        report.members.len(),
        report.total_ns / 1_000_000
    );
    std::fs::write(&stop, b"stop").map_err(|e| Failure(format!("{}: {e}", stop.display())))?;
    let verdict = next_line("its verdict")?;
    let status = child.wait().map_err(|e| Failure(format!("wait: {e}")))?;
    note!("client: {verdict}");
    drop(broker);
    ensure!(report.kind == ResetKind::Bus, "a {} reset", report.kind);
    let member = report
        .members
        .iter()
        .find(|m| m.address == HET_NVME)
        .ok_or_else(|| Failure("no NVMe member in the report".into()))?;
    ensure!(
        member.outcome.is_ok()
            && member
                .participant
                .as_deref()
                .is_some_and(|p| p.contains("(nvme-client, pid")),
        "NVMe member: {member:?}"
    );
    ensure!(status.success(), "client exited with {status}");
    ensure!(
        verdict.contains(" lost=0 ") && verdict.contains(" duplicated=0"),
        "client: {verdict}"
    );
    Ok(())
}

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
                load.write(8)?;
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
        let target = acknowledged(&load) + WRITES;
        run_until(&mut load, target, Some(Path::new(stop)))?;
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
