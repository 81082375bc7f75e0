//! Identify Namespace data structure for the NVM Command Set (CNS 00h; NVM CS 1.0 "Identify
//! Namespace data structure") and its LBA Format entries.

use std::fmt;
use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};

use super::{bitfields, IDENTIFY_DATA_SIZE};

/// Number of LBA Format entries in the data structure (`LBAF0..LBAF63`).
pub const LBA_FORMATS: usize = 64;

/// One LBA Format entry (`LBAFn`, 4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(transparent)]
pub struct LbaFormat(pub u32);

impl LbaFormat {
    /// An entry with all fields zero (`LBADS` 0: format not available).
    pub const fn new() -> Self {
        LbaFormat(0)
    }

    /// Bytes per logical block, `2 ^ LBADS`; `None` when `LBADS` is 64 or more (a value no
    /// device should report; formats below 9 (512 bytes) are unsupported, which is the
    /// driver's to check).
    pub const fn block_size(self) -> Option<u64> {
        1u64.checked_shl(self.lbads() as u32)
    }
}

bitfields!(LbaFormat(u32) {
    /// `MS` (15:0): Metadata Size, bytes per logical block.
    ms / with_ms: u16 @ 15:0;
    /// `LBADS` (23:16): LBA Data Size, `2 ^ LBADS` bytes; 0 when the format is not available.
    lbads / with_lbads: u8 @ 23:16;
    /// `RP` (25:24): Relative Performance, 0 best .. 3 degraded.
    rp / with_rp: u8 @ 25:24;
});

/// Identify Namespace data structure (CNS 00h), 4096 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct IdentifyNamespace {
    /// `NSZE` (7:0): Namespace Size, in logical blocks.
    pub nsze: u64,
    /// `NCAP` (15:8): Namespace Capacity, in logical blocks.
    pub ncap: u64,
    /// `NUSE` (23:16): Namespace Utilization, in logical blocks.
    pub nuse: u64,
    /// `NSFEAT` (24): Namespace Features (bit 0 thin provisioning, bit 2 DAE).
    pub nsfeat: u8,
    /// `NLBAF` (25): Number of LBA Formats, zero-based.
    pub nlbaf: u8,
    /// `FLBAS` (26): Formatted LBA Size: format index bits 3:0 and 6:5
    /// ([`IdentifyNamespace::formatted_lba_format_index`]), bit 4 metadata at the end of each
    /// block (extended LBA).
    pub flbas: u8,
    /// `MC` (27): Metadata Capabilities.
    pub mc: u8,
    /// `DPC` (28): End-to-end Data Protection Capabilities.
    pub dpc: u8,
    /// `DPS` (29): End-to-end Data Protection Type Settings (0: protection disabled).
    pub dps: u8,
    /// `NMIC` (30): Namespace Multi-path I/O and Namespace Sharing Capabilities.
    pub nmic: u8,
    _bytes31: [u8; 2],
    /// `DLFEAT` (33): Deallocate Logical Block Features: bits 2:0 what a deallocated block
    /// reads as (001b zeroes), bit 3 Write Zeroes may deallocate.
    pub dlfeat: u8,
    _bytes34: [u8; 70],
    /// `NGUID` (119:104): Namespace Globally Unique Identifier.
    pub nguid: [u8; 16],
    /// `EUI64` (127:120): IEEE Extended Unique Identifier.
    pub eui64: [u8; 8],
    /// `LBAF0..LBAF63` (383:128): the LBA formats, `NLBAF + 1` of them valid.
    pub lbaf: [LbaFormat; LBA_FORMATS],
    _bytes384: [u8; 3712],
}
const _: () = assert!(size_of::<IdentifyNamespace>() == IDENTIFY_DATA_SIZE);
const _: () = {
    assert!(offset_of!(IdentifyNamespace, ncap) == 8);
    assert!(offset_of!(IdentifyNamespace, nuse) == 16);
    assert!(offset_of!(IdentifyNamespace, nsfeat) == 24);
    assert!(offset_of!(IdentifyNamespace, nlbaf) == 25);
    assert!(offset_of!(IdentifyNamespace, flbas) == 26);
    assert!(offset_of!(IdentifyNamespace, mc) == 27);
    assert!(offset_of!(IdentifyNamespace, dpc) == 28);
    assert!(offset_of!(IdentifyNamespace, dps) == 29);
    assert!(offset_of!(IdentifyNamespace, nmic) == 30);
    assert!(offset_of!(IdentifyNamespace, dlfeat) == 33);
    assert!(offset_of!(IdentifyNamespace, nguid) == 104);
    assert!(offset_of!(IdentifyNamespace, eui64) == 120);
    assert!(offset_of!(IdentifyNamespace, lbaf) == 128);
};

