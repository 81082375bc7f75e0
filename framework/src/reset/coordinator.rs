//! The reset coordinator: one state machine for the reset groups of every registered function.
//!
//! A request runs: plan (FLR or bus reset, refused up front when a member is not ours) →
//! quiesce every affected participant in parallel, each under its budget → clear Bus Master
//! and Memory Space Enable and mask MSI-X on every affected function → reset → wait until the
//! functions answer config reads → recover participants in priority order, each under its
//! budget. A participant that misses a deadline, fails, or whose device does not come back is
//! marked failed (and `abandon`ed); the others go on. Requests that arrive while a reset runs
//! and concern a function it hits are coalesced into it: they wait and get its report.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::participant::{ParticipantConfig, Progress, ResetParticipant};
use super::plan::{plan, ResetCause, ResetKind, ResetPlan, ResetRequest};
use super::timeline::{nanos, Outcome, Phase, Timeline};
use crate::device::config::{COMMAND, COMMAND_BUS_MASTER, COMMAND_MEMORY, VENDOR_ID};
use crate::device::ResetTarget;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::time::{Backoff, Clock};

/// Coordinator settings.
#[derive(Clone, Copy, Debug)]
pub struct CoordinatorConfig {
    /// How long a function may take to answer config reads after the reset.
    pub ready_timeout: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            ready_timeout: Duration::from_secs(1),
        }
    }
}

/// How one member came out of a reset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberReport {
    /// The function.
    pub address: PciAddress,
    /// Its participant's name, if a driver is registered.
    pub participant: Option<String>,
    /// Ok, or why it failed.
    pub outcome: Outcome,
}

/// Everything about one coordinated reset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResetReport {
    /// What was asked.
    pub request: ResetRequest,
    /// FLR or bus reset.
    pub kind: ResetKind,
    /// Every function hit, with its outcome.
    pub members: Vec<MemberReport>,
    /// Phases on the functions' clock (virtual time on the simulated bus).
    pub timeline: Timeline,
    /// From the request to the last recovery, on the functions' clock.
    pub total_ns: u64,
    /// Of that, the device's mandated waits (the reset with its settle time, waiting for
    /// config reads), on the functions' clock.
    pub device_wait_ns: u64,
    /// Wall-clock time of the whole sequence minus the wall-clock time spent in the device's
    /// waits: what coordination and the drivers cost. On the simulated bus device waits take no
    /// wall time, so this is the whole wall-clock time of the sequence.
    pub framework_overhead_ns: u64,
}

impl ResetReport {
    /// True when every member recovered.
    pub fn all_recovered(&self) -> bool {
        self.members.iter().all(|m| m.outcome.is_ok())
    }
}

/// What `request` returns: the report, and whether this request joined a reset already running.
#[derive(Clone, Debug)]
pub struct ResetOutcome {
    /// The report of the reset that served the request.
    pub report: Arc<ResetReport>,
    /// True if the request was coalesced into a reset started by another request.
    pub coalesced: bool,
}

struct Registered {
    participant: Box<dyn ResetParticipant>,
    config: ParticipantConfig,
    name: String,
    failed: Option<String>,
}

struct Member {
    target: Arc<dyn ResetTarget>,
    participant: Option<Registered>,
}

#[derive(Default)]
struct State {
    members: BTreeMap<PciAddress, Member>,
    running: Option<Vec<PciAddress>>,
    /// The thread running the current reset and the function it was requested for: a call
    /// from that thread (a participant hook) would wait for itself.
    runner: Option<(ThreadId, PciAddress)>,
    waiting: usize,
    generation: u64,
    last: Option<Arc<ResetReport>>,
}

/// Coordinates resets across the functions (and drivers) registered with it.
pub struct ResetCoordinator {
    clock: Arc<dyn Clock>,
    config: CoordinatorConfig,
    state: Mutex<State>,
    finished: Condvar,
}

