//! How a leased function reaches its client: the broker side lends, the client side collects.
//!
//! On the simulated bus broker and clients share one process, so a lend is a token for an
//! in-process table ([`SimLending`]). Over real VFIO the lend would pass the device fd (and the
//! iommufd or container fd the client maps DMA through) with SCM_RIGHTS on `socket`; that
//! backend is not written yet (see the README's reset-groups section), which is why both
//! calls take the socket.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::sim::SimFunction;
use crate::device::{PciFunction, ResetTarget};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// The broker's side: the functions it claimed, and handing one to a client.
pub trait Lender: Send + Sync {
    /// Every function the broker holds, as reset targets for its coordinator.
    fn targets(&self) -> Vec<Arc<dyn ResetTarget>>;
    /// Makes `device` collectable by `client`; returns the token the client collects it with.
    fn lend(&self, device: PciAddress, client: u64, socket: &UnixStream) -> Result<u64>;
}

/// The client's side: turning a lend into a function its driver runs on.
pub trait Collector: Send + Sync {
    /// The function type drivers get, the same as opening without a broker.
    type Function: PciFunction;
    /// Collects the function lent under `token`.
    fn collect(
        &self,
        device: PciAddress,
        token: u64,
        socket: &UnixStream,
    ) -> Result<Self::Function>;
}

/// Lending on the simulated bus: the broker's opened functions, handed out by token.
#[derive(Debug)]
pub struct SimLending {
    functions: BTreeMap<PciAddress, Arc<SimFunction>>,
    lent: Mutex<BTreeMap<u64, PciAddress>>,
    next_token: AtomicU64,
}

impl SimLending {
    /// Lends `functions` (opened by the broker, typically a whole claimed reset group).
    pub fn new(functions: impl IntoIterator<Item = Arc<SimFunction>>) -> Arc<Self> {
        Arc::new(SimLending {
            functions: functions.into_iter().map(|f| (f.address(), f)).collect(),
            lent: Mutex::new(BTreeMap::new()),
            next_token: AtomicU64::new(1),
        })
    }

    fn lent(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, PciAddress>> {
        self.lent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lender for SimLending {
    fn targets(&self) -> Vec<Arc<dyn ResetTarget>> {
        self.functions
            .values()
            .map(|f| Arc::clone(f) as Arc<dyn ResetTarget>)
            .collect()
    }

    fn lend(&self, device: PciAddress, client: u64, _socket: &UnixStream) -> Result<u64> {
        if !self.functions.contains_key(&device) {
            return Err(Error::NoSuchDevice {
                device,
                place: "the broker's lendable functions".into(),
            });
        }
        // Unique per lend; the client id in the high bits makes a token read in a log useful.
        let token = (client << 40) | self.next_token.fetch_add(1, Ordering::Relaxed);
        self.lent().insert(token, device);
        Ok(token)
    }
}

impl Collector for SimLending {
    type Function = Arc<SimFunction>;

    fn collect(
        &self,
        device: PciAddress,
        token: u64,
        _socket: &UnixStream,
    ) -> Result<Self::Function> {
        match self.lent().remove(&token) {
            Some(lent) if lent == device => Ok(Arc::clone(&self.functions[&device])),
            _ => Err(Error::BrokerRefused {
                message: format!(
                    "{device}: lend token {token:#x} is unknown or for another function"
                ),
            }),
        }
    }
}
