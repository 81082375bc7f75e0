//! What the broker's threads share: its configuration, coordinator, lender, functions, leases
//! and connections.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::connection::Connection;
use super::leases::Leases;
use super::lending::{Lend, Lender};
use crate::device::ResetTarget;
use crate::pci::PciAddress;
use crate::reset::{CoordinatorConfig, ResetCoordinator};

/// How a broker serves.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The socket path clients connect to.
    pub socket: PathBuf,
    /// The socket file's permission bits: who may connect (owner and group by default).
    pub mode: u32,
    /// The longest quiesce or recover budget a client may ask for.
    pub max_budget: Duration,
    /// A write to a client that blocks longer than this fails, and the client is treated as
    /// gone: a client that stops reading cannot stall a reset.
    pub write_timeout: Duration,
    /// The coordinator's settings.
    pub coordinator: CoordinatorConfig,
}

impl BrokerConfig {
    /// Serving on `socket`, mode 0660, budgets up to 10 s.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            socket: socket.into(),
            mode: 0o660,
            max_budget: Duration::from_secs(10),
            write_timeout: Duration::from_secs(1),
            coordinator: CoordinatorConfig::default(),
        }
    }
}

/// What the connection threads share with the broker.
pub(super) struct Shared {
    pub config: BrokerConfig,
    pub coordinator: Arc<ResetCoordinator>,
    pub lender: Arc<dyn Lender>,
    pub targets: BTreeMap<PciAddress, Arc<dyn ResetTarget>>,
    pub leases: Arc<Leases>,
    pub connections: Mutex<BTreeMap<u64, Arc<Connection>>>,
    /// Lends waiting to be collected, by their one-time token.
    pub pending: Mutex<BTreeMap<u64, PendingLend>>,
    pub next_client: AtomicU64,
    pub stopping: AtomicBool,
}

/// A lend made to `client` for `device`, not collected yet.
#[derive(Debug)]
pub(super) struct PendingLend {
    pub client: u64,
    pub device: PciAddress,
    pub lend: Lend,
}

impl Shared {
    pub(super) fn pending(&self) -> MutexGuard<'_, BTreeMap<u64, PendingLend>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn connections(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}
