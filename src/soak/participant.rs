//! A participant that misbehaves on request: it wraps a driver's participant and, when the
//! runner arms it, misses its quiesce or recover deadline, faults its own device as its
//! recovery begins, or faults a member while the reset quiesces.

use std::sync::{Arc, Mutex};

use userpci_framework::backend::sim::SimBus;
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{Progress, ResetParticipant};
use userpci_framework::Result;

use super::fault::{DeviceFault, FaultClass};
use super::inject;

/// What an armed participant does at the next reset that reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Never reports quiesce done.
    MissQuiesce,
    /// Recovers, then never reports recover done.
    MissRecover,
    /// Applies the fault to its own device as recovery begins.
    FaultDuringRecovery(DeviceFault),
    /// Applies the fault to `at` as quiesce begins.
    SecondFault { at: PciAddress, fault: DeviceFault },
}

impl Misbehaviour {
    /// The fault class it stands for.
    pub fn class(self) -> FaultClass {
        match self {
            Misbehaviour::MissQuiesce => FaultClass::MissedQuiesceDeadline,
            Misbehaviour::MissRecover => FaultClass::MissedRecoverDeadline,
            Misbehaviour::FaultDuringRecovery(_) => FaultClass::FaultDuringRecovery,
            Misbehaviour::SecondFault { .. } => FaultClass::SecondFaultDuringReset,
        }
    }
}

/// The switch the runner and the participant share.
#[derive(Debug, Default)]
pub struct Arming {
    /// Armed and not fired yet.
    pub armed: Option<Misbehaviour>,
    /// Fired since the runner last looked (it takes them).
    pub fired: Vec<FaultClass>,
}

/// Shared handle to an [`Arming`].
pub type ArmingHandle = Arc<Mutex<Arming>>;

/// The wrapper.
pub struct SoakParticipant {
    inner: Box<dyn ResetParticipant>,
    arming: ArmingHandle,
    bus: Arc<SimBus>,
    stalled_quiesce: bool,
    stalled_recover: bool,
}

impl SoakParticipant {
    /// Wraps `inner`; `arming` is how the runner arms it.
    pub fn new(inner: Box<dyn ResetParticipant>, arming: ArmingHandle, bus: Arc<SimBus>) -> Self {
        SoakParticipant {
            inner,
            arming,
            bus,
            stalled_quiesce: false,
            stalled_recover: false,
        }
    }

    /// Takes the armed misbehaviour if `phase` is its phase, recording that it fired.
    fn take(&self, quiesce_phase: bool) -> Option<Misbehaviour> {
        let mut arming = self.arming.lock().unwrap_or_else(|p| p.into_inner());
        let at_quiesce = matches!(
            arming.armed,
            Some(Misbehaviour::MissQuiesce | Misbehaviour::SecondFault { .. })
        );
        if arming.armed.is_none() || at_quiesce != quiesce_phase {
            return None;
        }
        let taken = arming.armed.take()?;
        arming.fired.push(taken.class());
        Some(taken)
    }

    fn apply(&self, at: PciAddress, fault: DeviceFault) {
        if let Err(err) = inject::apply(&self.bus, at, fault) {
            tracing::warn!(%at, %err, "soak: a hook's fault was not applied");
        }
    }
}

impl ResetParticipant for SoakParticipant {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn address(&self) -> PciAddress {
        self.inner.address()
    }

    fn begin_quiesce(&mut self) -> Result<()> {
        self.stalled_quiesce = false;
        self.stalled_recover = false;
        let result = self.inner.begin_quiesce();
        match self.take(true) {
            Some(Misbehaviour::MissQuiesce) => self.stalled_quiesce = true,
            Some(Misbehaviour::SecondFault { at, fault }) => self.apply(at, fault),
            _ => {}
        }
        result
    }

    fn poll_quiesce(&mut self) -> Result<Progress> {
        let progress = self.inner.poll_quiesce()?;
        Ok(if self.stalled_quiesce {
            Progress::Pending
        } else {
            progress
        })
    }

    fn begin_recover(&mut self) -> Result<()> {
        match self.take(false) {
            Some(Misbehaviour::FaultDuringRecovery(fault)) => {
                let at = self.inner.address();
                self.apply(at, fault);
            }
            Some(Misbehaviour::MissRecover) => self.stalled_recover = true,
            _ => {}
        }
        self.inner.begin_recover()
    }

    fn poll_recover(&mut self) -> Result<Progress> {
        let progress = self.inner.poll_recover()?;
        Ok(if self.stalled_recover {
            Progress::Pending
        } else {
            progress
        })
    }

    fn abandon(&mut self, reason: &str) {
        self.stalled_quiesce = false;
        self.stalled_recover = false;
        self.inner.abandon(reason);
    }
}
