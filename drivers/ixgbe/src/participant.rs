//! The 82599 driver as a reset-coordinator participant
//! ([`userpci_framework::reset::ResetParticipant`]).
//!
//! # Quiesce
//! The device's reset gate closes: from then on `rx_batch`, `rx_batch_or_arm`, `tx_batch` and
//! `reclaim` return at once without touching the device (`tx_batch` leaves every packet in the
//! caller's vector: the caller keeps them and sends them after the recovery). Once no core is
//! inside the data path any more, the hardware counters are accumulated (if the device still
//! answers), `RXDCTL.ENABLE` is cleared on every RX queue, the TX queues get a short deadline
//! to finish what they hold (`TDH` = `TDT`), then `TXDCTL.ENABLE` is cleared, and every queue
//! must read back disabled before its deadline. A register reading all ones (the device is
//! gone: a link down is why the bus reset happens) counts as stopped. Every buffer stays where
//! it is: the pool keeps its buffers, the RX rings keep theirs, the TX rings keep theirs until
//! the recovery. Nothing touches the device between the end of quiesce and `begin_recover`.
//!
//! # Recover
//! `begin_recover` re-runs the datasheet's initialisation (4.6) on the same memory: global
//! reset, EEPROM auto-read, DMA init, link setup, then the MAC address (`RAL(0)`/`RAH(0)`
//! written back from the one read at bring-up), broadcast / unicast / multicast promiscuous
//! filters as last set, RSS (key, redirection table, `MRQC`), every queue at the same number
//! with the same descriptor ring, the queue-statistics mapping. The RX queues are enabled
//! empty (`RDT` = 0); TX queues empty (`TDH` = `TDT` = 0). `poll_recover` then waits for the
//! link, at most [`IxgbeResetOptions::link_budget`]: a link that stays down fails the
//! participant (the coordinator reports it and goes on with the others). When the link is up
//! the gate opens with a new generation, and each queue handle catches up on its next call:
//! - an RX queue writes every slot back in read format with the buffer it already holds
//!   (refilled from the pool if a slot is empty), starts over at slot 0 and hands the ring to
//!   the device (`RDT` = N - 1). Queues still in the device handle are refilled during
//!   `begin_recover` already. What the device had written back but the core had not taken
//!   before the reset is dropped (the frames were never delivered).
//! - a TX queue empties its ring: packets handed to the device before the reset whose
//!   descriptors were not cleaned are **returned to the pool, not re-sent** (whether the
//!   device sent them is unknown; a network gives at-most-once delivery, a duplicate would be
//!   worse than a drop). They are counted in [`crate::TxQueue::reset_dropped`].
//!
//!
//! # Interrupt mode
//! The reset clears the device's interrupt registers and the coordinator masks MSI-X.
//! `begin_recover` enables MSI-X again with the same vectors (the backend keeps their
//! eventfds, so the handles the queues and the application wait on still fire) and programs
//! `GPIE`, `IVAR`, `EITR`, `EIAC`, `EIAM_EX`, `IVAR_MISC` and the link cause's `EIMS` bits as
//! bring-up did (`irq.rs`, from the same options). When the gate opens, every vector fires
//! once: each RX vector is armed and its cause set, so a core asleep on its vector (armed
//! before the reset, or gone to sleep during it: a queue does not arm while the gate is
//! closed) wakes, restarts its ring, and arms again when it wants to sleep, leaving the RX
//! bits of `EIMS` as the cores want them; the link vector reports the link as it came back
//! ([`IxgbeDevice::poll_link_change`] returns it).

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{Progress, ResetParticipant};

use crate::device::IxgbeDevice;
use crate::error::Result;
use crate::shared::Shared;
use crate::spec::{queue as qreg, regs};

/// How the participant times its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IxgbeResetOptions {
    /// From `begin_recover` to `LINKS.LINK_UP`: a link not up by then fails the participant.
    pub link_budget: Duration,
    /// How long the cores may take to leave the data path, and the queues to read back
    /// disabled, during quiesce.
    pub queue_stop_timeout: Duration,
    /// How long the TX queues may take to finish their descriptors before they are disabled
    /// anyway (what they did not send is returned to the pool at recovery).
    pub tx_drain_timeout: Duration,
}

