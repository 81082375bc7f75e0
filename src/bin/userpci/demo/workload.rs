//! The demo's write-verify workload: the soak's ([`userpci::soak::Workload`], one queue pair
//! per controller kept `depth` writes deep, a ledger of what every caller was told) with the
//! driver's default timeouts, and a switch that stops new writes.

use std::sync::Arc;

use userpci::framework::backend::sim::SimFunction;
use userpci::framework::device::PciFunction;
use userpci::nvme::{Controller, QpairOptions};
use userpci::soak::{SoakError, WRITE_BLOCKS};

use crate::error::{CliError, CliResult};

fn soak_error(err: SoakError) -> CliError {
    match err {
        SoakError::Nvme(err) => CliError::Nvme(err),
        SoakError::Framework(err) => CliError::Framework(err),
        other => CliError::DemoFailed(other.to_string()),
    }
}

/// A controller's workload.
pub struct Workload {
    pub name: String,
    inner: userpci::soak::Workload,
    device: userpci::framework::pci::PciAddress,
    /// No new writes once set; answers are still collected.
    pub stopped: bool,
}

impl Workload {
    pub fn new(
        name: String,
        ctrl: &Controller<Arc<SimFunction>>,
        depth: usize,
        seed: u64,
    ) -> CliResult<Self> {
        let mut inner = userpci::soak::Workload::new(name.clone(), depth, seed);
        inner
            .attach_with(ctrl, QpairOptions::default())
            .map_err(soak_error)?;
        Ok(Workload {
            name,
            inner,
            device: ctrl.function().address(),
            stopped: false,
        })
    }

    /// Tops the queue up to its depth with new writes (none once stopped).
    pub fn top_up(&mut self) {
        if !self.stopped {
            self.inner.top_up();
        }
    }

    /// Collects completions into the ledger; returns how many arrived.
    pub fn poll(&mut self) -> usize {
        self.inner.poll()
    }

    /// Writes the caller was told succeeded.
    pub fn acknowledged(&self) -> u64 {
        self.inner.acknowledged()
    }

    /// Writes answered more than once (or answers for writes never submitted).
    pub fn duplicated(&self) -> u64 {
        self.inner.ledger.counts().duplicated
    }

    /// Writes the caller was told failed.
    pub fn failed(&self) -> u64 {
        self.inner.ledger.counts().failed
    }

    /// True when every write has had its answer.
    pub fn settled(&self) -> bool {
        self.inner.settled()
    }

    /// Reads back every slot written and checks it against the ledger. Returns (blocks
    /// verified, acknowledged writes lost).
    pub fn verify(&mut self, idle: impl FnMut()) -> CliResult<(u64, u64)> {
        let counts = self.inner.verify(self.device, idle).map_err(soak_error)?;
        Ok((
            (counts.slots_verified + counts.in_doubt_landed) * WRITE_BLOCKS,
            counts.lost,
        ))
    }
}
