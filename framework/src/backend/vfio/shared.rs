//! What a [`VfioContext`](super::VfioContext) shares with the functions it opened: the
//! context's state behind its lock, the IOMMU backend, a freshly opened device fd, and the
//! ioctl error every file here builds. Below the context, the function and the reset code,
//! which all reach it and never each other for it.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::container::Container;
use super::iommufd::IommufdContext;
use super::{ModeChoice, VfioMode, VfioSys};
use crate::dma::{DmaSpace, IommuMapper, IovaRange};
use crate::error::Error;
use crate::pci::{PciAddress, SysfsPci};
use crate::time::Clock;

/// The IOMMU behind a context.
#[derive(Clone, Debug)]
pub(super) enum BackendKind {
    Iommufd(Arc<IommufdContext>),
    Group(Arc<Container>),
}

impl BackendKind {
    pub(super) fn mapper(&self) -> Arc<dyn IommuMapper> {
        match self {
            BackendKind::Iommufd(ctx) => ctx.clone(),
            BackendKind::Group(container) => container.clone(),
        }
    }
}

pub(super) struct Backend {
    pub(super) mode: VfioMode,
    pub(super) reason: String,
    pub(super) kind: BackendKind,
    /// The space and the ranges it was created with, once a device is attached.
    pub(super) space: Option<(Arc<DmaSpace>, Vec<IovaRange>)>,
}

#[derive(Default)]
pub(super) struct ContextState {
    pub(super) backend: Option<Backend>,
    /// Functions open through this context, with their iommufd device id.
    pub(super) open: BTreeMap<PciAddress, Option<u32>>,
}

/// What a context shares with its functions.
pub(super) struct ContextInner {
    pub(super) sys: Arc<dyn VfioSys>,
    pub(super) sysfs: SysfsPci,
    pub(super) dev_root: PathBuf,
    pub(super) choice: ModeChoice,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) state: Mutex<ContextState>,
}

impl ContextInner {
    pub(super) fn lock(&self) -> MutexGuard<'_, ContextState> {
        self.state.lock().expect("VFIO context lock poisoned")
    }

    /// Forgets an open function (its `Drop`).
    pub(super) fn release(&self, address: PciAddress) {
        self.lock().open.remove(&address);
    }

    /// The device ids of the functions open through this context.
    pub(super) fn open_functions(&self) -> BTreeMap<PciAddress, Option<u32>> {
        self.lock().open.clone()
    }
}

/// A device opened into a context, before it becomes a [`VfioFunction`].
pub(super) struct OpenedDevice {
    pub(super) fd: OwnedFd,
    pub(super) devid: Option<u32>,
    pub(super) iommu_group: u32,
}

pub(super) fn ioctl_error(
    device: PciAddress,
    ioctl: &'static str,
    source: std::io::Error,
) -> Error {
    Error::VfioIoctl {
        context: device.to_string(),
        ioctl,
        hint: String::new(),
        source,
    }
}
