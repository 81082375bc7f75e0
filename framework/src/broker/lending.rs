//! How a leased function reaches its client: the broker side lends, the client side collects.
//!
//! A lend is what the client needs to open the function itself: file descriptors (over real
//! VFIO: the device fd and the fd it maps DMA through) and a JSON detail (which IOAS, which
//! device id). The broker keeps it under a random one-time token; the client collects it on a
//! connection of its own (`Collect`), where the descriptors travel with `SCM_RIGHTS`
//! ([`super::fdpass`]): never on the session's connection, whose reader would drop them.
//!
//! On the simulated bus broker and clients share one process, so a lend carries no
//! descriptor: [`SimLending`] hands out its `Arc`ed functions. The lender for real VFIO is not
//! written yet (see the README's reset-groups section).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::backend::sim::SimFunction;
use crate::device::{PciFunction, ResetTarget};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// What the client receives to open a lent function.
#[derive(Debug, Default)]
pub struct Lend {
    /// Descriptors to pass (at most [`super::fdpass::MAX_FDS`]).
    pub fds: Vec<OwnedFd>,
    /// Whatever else the collector needs, as JSON.
    pub detail: serde_json::Value,
}

/// The broker's side: the functions it claimed, and handing one to a client.
pub trait Lender: Send + Sync {
    /// Every function the broker holds, as reset targets for its coordinator.
    fn targets(&self) -> Vec<Arc<dyn ResetTarget>>;
    /// What `client` needs to open `device`, which the broker just leased to it.
    fn lend(&self, device: PciAddress, client: u64) -> Result<Lend>;
    /// Takes `device` back from its client (released, disconnected or fenced): over VFIO the
    /// function leaves the client's address space. Best effort: failures are logged.
    fn reclaim(&self, _device: PciAddress) {}
}

/// The client's side: turning a lend into a function its driver runs on.
pub trait Collector: Send + Sync {
    /// The function type drivers get, the same as opening without a broker.
    type Function: PciFunction;
    /// Opens the function `lend` describes.
    fn collect(&self, device: PciAddress, lend: Lend) -> Result<Self::Function>;
}

/// Lending on the simulated bus: the broker's opened functions, shared with clients in the
/// same process.
#[derive(Debug)]
pub struct SimLending {
    functions: BTreeMap<PciAddress, Arc<SimFunction>>,
}

impl SimLending {
    /// Lends `functions` (opened by the broker, typically a whole claimed reset group).
    pub fn new(functions: impl IntoIterator<Item = Arc<SimFunction>>) -> Arc<Self> {
        Arc::new(SimLending {
            functions: functions.into_iter().map(|f| (f.address(), f)).collect(),
        })
    }

    fn function(&self, device: PciAddress) -> Result<&Arc<SimFunction>> {
        self.functions
            .get(&device)
            .ok_or_else(|| Error::NoSuchDevice {
                device,
                place: "the broker's lendable functions".into(),
            })
    }
}

impl Lender for SimLending {
    fn targets(&self) -> Vec<Arc<dyn ResetTarget>> {
        self.functions
            .values()
            .map(|f| Arc::clone(f) as Arc<dyn ResetTarget>)
            .collect()
    }

    fn lend(&self, device: PciAddress, _client: u64) -> Result<Lend> {
        self.function(device)?;
        Ok(Lend {
            fds: Vec::new(),
            detail: serde_json::json!({ "sim": device.to_string() }),
        })
    }
}

impl Collector for SimLending {
    type Function = Arc<SimFunction>;

    fn collect(&self, device: PciAddress, lend: Lend) -> Result<Self::Function> {
        if lend.detail["sim"] != device.to_string() {
            return Err(Error::BrokerRefused {
                message: format!("{device}: the lend is for {}", lend.detail["sim"]),
            });
        }
        self.function(device).cloned()
    }
}
