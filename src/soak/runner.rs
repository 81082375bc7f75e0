//! The soak itself: builds the reset group on the simulated bus, runs the workloads, injects
//! the scheduled faults one episode at a time, brings lost controllers back, and at the end
//! reads every slot back against the ledgers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use userpci_framework::backend::sim::{SimBus, SimClock};
use userpci_framework::reset::{CoordinatorConfig, ResetCoordinator};
use userpci_framework::time::Clock;
use userpci_nvme::ControllerState;

use super::config::{timing, SoakConfig};
use super::counts::VerifyCounts;
use super::error::{Result, SoakError};
use super::fault::{schedule, FaultClass, FaultEvent};
use super::group::{build_bus, lock, lock_arming, Group, Member};
use super::inject;
use super::nic::NicTraffic;
use super::participant::Misbehaviour;
use super::report::{Failures, Recoveries, Resets, SoakReport, SCHEMA_VERSION};
use super::workload::WRITE_BLOCKS;

/// Acknowledged writes every controller must make after the last reset before an episode
/// counts as recovered.
const WRITES_AFTER_RESET: u64 = 4;

/// A soak in progress.
pub struct Soak {
    config: SoakConfig,
    group: Group,
    bus: Arc<SimBus>,
    clock: Arc<SimClock>,
    members: Vec<Member>,
    nic: Option<NicTraffic>,
    injected: BTreeMap<FaultClass, u64>,
    not_triggered: BTreeMap<FaultClass, u64>,
    reattached: u64,
    stalls: u64,
    /// Read-backs of writes that crossed a reset, at the end of their episode.
    after_reset: VerifyCounts,
    resets_seen: u64,
    wall: Instant,
}

/// Lets virtual time pass, with the NIC's traffic pumped first.
fn idle(nic: &mut Option<NicTraffic>, clock: &SimClock) {
    if let Some(nic) = nic.as_mut() {
        nic.pump();
    }
    clock.advance(timing::IDLE_STEP);
}

impl Soak {
    /// Builds the topology, brings every controller (and the NIC) up.
    pub fn new(config: SoakConfig) -> Result<Self> {
        config.validate().map_err(SoakError::InvalidConfig)?;
        let wall = Instant::now();
        let bus = build_bus(&config)?;
        let clock = Arc::clone(bus.clock());
        let group = Group {
            coordinator: Arc::new(ResetCoordinator::new(
                Arc::clone(&clock) as Arc<dyn Clock>,
                CoordinatorConfig::default(),
            )),
            bus: Arc::clone(&bus),
            tally: Arc::default(),
            reset_epoch: Arc::default(),
        };
        let mut members = Vec::new();
        for i in 0..config.controllers {
            let mut member = group.member(i, &config)?;
            group.bring_up(&mut member)?;
            members.push(member);
        }
        let nic = if config.nic {
            let address = format!("01:00.{}", config.controllers).parse()?;
            let function = Arc::new(bus.open(address)?);
            Some(NicTraffic::new(function, &group.coordinator)?)
        } else {
            None
        };
        Ok(Soak {
            config,
            group,
            bus,
            clock,
            members,
            nic,
            injected: BTreeMap::new(),
            not_triggered: BTreeMap::new(),
            reattached: 0,
            stalls: 0,
            after_reset: VerifyCounts::default(),
            resets_seen: 0,
            wall,
        })
    }

    /// [`Group::reattach`] of controller `index`, counted and blamed on `episode`.
    fn reattach(&mut self, index: usize, episode: Option<&FaultEvent>) -> Result<()> {
        self.reattached += 1;
        let member = &mut self.members[index];
        self.group
            .reattach(member)
            .map_err(|err| SoakError::Reattach {
                device: member.address,
                fault: episode.map_or(u32::MAX, |e| e.index),
                class: episode.map_or("-", |e| e.class.as_str()),
                reason: err.to_string(),
            })
    }

    /// One round over every controller: re-attach the lost ones, top up, poll; virtual time
    /// passes when nothing moved.
    fn round(&mut self, episode: Option<&FaultEvent>) -> Result<()> {
        let mut progress = 0;
        for i in 0..self.members.len() {
            let state = self.members[i].ctrl.as_ref().map(|c| c.state());
            if matches!(
                state,
                None | Some(ControllerState::Failed | ControllerState::Gone)
            ) {
                self.reattach(i, episode)?;
            }
            let w = &mut self.members[i].workload;
            progress += w.top_up();
            progress += w.poll();
        }
        let count = lock(&self.group.tally).count;
        if count != self.resets_seen {
            self.resets_seen = count;
            for m in &mut self.members {
                m.mark = m.workload.acknowledged();
            }
        }
        if progress == 0 {
            idle(&mut self.nic, &self.clock);
        }
        Ok(())
    }

