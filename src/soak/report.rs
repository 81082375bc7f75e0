//! What a soak reports: the tally of resets (kept by the reset handler as they happen) and
//! the final figures as one JSON object.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use userpci_framework::reset::{ResetKind, ResetReport, Timeline};

use super::counts::{DriverCounts, FailureCounts};
use super::fault::FaultClass;

/// Version of the JSON layout: bump it when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// Resets seen by the reset handler, and the longest one.
#[derive(Debug, Default)]
pub struct ResetTally {
    pub flr: u64,
    pub bus: u64,
    /// Requests the coordinator refused (the driver then resets its controller alone).
    pub refused: u64,
    /// Members that came out of a reset recovered / failed.
    pub members_recovered: u64,
    pub members_failed: u64,
    /// Why members failed, by reason (first words), for the report.
    pub failure_reasons: BTreeMap<String, u64>,
    /// Resets seen so far (the runner compares it to know a reset happened).
    pub count: u64,
    /// The fault the runner is handling, for attributing the worst recovery.
    pub episode: Option<(u32, FaultClass)>,
    worst: Option<Worst>,
    worst_all_recovered: Option<Worst>,
}

type Worst = (Arc<ResetReport>, Option<(u32, FaultClass)>);

fn keep_longer(
    slot: &mut Option<Worst>,
    report: &Arc<ResetReport>,
    episode: Option<(u32, FaultClass)>,
) {
    if slot
        .as_ref()
        .is_none_or(|(w, _)| report.total_ns > w.total_ns)
    {
        *slot = Some((Arc::clone(report), episode));
    }
}

/// A reason without its numbers, so that reasons group: "missed its recover deadline".
fn reason_key(reason: &str) -> String {
    let cut = reason.find(['(', ':']).unwrap_or(reason.len());
    reason[..cut].trim().to_string()
}

impl ResetTally {
    /// Records a finished reset.
    pub fn record(&mut self, report: &Arc<ResetReport>) {
        self.count += 1;
        match report.kind {
            ResetKind::Flr => self.flr += 1,
            ResetKind::Bus => self.bus += 1,
        }
        for member in &report.members {
            match &member.outcome {
                userpci_framework::reset::Outcome::Ok => self.members_recovered += 1,
                userpci_framework::reset::Outcome::Failed(why)
                | userpci_framework::reset::Outcome::Skipped(why) => {
                    self.members_failed += 1;
                    *self.failure_reasons.entry(reason_key(why)).or_default() += 1;
                }
            }
        }
        keep_longer(&mut self.worst, report, self.episode);
        if report.all_recovered() {
            keep_longer(&mut self.worst_all_recovered, report, self.episode);
        }
    }

    /// The longest reset, as the report shows it.
    pub fn worst(&self) -> Option<WorstRecovery> {
        self.worst.as_ref().map(describe)
    }

    /// The longest reset that every member came out of recovered.
    pub fn worst_all_recovered(&self) -> Option<WorstRecovery> {
        self.worst_all_recovered.as_ref().map(describe)
    }
}

fn describe((report, episode): &Worst) -> WorstRecovery {
    WorstRecovery {
        fault_index: episode.map(|e| e.0),
        fault_class: episode.map(|e| e.1.as_str()),
        kind: report.kind.to_string(),
        cause: report.request.cause.as_str(),
        device: report.request.device.to_string(),
        total_ns: report.total_ns,
        device_wait_ns: report.device_wait_ns,
        members: report
            .members
            .iter()
            .map(|m| WorstMember {
                address: m.address.to_string(),
                participant: m.participant.clone(),
                recovered: m.outcome.is_ok(),
            })
            .collect(),
        timeline: report.timeline.clone(),
    }
}

/// One member of the worst recovery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorstMember {
    pub address: String,
    pub participant: Option<String>,
    pub recovered: bool,
}

/// The longest coordinated reset of the run, with its timeline (virtual time only: the
/// coordinator's wall-clock overhead is left out, so the report is a function of the seed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorstRecovery {
    pub fault_index: Option<u32>,
    pub fault_class: Option<&'static str>,
    pub kind: String,
    pub cause: &'static str,
    pub device: String,
    pub total_ns: u64,
    pub device_wait_ns: u64,
    pub members: Vec<WorstMember>,
    pub timeline: Timeline,
}

/// Resets by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resets {
    pub flr: u64,
    pub bus: u64,
    pub total: u64,
    /// Requests the coordinator refused.
    pub refused: u64,
}

/// How members came out of resets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recoveries {
    /// Members recovered by the coordinator.
    pub recovered: u64,
    /// Members failed (missed deadline, device not back, recovery error), by reason.
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Controllers brought up again on their function after being failed or lost (the
    /// application re-probing: FLR, new controller, the same ledger).
    pub reattached: u64,
}

