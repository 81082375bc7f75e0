//! The Identify data the model reports (Base 2.0 "Identify Controller Data Structure"; NVM CS
//! 1.0 "Identify Namespace data structure"), modelled on QEMU's controller where the
//! specification leaves a choice.

use bytemuck::Zeroable;

use super::events::{ERROR_LOG_ENTRIES, TEMPERATURE_CRITICAL, TEMPERATURE_WARNING};
use super::shared::AERL;
use super::NvmeModel;
use crate::spec::identify::IdentifyController;
use crate::spec::identify_ns::{IdentifyNamespace, LbaFormat};
use crate::spec::queue::{IOCQES, IOSQES};
use crate::spec::registers::Vs;

/// PCI vendor ID: Red Hat, as QEMU's emulated controller.
pub const VENDOR_ID: u16 = 0x1b36;
/// PCI device ID of QEMU's NVMe controller.
pub const DEVICE_ID: u16 = 0x0010;
/// Subsystem vendor ID QEMU reports (Red Hat virtio range).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
/// Class code: mass storage, non-volatile memory, NVM Express.
pub const CLASS_CODE: u32 = 0x01_08_02;
/// Firmware revision reported.
pub const FIRMWARE_REVISION: &str = "1.0";

/// `VWC`: a volatile write cache is present (Flush is meaningful) and Flush with NSID
/// FFFFFFFFh is supported (bits 2:1 = 11b), as QEMU.
const VWC: u8 = 0x07;
/// `DLFEAT`: deallocated blocks read as zeroes (001b) and Write Zeroes may deallocate.
const DLFEAT: u8 = 0x09;
/// `MC` bit 1: metadata in a separate buffer (`MPTR`).
const MC_SEPARATE_BUFFER: u8 = 1 << 1;
/// Abort Command Limit, zero-based (4 outstanding), as QEMU.
const ACL: u8 = 3;

impl NvmeModel {
    /// Identify Controller (CNS 01h).
    pub(super) fn identify_controller(&self) -> IdentifyController {
        let config = &self.config;
        let mut id = IdentifyController::zeroed();
        id.vid = VENDOR_ID;
        id.ssvid = SUBSYSTEM_VENDOR_ID;
        id.set_serial(&config.serial);
        id.set_model(&config.model_number);
        id.set_firmware(FIRMWARE_REVISION);
        id.rab = 6;
        id.ieee = [0x00, 0x54, 0x52];
        id.mdts = config.mdts;
        id.cntlid = 0;
        id.ver = Vs::new(1, 4, 0).0;
        id.rtd3e = config.rtd3e_us;
        id.oacs = if config.shadow_doorbells {
            IdentifyController::OACS_DOORBELL_BUFFER_CONFIG
        } else {
            0
        };
        id.acl = ACL;
        id.aerl = AERL;
        id.lpa = IdentifyController::LPA_EXTENDED_DATA;
        id.elpe = (ERROR_LOG_ENTRIES - 1) as u8;
        id.wctemp = TEMPERATURE_WARNING;
        id.cctemp = TEMPERATURE_CRITICAL;
        id.sqes = (IOSQES << 4) | IOSQES;
        id.cqes = (IOCQES << 4) | IOCQES;
        id.nn = config.namespaces;
        id.oncs =
            IdentifyController::ONCS_DATASET_MANAGEMENT | IdentifyController::ONCS_WRITE_ZEROES;
        id.vwc = VWC;
        id.sgls = 0;
        id.set_subsystem_nqn(&format!(
            "nqn.2024-01.invalid.userpci:nvme:{}",
            config.serial
        ));
        id
    }

    /// Identify Namespace (CNS 00h) for an active namespace.
    pub(super) fn identify_namespace(&self, nsid: u32) -> IdentifyNamespace {
        let config = &self.config;
        let mut ns = IdentifyNamespace::zeroed();
        ns.nsze = config.blocks;
        ns.ncap = config.blocks;
        ns.nuse = config.blocks;
        ns.nlbaf = 0;
        ns.set_lba_format(
            0,
            LbaFormat::new()
                .with_ms(config.metadata_size)
                .with_lbads(config.lba_shift()),
        );
        ns.set_formatted_lba_format(0);
        ns.mc = if config.metadata_size != 0 {
            MC_SEPARATE_BUFFER
        } else {
            0
        };
        ns.dlfeat = DLFEAT;
        let id = nsid.to_be_bytes();
        let mut serial = [0u8; 8];
        for (slot, byte) in serial.iter_mut().zip(config.serial.bytes()) {
            *slot = byte;
        }
        ns.nguid[..8].copy_from_slice(&serial);
        ns.nguid[12..].copy_from_slice(&id);
        ns.eui64 = [0x52, 0x54, 0x00, serial[0], id[0], id[1], id[2], id[3]];
        ns
    }
}