    /// Runs rounds until every controller reached its goal (`after_reset`: a few writes
    /// since the last reset; else its `goal`), or for at most the episode limit of virtual
    /// time. Returns whether they got there.
    fn drive(&mut self, episode: Option<&FaultEvent>, after_reset: bool) -> Result<bool> {
        let limit = self.clock.now() + timing::EPISODE_LIMIT;
        while self.clock.now() < limit {
            let done = self.members.iter().all(|m| {
                let healthy = m
                    .ctrl
                    .as_ref()
                    .is_some_and(|c| c.state() == ControllerState::Enabled);
                let goal = if after_reset {
                    m.mark + WRITES_AFTER_RESET
                } else {
                    m.goal
                };
                healthy && m.workload.acknowledged() >= goal
            });
            if done {
                return Ok(true);
            }
            self.round(episode)?;
        }
        Ok(false)
    }

    fn arm(&self, event: &FaultEvent) {
        let misbehaviour = match event.class {
            FaultClass::MissedQuiesceDeadline => Misbehaviour::MissQuiesce,
            FaultClass::MissedRecoverDeadline => Misbehaviour::MissRecover,
            FaultClass::FaultDuringRecovery => {
                Misbehaviour::FaultDuringRecovery(event.device_fault)
            }
            FaultClass::SecondFaultDuringReset => Misbehaviour::SecondFault {
                at: self.members[event.second_target].address,
                fault: event.device_fault,
            },
            _ => return,
        };
        let mut arming = lock_arming(&self.members[event.target].arming);
        arming.armed = Some(misbehaviour);
        arming.fired.clear();
    }

    /// One fault: writes before it, the injection, and running until every controller
    /// serves writes again after the last reset; then what is left of it is cleared.
    fn episode(&mut self, event: &FaultEvent) -> Result<()> {
        lock(&self.group.tally).episode = Some((event.index, event.class));
        for m in &mut self.members {
            m.goal = m.workload.acknowledged() + u64::from(event.writes_before);
        }
        if !self.drive(Some(event), false)? {
            self.stalls += 1;
        }
        for m in &mut self.members {
            m.mark = m.workload.acknowledged();
        }
        self.arm(event);
        let target = self.members[event.target].address;
        inject::inject(&self.bus, target, event)?;
        *self.injected.entry(event.class).or_default() += 1;
        if !self.drive(Some(event), true)? {
            tracing::error!(
                fault = event.index,
                class = event.class.as_str(),
                "soak: stall"
            );
            self.stalls += 1;
        }
        let mut arming = lock_arming(&self.members[event.target].arming);
        if arming.armed.take().is_some() {
            *self.not_triggered.entry(event.class).or_default() += 1;
        }
        arming.fired.clear();
        drop(arming);
        for m in &self.members {
            inject::clear(&self.bus, m.address)?;
        }
        self.check_crossed()
    }

    /// Reads back what the episode's resets endangered (see [`Workload::check_crossed`]).
    ///
    /// [`Workload::check_crossed`]: super::workload::Workload::check_crossed
    fn check_crossed(&mut self) -> Result<()> {
        for m in &mut self.members {
            let (nic, clock) = (&mut self.nic, &self.clock);
            let counts = m.workload.check_crossed(m.address, || idle(nic, clock))?;
            self.after_reset.add(&counts);
        }
        Ok(())
    }

    /// Injects every scheduled fault, one episode each.
    pub fn run_faults(&mut self) -> Result<()> {
        for event in schedule(&self.config) {
            self.episode(&event)?;
        }
        lock(&self.group.tally).episode = None;
        Ok(())
    }

