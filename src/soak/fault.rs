//! The fault classes and the schedule: which fault, on which controller, after how many
//! writes, all drawn from the seed before the run starts.

use std::time::Duration;

use super::config::{Rng, SoakConfig};

/// A class of fault the soak injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultClass {
    /// The controller stops fetching and completing commands (model hang).
    CommandHang,
    /// `CSTS.CFS`: the controller is fatal.
    ControllerFatal,
    /// The function vanishes: reads return all ones, and no reset brings it back.
    SurpriseRemoval,
    /// The link goes down: reads return all ones until a bus reset retrains it.
    LinkDown,
    /// A completion with CID FFFFh.
    CorruptBadCid,
    /// A completion repeating the previous completion's CID.
    CorruptDuplicateCid,
    /// A completion whose SQ head is past the end of the queue.
    CorruptBadSqHead,
    /// A completion written with the wrong phase tag.
    CorruptWrongPhase,
    /// After the reset the fault causes, the function takes longer to answer.
    SlowReady,
    /// The controller's participant does not finish quiescing within its budget.
    MissedQuiesceDeadline,
    /// The controller's participant does not finish recovering within its budget.
    MissedRecoverDeadline,
    /// The device faults again while its participant recovers it.
    FaultDuringRecovery,
    /// While a reset quiesces, a second fault hits a member (maybe another one).
    SecondFaultDuringReset,
}

impl FaultClass {
    /// Every class, in report order.
    pub const ALL: [FaultClass; 13] = [
        FaultClass::CommandHang,
        FaultClass::ControllerFatal,
        FaultClass::SurpriseRemoval,
        FaultClass::LinkDown,
        FaultClass::CorruptBadCid,
        FaultClass::CorruptDuplicateCid,
        FaultClass::CorruptBadSqHead,
        FaultClass::CorruptWrongPhase,
        FaultClass::SlowReady,
        FaultClass::MissedQuiesceDeadline,
        FaultClass::MissedRecoverDeadline,
        FaultClass::FaultDuringRecovery,
        FaultClass::SecondFaultDuringReset,
    ];

    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::CommandHang => "command_hang",
            FaultClass::ControllerFatal => "csts_cfs",
            FaultClass::SurpriseRemoval => "surprise_removal",
            FaultClass::LinkDown => "link_down",
            FaultClass::CorruptBadCid => "corrupt_completion_bad_cid",
            FaultClass::CorruptDuplicateCid => "corrupt_completion_duplicate_cid",
            FaultClass::CorruptBadSqHead => "corrupt_completion_bad_sq_head",
            FaultClass::CorruptWrongPhase => "corrupt_completion_wrong_phase",
            FaultClass::SlowReady => "slow_ready_after_reset",
            FaultClass::MissedQuiesceDeadline => "missed_quiesce_deadline",
            FaultClass::MissedRecoverDeadline => "missed_recover_deadline",
            FaultClass::FaultDuringRecovery => "fault_during_recovery",
            FaultClass::SecondFaultDuringReset => "second_fault_during_reset",
        }
    }

    /// Classes that act through a participant hook: they fire only if a reset reaches it.
    pub fn needs_reset_hook(self) -> bool {
        matches!(
            self,
            FaultClass::MissedQuiesceDeadline
                | FaultClass::MissedRecoverDeadline
                | FaultClass::FaultDuringRecovery
                | FaultClass::SecondFaultDuringReset
        )
    }
}

/// How a fault is told to end: what the model needs to be cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clearing {
    /// `CC.EN` 1 to 0 (or anything stronger) clears it.
    ControllerReset,
    /// Only an FLR or a bus reset clears it.
    FunctionReset,
}

/// A fault on one device, applied at once (by the runner, or from a participant hook).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceFault {
    /// Model hang.
    Hang(Clearing),
    /// `CSTS.CFS`.
    Fatal(Clearing),
    /// Link down (all ones until a bus reset).
    LinkDown,
}

/// How the fault of a hook class gets a reset started, so that its hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `CSTS.CFS` on the target: an FLR of it.
    Fatal,
    /// Link down on the target: a bus reset of the group.
    LinkDown,
}

/// One scheduled fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    /// Its number in the schedule, from 0.
    pub index: u32,
    pub class: FaultClass,
    /// The controller it is injected into (index into the controllers).
    pub target: usize,
    /// For a second fault: the controller it hits; for a fault during recovery and the
    /// classes above: what is applied.
    pub second_target: usize,
    /// The device fault applied by hang, fatal, fault-during-recovery and second-fault.
    pub device_fault: DeviceFault,
    /// For hook classes and slow ready: how the reset is started.
    pub trigger: Trigger,
    /// For slow ready: how much longer than the mandated wait the function takes.
    pub slow_by: Duration,
    /// Acknowledged writes per controller before the fault.
    pub writes_before: u32,
}

/// The slow-ready delays. The bus waits for a slow function after a reset as the kernel
/// does (up to 60 s), so these lengthen the reset phase of every member of the reset.
const SLOW_READY: [Duration; 5] = [
    Duration::from_millis(20),
    Duration::from_millis(150),
    Duration::from_millis(400),
    Duration::from_millis(850),
    Duration::from_millis(1200),
];

/// Draws `config.faults` faults: the first `FaultClass::ALL.len()` are one of each class
/// (in an order drawn from the seed), so every class is injected even in a short run; the
/// rest are uniform over the classes.
pub fn schedule(config: &SoakConfig) -> Vec<FaultEvent> {
    let mut rng = Rng::new(config.seed ^ 0x5eed_fa17);
    let controllers = u64::from(config.controllers);
    let mut first: Vec<FaultClass> = FaultClass::ALL.to_vec();
    for i in (1..first.len()).rev() {
        first.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (0..config.faults)
        .map(|index| {
            let class = match first.get(index as usize) {
                Some(&class) => class,
                None => FaultClass::ALL[rng.below(FaultClass::ALL.len() as u64) as usize],
            };
            let clearing = if rng.chance(1, 2) {
                Clearing::ControllerReset
            } else {
                Clearing::FunctionReset
            };
            let device_fault = match class {
                FaultClass::CommandHang => DeviceFault::Hang(clearing),
                FaultClass::ControllerFatal => DeviceFault::Fatal(clearing),
                _ => match rng.below(3) {
                    0 => DeviceFault::Hang(clearing),
                    1 => DeviceFault::Fatal(clearing),
                    _ => DeviceFault::LinkDown,
                },
            };
            FaultEvent {
                index,
                class,
                target: rng.below(controllers) as usize,
                second_target: rng.below(controllers) as usize,
                device_fault,
                trigger: if rng.chance(1, 3) {
                    Trigger::LinkDown
                } else {
                    Trigger::Fatal
                },
                slow_by: SLOW_READY[rng.below(SLOW_READY.len() as u64) as usize],
                writes_before: rng.between(config.writes_between.0, config.writes_between.1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_schedule_holds_every_class_and_depends_only_on_the_seed() {
        let config = SoakConfig {
            faults: 13,
            ..SoakConfig::default()
        };
        let events = schedule(&config);
        let mut classes: Vec<FaultClass> = events.iter().map(|e| e.class).collect();
        classes.sort();
        assert_eq!(classes, FaultClass::ALL.to_vec());
        assert_eq!(events, schedule(&config));
        let other = schedule(&SoakConfig {
            seed: 2,
            ..config.clone()
        });
        assert_ne!(events, other);
        assert!(events.iter().all(|e| e.target < 3 && e.second_target < 3));
    }
}
