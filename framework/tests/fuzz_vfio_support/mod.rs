//! A sysfs tree from the guest capture (`fixtures/sysfs-q35-nvme-multifunction.txt`) with
//! 0000:02:00.0 bound to vfio-pci, and the fake kernel playing it: what
//! `fuzz_vfio_replies.rs` and `vfio_hostile.rs` open (`vfio_roots`' tree).

use std::sync::Arc;

use userpci_framework::backend::vfio::fake::{FakeFunction, FakeVfio};
use userpci_framework::pci::PciAddress;

#[path = "../vfio_roots/mod.rs"]
mod vfio_roots;

pub use vfio_roots::Roots;

/// The function the harness opens.
pub const DEVICE: &str = "0000:02:00.0";

impl Roots {
    /// The capture as a tree, 02:00.0 bound to vfio-pci.
    pub fn new() -> Self {
        let roots = Roots::capture();
        roots.bind(DEVICE, None);
        roots
    }
}

/// The fake kernel: QEMU's NVMe controller at [`DEVICE`], group 7, alone in its reset set.
pub fn kernel() -> Arc<FakeVfio> {
    let fake = FakeVfio::new();
    let address: PciAddress = DEVICE.parse().unwrap();
    fake.add_function(FakeFunction::nvme(address, 7));
    fake
}
