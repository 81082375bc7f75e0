//! The demo's report: a text summary with the timeline table, or one JSON object.

use serde::Serialize;
use userpci::framework::reset::{Outcome, ResetGroupView, ResetReport};

use super::scenario::Scenario;
use crate::error::CliResult;

/// Everything the demo measured.
#[derive(Debug, Default)]
pub struct Summary {
    scenario: String,
    report: Option<ResetReport>,
    pub writes_acknowledged: u64,
    pub writes_lost: u64,
    pub writes_duplicated: u64,
    pub writes_failed: u64,
    pub blocks_verified: u64,
    pub unreachable: Vec<String>,
    pub refusal: Option<String>,
    pub wall_ns: u64,
    /// The NIC of `--nic`.
    pub nic: Option<super::nic::NicSummary>,
}

#[derive(Serialize)]
struct PhaseJson<'a> {
    name: &'a str,
    phase: String,
    start_ns: u64,
    end_ns: u64,
    deadline_ns: Option<u64>,
    outcome: &'a Outcome,
}

#[derive(Serialize)]
struct MemberJson {
    address: String,
    participant: Option<String>,
    outcome: Outcome,
}

#[derive(Serialize)]
struct Json<'a> {
    scenario: &'a str,
    reset_kind: Option<String>,
    cause: Option<String>,
    members: Vec<MemberJson>,
    phases: Vec<PhaseJson<'a>>,
    total_ns: u64,
    device_wait_ns: u64,
    framework_overhead_ns: u64,
    writes_acknowledged: u64,
    writes_lost: u64,
    writes_duplicated: u64,
    writes_failed: u64,
    blocks_verified: u64,
    unreachable: &'a [String],
    refusal: Option<&'a str>,
    reset_groups: &'a [ResetGroupView],
    wall_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nic: Option<&'a super::nic::NicSummary>,
}

impl Summary {
    pub fn new(scenario: Scenario, report: Option<&ResetReport>) -> Self {
        Summary {
            scenario: format!("{scenario:?}").to_lowercase(),
            report: report.cloned(),
            ..Summary::default()
        }
    }

    pub fn to_json(&self, groups: &[ResetGroupView]) -> String {
        let report = self.report.as_ref();
        let json = Json {
            scenario: &self.scenario,
            reset_kind: report.map(|r| r.kind.to_string()),
            cause: report.map(|r| r.request.cause.as_str().to_string()),
            members: report
                .map(|r| {
                    r.members
                        .iter()
                        .map(|m| MemberJson {
                            address: m.address.to_string(),
                            participant: m.participant.clone(),
                            outcome: m.outcome.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            phases: report
                .map(|r| {
                    r.timeline
                        .phases
                        .iter()
                        .map(|p| PhaseJson {
                            name: &p.member,
                            phase: p.phase.to_string(),
                            start_ns: p.start_ns,
                            end_ns: p.end_ns,
                            deadline_ns: p.deadline_ns,
                            outcome: &p.outcome,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            total_ns: report.map_or(0, |r| r.total_ns),
            device_wait_ns: report.map_or(0, |r| r.device_wait_ns),
            framework_overhead_ns: report.map_or(0, |r| r.framework_overhead_ns),
            writes_acknowledged: self.writes_acknowledged,
            writes_lost: self.writes_lost,
            writes_duplicated: self.writes_duplicated,
            writes_failed: self.writes_failed,
            blocks_verified: self.blocks_verified,
            unreachable: &self.unreachable,
            refusal: self.refusal.as_deref(),
            reset_groups: groups,
            wall_ns: self.wall_ns,
            nic: self.nic.as_ref(),
        };
        serde_json::to_string(&json).expect("the summary serialises")
    }

    pub fn print_text(&self, report: Option<&ResetReport>) -> CliResult {
        if let Some(report) = report {
            userpci::outln!(
                "\n{} reset after a {} on {}: {} member(s)",
                report.kind,
                report.request.cause.as_str(),
                report.request.device,
                report.members.len()
            )?;
            userpci::outln!(
                "{:<16} {:<10} {:>10} {:>10} {:>10}  outcome",
                "member",
                "phase",
                "start ms",
                "end ms",
                "deadline"
            )?;
            for p in &report.timeline.phases {
                userpci::outln!(
                    "{:<16} {:<10} {:>10.3} {:>10.3} {:>10}  {}",
                    p.member,
                    p.phase.to_string(),
                    p.start_ns as f64 / 1e6,
                    p.end_ns as f64 / 1e6,
                    p.deadline_ns
                        .map_or("-".to_string(), |d| format!("{:.3}", d as f64 / 1e6)),
                    match &p.outcome {
                        Outcome::Ok => "ok".to_string(),
                        Outcome::Failed(why) => format!("FAILED: {why}"),
                        Outcome::Skipped(why) => format!("skipped: {why}"),
                    }
                )?;
            }
            userpci::outln!(
                "\ntotal {:.3} ms on the device timeline, of which {:.3} ms the device's mandated \
                 waits; framework overhead {:.1} µs (wall clock, device waits excluded)",
                report.total_ns as f64 / 1e6,
                report.device_wait_ns as f64 / 1e6,
                report.framework_overhead_ns as f64 / 1e3
            )?;
        }
        if let Some(refusal) = &self.refusal {
            userpci::outln!("\nreset refused: {refusal}")?;
        }
        userpci::outln!(
            "writes acknowledged {}, lost {}, duplicated {}, failed (caller told) {}; blocks verified {}",
            self.writes_acknowledged,
            self.writes_lost,
            self.writes_duplicated,
            self.writes_failed,
            self.blocks_verified
        )?;
        if let Some(nic) = self.nic.as_ref().filter(|n| n.resets == 0) {
            userpci::outln!(
                "{} ({}): packets received {}, {} echoed; not reset",
                nic.name,
                nic.state,
                nic.received_before_reset,
                nic.sent_total
            )?;
        } else if let Some(nic) = &self.nic {
            userpci::outln!(
                "{} ({}): packets received {} before the reset, {} after; {} echoed; {} TX \
                 packets in the ring at the reset returned to the pool (not re-sent); {}",
                nic.name,
                nic.state,
                nic.received_before_reset,
                nic.received_after_reset,
                nic.sent_total,
                nic.tx_dropped_at_reset,
                match nic.link_up_ns {
                    Some(ns) => format!(
                        "link back after {:.3} ms, within its budget of {} ms: {}",
                        ns as f64 / 1e6,
                        nic.link_budget_ns / 1_000_000,
                        if nic.link_within_budget { "yes" } else { "NO" }
                    ),
                    None => "not reset".to_string(),
                }
            )?;
        }
        if !self.unreachable.is_empty() {
            userpci::outln!(
                "not verified (device unreachable): {}",
                self.unreachable.join(", ")
            )?;
        }
        Ok(())
    }
}