impl std::fmt::Debug for ResetCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetCoordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ResetCoordinator {
    /// A coordinator timing phases on `clock` (use the functions' clock).
    pub fn new(clock: Arc<dyn Clock>, config: CoordinatorConfig) -> Self {
        ResetCoordinator {
            clock,
            config,
            state: Mutex::new(State::default()),
            finished: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("reset coordinator lock poisoned")
    }

    /// Adds a function this process owns but drives no participant for (a claimed member):
    /// it is disabled and reset with its group.
    pub fn add_function(&self, target: Arc<dyn ResetTarget>) {
        let address = target.target_address();
        let mut state = self.wait_idle(self.lock());
        state.members.entry(address).or_insert(Member {
            target,
            participant: None,
        });
    }

    /// Registers a driver's participant for `target`.
    ///
    /// # Errors
    /// [`Error::AlreadyRegistered`] when the function has a participant already (the first
    /// would silently lose its resets); [`Error::ReentrantReset`] when called from a hook of a
    /// reset that is running.
    pub fn register(
        &self,
        target: Arc<dyn ResetTarget>,
        participant: Box<dyn ResetParticipant>,
        config: ParticipantConfig,
    ) -> Result<()> {
        let address = target.target_address();
        let name = participant.name();
        let state = self.lock();
        self.refuse_reentry(&state, address, "registering a participant")?;
        let mut state = self.wait_idle(state);
        if let Some(existing) = state
            .members
            .get(&address)
            .and_then(|m| m.participant.as_ref())
        {
            return Err(Error::AlreadyRegistered {
                device: address,
                existing: existing.name.clone(),
                new: name,
            });
        }
        state.members.insert(
            address,
            Member {
                target,
                participant: Some(Registered {
                    participant,
                    config,
                    name,
                    failed: None,
                }),
            },
        );
        Ok(())
    }

    /// Refuses a call made by the thread that is running a reset: it would wait for itself.
    fn refuse_reentry(&self, state: &State, device: PciAddress, what: &'static str) -> Result<()> {
        match state.runner {
            Some((thread, running)) if thread == std::thread::current().id() => {
                Err(Error::ReentrantReset {
                    device,
                    what,
                    running,
                })
            }
            _ => Ok(()),
        }
    }

    /// Removes a function and its participant, returning the participant.
    pub fn unregister(&self, address: PciAddress) -> Option<Box<dyn ResetParticipant>> {
        let mut state = self.wait_idle(self.lock());
        state
            .members
            .remove(&address)
            .and_then(|m| m.participant)
            .map(|r| r.participant)
    }

    /// The report of the last reset that ran.
    pub fn last_report(&self) -> Option<Arc<ResetReport>> {
        self.lock().last.clone()
    }

    /// Requests currently waiting to join a running reset.
    pub fn waiting_requests(&self) -> usize {
        self.lock().waiting
    }

    /// Participants marked failed by earlier resets, with the reason.
    pub fn failed_participants(&self) -> Vec<(String, String)> {
        let state = self.wait_idle(self.lock());
        state
            .members
            .values()
            .filter_map(|m| m.participant.as_ref())
            .filter_map(|r| r.failed.clone().map(|why| (r.name.clone(), why)))
            .collect()
    }

    /// The registered functions.
    pub fn functions(&self) -> Vec<Arc<dyn ResetTarget>> {
        let state = self.wait_idle(self.lock());
        state
            .members
            .values()
            .map(|m| Arc::clone(&m.target))
            .collect()
    }

    fn wait_idle<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while state.running.is_some() {
            state = self
                .finished
                .wait(state)
                .expect("reset coordinator lock poisoned");
        }
        state
    }