impl IdentifyNamespace {
    /// `FLBAS` bit 4: metadata is transferred at the end of each logical block.
    pub const FLBAS_EXTENDED_METADATA: u8 = 1 << 4;

    /// LBA format entry `index` (0..64), whether or not it is within `NLBAF` (the driver
    /// checks); `None` for an index past the table.
    pub const fn lba_format(&self, index: usize) -> Option<LbaFormat> {
        if index < LBA_FORMATS {
            Some(self.lbaf[index])
        } else {
            None
        }
    }

    /// The index of the format the namespace is formatted with: `FLBAS` bits 3:0, with bits
    /// 6:5 as the upper two bits (NVM CS 1.0, for more than 16 formats; a controller with 16 or
    /// fewer reports them as zero). Always below [`LBA_FORMATS`].
    pub const fn formatted_lba_format_index(&self) -> usize {
        ((self.flbas & 0x0f) | ((self.flbas & 0x60) >> 1)) as usize
    }

    /// The LBA format the namespace is formatted with.
    pub const fn formatted_lba_format(&self) -> LbaFormat {
        self.lbaf[self.formatted_lba_format_index()]
    }

    /// Bytes per logical block of the formatted LBA format ([`LbaFormat::block_size`]).
    pub const fn block_size(&self) -> Option<u64> {
        self.formatted_lba_format().block_size()
    }

    /// Metadata bytes per logical block of the formatted LBA format.
    pub const fn metadata_size(&self) -> u16 {
        self.formatted_lba_format().ms()
    }

    /// Sets LBA format entry `index` (panics past the table: a bug in the model's setup).
    pub fn set_lba_format(&mut self, index: usize, format: LbaFormat) {
        self.lbaf[index] = format;
    }

    /// Sets the formatted LBA format index in `FLBAS` (bits 3:0 and 6:5), keeping bit 4.
    pub fn set_formatted_lba_format(&mut self, index: u8) {
        debug_assert!(
            (index as usize) < LBA_FORMATS,
            "LBA format index past the table"
        );
        self.flbas =
            (self.flbas & Self::FLBAS_EXTENDED_METADATA) | (index & 0x0f) | ((index & 0x30) << 1);
    }
}

