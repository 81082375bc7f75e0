//! `--nic`: an 82599 port (model "ixgbe") in the reset group, its generator feeding RSS
//! queues and every frame echoed back out, taking part in each reset after the controllers.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::{SimBus, SimFunction};
use userpci_framework::device::ResetTarget;
use userpci_framework::dma::PoolBuffer;
use userpci_framework::reset::{ParticipantConfig, ResetCoordinator};
use userpci_ixgbe::model::IxgbeModel;
use userpci_ixgbe::{
    IxgbeDevice, IxgbeOptions, IxgbeParticipant, IxgbeResetOptions, ResetState, RxQueue, TxQueue,
};

use super::config::timing;
use super::error::{Result, SoakError};
use super::report::NicFigures;

const QUEUES: u16 = 2;
/// Recovery order: after every controller.
const PRIORITY: u32 = 100;

/// Model parameters: link training of 5 ms, a generator of 16 flows.
pub fn params() -> toml::Table {
    "mac = \"02:00:00:00:50:ac\"\nlink_delay_us = 5000\n\
     generator = { rate_pps = 50000, flows = 16, frame_len = 128 }"
        .parse()
        .expect("static parameters parse")
}

/// The port, its queues and its counters.
pub struct NicTraffic {
    dev: Arc<IxgbeDevice<Arc<SimFunction>>>,
    rxs: Vec<RxQueue<Arc<SimFunction>>>,
    tx: TxQueue<Arc<SimFunction>>,
    bufs: Vec<PoolBuffer>,
    pending: Vec<PoolBuffer>,
    received: u64,
}

impl NicTraffic {
    /// Brings the port up and registers its participant.
    pub fn new(function: Arc<SimFunction>, coordinator: &ResetCoordinator) -> Result<Self> {
        let device = function.target_address();
        let error = |source| SoakError::Ixgbe { device, source };
        let dev = Arc::new(
            IxgbeDevice::new(
                Arc::clone(&function),
                IxgbeOptions {
                    rx_queues: QUEUES,
                    tx_queues: 1,
                    rx_ring_size: 128,
                    tx_ring_size: 128,
                    link_timeout: Duration::from_secs(1),
                    require_link: true,
                    ..IxgbeOptions::default()
                },
            )
            .map_err(error)?,
        );
        let participant = IxgbeParticipant::new(
            Arc::clone(&dev),
            format!("ixgbe {device}"),
            IxgbeResetOptions {
                link_budget: Duration::from_millis(200),
                ..IxgbeResetOptions::default()
            },
        )
        .map_err(error)?;
        coordinator.register(
            function as Arc<dyn ResetTarget>,
            Box::new(participant),
            ParticipantConfig {
                priority: PRIORITY,
                quiesce_budget: timing::QUIESCE_BUDGET,
                recover_budget: timing::RECOVER_BUDGET,
            },
        )?;
        let rxs = (0..QUEUES)
            .map(|q| dev.take_rx_queue(q))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(error)?;
        let tx = dev.take_tx_queue(0).map_err(error)?;
        Ok(NicTraffic {
            dev,
            rxs,
            tx,
            bufs: Vec::with_capacity(32),
            pending: Vec::with_capacity(128),
            received: 0,
        })
    }

    /// One round: receive on every queue, echo what arrived.
    pub fn pump(&mut self) {
        for rx in &mut self.rxs {
            self.received += rx.rx_batch(&mut self.bufs, 32) as u64;
            for p in self.bufs.drain(..) {
                if self.pending.len() < self.pending.capacity() {
                    self.pending.push(p);
                }
            }
        }
        self.tx.tx_batch(&mut self.pending);
    }

    /// The port's figures.
    pub fn figures(&self, bus: &SimBus) -> NicFigures {
        let address = self.dev.address();
        let sent = bus
            .with_model(address, |m: &mut IxgbeModel| m.sink().frames_sent())
            .unwrap_or(0);
        NicFigures {
            address: address.to_string(),
            received: self.received,
            sent,
            recoveries: self.dev.reset_info().recoveries,
            tx_dropped_at_reset: self.tx.reset_dropped(),
            state: match self.dev.reset_state() {
                ResetState::Running => "running".to_string(),
                ResetState::Stopped => "stopped".to_string(),
                ResetState::Failed(why) => format!("failed: {why}"),
            },
        }
    }
}
