//! Decoding the variable-length answers of the kernel: the hot-reset info and the type1 IOMMU
//! info with its capability chain.
//!
//! The bytes come from the kernel (or the fake playing it), so they are untrusted: counts that
//! run past the buffer, capability chains that loop or point outside it, and ranges whose end
//! lies below their start are errors naming what was wrong, never a panic or an endless walk.

use std::fmt;
use std::mem::offset_of;

use vfio_bindings::bindings::vfio;

use super::sys::{
    read_u16, read_u32, read_u64, DEPENDENT_DEVICE_SIZE, HOT_RESET_INFO_HEADER, TYPE1_INFO_HEADER,
};
use crate::dma::IovaRange;
use crate::pci::PciAddress;

/// What the kernel says about one function a hot reset would hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DependentId {
    /// Group mode: the function's IOMMU group.
    Group(u32),
    /// cdev mode: bound to the caller's iommufd with this device id.
    DevId(u32),
    /// cdev mode, `VFIO_PCI_DEVID_OWNED`: not bound itself, but its IOMMU group is owned
    /// through a device bound to the caller's iommufd.
    OwnedThroughGroup,
    /// cdev mode, `VFIO_PCI_DEVID_NOT_OWNED`: not owned by the caller. The kernel does not say
    /// by whom, or whether anyone holds it.
    NotOwned,
}

/// One entry of `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DependentDevice {
    /// The function's address (segment, bus, devfn).
    pub address: PciAddress,
    /// Its group id or device id.
    pub id: DependentId,
}

/// The decoded `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotResetInfo {
    /// `VFIO_PCI_HOT_RESET_FLAG_*`.
    pub flags: u32,
    /// Every function the reset would hit, the caller included.
    pub devices: Vec<DependentDevice>,
}

impl HotResetInfo {
    /// True when the kernel reported device ids (the caller was opened as a cdev).
    pub fn uses_dev_ids(&self) -> bool {
        self.flags & vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID != 0
    }

    /// cdev mode: the kernel's own verdict that every member is owned.
    pub fn all_owned(&self) -> Option<bool> {
        self.uses_dev_ids()
            .then_some(self.flags & vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED != 0)
    }
}

/// The `count` of a hot-reset info header: after `ENOSPC`, how many devices to make room for.
pub fn hot_reset_info_count(buf: &[u8]) -> Option<u32> {
    read_u32(buf, offset_of!(vfio::vfio_pci_hot_reset_info, count))
}

/// Most functions a bus or slot reset can hit: every devfn of every bus number below the
/// bridge (256 buses of 256). A larger `count` is no real topology.
pub const MAX_HOT_RESET_DEVICES: u32 = 256 * 256;

/// The buffer length to call `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` with again after `ENOSPC`
/// reported room for `count` devices and the buffer was `current` bytes: room for `count`
/// (at least one), and always larger than before. The count comes from the kernel, so one
/// past [`MAX_HOT_RESET_DEVICES`] is an error, never a buffer of up to 32 GiB.
pub fn hot_reset_retry_len(count: u32, current: usize) -> Result<usize, String> {
    if count > MAX_HOT_RESET_DEVICES {
        return Err(format!(
            "ENOSPC asks for room for {count} devices; a hot reset hits at most \
             {MAX_HOT_RESET_DEVICES} functions"
        ));
    }
    let wanted = HOT_RESET_INFO_HEADER + count.max(1) as usize * DEPENDENT_DEVICE_SIZE;
    Ok(wanted.max(current + DEPENDENT_DEVICE_SIZE))
}

/// Decodes a successful `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` reply.
pub fn parse_hot_reset_info(buf: &[u8]) -> Result<HotResetInfo, String> {
    let flags = read_u32(buf, offset_of!(vfio::vfio_pci_hot_reset_info, flags))
        .ok_or("reply shorter than its header")?;
    let count = hot_reset_info_count(buf).ok_or("reply shorter than its header")? as usize;
    let room = buf.len().saturating_sub(HOT_RESET_INFO_HEADER) / DEPENDENT_DEVICE_SIZE;
    if count > room {
        return Err(format!(
            "count {count} but the {}-byte buffer holds {room} devices",
            buf.len()
        ));
    }
    let dev_ids = flags & vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID != 0;
    let mut devices = Vec::with_capacity(count);
    for i in 0..count {
        let at = HOT_RESET_INFO_HEADER + i * DEPENDENT_DEVICE_SIZE;
        let field = |offset| at + offset;
        let id = read_u32(buf, at).ok_or("truncated device entry")?;
        let segment = read_u16(
            buf,
            field(offset_of!(vfio::vfio_pci_dependent_device, segment)),
        )
        .ok_or("truncated device entry")?;
        let bus = buf[field(offset_of!(vfio::vfio_pci_dependent_device, bus))];
        let devfn = buf[field(offset_of!(vfio::vfio_pci_dependent_device, devfn))];
        let address = PciAddress::new(segment, bus, devfn >> 3, devfn & 7)
            .map_err(|e| format!("device {i}: {e}"))?;
        let id = if !dev_ids {
            DependentId::Group(id)
        } else if id == vfio::VFIO_PCI_DEVID_OWNED {
            DependentId::OwnedThroughGroup
        } else if id == vfio::VFIO_PCI_DEVID_NOT_OWNED as u32 {
            DependentId::NotOwned
        } else {
            DependentId::DevId(id)
        };
        devices.push(DependentDevice { address, id });
    }
    Ok(HotResetInfo { flags, devices })
}