/// Errors the callers were told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    pub total: u64,
    #[serde(flatten)]
    pub by_kind: FailureCounts,
    /// Writes submitted and never answered at the end (each one silently lost): must be 0.
    pub unanswered: u64,
}

/// The 82599 port's figures (with `--nic`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NicFigures {
    pub address: String,
    pub received: u64,
    pub sent: u64,
    pub recoveries: u64,
    pub tx_dropped_at_reset: u64,
    pub state: String,
}

/// The soak's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SoakReport {
    pub schema_version: u32,
    pub seed: u64,
    pub controllers: u8,
    pub nic: bool,
    pub faults_requested: u32,
    pub faults_injected_total: u64,
    /// Per class, every class listed (0 if none).
    pub faults_injected: BTreeMap<&'static str, u64>,
    /// Hook classes whose hook no reset reached (armed, then disarmed at the episode's end).
    pub faults_not_triggered: BTreeMap<&'static str, u64>,
    pub resets: Resets,
    pub recoveries: Recoveries,
    pub failures_reported: Failures,
    pub writes_submitted: u64,
    pub writes_acknowledged: u64,
    pub writes_lost: u64,
    pub writes_duplicated: u64,
    /// Slots that read back as a write the caller was told failed (allowed: it may land).
    pub writes_failed_but_landed: u64,
    pub submissions_refused: u64,
    /// Read-backs during the run of slots whose write was submitted before a reset and
    /// acknowledged after it, at the end of the episode (losses found count in
    /// `writes_lost`, once).
    pub slots_checked_after_resets: u64,
    /// Slots read back at the end holding their last acknowledged write.
    pub slots_verified: u64,
    pub blocks_verified: u64,
    pub driver: DriverCounts,
    /// Episodes that ran past their virtual-time limit (must be 0).
    pub stalls: u64,
    pub nic_port: Option<NicFigures>,
    pub virtual_time_ns: u64,
    pub wall_time_ns: u64,
    /// The longest reset (a surprise removal's: the bus reset waits for the removed
    /// function's link as the kernel does, 1 s, then the coordinator 1 s for its config
    /// reads, and the surviving members wait with it).
    pub worst_recovery: Option<WorstRecovery>,
    /// The longest reset that every member came out of recovered.
    pub worst_full_recovery: Option<WorstRecovery>,
    /// 0 lost, 0 duplicated, 0 unanswered, 0 stalls, something verified, the NIC (if any)
    /// running.
    pub passed: bool,
}

impl SoakReport {
    /// The verdict the command's exit status follows.
    pub fn judge(&mut self) {
        self.passed = self.writes_lost == 0
            && self.writes_duplicated == 0
            && self.failures_reported.unanswered == 0
            && self.stalls == 0
            && self.blocks_verified > 0
            && self.nic_port.as_ref().is_none_or(|n| n.state == "running");
    }

    /// As one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the report serialises")
    }

    /// As a few lines of text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "soak seed {}: {} faults injected over {} controller(s){}, {:.1} s virtual, {:.1} s wall\n",
            self.seed,
            self.faults_injected_total,
            self.controllers,
            if self.nic { " and an 82599 port" } else { "" },
            self.virtual_time_ns as f64 / 1e9,
            self.wall_time_ns as f64 / 1e9,
        );
        for (class, n) in &self.faults_injected {
            out += &format!("  {class:<36} {n}\n");
        }
        out += &format!(
            "resets: {} FLR, {} bus; members recovered {}, failed {}, re-attached {}\n",
            self.resets.flr,
            self.resets.bus,
            self.recoveries.recovered,
            self.recoveries.failed,
            self.recoveries.reattached
        );
        out += &format!(
            "writes: {} acknowledged, {} failures reported, {} unanswered, {} lost, {} duplicated; {} blocks verified\n",
            self.writes_acknowledged,
            self.failures_reported.total,
            self.failures_reported.unanswered,
            self.writes_lost,
            self.writes_duplicated,
            self.blocks_verified
        );
        let worst = [
            ("worst recovery", &self.worst_recovery),
            ("worst full recovery", &self.worst_full_recovery),
        ];
        for (what, w) in worst {
            if let Some(w) = w {
                out += &format!(
                    "{what}: {} reset of {} for fault {} {} ({}), {:.1} ms\n",
                    w.kind,
                    w.device,
                    w.fault_index.map_or("-".to_string(), |i| i.to_string()),
                    w.fault_class.unwrap_or("-"),
                    w.cause,
                    w.total_ns as f64 / 1e6
                );
            }
        }
        out += if self.passed { "PASSED\n" } else { "FAILED\n" };
        out
    }
}