impl fmt::Debug for IdentifyNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let formats = &self.lbaf[..(self.nlbaf as usize + 1).min(LBA_FORMATS)];
        f.debug_struct("IdentifyNamespace")
            .field("nsze", &self.nsze)
            .field("ncap", &self.ncap)
            .field("nuse", &self.nuse)
            .field("nsfeat", &format_args!("{:#x}", self.nsfeat))
            .field("nlbaf", &self.nlbaf)
            .field("flbas", &format_args!("{:#x}", self.flbas))
            .field("dps", &self.dps)
            .field("dlfeat", &format_args!("{:#x}", self.dlfeat))
            .field("lbaf", &formats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace() -> IdentifyNamespace {
        let mut ns: IdentifyNamespace = Zeroable::zeroed();
        ns.nsze = 0x20_0000;
        ns.ncap = 0x20_0000;
        ns.nuse = 0x1000;
        ns.nsfeat = 0x04;
        ns.nlbaf = 7;
        ns.dlfeat = 0x09;
        ns.nguid = [0xaa; 16];
        ns.eui64 = [1, 2, 3, 4, 5, 6, 7, 8];
        // QEMU's table: 512 and 4096 byte blocks with 0, 8, 16 and 64 bytes of metadata.
        let sizes = [
            (0, 9),
            (8, 9),
            (16, 9),
            (64, 9),
            (0, 12),
            (8, 12),
            (16, 12),
            (64, 12),
        ];
        for (i, (ms, lbads)) in sizes.into_iter().enumerate() {
            ns.set_lba_format(i, LbaFormat::new().with_ms(ms).with_lbads(lbads));
        }
        ns.set_formatted_lba_format(4);
        ns
    }

    #[test]
    fn namespace_fields_land_at_spec_offsets() {
        let ns = namespace();
        let b = bytemuck::bytes_of(&ns);
        assert_eq!(&b[0..8], &0x20_0000u64.to_le_bytes());
        assert_eq!(&b[8..16], &0x20_0000u64.to_le_bytes());
        assert_eq!(&b[16..24], &0x1000u64.to_le_bytes());
        assert_eq!((b[24], b[25], b[26], b[33]), (0x04, 7, 4, 0x09));
        assert_eq!(&b[104..120], &[0xaa; 16]);
        assert_eq!(&b[120..128], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // LBAF1: MS 8, LBADS 9 -> bytes 08 00 09 00 at 132.
        assert_eq!(&b[132..136], &[0x08, 0x00, 0x09, 0x00]);
        // LBAF7 at 128 + 28.
        assert_eq!(&b[156..160], &[0x40, 0x00, 0x0c, 0x00]);
        assert!(b[160..].iter().all(|&x| x == 0));
    }

    #[test]
    fn formatted_lba_format_and_sizes() {
        let ns = namespace();
        assert_eq!(ns.formatted_lba_format_index(), 4);
        assert_eq!(ns.block_size(), Some(4096));
        assert_eq!(ns.metadata_size(), 0);
        assert_eq!(ns.lba_format(3).unwrap().ms(), 64);
        assert_eq!(ns.lba_format(3).unwrap().block_size(), Some(512));
        assert_eq!(ns.lba_format(64), None);
        assert!(format!("{ns:?}").contains("nlbaf: 7"));
    }

    #[test]
    fn flbas_upper_index_bits() {
        let mut ns: IdentifyNamespace = Zeroable::zeroed();
        ns.flbas = IdentifyNamespace::FLBAS_EXTENDED_METADATA;
        ns.set_formatted_lba_format(0x35); // 53 = 0b11_0101
        assert_eq!(ns.flbas, 0b0111_0101);
        assert_eq!(ns.formatted_lba_format_index(), 53);
        assert_ne!(ns.flbas & IdentifyNamespace::FLBAS_EXTENDED_METADATA, 0);
        ns.lbaf[53] = LbaFormat::new().with_lbads(12).with_ms(8);
        assert_eq!((ns.block_size(), ns.metadata_size()), (Some(4096), 8));
        // Bit 7 is reserved and does not change the index.
        ns.flbas = 0x80 | 0x02;
        assert_eq!(ns.formatted_lba_format_index(), 2);
        ns.flbas = 0xff;
        assert_eq!(ns.formatted_lba_format_index(), 63);
    }

    #[test]
    fn lba_format_bits() {
        let f = LbaFormat(0x0209_0010);
        assert_eq!((f.ms(), f.lbads(), f.rp()), (16, 9, 2));
        assert_eq!(
            LbaFormat::new().with_ms(16).with_lbads(9).with_rp(2),
            LbaFormat(0x0209_0010)
        );
        // Reserved bits 31:26 are not part of RP.
        assert_eq!(LbaFormat(0xfc00_0000).rp(), 0);
        // An untrusted LBADS never makes the size computation panic.
        assert_eq!(LbaFormat::new().with_lbads(63).block_size(), Some(1 << 63));
        assert_eq!(LbaFormat::new().with_lbads(64).block_size(), None);
        assert_eq!(LbaFormat::new().with_lbads(255).block_size(), None);
    }
}