    /// Runs (or joins) a reset for `request`.
    ///
    /// Errors before anything was touched: an unregistered function, a function reset asked of
    /// a function without FLR, a bus reset refused because a member is not ours (the error
    /// names each blocker). Everything after planning is reported in the [`ResetReport`].
    pub fn request(&self, request: ResetRequest) -> Result<ResetOutcome> {
        let mut state = self.lock();
        self.refuse_reentry(&state, request.device, "a reset request")?;
        loop {
            match &state.running {
                Some(affected) if affected.contains(&request.device) => {
                    let generation = state.generation;
                    state.waiting += 1;
                    while state.generation == generation {
                        state = self
                            .finished
                            .wait(state)
                            .expect("reset coordinator lock poisoned");
                    }
                    state.waiting -= 1;
                    let report = state
                        .last
                        .clone()
                        .expect("a finished reset left its report");
                    return Ok(ResetOutcome {
                        report,
                        coalesced: true,
                    });
                }
                Some(_) => {
                    state = self
                        .finished
                        .wait(state)
                        .expect("reset coordinator lock poisoned");
                }
                None => break,
            }
        }
        let target = state
            .members
            .get(&request.device)
            .map(|m| Arc::clone(&m.target))
            .ok_or(Error::NotRegistered {
                device: request.device,
            })?;
        let plan_start = self.clock.now();
        let plan = plan(&request, target.as_ref())?;
        state.running = Some(plan.members.clone());
        state.runner = Some((std::thread::current().id(), request.device));
        let mut members = std::mem::take(&mut state.members);
        drop(state);

        tracing::info!(device = %request.device, cause = ?request.cause, kind = %plan.kind,
            members = plan.members.len(), "coordinated reset");
        let report = Arc::new(self.run(&request, &plan, &mut members, plan_start));

        let mut state = self.lock();
        state.members = members;
        state.running = None;
        state.runner = None;
        state.generation += 1;
        state.last = Some(Arc::clone(&report));
        drop(state);
        self.finished.notify_all();
        Ok(ResetOutcome {
            report,
            coalesced: false,
        })
    }

