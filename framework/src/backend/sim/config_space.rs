//! The emulated configuration space of a simulated function.
//!
//! Built from the model's [`ModelInfo`] with the layout QEMU's NVMe controller shows a real
//! guest (shared/fixtures): MSI-X at 0x40, PCI Express at 0x80, Power Management at 0x60.
//! Only the bits a driver or the reset coordinator use are writable: COMMAND (I/O, memory,
//! bus master, INTx disable), MSI-X Message Control (enable, function mask) and PCIe Device
//! Control. Everything else is read-only, as on hardware.

use super::model::ModelInfo;
use crate::device::config::*;

const MSIX_CAP: u16 = 0x40;
const PM_CAP: u16 = 0x60;
const PCIE_CAP: u16 = 0x80;
const COMMAND_WRITABLE: u16 =
    COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

/// What a config write asked the device to do beyond storing bits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConfigAction {
    None,
    /// DEVCTL.BCR_FLR was written with FLR advertised.
    FunctionLevelReset,
}

/// 4 KiB of config space.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSpace {
    bytes: Vec<u8>,
    initial: Vec<u8>,
    msix_vectors: u16,
}

impl ConfigSpace {
    pub(crate) fn new(info: &ModelInfo, multifunction: bool, flr: bool) -> Self {
        let mut c = vec![0u8; CONFIG_SPACE_SIZE];
        put16(&mut c, VENDOR_ID, info.vendor_id);
        put16(&mut c, DEVICE_ID, info.device_id);
        put32(
            &mut c,
            REVISION_CLASS,
            u32::from(info.revision) | (info.class_code & 0x00ff_ffff) << 8,
        );
        c[usize::from(HEADER_TYPE)] = if multifunction { 0x80 } else { 0 };
        put16(&mut c, STATUS, STATUS_CAPABILITIES);
        // 64-bit memory BARs at made-up but plausible, naturally aligned addresses.
        let mut next_address: u64 = 0xfe00_0000_0000;
        for bar in &info.bars {
            let size = bar.size.max(16).next_power_of_two();
            next_address = next_address.next_multiple_of(size);
            let offset = BAR0 + 4 * u16::from(bar.index);
            put32(&mut c, offset, (next_address as u32) | 0b100);
            put32(&mut c, offset + 4, (next_address >> 32) as u32);
            next_address += size;
        }
        let has_msix = info.msix_vectors > 0;
        c[usize::from(CAPABILITIES_POINTER)] = if has_msix { MSIX_CAP } else { PCIE_CAP } as u8;
        // MSI-X: table in BAR0 at offset 0 (the bus, like VFIO, programs vectors itself).
        c[usize::from(MSIX_CAP)] = CAP_ID_MSIX;
        c[usize::from(MSIX_CAP) + 1] = PCIE_CAP as u8;
        put16(
            &mut c,
            MSIX_CAP + MSIX_MESSAGE_CONTROL,
            info.msix_vectors.saturating_sub(1) & MSIX_TABLE_SIZE_MASK,
        );
        // PCI Express endpoint, capability version 2.
        c[usize::from(PCIE_CAP)] = CAP_ID_PCIE;
        c[usize::from(PCIE_CAP) + 1] = PM_CAP as u8;
        put16(&mut c, PCIE_CAP + 2, 0x0002);
        put32(
            &mut c,
            PCIE_CAP + PCIE_DEVCAP,
            if flr { PCIE_DEVCAP_FLR } else { 0 },
        );
        c[usize::from(PM_CAP)] = CAP_ID_PM;
        c[usize::from(PM_CAP) + 1] = 0;
        put16(&mut c, PM_CAP + 2, 0x0003);
        if !has_msix {
            c[usize::from(MSIX_CAP)..usize::from(MSIX_CAP) + 12].fill(0);
        }
        ConfigSpace {
            initial: c.clone(),
            bytes: c,
            msix_vectors: info.msix_vectors.min(MSIX_TABLE_SIZE_MASK + 1),
        }
    }