impl Default for IxgbeResetOptions {
    fn default() -> Self {
        IxgbeResetOptions {
            link_budget: Duration::from_secs(1),
            queue_stop_timeout: Duration::from_millis(10),
            tx_drain_timeout: Duration::from_millis(2),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Running,
    WaitCores {
        deadline: Duration,
    },
    Stopping {
        deadline: Duration,
        drain_deadline: Duration,
        tx_disabled: bool,
    },
    Quiesced,
    Link {
        start: Duration,
    },
    Failed,
}

/// An [`IxgbeDevice`] taking part in coordinated resets. The device is shared (`Arc`) with
/// the cores that took its queues.
pub struct IxgbeParticipant<F: PciFunction> {
    device: Arc<IxgbeDevice<F>>,
    name: String,
    options: IxgbeResetOptions,
    phase: Phase,
}

impl<F: PciFunction> std::fmt::Debug for IxgbeParticipant<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IxgbeParticipant")
            .field("name", &self.name)
            .field("device", &self.device.address())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<F: PciFunction> IxgbeParticipant<F> {
    /// A participant for `device`, named `name` in reports, in polling or interrupt mode
    /// (see the module documentation). Infallible today; the `Result` stays for options a
    /// participant might refuse.
    pub fn new(
        device: Arc<IxgbeDevice<F>>,
        name: impl Into<String>,
        options: IxgbeResetOptions,
    ) -> Result<Self> {
        Ok(IxgbeParticipant {
            device,
            name: name.into(),
            options,
            phase: Phase::Running,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<IxgbeDevice<F>> {
        &self.device
    }

    fn now(&self) -> Duration {
        self.device.parts.shared.clock().now()
    }

    fn failure(&self, phase: &'static str, reason: String) -> userpci_framework::Error {
        userpci_framework::Error::ParticipantFailed {
            participant: self.name.clone(),
            phase,
            reason,
        }
    }

    /// All queues of one direction read back disabled (or the device is gone).
    fn stopped(&self, reg: fn(usize) -> usize, enable: u32, queues: u16) -> bool {
        let s = &self.device.parts.shared;
        (0..usize::from(queues)).all(|q| {
            let v = s.read(reg(q));
            v == u32::MAX || v & enable == 0
        })
    }

    fn tx_drained(&self) -> bool {
        let s = &self.device.parts.shared;
        (0..usize::from(self.device.tx_queue_count())).all(|q| {
            let head = s.read(qreg::TDH(q));
            head == u32::MAX || head == s.read(qreg::TDT(q))
        })
    }
}

impl<F: PciFunction> ResetParticipant for IxgbeParticipant<F> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn address(&self) -> PciAddress {
        self.device.address()
    }

    fn begin_quiesce(&mut self) -> userpci_framework::Result<()> {
        if !self.device.parts.shared.gate.close() {
            return Err(self.failure("quiesce", "failed in an earlier reset".to_string()));
        }
        self.phase = Phase::WaitCores {
            deadline: self.now() + self.options.queue_stop_timeout,
        };
        Ok(())
    }

    fn poll_quiesce(&mut self) -> userpci_framework::Result<Progress> {
        let s: Arc<Shared<F>> = Arc::clone(&self.device.parts.shared);
        match self.phase {
            Phase::WaitCores { deadline } => {
                if s.gate.active() > 0 {
                    if self.now() >= deadline {
                        return Err(self.failure(
                            "quiesce",
                            "a core did not leave the data path in time".to_string(),
                        ));
                    }
                    return Ok(Progress::Pending);
                }
                // Keep what the device counted so far (its counters reset with it).
                if s.read(regs::STATUS) != u32::MAX {
                    s.update_stats();
                }
                for q in 0..usize::from(self.device.rx_queue_count()) {
                    s.modify(qreg::RXDCTL(q), 0, qreg::RXDCTL_ENABLE);
                }
                let now = self.now();
                self.phase = Phase::Stopping {
                    deadline: now + self.options.queue_stop_timeout,
                    drain_deadline: now + self.options.tx_drain_timeout,
                    tx_disabled: false,
                };
                self.poll_quiesce()
            }
            Phase::Stopping {
                deadline,
                drain_deadline,
                tx_disabled,
            } => {
                let now = self.now();
                let mut tx_disabled = tx_disabled;
                if !tx_disabled && (now >= drain_deadline || self.tx_drained()) {
                    for q in 0..usize::from(self.device.tx_queue_count()) {
                        s.modify(qreg::TXDCTL(q), 0, qreg::TXDCTL_ENABLE);
                    }
                    tx_disabled = true;
                }
                let rx_stopped = self.stopped(
                    qreg::RXDCTL,
                    qreg::RXDCTL_ENABLE,
                    self.device.rx_queue_count(),
                );
                let tx_stopped = tx_disabled
                    && self.stopped(
                        qreg::TXDCTL,
                        qreg::TXDCTL_ENABLE,
                        self.device.tx_queue_count(),
                    );
                if rx_stopped && tx_stopped {
                    self.phase = Phase::Quiesced;
                    return Ok(Progress::Done);
                }
                if now >= deadline {
                    return Err(self.failure(
                        "quiesce",
                        format!(
                            "queues still enabled after {} ms (RX stopped: {rx_stopped}, TX \
                             stopped: {tx_stopped})",
                            self.options.queue_stop_timeout.as_millis()
                        ),
                    ));
                }
                self.phase = Phase::Stopping {
                    deadline,
                    drain_deadline,
                    tx_disabled,
                };
                Ok(Progress::Pending)
            }
            Phase::Quiesced => Ok(Progress::Done),
            Phase::Running | Phase::Link { .. } | Phase::Failed => {
                Err(self.failure("quiesce", format!("poll_quiesce in phase {:?}", self.phase)))
            }
        }
    }

    fn begin_recover(&mut self) -> userpci_framework::Result<()> {
        if !matches!(self.phase, Phase::Quiesced) {
            return Err(self.failure(
                "recover",
                format!("begin_recover in phase {:?}", self.phase),
            ));
        }
        let start = self.now();
        let next = self.device.parts.shared.gate.generation() + 1;
        crate::init::reinit(&self.device.parts, next)
            .map_err(|err| self.failure("recover", err.to_string()))?;
        self.phase = Phase::Link { start };
        Ok(())
    }

    fn poll_recover(&mut self) -> userpci_framework::Result<Progress> {
        let Phase::Link { start } = self.phase else {
            return Err(self.failure("recover", format!("poll_recover in phase {:?}", self.phase)));
        };
        let waited = self.now().saturating_sub(start);
        let link = self.device.link();
        let gate = &self.device.parts.shared.gate;
        if link.up {
            let mut info = gate.info();
            info.recoveries += 1;
            info.last_link_up = Some(waited);
            info.link_budget = Some(self.options.link_budget);
            drop(info);
            gate.open_next_generation();
            if let Some(msix) = &self.device.parts.msix {
                crate::irq::wake_all(&self.device.parts.shared, msix);
            }
            self.phase = Phase::Running;
            tracing::info!(device = %self.device.address(), %link,
                waited_us = waited.as_micros() as u64, "82599 recovered after reset");
            return Ok(Progress::Done);
        }
        if waited >= self.options.link_budget {
            return Err(self.failure(
                "recover",
                format!(
                    "link did not come back within its budget of {} ms",
                    self.options.link_budget.as_millis()
                ),
            ));
        }
        Ok(Progress::Pending)
    }

    fn abandon(&mut self, reason: &str) {
        let gate = &self.device.parts.shared.gate;
        gate.fail(reason);
        self.phase = Phase::Failed;
        tracing::warn!(device = %self.device.address(), reason, "82599 abandoned after reset");
    }
}