    fn run(
        &self,
        request: &ResetRequest,
        plan: &ResetPlan,
        members: &mut BTreeMap<PciAddress, Member>,
        origin: Duration,
    ) -> ResetReport {
        let wall_start = Instant::now();
        let mut wall_device = Duration::ZERO;
        let mut device_wait = Duration::ZERO;
        let mut timeline = Timeline::default();
        let since = |t: Duration| t.saturating_sub(origin);
        let now = || self.clock.now();
        timeline.record(
            "coordinator",
            Phase::Plan,
            Duration::ZERO,
            since(now()),
            None,
            Outcome::Ok,
        );

        let affected: Vec<PciAddress> = plan.members.clone();
        let label = |members: &BTreeMap<PciAddress, Member>, a: &PciAddress| {
            members
                .get(a)
                .and_then(|m| m.participant.as_ref().map(|r| r.name.clone()))
                .unwrap_or_else(|| a.to_string())
        };

        // Quiesce, in parallel: begin everywhere, then poll until each is done or out of time.
        let quiesce_start = now();
        let mut pending: Vec<PciAddress> = Vec::new();
        for address in &affected {
            let name = label(members, address);
            let Some(reg) = members
                .get_mut(address)
                .and_then(|m| m.participant.as_mut())
            else {
                continue;
            };
            if let Some(why) = &reg.failed {
                let end = since(now());
                timeline.record(
                    &name,
                    Phase::Quiesce,
                    end,
                    end,
                    None,
                    Outcome::Skipped(format!("failed earlier: {why}")),
                );
                continue;
            }
            match reg.participant.begin_quiesce() {
                Ok(()) => pending.push(*address),
                Err(err) => {
                    let end = since(now());
                    fail(reg, &format!("quiesce failed: {err}"));
                    timeline.record(
                        &name,
                        Phase::Quiesce,
                        since(quiesce_start),
                        end,
                        Some(since(quiesce_start) + reg.config.quiesce_budget),
                        Outcome::Failed(format!("quiesce failed: {err}")),
                    );
                }
            }
        }
        let mut backoff = Backoff::new(Duration::from_micros(1), Duration::from_millis(1));
        while !pending.is_empty() {
            let mut still = Vec::with_capacity(pending.len());
            for address in pending.drain(..) {
                let name = label(members, &address);
                let reg = members
                    .get_mut(&address)
                    .and_then(|m| m.participant.as_mut())
                    .expect("pending participants are registered");
                let deadline = quiesce_start + reg.config.quiesce_budget;
                let outcome = match reg.participant.poll_quiesce() {
                    Ok(Progress::Done) => Some(Outcome::Ok),
                    Ok(Progress::Pending) if now() >= deadline => Some(Outcome::Failed(format!(
                        "missed its quiesce deadline ({} ms)",
                        reg.config.quiesce_budget.as_millis()
                    ))),
                    Ok(Progress::Pending) => None,
                    Err(err) => Some(Outcome::Failed(format!("quiesce failed: {err}"))),
                };
                match outcome {
                    None => still.push(address),
                    Some(outcome) => {
                        if let Outcome::Failed(why) = &outcome {
                            fail(reg, why);
                        }
                        timeline.record(
                            &name,
                            Phase::Quiesce,
                            since(quiesce_start),
                            since(now()),
                            Some(since(deadline)),
                            outcome,
                        );
                    }
                }
            }
            pending = still;
            if !pending.is_empty() {
                self.clock.sleep(backoff.step());
            }
        }

        // Disable: no DMA through stale mappings, no interrupts from a half-reset device.
        for address in &affected {
            let Some(member) = members.get(address) else {
                continue;
            };
            let start = since(now());
            let outcome = match disable(member.target.as_ref()) {
                Ok(()) => Outcome::Ok,
                Err(err) => Outcome::Failed(format!("disable failed: {err}")),
            };
            timeline.record(
                &label(members, address),
                Phase::Disable,
                start,
                since(now()),
                None,
                outcome,
            );
        }

        // Reset.
        let reset_start = now();
        let wall_reset = Instant::now();
        let anchor = members
            .get(&request.device)
            .map(|m| Arc::clone(&m.target))
            .expect("the requested device is registered");
        let reset_result = match plan.kind {
            ResetKind::Flr => anchor.target_reset_function(),
            ResetKind::Bus => anchor.target_reset_group_hot(),
        };
        wall_device += wall_reset.elapsed();
        device_wait += now().saturating_sub(reset_start);
        for address in &affected {
            // A member that did not come back fails the reset call, naming that member: the
            // reset itself ran, so the others' reset phase is fine (their wait decides).
            let outcome = match &reset_result {
                Ok(()) => Outcome::Ok,
                Err(Error::DeviceGone { device }) if device != address => Outcome::Ok,
                Err(err) => Outcome::Failed(err.to_string()),
            };
            timeline.record(
                &label(members, address),
                Phase::Reset,
                since(reset_start),
                since(now()),
                None,
                outcome,
            );
        }
        let reset_fatal = matches!(&reset_result, Err(e) if !matches!(e, Error::DeviceGone { .. }));

        // Wait until every function answers config reads again.
        let mut gone: Vec<PciAddress> = Vec::new();
        for address in &affected {
            let Some(member) = members.get(address) else {
                continue;
            };
            let start = now();
            let wall_wait = Instant::now();
            let answered = !reset_fatal && self.wait_ready(member.target.as_ref());
            wall_device += wall_wait.elapsed();
            device_wait += now().saturating_sub(start);
            let outcome = if answered {
                Outcome::Ok
            } else {
                gone.push(*address);
                Outcome::Failed(if reset_fatal {
                    format!("reset failed: {reset_result:?}")
                } else {
                    format!(
                        "no answer to config reads within {} ms",
                        self.config.ready_timeout.as_millis()
                    )
                })
            };
            timeline.record(
                &label(members, address),
                Phase::WaitReady,
                since(start),
                since(now()),
                Some(since(start + self.config.ready_timeout)),
                outcome,
            );
        }

        // Recover in priority order, each under its own deadline.
        let mut order: Vec<(u32, PciAddress)> = affected
            .iter()
            .filter_map(|a| {
                members
                    .get(a)?
                    .participant
                    .as_ref()
                    .map(|r| (r.config.priority, *a))
            })
            .collect();
        order.sort();
        for (_, address) in order {
            let name = label(members, &address);
            let reg = members
                .get_mut(&address)
                .and_then(|m| m.participant.as_mut())
                .expect("ordered participants are registered");
            let start = now();
            let deadline = start + reg.config.recover_budget;
            if let Some(why) = reg.failed.clone() {
                timeline.record(
                    &name,
                    Phase::Recover,
                    since(start),
                    since(start),
                    None,
                    Outcome::Skipped(why),
                );
                continue;
            }
            if gone.contains(&address) {
                let why = "device did not come back after the reset".to_string();
                fail(reg, &why);
                timeline.record(
                    &name,
                    Phase::Recover,
                    since(start),
                    since(start),
                    None,
                    Outcome::Skipped(why),
                );
                continue;
            }
            let outcome = self.recover_one(reg, deadline);
            if let Outcome::Failed(why) = &outcome {
                fail(reg, why);
            }
            timeline.record(
                &name,
                Phase::Recover,
                since(start),
                since(now()),
                Some(since(deadline)),
                outcome,
            );
        }

        let members_report = affected
            .iter()
            .map(|address| {
                let participant = members.get(address).and_then(|m| m.participant.as_ref());
                let outcome = match participant {
                    Some(reg) => match &reg.failed {
                        Some(why) => Outcome::Failed(why.clone()),
                        None => Outcome::Ok,
                    },
                    None if gone.contains(address) => {
                        Outcome::Failed("did not come back after the reset".to_string())
                    }
                    None => Outcome::Ok,
                };
                MemberReport {
                    address: *address,
                    participant: participant.map(|r| r.name.clone()),
                    outcome,
                }
            })
            .collect();
        let total = since(now());
        let wall_total = wall_start.elapsed();
        ResetReport {
            request: *request,
            kind: plan.kind,
            members: members_report,
            timeline,
            total_ns: nanos(total),
            device_wait_ns: nanos(device_wait),
            framework_overhead_ns: nanos(wall_total.saturating_sub(wall_device)),
        }
    }

