//! pktgen and fwd pick a real port's driver by its PCI ids (`src/tools/net/hw.rs`):
//! an 82599 runs on userpci-ixgbe, an 82576 on userpci-igb, anything else is refused.

use userpci::tools::net;

use net::hw::Driver;
use userpci::igb::IGB_82576_DEVICE_IDS;
use userpci::ixgbe::{INTEL_VENDOR_ID, IXGBE_82599_DEVICE_IDS};

#[test]
fn the_driver_is_chosen_by_pci_ids() {
    for &id in IXGBE_82599_DEVICE_IDS {
        assert_eq!(
            Driver::for_ids(INTEL_VENDOR_ID, id),
            Some(Driver::Ixgbe),
            "{id:#06x}"
        );
    }
    for &id in IGB_82576_DEVICE_IDS {
        assert_eq!(
            Driver::for_ids(INTEL_VENDOR_ID, id),
            Some(Driver::Igb),
            "{id:#06x}"
        );
    }
    assert_eq!(
        Driver::for_ids(INTEL_VENDOR_ID, 0x1533),
        None,
        "i210: no driver"
    );
    assert_eq!(Driver::for_ids(0x1af4, 0x10c9), None, "not Intel");
}
