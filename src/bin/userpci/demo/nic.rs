//! `--nic`: 01:00.2 is an 82599 port (model "ixgbe") instead of an NVMe controller. The
//! model's generator feeds 64 UDP flows into four RSS queues; the demo echoes every frame
//! back out (counted at the model's TX sink). The driver takes part in the coordinated reset
//! as `ixgbe 01:00.2`, recovering after the NVMe controllers.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use userpci::framework::backend::sim::{SimBus, SimFunction};
use userpci::framework::device::ResetTarget;
use userpci::framework::dma::PoolBuffer;
use userpci::framework::reset::{ParticipantConfig, ResetCoordinator};
use userpci::ixgbe::model::IxgbeModel;
use userpci::ixgbe::{
    IxgbeDevice, IxgbeOptions, IxgbeParticipant, IxgbeResetOptions, ResetState, RxQueue, TxQueue,
};

use crate::error::{CliError, CliResult};

/// The function that becomes a NIC.
pub const NIC: &str = "01:00.2";
/// RX queues (RSS).
const QUEUES: u16 = 4;
/// Recovery order: after every NVMe controller (they have 0..=3).
pub const PRIORITY: u32 = 10;
/// How long the link may take to come back after the reset.
pub const LINK_BUDGET: Duration = Duration::from_millis(500);

/// Model parameters: the port's MAC, link training of 20 ms, a generator of 64 flows.
pub fn params() -> toml::Table {
    "mac = \"02:00:00:00:d3:30\"\nlink_delay_us = 20000\n\
     generator = { rate_pps = 100000, flows = 64, frame_len = 128 }"
        .parse()
        .expect("static parameters parse")
}

fn nic_error(err: userpci::ixgbe::Error) -> CliError {
    CliError::DemoFailed(format!("ixgbe {NIC}: {err}"))
}

/// The NIC, its queues and its counters.
pub struct NicWorkload {
    pub name: String,
    dev: Arc<IxgbeDevice<Arc<SimFunction>>>,
    rxs: Vec<RxQueue<Arc<SimFunction>>>,
    tx: TxQueue<Arc<SimFunction>>,
    bufs: Vec<PoolBuffer>,
    pending: Vec<PoolBuffer>,
    /// Packets received before the NIC's reset / after its recovery.
    received_before: u64,
    received_after: u64,
}

/// What the summary reports about the NIC.
#[derive(Debug, Clone, Serialize)]
pub struct NicSummary {
    pub name: String,
    pub address: String,
    pub received_before_reset: u64,
    pub received_after_reset: u64,
    pub sent_total: u64,
    /// TX packets in the ring at the reset, returned to the pool (not re-sent).
    pub tx_dropped_at_reset: u64,
    pub resets: u64,
    pub link_up_ns: Option<u64>,
    pub link_budget_ns: u64,
    pub link_within_budget: bool,
    pub state: String,
}

impl NicWorkload {
    /// Brings the port up and registers its participant.
    pub fn new(function: Arc<SimFunction>, coordinator: &ResetCoordinator) -> CliResult<Self> {
        let dev = Arc::new(
            IxgbeDevice::new(
                Arc::clone(&function),
                IxgbeOptions {
                    rx_queues: QUEUES,
                    tx_queues: 1,
                    rx_ring_size: 256,
                    tx_ring_size: 256,
                    link_timeout: Duration::from_secs(1),
                    require_link: true,
                    ..IxgbeOptions::default()
                },
            )
            .map_err(nic_error)?,
        );
        let name = format!("ixgbe {NIC}");
        let participant = IxgbeParticipant::new(
            Arc::clone(&dev),
            name.clone(),
            IxgbeResetOptions {
                link_budget: LINK_BUDGET,
                ..IxgbeResetOptions::default()
            },
        )
        .map_err(nic_error)?;
        coordinator.register(
            function as Arc<dyn ResetTarget>,
            Box::new(participant),
            ParticipantConfig {
                priority: PRIORITY,
                quiesce_budget: Duration::from_millis(50),
                recover_budget: Duration::from_secs(2),
            },
        )?;
        let rxs = (0..QUEUES)
            .map(|q| dev.take_rx_queue(q))
            .collect::<Result<Vec<_>, _>>()
            .map_err(nic_error)?;
        let tx = dev.take_tx_queue(0).map_err(nic_error)?;
        Ok(NicWorkload {
            name,
            dev,
            rxs,
            tx,
            bufs: Vec::with_capacity(32),
            pending: Vec::with_capacity(256),
            received_before: 0,
            received_after: 0,
        })
    }

    /// One round: receive on every queue, echo what arrived.
    pub fn pump(&mut self) {
        for rx in &mut self.rxs {
            let n = rx.rx_batch(&mut self.bufs, 32) as u64;
            if rx.resets() > 0 || self.dev.reset_info().recoveries > 0 {
                self.received_after += n;
            } else {
                self.received_before += n;
            }
            for p in self.bufs.drain(..) {
                if self.pending.len() < self.pending.capacity() {
                    self.pending.push(p);
                }
            }
        }
        self.tx.tx_batch(&mut self.pending);
    }

    pub fn summary(&self, bus: &SimBus) -> NicSummary {
        let info = self.dev.reset_info();
        let sent_total = bus
            .with_model(NIC.parse().expect("valid address"), |m: &mut IxgbeModel| {
                m.sink().frames_sent()
            })
            .unwrap_or(0);
        let link_up_ns = info.last_link_up.map(|d| d.as_nanos() as u64);
        NicSummary {
            name: self.name.clone(),
            address: self.dev.address().to_string(),
            received_before_reset: self.received_before,
            received_after_reset: self.received_after,
            sent_total,
            tx_dropped_at_reset: self.tx.reset_dropped(),
            resets: info.recoveries,
            link_up_ns,
            link_budget_ns: LINK_BUDGET.as_nanos() as u64,
            link_within_budget: info.last_link_up.is_some_and(|d| d <= LINK_BUDGET),
            state: match self.dev.reset_state() {
                ResetState::Running => "running".to_string(),
                ResetState::Stopped => "stopped".to_string(),
                ResetState::Failed(why) => format!("failed: {why}"),
            },
        }
    }
}