    fn wait_ready(&self, target: &dyn ResetTarget) -> bool {
        let start = self.clock.now();
        let mut backoff = Backoff::default();
        loop {
            let mut id = [0u8; 4];
            if target.target_read_config(VENDOR_ID, &mut id).is_ok() && id != [0xff; 4] {
                return true;
            }
            if self.clock.now().saturating_sub(start) >= self.config.ready_timeout {
                return false;
            }
            self.clock.sleep(backoff.step());
        }
    }

    fn recover_one(&self, reg: &mut Registered, deadline: Duration) -> Outcome {
        if let Err(err) = reg.participant.begin_recover() {
            return Outcome::Failed(format!("recover failed: {err}"));
        }
        let mut backoff = Backoff::new(Duration::from_micros(1), Duration::from_millis(1));
        loop {
            match reg.participant.poll_recover() {
                Ok(Progress::Done) => {
                    return if self.clock.now() > deadline {
                        Outcome::Failed(format!(
                            "recovered after its deadline ({} ms)",
                            reg.config.recover_budget.as_millis()
                        ))
                    } else {
                        Outcome::Ok
                    };
                }
                Ok(Progress::Pending) if self.clock.now() >= deadline => {
                    return Outcome::Failed(format!(
                        "missed its recover deadline ({} ms)",
                        reg.config.recover_budget.as_millis()
                    ));
                }
                Ok(Progress::Pending) => self.clock.sleep(backoff.step()),
                Err(err) => return Outcome::Failed(format!("recover failed: {err}")),
            }
        }
    }
}

fn fail(reg: &mut Registered, why: &str) {
    if reg.failed.is_none() {
        tracing::warn!(participant = %reg.name, reason = why, "reset participant failed");
        reg.participant.abandon(why);
        reg.failed = Some(why.to_string());
    }
}

/// Clears Bus Master and Memory Space Enable and masks MSI-X.
fn disable(target: &dyn ResetTarget) -> Result<()> {
    let mut command = [0u8; 2];
    target.target_read_config(COMMAND, &mut command)?;
    let value = u16::from_le_bytes(command) & !(COMMAND_BUS_MASTER | COMMAND_MEMORY);
    target.target_write_config(COMMAND, &value.to_le_bytes())?;
    target.target_disable_msix()
}

impl ResetCause {
    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetCause::Api => "api",
            ResetCause::Timeout => "timeout",
            ResetCause::FatalStatus => "fatal_status",
            ResetCause::NotResponding => "not_responding",
            ResetCause::ReleaseRequest => "release_request",
        }
    }
}