/// The decoded `VFIO_IOMMU_GET_INFO` of a type1 container.
#[derive(Clone, PartialEq, Eq)]
pub struct Type1Info {
    /// `VFIO_IOMMU_INFO_*`.
    pub flags: u32,
    /// Supported IOMMU page sizes (bitmap), with `VFIO_IOMMU_INFO_PGSIZES`.
    pub iova_pgsizes: u64,
    /// The size the kernel asked for when the capabilities did not fit (`argsz` written back).
    pub argsz: u32,
    /// The IOVA ranges of `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`, `None` without that
    /// capability (kernels before 5.4) or when the capabilities did not fit.
    pub iova_ranges: Option<Vec<IovaRange>>,
    /// True when the kernel has capabilities that did not fit in the buffer.
    pub truncated: bool,
}

impl fmt::Debug for Type1Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Type1Info")
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("iova_pgsizes", &format_args!("{:#x}", self.iova_pgsizes))
            .field("argsz", &self.argsz)
            .field("iova_ranges", &self.iova_ranges)
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Most capabilities a chain may have before it is taken for a loop.
const MAX_CAPS: usize = 64;

/// Decodes a `VFIO_IOMMU_GET_INFO` reply (header and capability chain) from `buf`, the buffer
/// that was passed to the kernel.
pub fn parse_type1_info(buf: &[u8]) -> Result<Type1Info, String> {
    if buf.len() < TYPE1_INFO_HEADER {
        return Err(format!(
            "reply of {} bytes is shorter than its header",
            buf.len()
        ));
    }
    let argsz = read_u32(buf, offset_of!(vfio::vfio_iommu_type1_info, argsz)).unwrap_or(0);
    let flags = read_u32(buf, offset_of!(vfio::vfio_iommu_type1_info, flags)).unwrap_or(0);
    let iova_pgsizes =
        read_u64(buf, offset_of!(vfio::vfio_iommu_type1_info, iova_pgsizes)).unwrap_or(0);
    let cap_offset =
        read_u32(buf, offset_of!(vfio::vfio_iommu_type1_info, cap_offset)).unwrap_or(0) as usize;
    let mut info = Type1Info {
        flags,
        iova_pgsizes,
        argsz,
        iova_ranges: None,
        truncated: false,
    };
    if flags & vfio::VFIO_IOMMU_INFO_CAPS == 0 {
        return Ok(info);
    }
    if cap_offset == 0 {
        // The kernel had capabilities but no room: it raised argsz instead of copying them.
        info.truncated = argsz as usize > buf.len();
        return Ok(info);
    }
    let mut at = cap_offset;
    for _ in 0..MAX_CAPS {
        if at < TYPE1_INFO_HEADER || !at.is_multiple_of(4) {
            return Err(format!(
                "capability at offset {at} is inside the header or unaligned"
            ));
        }
        let id = read_u16(buf, at + offset_of!(vfio::vfio_info_cap_header, id));
        let next = read_u32(buf, at + offset_of!(vfio::vfio_info_cap_header, next));
        let (Some(id), Some(next)) = (id, next) else {
            return Err(format!(
                "capability header at {at} runs past the {}-byte reply",
                buf.len()
            ));
        };
        if u32::from(id) == vfio::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            info.iova_ranges = Some(parse_iova_range_cap(buf, at)?);
        }
        let next = next as usize;
        if next == 0 {
            return Ok(info);
        }
        if next <= at {
            return Err(format!(
                "capability chain loops back from offset {at} to {next}"
            ));
        }
        at = next;
    }
    Err(format!("capability chain longer than {MAX_CAPS} entries"))
}