    /// MSI-X vectors the capability advertises (0 without the capability).
    pub(crate) fn msix_vectors(&self) -> u16 {
        self.msix_vectors
    }

    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[offset..offset + buf.len()]);
    }

    /// Applies a write byte by byte through the writable masks.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) -> ConfigAction {
        let mut action = ConfigAction::None;
        for (i, &byte) in data.iter().enumerate() {
            let at = offset + i;
            let mask = writable_mask(at);
            self.bytes[at] = (self.bytes[at] & !mask) | (byte & mask);
            let devctl_high = usize::from(PCIE_CAP + PCIE_DEVCTL) + 1;
            if at == devctl_high && byte & 0x80 != 0 {
                // BCR_FLR reads back as zero.
                self.bytes[at] &= 0x7f;
                if self.flr_capable() {
                    action = ConfigAction::FunctionLevelReset;
                }
            }
        }
        action
    }

    pub(crate) fn command(&self) -> u16 {
        get16(&self.bytes, COMMAND)
    }

    pub(crate) fn set_msix_enabled(&mut self, enabled: bool) {
        let at = MSIX_CAP + MSIX_MESSAGE_CONTROL;
        let control = get16(&self.bytes, at);
        let control = if enabled {
            control | MSIX_ENABLE
        } else {
            control & !MSIX_ENABLE
        };
        put16(&mut self.bytes, at, control);
    }

    fn flr_capable(&self) -> bool {
        get32(&self.bytes, PCIE_CAP + PCIE_DEVCAP) & PCIE_DEVCAP_FLR != 0
    }

    /// Back to the power-on image (COMMAND cleared, MSI-X disabled).
    pub(crate) fn reset(&mut self) {
        self.bytes.copy_from_slice(&self.initial);
    }
}

fn writable_mask(at: usize) -> u8 {
    let command = usize::from(COMMAND);
    let msix_control = usize::from(MSIX_CAP + MSIX_MESSAGE_CONTROL);
    let devctl = usize::from(PCIE_CAP + PCIE_DEVCTL);
    match at {
        a if a == command => COMMAND_WRITABLE as u8,
        a if a == command + 1 => (COMMAND_WRITABLE >> 8) as u8,
        a if a == msix_control + 1 => ((MSIX_ENABLE | MSIX_FUNCTION_MASK) >> 8) as u8,
        a if a == devctl => 0xff,
        a if a == devctl + 1 => 0xff,
        _ => 0,
    }
}

fn put16(c: &mut [u8], at: u16, v: u16) {
    let at = usize::from(at);
    c[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(c: &mut [u8], at: u16, v: u32) {
    let at = usize::from(at);
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get16(c: &[u8], at: u16) -> u16 {
    read_u16(c, at).expect("offset inside config space")
}

fn get32(c: &[u8], at: u16) -> u32 {
    read_u32(c, at).expect("offset inside config space")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::model::BarInfo;

    fn info() -> ModelInfo {
        ModelInfo {
            vendor_id: 0x1b36,
            device_id: 0x0010,
            class_code: 0x010802,
            revision: 2,
            bars: vec![BarInfo {
                index: 0,
                size: 0x4000,
            }],
            msix_vectors: 65,
        }
    }

    #[test]
    fn capability_layout_matches_qemus_nvme() {
        let space = ConfigSpace::new(&info(), true, true);
        let mut image = vec![0u8; 256];
        space.read(0, &mut image);
        let caps: Vec<(u8, u16)> = capabilities(&image)
            .iter()
            .map(|c| (c.id, c.offset))
            .collect();
        assert_eq!(
            caps,
            vec![(CAP_ID_MSIX, 0x40), (CAP_ID_PCIE, 0x80), (CAP_ID_PM, 0x60)]
        );
        assert_eq!(space.msix_vectors(), 65);
        assert_eq!(image[usize::from(HEADER_TYPE)], 0x80);
        assert_eq!(read_u32(&image, REVISION_CLASS), Some(0x0108_0202));
    }

    #[test]
    fn only_writable_bits_change_and_flr_is_reported() {
        let mut space = ConfigSpace::new(&info(), false, true);
        space.write(usize::from(COMMAND), &0xffffu16.to_le_bytes());
        assert_eq!(space.command(), COMMAND_WRITABLE);
        space.write(usize::from(VENDOR_ID), &[0, 0]);
        let mut id = [0u8; 2];
        space.read(0, &mut id);
        assert_eq!(u16::from_le_bytes(id), 0x1b36, "vendor ID is read-only");
        let action = space.write(
            usize::from(PCIE_CAP + PCIE_DEVCTL),
            &PCIE_DEVCTL_BCR_FLR.to_le_bytes(),
        );
        assert_eq!(action, ConfigAction::FunctionLevelReset);
        space.reset();
        assert_eq!(space.command(), 0);
    }

    #[test]
    fn flr_write_without_the_capability_does_nothing() {
        let mut space = ConfigSpace::new(&info(), false, false);
        let action = space.write(
            usize::from(PCIE_CAP + PCIE_DEVCTL),
            &PCIE_DEVCTL_BCR_FLR.to_le_bytes(),
        );
        assert_eq!(action, ConfigAction::None);
    }

    #[test]
    fn no_msix_capability_without_vectors() {
        let mut model = info();
        model.msix_vectors = 0;
        let space = ConfigSpace::new(&model, false, true);
        let mut image = vec![0u8; 256];
        space.read(0, &mut image);
        let ids: Vec<u8> = capabilities(&image).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![CAP_ID_PCIE, CAP_ID_PM]);
        assert_eq!(space.msix_vectors(), 0);
    }
}
