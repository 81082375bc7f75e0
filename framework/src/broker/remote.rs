//! A client's participant as the broker's coordinator sees it: each hook is a message to the
//! client and a wait for its answer under a real-time deadline; a client that misses it, fails
//! or disconnects is fenced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};

use super::connection::{Connection, HookAnswer};
use super::leases::Leases;
use super::lending::Lender;
use super::protocol::{BrokerMessage, HookPhase, RemoteBudget};
use crate::device::config::{COMMAND, COMMAND_BUS_MASTER};
use crate::device::ResetTarget;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::reset::{Progress, ResetParticipant};

/// How long one poll waits for the client's answer before telling the coordinator `Pending`:
/// short, so the coordinator keeps polling the other participants in parallel.
const POLL_WAIT: Duration = Duration::from_millis(1);

/// Cuts a function off from its client: bus mastering off (no more DMA), lease revoked, and
/// the client told (best effort: it may be the one that died).
pub(super) fn fence(
    target: &dyn ResetTarget,
    lender: &dyn Lender,
    leases: &Leases,
    conn: &Connection,
    reason: &str,
) {
    let device = target.target_address();
    let mut command = [0u8; 2];
    let disabled = target
        .target_read_config(COMMAND, &mut command)
        .and_then(|()| {
            let value = u16::from_le_bytes(command) & !COMMAND_BUS_MASTER;
            target.target_write_config(COMMAND, &value.to_le_bytes())
        });
    if let Err(err) = disabled {
        tracing::warn!(%device, %err, "fencing: could not turn bus mastering off");
    }
    // Over VFIO: out of the client's address space too.
    lender.reclaim(device);
    leases.revoke(device, reason);
    let _ = conn.send(&BrokerMessage::Fenced {
        device,
        reason: reason.to_string(),
    });
    tracing::warn!(%device, client = %conn.label(), reason, "fenced");
}

/// The broker-side proxy of one client participant.
pub(super) struct RemoteParticipant {
    pub device: PciAddress,
    pub name: String,
    pub target: Arc<dyn ResetTarget>,
    pub conn: Arc<Connection>,
    pub leases: Arc<Leases>,
    pub lender: Arc<dyn Lender>,
    pub answers: Receiver<HookAnswer>,
    pub budget: RemoteBudget,
    /// The hook in progress: its sequence number, phase and deadline.
    pub current: Option<(u64, HookPhase, Instant)>,
    pub next_seq: u64,
}

impl RemoteParticipant {
    fn begin(&mut self, phase: HookPhase) -> Result<()> {
        self.next_seq += 1;
        let seq = self.next_seq;
        let budget = match phase {
            HookPhase::Quiesce => self.budget.quiesce(),
            HookPhase::Recover => self.budget.recover(),
        };
        // Answers to an earlier, abandoned hook must not satisfy this one.
        while self.answers.try_recv().is_ok() {}
        self.current = Some((seq, phase, Instant::now() + budget));
        self.conn
            .send(&BrokerMessage::Hook {
                device: self.device,
                phase,
                seq,
            })
            .map_err(|err| self.failed(phase, format!("cannot reach the client: {err}")))
    }

    fn poll(&mut self) -> Result<Progress> {
        let Some((seq, phase, deadline)) = self.current else {
            return Ok(Progress::Done);
        };
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(POLL_WAIT);
        match self.answers.recv_timeout(wait) {
            Ok(answer) if answer.seq != seq => Ok(Progress::Pending),
            Ok(HookAnswer { error: None, .. }) => {
                self.current = None;
                Ok(Progress::Done)
            }
            Ok(HookAnswer {
                error: Some(why), ..
            }) => Err(self.failed(phase, why)),
            Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                let ms = match phase {
                    HookPhase::Quiesce => self.budget.quiesce_ms,
                    HookPhase::Recover => self.budget.recover_ms,
                };
                Err(self.failed(
                    phase,
                    format!(
                        "missed its {} deadline ({ms} ms, real time)",
                        phase.as_str()
                    ),
                ))
            }
            Err(RecvTimeoutError::Timeout) => Ok(Progress::Pending),
            Err(RecvTimeoutError::Disconnected) => Err(self.failed(phase, "disconnected".into())),
        }
    }

    fn failed(&self, phase: HookPhase, reason: String) -> Error {
        Error::RemoteHook {
            client: self.conn.label(),
            phase: phase.as_str(),
            reason,
        }
    }
}

impl ResetParticipant for RemoteParticipant {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn address(&self) -> PciAddress {
        self.device
    }
    fn begin_quiesce(&mut self) -> Result<()> {
        self.begin(HookPhase::Quiesce)
    }
    fn poll_quiesce(&mut self) -> Result<Progress> {
        self.poll()
    }
    fn begin_recover(&mut self) -> Result<()> {
        self.begin(HookPhase::Recover)
    }
    fn poll_recover(&mut self) -> Result<Progress> {
        self.poll()
    }
    fn abandon(&mut self, reason: &str) {
        self.current = None;
        fence(
            self.target.as_ref(),
            self.lender.as_ref(),
            &self.leases,
            &self.conn,
            reason,
        );
    }
}
