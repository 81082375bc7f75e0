//! PCI configuration space: header offsets, command bits and the capability lists.
//!
//! Offsets and bit names follow the PCI Local Bus and PCI Express Base specifications.

/// Vendor ID (16 bits).
pub const VENDOR_ID: u16 = 0x00;
/// Device ID (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// Revision ID (8 bits) followed by the 24-bit class code.
pub const REVISION_CLASS: u16 = 0x08;
/// Header type (8 bits); bit 7 marks a multifunction device.
pub const HEADER_TYPE: u16 = 0x0e;
/// First base address register; BAR n is at `BAR0 + 4 * n`.
pub const BAR0: u16 = 0x10;
/// Pointer to the first capability.
pub const CAPABILITIES_POINTER: u16 = 0x34;
/// Start of PCI Express extended configuration space.
pub const EXTENDED_CONFIG_START: u16 = 0x100;
/// Size of a PCI Express function's configuration space.
pub const CONFIG_SPACE_SIZE: usize = 4096;

/// COMMAND.IO Space Enable.
pub const COMMAND_IO: u16 = 1 << 0;
/// COMMAND.Memory Space Enable.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// COMMAND.Bus Master Enable.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// COMMAND.Interrupt Disable (legacy INTx).
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// STATUS.Capabilities List.
pub const STATUS_CAPABILITIES: u16 = 1 << 4;

/// Capability ID: Power Management.
pub const CAP_ID_PM: u8 = 0x01;
/// Capability ID: MSI.
pub const CAP_ID_MSI: u8 = 0x05;
/// Capability ID: PCI Express.
pub const CAP_ID_PCIE: u8 = 0x10;
/// Capability ID: MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Extended capability ID: Access Control Services.
pub const EXT_CAP_ID_ACS: u16 = 0x000d;

/// PCIe capability: Device Capabilities register (offset from the capability).
pub const PCIE_DEVCAP: u16 = 0x04;
/// DEVCAP.Function Level Reset Capability.
pub const PCIE_DEVCAP_FLR: u32 = 1 << 28;
/// PCIe capability: Device Control register.
pub const PCIE_DEVCTL: u16 = 0x08;
/// DEVCTL.Initiate Function Level Reset.
pub const PCIE_DEVCTL_BCR_FLR: u16 = 1 << 15;

/// MSI-X capability: Message Control (offset from the capability).
pub const MSIX_MESSAGE_CONTROL: u16 = 0x02;
/// Message Control: table size minus one.
pub const MSIX_TABLE_SIZE_MASK: u16 = 0x07ff;
/// Message Control: Function Mask.
pub const MSIX_FUNCTION_MASK: u16 = 1 << 14;
/// Message Control: MSI-X Enable.
pub const MSIX_ENABLE: u16 = 1 << 15;
/// MSI-X capability: Table Offset / Table BIR.
pub const MSIX_TABLE: u16 = 0x04;
/// MSI-X capability: PBA Offset / PBA BIR.
pub const MSIX_PBA: u16 = 0x08;

/// A capability found in the standard capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID (`CAP_ID_*`).
    pub id: u8,
    /// Offset of the capability header in config space.
    pub offset: u16,
}

/// Walks the standard capability list of a config-space image.
///
/// The list comes from the device, so it is untrusted: pointers outside the standard header
/// area and loops end the walk instead of hanging or reading out of bounds.
pub fn capabilities(config: &[u8]) -> Vec<Capability> {
    let mut found = Vec::new();
    let status = read_u16(config, STATUS);
    if status.is_none_or(|s| s & STATUS_CAPABILITIES == 0) {
        return found;
    }
    let mut pointer = config
        .get(usize::from(CAPABILITIES_POINTER))
        .copied()
        .unwrap_or(0)
        & !3;
    // At most 48 capabilities fit in the 192 bytes after the header; more means a loop.
    for _ in 0..48 {
        if pointer < 0x40 {
            break;
        }
        let offset = u16::from(pointer);
        let (Some(&id), Some(&next)) = (
            config.get(usize::from(offset)),
            config.get(usize::from(offset) + 1),
        ) else {
            break;
        };
        found.push(Capability { id, offset });
        pointer = next & !3;
    }
    found
}

/// Reads a little-endian u16 from a config-space image, if in bounds.
pub fn read_u16(config: &[u8], offset: u16) -> Option<u16> {
    let at = usize::from(offset);
    Some(u16::from_le_bytes(config.get(at..at + 2)?.try_into().ok()?))
}

/// Reads a little-endian u32 from a config-space image, if in bounds.
pub fn read_u32(config: &[u8], offset: u16) -> Option<u32> {
    let at = usize::from(offset);
    Some(u32::from_le_bytes(config.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 256 bytes of QEMU's NVMe controller 01:00.0 as a 6.12 guest showed them
    /// (shared/fixtures/sysfs-q35-nvme-multifunction.txt).
    const QEMU_NVME_CONFIG: &str = "361b1000070510000202080100008000040080fe000000000000000000000000000000000000000000000000f41a00110000000040000000000000000b010000118040800020000000300000000000000000000000000000000000000000000001000300080000000000000000000000000000000000000000000000000000001060020000800010000000001104000000001100000000000000000000000000000000000000300000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn walks_a_real_capability_list() {
        let config = hex(QEMU_NVME_CONFIG);
        assert_eq!(read_u16(&config, VENDOR_ID), Some(0x1b36));
        let ids: Vec<(u8, u16)> = capabilities(&config)
            .iter()
            .map(|c| (c.id, c.offset))
            .collect();
        assert_eq!(
            ids,
            vec![(CAP_ID_MSIX, 0x40), (CAP_ID_PCIE, 0x80), (CAP_ID_PM, 0x60)]
        );
        let devcap = read_u32(&config, 0x80 + PCIE_DEVCAP).unwrap();
        assert_ne!(devcap & PCIE_DEVCAP_FLR, 0, "QEMU's NVMe advertises FLR");
    }

    #[test]
    fn a_looping_list_ends() {
        let mut config = vec![0u8; 256];
        config[usize::from(STATUS)] = STATUS_CAPABILITIES as u8;
        config[usize::from(CAPABILITIES_POINTER)] = 0x40;
        config[0x40] = CAP_ID_PM;
        config[0x41] = 0x40; // points at itself
        assert_eq!(capabilities(&config).len(), 48);
    }

    #[test]
    fn a_pointer_past_the_image_ends_the_walk() {
        let mut config = vec![0u8; 0x44];
        config[usize::from(STATUS)] = STATUS_CAPABILITIES as u8;
        config[usize::from(CAPABILITIES_POINTER)] = 0x40;
        config[0x40] = CAP_ID_MSIX;
        config[0x41] = 0xf0;
        assert_eq!(
            capabilities(&config),
            vec![Capability {
                id: CAP_ID_MSIX,
                offset: 0x40
            }]
        );
    }
}
