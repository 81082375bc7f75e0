//! The 82576 driver as a reset-coordinator participant
//! ([`userpci_framework::reset::ResetParticipant`]).
//!
//! # Quiesce
//! The device's reset gate closes: from then on `rx_batch`, `rx_batch_or_arm`, `tx_batch` and
//! `reclaim` return at once without touching the device (`tx_batch` leaves every packet in the
//! caller's vector, to be sent after the recovery). Once no core is inside the data path, the
//! hardware counters are accumulated (if the device still answers), `RXDCTL.ENABLE` is cleared
//! on every RX queue, the TX queues get a short deadline to finish what they hold
//! (`TDH` = `TDT`), then `TXDCTL.ENABLE` is cleared, and every queue must read back disabled
//! before its deadline. A register reading all ones (the device is gone) counts as stopped.
//! Every buffer stays where it is. Nothing touches the device between the end of quiesce and
//! `begin_recover`.
//!
//! # Recover
//! `begin_recover` re-runs the datasheet's initialisation (4.5) on the same memory: global
//! reset, auto-negotiation restarted, then the MAC address (`RAL(0)`/`RAH(0)` written back from
//! the one read at bring-up), the other address filters and the multicast table cleared,
//! unicast / multicast promiscuous mode as last set, RSS (key, redirection table, `MRQC`,
//! `RXCSUM.PCSD`), every queue on the same descriptor ring, MSI-X (enabled again on the
//! function with the same eventfds, `GPIE`, `IVAR`, `EITR`, `EIAC`, `EIAM`). The RX queues
//! still held by the device handle are refilled and handed to the device at once.
//! `poll_recover` then waits for the link, at most [`IgbResetOptions::link_budget`]
//! (auto-negotiation: 0.5 s in QEMU's model): a link that stays down fails the participant.
//! When the link is up the gate opens with a new generation, and each queue handle catches up
//! on its next call:
//! - an RX queue writes every slot back in read format with a buffer and hands the ring to the
//!   device; frames written back but not taken before the reset are dropped with it;
//! - a TX queue empties its ring: packets handed to the device before the reset and not
//!   cleaned are **returned to the pool, not re-sent** (whether they left is unknown; a
//!   duplicate would be worse than a drop), counted in [`crate::TxQueue::reset_dropped`].

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{Progress, ResetParticipant};

use crate::device::IgbDevice;
use crate::spec::queue as qreg;

/// How the participant times its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IgbResetOptions {
    /// From `begin_recover` to `STATUS.LU`: a link not up by then fails the participant. Keep
    /// it below the coordinator's recover budget.
    pub link_budget: Duration,
    /// How long the cores may take to leave the data path, and the queues to read back
    /// disabled, during quiesce.
    pub queue_stop_timeout: Duration,
    /// How long the TX queues may take to finish their descriptors before they are disabled
    /// anyway (what they did not send is returned to the pool at recovery).
    pub tx_drain_timeout: Duration,
}

impl Default for IgbResetOptions {
    fn default() -> Self {
        IgbResetOptions {
            link_budget: Duration::from_millis(1500),
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

/// An [`IgbDevice`] taking part in coordinated resets. The device is shared (`Arc`) with the
/// cores that took its queues.
pub struct IgbParticipant<F: PciFunction> {
    device: Arc<IgbDevice<F>>,
    name: String,
    options: IgbResetOptions,
    phase: Phase,
}

impl<F: PciFunction> std::fmt::Debug for IgbParticipant<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgbParticipant")
            .field("name", &self.name)
            .field("device", &self.device.address())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<F: PciFunction> IgbParticipant<F> {
    /// A participant for `device`, named `name` in reports.
    pub fn new(
        device: Arc<IgbDevice<F>>,
        name: impl Into<String>,
        options: IgbResetOptions,
    ) -> Self {
        IgbParticipant {
            device,
            name: name.into(),
            options,
            phase: Phase::Running,
        }
    }

    /// The device.
    pub fn device(&self) -> &Arc<IgbDevice<F>> {
        &self.device
    }

    fn now(&self) -> Duration {
        self.device.shared().clock().now()
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
        let s = self.device.shared();
        (0..usize::from(queues)).all(|q| {
            let v = s.read(reg(q));
            v == u32::MAX || v & enable == 0
        })
    }

    fn tx_drained(&self) -> bool {
        let s = self.device.shared();
        (0..usize::from(self.device.tx_queue_count())).all(|q| {
            let head = s.read(qreg::TDH(q));
            head == u32::MAX || head == s.read(qreg::TDT(q))
        })
    }

    fn stop_rx(&self) {
        let s = self.device.shared();
        for q in 0..usize::from(self.device.rx_queue_count()) {
            s.modify(qreg::RXDCTL(q), 0, qreg::RXDCTL_ENABLE);
        }
    }

    fn stop_tx(&self) {
        let s = self.device.shared();
        for q in 0..usize::from(self.device.tx_queue_count()) {
            s.modify(qreg::TXDCTL(q), 0, qreg::TXDCTL_ENABLE);
        }
    }
}

impl<F: PciFunction> ResetParticipant for IgbParticipant<F> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn address(&self) -> PciAddress {
        self.device.address()
    }

    fn begin_quiesce(&mut self) -> userpci_framework::Result<()> {
        if self.device.shared().gate.close().is_err() {
            return Err(self.failure("quiesce", "failed in an earlier reset".to_string()));
        }
        self.phase = Phase::WaitCores {
            deadline: self.now() + self.options.queue_stop_timeout,
        };
        Ok(())
    }

    fn poll_quiesce(&mut self) -> userpci_framework::Result<Progress> {
        match self.phase {
            Phase::WaitCores { deadline } => {
                if self.device.shared().gate.active() > 0 {
                    if self.now() >= deadline {
                        return Err(self.failure(
                            "quiesce",
                            "a core did not leave the data path in time".to_string(),
                        ));
                    }
                    return Ok(Progress::Pending);
                }
                // Keep what the device counted so far (its counters reset with it).
                crate::stats::update(self.device.shared());
                self.stop_rx();
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
                    self.stop_tx();
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
        let next = self.device.shared().gate.generation() + 1;
        self.device
            .reinit(next)
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
        if link.up {
            self.device
                .shared()
                .gate
                .open(waited, self.options.link_budget);
            self.phase = Phase::Running;
            tracing::info!(device = %self.device.address(), %link,
                waited_us = waited.as_micros() as u64, "82576 recovered after reset");
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
        self.device.shared().gate.fail(reason);
        self.phase = Phase::Failed;
        tracing::warn!(device = %self.device.address(), reason, "82576 abandoned after reset");
    }
}
