//! PCI device IDs of the 82599 family: the functions Linux's `ixgbe` claims as `board_82599`
//! (its `ixgbe_pci_tbl`, names as in `ixgbe_type.h`, `IXGBE_DEV_ID_82599*`). The driver accepts
//! exactly these; the model can present any of them.
//!
//! Left out, on purpose: the virtual functions `0x10ED` (`82599_VF`) and `0x152E`
//! (`82599_VF_HV`), which have another register set (Linux's `ixgbevf`), and `0x155D`
//! (`82599_BYPASS`), which only DPDK lists (behind `RTE_LIBRTE_IXGBE_BYPASS`) and whose
//! bypass watchdog this driver does not handle.

/// One 82599 device ID and its name (Linux's `IXGBE_DEV_ID_` suffix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId {
    /// The PCI device ID (vendor 8086h).
    pub id: u16,
    /// Linux's name for it, without `IXGBE_DEV_ID_`.
    pub name: &'static str,
}

const fn id(id: u16, name: &'static str) -> DeviceId {
    DeviceId { id, name }
}

/// The 82599 family, in ID order.
pub const DEVICE_IDS_82599: [DeviceId; 16] = [
    id(0x10F7, "82599_KX4"),
    id(0x10F8, "82599_COMBO_BACKPLANE"),
    id(0x10F9, "82599_CX4"),
    id(0x10FB, "82599_SFP"),
    id(0x10FC, "82599_XAUI_LOM"),
    id(0x1507, "82599_SFP_EM"),
    id(0x1514, "82599_KX4_MEZZ"),
    id(0x1517, "82599_KR"),
    id(0x151C, "82599_T3_LOM"),
    id(0x1529, "82599_SFP_FCOE"),
    id(0x152A, "82599_BACKPLANE_FCOE"),
    id(0x154A, "82599_SFP_SF_QP"),
    id(0x154D, "82599_SFP_SF2"),
    id(0x154F, "82599_LS"),
    id(0x1557, "82599EN_SFP"),
    id(0x1558, "82599_QSFP_SF_QP"),
];

/// The IDs alone, for `contains` checks.
pub const DEVICE_ID_VALUES_82599: [u16; DEVICE_IDS_82599.len()] = {
    let mut ids = [0; DEVICE_IDS_82599.len()];
    let mut i = 0;
    while i < ids.len() {
        ids[i] = DEVICE_IDS_82599[i].id;
        i += 1;
    }
    ids
};

/// Linux's name of an 82599 device ID, if it is one.
pub fn device_name(device_id: u16) -> Option<&'static str> {
    DEVICE_IDS_82599
        .iter()
        .find(|d| d.id == device_id)
        .map(|d| d.name)
}