/// `struct vfio_iommu_type1_info_cap_iova_range` at `at`: ranges with an inclusive end.
fn parse_iova_range_cap(buf: &[u8], at: usize) -> Result<Vec<IovaRange>, String> {
    let nr_at = at + offset_of!(vfio::vfio_iommu_type1_info_cap_iova_range, nr_iovas);
    let nr = read_u32(buf, nr_at).ok_or("IOVA range capability truncated")? as usize;
    let first = at + offset_of!(vfio::vfio_iommu_type1_info_cap_iova_range, iova_ranges);
    let entry = std::mem::size_of::<vfio::vfio_iova_range>();
    let room = buf.len().saturating_sub(first) / entry;
    if nr > room {
        return Err(format!(
            "IOVA range capability claims {nr} ranges, the reply holds {room}"
        ));
    }
    (0..nr)
        .map(|i| {
            let base = first + i * entry;
            let start = read_u64(buf, base + offset_of!(vfio::vfio_iova_range, start));
            let end = read_u64(buf, base + offset_of!(vfio::vfio_iova_range, end));
            match (start, end) {
                (Some(start), Some(end)) if start <= end => Ok(IovaRange::new(start, end)),
                (Some(start), Some(end)) => Err(format!(
                    "IOVA range {i} ends ({end:#x}) below its start ({start:#x})"
                )),
                _ => Err(format!("IOVA range {i} truncated")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte buffer written field by field, as the kernel's `copy_to_user` leaves it.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Bytes {
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_ne_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_ne_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_ne_bytes());
            self
        }
        fn dependent(self, id: u32, segment: u16, bus: u8, devfn: u8) -> Self {
            self.u32(id).u16(segment).u8(bus).u8(devfn)
        }
    }

    fn a(text: &str) -> PciAddress {
        text.parse().unwrap()
    }

    #[test]
    fn group_ids_of_the_two_function_slot() {
        // argsz, flags, count; then {group_id, segment, bus, devfn} for 01:00.0 and 01:00.1.
        let buf = Bytes::default()
            .u32(28)
            .u32(0)
            .u32(2)
            .dependent(7, 0, 1, 0x00)
            .dependent(7, 0, 1, 0x01)
            .0;
        let info = parse_hot_reset_info(&buf).unwrap();
        assert!(!info.uses_dev_ids());
        assert_eq!(info.all_owned(), None);
        assert_eq!(
            info.devices,
            vec![
                DependentDevice {
                    address: a("0000:01:00.0"),
                    id: DependentId::Group(7)
                },
                DependentDevice {
                    address: a("0000:01:00.1"),
                    id: DependentId::Group(7)
                },
            ]
        );
    }

    #[test]
    fn dev_ids_as_measured_with_only_the_first_function_bound() {
        // vm-notes: flags DEV_ID|DEV_ID_OWNED, 01:00.1 reported as VFIO_PCI_DEVID_OWNED (0).
        let flags =
            vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID | vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
        let buf = Bytes::default()
            .u32(28)
            .u32(flags)
            .u32(2)
            .dependent(1, 0, 1, 0x00)
            .dependent(0, 0, 1, 0x01)
            .0;
        let info = parse_hot_reset_info(&buf).unwrap();
        assert!(info.uses_dev_ids());
        assert_eq!(info.all_owned(), Some(true));
        assert_eq!(info.devices[0].id, DependentId::DevId(1));
        assert_eq!(info.devices[1].id, DependentId::OwnedThroughGroup);
    }

    #[test]
    fn not_owned_dev_id_and_segment_and_slot_decoding() {
        let buf = Bytes::default()
            .u32(20)
            .u32(vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID)
            .u32(1)
            .dependent(u32::MAX, 0x10, 0x3a, (0x1f << 3) | 6)
            .0;
        let info = parse_hot_reset_info(&buf).unwrap();
        assert_eq!(info.all_owned(), Some(false));
        assert_eq!(info.devices[0].id, DependentId::NotOwned);
        assert_eq!(info.devices[0].address, a("0010:3a:1f.6"));
    }

    #[test]
    fn the_retry_buffer_grows_and_is_bounded() {
        assert_eq!(hot_reset_retry_len(2, 12), Ok(12 + 2 * 8));
        assert_eq!(
            hot_reset_retry_len(0, 12),
            Ok(12 + 8),
            "room for one at least"
        );
        assert_eq!(hot_reset_retry_len(1, 20), Ok(28), "larger than before");
        assert_eq!(hot_reset_retry_len(65536, 12), Ok(12 + 65536 * 8));
        let err = hot_reset_retry_len(u32::MAX, 12).unwrap_err();
        assert!(err.contains("4294967295 devices"), "{err}");
    }

    #[test]
    fn a_count_past_the_buffer_is_an_error() {
        let buf = Bytes::default()
            .u32(20)
            .u32(0)
            .u32(3)
            .dependent(1, 0, 1, 0)
            .0;
        let err = parse_hot_reset_info(&buf).unwrap_err();
        assert!(err.contains("count 3"), "{err}");
        assert_eq!(hot_reset_info_count(&buf), Some(3));
        assert!(parse_hot_reset_info(&[0u8; 6]).is_err());
    }

    /// `VFIO_IOMMU_GET_INFO` as type1 answers on x86 with VT-d: migration capability (32
    /// bytes), DMA-available capability (12 bytes, padded to 16), then the IOVA ranges with
    /// the MSI window cut out. `next` offsets count from the start of the info structure.
    fn type1_reply_with_caps() -> Vec<u8> {
        let caps_at = 24u32;
        let dma_avail_at = caps_at + 32;
        let iova_at = dma_avail_at + 16;
        let total = iova_at + 16 + 2 * 16;
        Bytes::default()
            // struct vfio_iommu_type1_info
            .u32(total)
            .u32(vfio::VFIO_IOMMU_INFO_PGSIZES | vfio::VFIO_IOMMU_INFO_CAPS)
            .u64(0x4020_1000) // 4 KiB, 2 MiB, 1 GiB
            .u32(caps_at)
            .u32(0)
            // migration: header {id, version, next}, flags, pgsize_bitmap, max bitmap
            .u16(vfio::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION as u16)
            .u16(1)
            .u32(dma_avail_at)
            .u32(0)
            .u32(0)
            .u64(0x1000)
            .u64(256 << 20)
            // dma avail: header, avail, padding
            .u16(vfio::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL as u16)
            .u16(1)
            .u32(iova_at)
            .u32(65535)
            .u32(0)
            // iova range: header (last: next 0), nr_iovas, reserved, ranges {start, end}
            .u16(vfio::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16)
            .u16(1)
            .u32(0)
            .u32(2)
            .u32(0)
            .u64(0)
            .u64(0xfedf_ffff)
            .u64(0xfef0_0000)
            .u64(0xffff_ffff_ffff)
            .0
    }

    #[test]
    fn iova_ranges_from_the_type1_capability_chain() {
        let buf = type1_reply_with_caps();
        let info = parse_type1_info(&buf).unwrap();
        assert!(!info.truncated);
        assert_eq!(info.iova_pgsizes, 0x4020_1000);
        assert_eq!(
            info.iova_ranges,
            Some(vec![
                IovaRange::new(0, 0xfedf_ffff),
                IovaRange::new(0xfef0_0000, 0xffff_ffff_ffff)
            ])
        );
    }

    #[test]
    fn a_header_only_reply_asks_for_more_room() {
        // The kernel's answer to a 24-byte buffer: CAPS set, cap_offset 0, argsz raised.
        let buf = Bytes::default()
            .u32(104)
            .u32(vfio::VFIO_IOMMU_INFO_PGSIZES | vfio::VFIO_IOMMU_INFO_CAPS)
            .u64(0x1000)
            .u32(0)
            .u32(0)
            .0;
        let info = parse_type1_info(&buf).unwrap();
        assert!(info.truncated);
        assert_eq!(info.argsz, 104);
        assert_eq!(info.iova_ranges, None);
    }

    #[test]
    fn no_capabilities_means_no_ranges() {
        let buf = Bytes::default()
            .u32(24)
            .u32(vfio::VFIO_IOMMU_INFO_PGSIZES)
            .u64(0x1000)
            .u32(0)
            .u32(0)
            .0;
        let info = parse_type1_info(&buf).unwrap();
        assert!(!info.truncated);
        assert_eq!(info.iova_ranges, None);
    }

    #[test]
    fn broken_chains_are_errors_not_loops() {
        let mut looping = type1_reply_with_caps();
        // Point the DMA-available capability's `next` back at the migration capability.
        let next_at = 24 + 32 + 4;
        looping[next_at..next_at + 4].copy_from_slice(&24u32.to_ne_bytes());
        assert!(parse_type1_info(&looping).unwrap_err().contains("loops"));

        let mut past_end = type1_reply_with_caps();
        past_end[16..20].copy_from_slice(&4000u32.to_ne_bytes());
        assert!(parse_type1_info(&past_end)
            .unwrap_err()
            .contains("runs past"));

        let mut too_many = type1_reply_with_caps();
        let nr_at = 24 + 32 + 16 + 8;
        too_many[nr_at..nr_at + 4].copy_from_slice(&9u32.to_ne_bytes());
        assert!(parse_type1_info(&too_many)
            .unwrap_err()
            .contains("claims 9"));

        // The second range's start above its end.
        let mut inverted = type1_reply_with_caps();
        let len = inverted.len();
        inverted[len - 16..len - 8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert!(parse_type1_info(&inverted)
            .unwrap_err()
            .contains("below its start"));
        assert!(parse_type1_info(&[0u8; 8]).is_err());
    }
}