    /// Stops submitting, lets every write get its answer, reads every slot back and
    /// reports.
    pub fn finish(mut self) -> Result<SoakReport> {
        for m in &self.members {
            inject::clear(&self.bus, m.address)?;
        }
        // No faults any more: every write in flight is answered within its latency.
        let limit = self.clock.now() + timing::SETTLE_LIMIT;
        while self.clock.now() < limit {
            for i in 0..self.members.len() {
                let state = self.members[i].ctrl.as_ref().map(|c| c.state());
                if state != Some(ControllerState::Enabled) {
                    self.reattach(i, None)?;
                }
                self.members[i].workload.poll();
            }
            if self
                .members
                .iter()
                .all(|m| m.workload.ledger.unanswered() == 0)
            {
                break;
            }
            idle(&mut self.nic, &self.clock);
        }
        let mut verified = VerifyCounts::default();
        for m in &mut self.members {
            let (nic, clock) = (&mut self.nic, &self.clock);
            let counts = m.workload.verify(m.address, || idle(nic, clock))?;
            verified.add(&counts);
        }
        Ok(self.report(verified))
    }

    fn report(&self, verified: VerifyCounts) -> SoakReport {
        let tally = lock(&self.group.tally);
        let mut failures = Failures::default();
        let mut report = SoakReport {
            schema_version: SCHEMA_VERSION,
            seed: self.config.seed,
            controllers: self.config.controllers,
            nic: self.config.nic,
            faults_requested: self.config.faults,
            faults_injected_total: self.injected.values().sum(),
            faults_injected: FaultClass::ALL
                .iter()
                .map(|c| (c.as_str(), self.injected.get(c).copied().unwrap_or(0)))
                .collect(),
            faults_not_triggered: self
                .not_triggered
                .iter()
                .map(|(c, &n)| (c.as_str(), n))
                .collect(),
            resets: Resets {
                flr: tally.flr,
                bus: tally.bus,
                total: tally.flr + tally.bus,
                refused: tally.refused,
            },
            recoveries: Recoveries {
                recovered: tally.members_recovered,
                failed: tally.members_failed,
                failed_by_reason: tally.failure_reasons.clone(),
                reattached: self.reattached,
            },
            writes_lost: verified.lost + self.after_reset.lost,
            slots_checked_after_resets: self.after_reset.slots_verified
                + self.after_reset.in_doubt_landed
                + self.after_reset.lost,
            writes_failed_but_landed: verified.in_doubt_landed,
            slots_verified: verified.slots_verified,
            blocks_verified: verified.slots_verified * WRITE_BLOCKS,
            stalls: self.stalls,
            nic_port: self.nic.as_ref().map(|n| n.figures(&self.bus)),
            virtual_time_ns: self.clock.now().as_nanos() as u64,
            wall_time_ns: self.wall.elapsed().as_nanos() as u64,
            worst_recovery: tally.worst(),
            worst_full_recovery: tally.worst_all_recovered(),
            ..SoakReport::default()
        };
        for m in &self.members {
            let counts = m.workload.ledger.counts();
            report.writes_submitted += counts.submitted;
            report.writes_acknowledged += counts.acknowledged;
            report.writes_duplicated += counts.duplicated;
            report.submissions_refused += m.workload.refused;
            failures.unanswered += m.workload.ledger.unanswered();
            let f = &m.workload.failures;
            let by = &mut failures.by_kind;
            by.retriable += f.retriable;
            by.device_gone += f.device_gone;
            by.controller_failed += f.controller_failed;
            by.timeout += f.timeout;
            by.command_status += f.command_status;
            by.other += f.other;
            let d = m.workload.driver_counts();
            let r = &mut report.driver;
            r.bogus_cid_reserved += d.bogus_cid_reserved;
            r.bogus_cid_out_of_range += d.bogus_cid_out_of_range;
            r.bogus_cid_not_in_flight += d.bogus_cid_not_in_flight;
            r.bogus_sq_head_invalid += d.bogus_sq_head_invalid;
            r.timeouts += d.timeouts;
            r.aborts += d.aborts;
            r.reissued += d.reissued;
            r.reconnects += d.reconnects;
            // Every failure the workload saw was one of its writes' answers.
            debug_assert_eq!(f.total(), counts.failed);
        }
        failures.total = failures.by_kind.total();
        report.failures_reported = failures;
        report.judge();
        report
    }

    /// Test support: the workload of controller `index`.
    #[cfg(test)]
    pub(super) fn workload_mut(
        &mut self,
        index: usize,
    ) -> (&mut super::workload::Workload, impl FnMut() + '_) {
        let (nic, clock) = (&mut self.nic, &self.clock);
        (&mut self.members[index].workload, move || idle(nic, clock))
    }
}

/// Runs a whole soak.
pub fn run(config: SoakConfig) -> Result<SoakReport> {
    let mut soak = Soak::new(config)?;
    soak.run_faults()?;
    soak.finish()
}
