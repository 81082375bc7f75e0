//! Namespaces as the driver uses them: size, block size, identifiers and per-command limits,
//! decoded and validated from Identify Namespace (NVM CS 1.0 "Identify Namespace data
//! structure").
//!
//! The driver supports namespaces formatted without metadata, with blocks of 512 bytes to
//! 64 KiB (in practice 512 and 4096). A namespace formatted with metadata (`MS` ≠ 0) is listed
//! as unusable with [`Error::NamespaceMetadata`]; the controller stays usable as long as one
//! namespace is.

use userpci_framework::pci::PciAddress;

use crate::error::{Error, Result};
use crate::spec::identify_ns::{IdentifyNamespace, LBA_FORMATS};

/// Most blocks one Read or Write may move: `NLB` is a 16-bit zero-based count.
pub const MAX_BLOCKS_PER_COMMAND: u64 = 1 << 16;

/// Smallest supported block size.
pub const MIN_BLOCK_SIZE: u64 = 512;
/// Largest supported block size.
pub const MAX_BLOCK_SIZE: u64 = 64 * 1024;

/// One LBA format a namespace offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbaFormatInfo {
    /// Index in the Identify Namespace table.
    pub index: usize,
    /// Bytes per block (`2 ^ LBADS`), `None` if the device reports an impossible value.
    pub block_size: Option<u64>,
    /// Metadata bytes per block (`MS`).
    pub metadata_size: u16,
    /// Relative performance, 0 best.
    pub relative_performance: u8,
}

/// A namespace the driver can do I/O to. Cheap to clone; `Send` and `Sync`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub(crate) device: PciAddress,
    pub(crate) nsid: u32,
    pub(crate) blocks: u64,
    pub(crate) block_size: u32,
    pub(crate) block_shift: u32,
    pub(crate) max_blocks_per_command: u64,
    pub(crate) nguid: [u8; 16],
    pub(crate) eui64: [u8; 8],
    pub(crate) formats: Vec<LbaFormatInfo>,
    pub(crate) format: LbaFormatInfo,
    pub(crate) write_zeroes: bool,
    pub(crate) deallocate: bool,
}

impl Namespace {
    /// Decodes and validates an Identify Namespace structure. `max_transfer` is the
    /// controller's largest data transfer in bytes (MDTS, capped by the driver).
    pub(crate) fn from_identify(
        device: PciAddress,
        nsid: u32,
        id: &IdentifyNamespace,
        max_transfer: u64,
        oncs_write_zeroes: bool,
        oncs_deallocate: bool,
    ) -> Result<Namespace> {
        let unusable = |reason: String| Error::NamespaceUnusable {
            device,
            nsid,
            reason,
        };
        let count = usize::from(id.nlbaf) + 1;
        let formats: Vec<LbaFormatInfo> = (0..count.min(LBA_FORMATS))
            .filter_map(|index| {
                let f = id.lba_format(index)?;
                Some(LbaFormatInfo {
                    index,
                    block_size: f.block_size(),
                    metadata_size: f.ms(),
                    relative_performance: f.rp(),
                })
            })
            .collect();
        let index = id.formatted_lba_format_index();
        if index >= count {
            return Err(unusable(format!(
                "formatted LBA format {index} is beyond the {count} formats it lists (NLBAF)"
            )));
        }
        // In range of the table (FLBAS holds at most 6 index bits) and, checked above, of NLBAF.
        let Some(in_use) = formats.iter().find(|f| f.index == index).copied() else {
            return Err(unusable(format!(
                "formatted LBA format {index} is not in the format table"
            )));
        };
        let format = id.formatted_lba_format();
        if format.ms() != 0 {
            return Err(Error::NamespaceMetadata {
                device,
                nsid,
                ms: format.ms(),
                format: index,
            });
        }
        let block_size = format.block_size().unwrap_or(0);
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(unusable(format!(
                "block size 2^{} (LBADS of format {index}) is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}",
                format.lbads()
            )));
        }
        if block_size > max_transfer {
            return Err(unusable(format!(
                "block size {block_size} is larger than the controller's largest transfer \
                 ({max_transfer} bytes, MDTS)"
            )));
        }
        if id.nsze == 0 {
            return Err(unusable("its size (NSZE) is 0 blocks".into()));
        }
        if id.nsze.checked_mul(block_size).is_none() {
            return Err(unusable(format!(
                "{} blocks of {block_size} bytes overflow 64 bits",
                id.nsze
            )));
        }
        let max_blocks_per_command = (max_transfer / block_size).min(MAX_BLOCKS_PER_COMMAND);
        Ok(Namespace {
            device,
            nsid,
            blocks: id.nsze,
            block_size: block_size as u32,
            block_shift: block_size.trailing_zeros(),
            max_blocks_per_command,
            nguid: id.nguid,
            eui64: id.eui64,
            formats,
            format: in_use,
            write_zeroes: oncs_write_zeroes,
            deallocate: oncs_deallocate,
        })
    }

    /// The controller the namespace belongs to.
    pub fn device(&self) -> PciAddress {
        self.device
    }

    /// The namespace identifier.
    pub fn nsid(&self) -> u32 {
        self.nsid
    }

    /// Size in logical blocks (`NSZE`).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Bytes per logical block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.blocks << self.block_shift
    }

    /// Most blocks the driver puts in one command (MDTS and the 16-bit `NLB`); larger
    /// requests are split.
    pub fn max_blocks_per_command(&self) -> u64 {
        self.max_blocks_per_command
    }

    /// `NGUID` (all zero when the controller does not report one).
    pub fn nguid(&self) -> [u8; 16] {
        self.nguid
    }

    /// `EUI64` (all zero when the controller does not report one).
    pub fn eui64(&self) -> [u8; 8] {
        self.eui64
    }

    /// The LBA formats the namespace lists (`NLBAF + 1`, at most 64).
    pub fn lba_formats(&self) -> &[LbaFormatInfo] {
        &self.formats
    }

    /// The LBA format in use: the one `FLBAS` selects (bits 3:0, and 6:5 above 16 formats),
    /// checked at bring-up to be within `NLBAF`. Its data size is [`Namespace::block_size`].
    pub fn lba_format(&self) -> LbaFormatInfo {
        self.format
    }

    /// Whether Write Zeroes is supported (`ONCS` bit 3).
    pub fn supports_write_zeroes(&self) -> bool {
        self.write_zeroes
    }

    /// Whether Dataset Management deallocate ("trim") is supported (`ONCS` bit 2).
    pub fn supports_trim(&self) -> bool {
        self.deallocate
    }

    /// Checks that `blocks` blocks from `lba` lie inside the namespace (and are at least one).
    pub(crate) fn check_range(&self, lba: u64, blocks: u64) -> Result<()> {
        let end = lba.checked_add(blocks);
        if blocks == 0 || end.is_none_or(|end| end > self.blocks) {
            return Err(Error::LbaOutOfRange {
                device: self.device,
                nsid: self.nsid,
                lba,
                blocks,
                size: self.blocks,
            });
        }
        Ok(())
    }

    /// Blocks a buffer of `len` bytes holds, or an error when it is not a whole number.
    pub(crate) fn blocks_in(&self, iova: u64, len: usize) -> Result<u64> {
        let len64 = len as u64;
        if len == 0 || len64 & (u64::from(self.block_size) - 1) != 0 {
            return Err(Error::InvalidBuffer {
                device: self.device,
                iova,
                len,
                reason: "length is not a non-zero multiple of the namespace's block size",
            });
        }
        Ok(len64 >> self.block_shift)
    }

    /// What must not change across a controller reset for in-flight I/O to be re-issued.
    pub(crate) fn same_identity(&self, other: &Namespace) -> Option<String> {
        if self.blocks != other.blocks {
            return Some(format!("size {} -> {} blocks", self.blocks, other.blocks));
        }
        if self.block_size != other.block_size {
            return Some(format!(
                "block size {} -> {}",
                self.block_size, other.block_size
            ));
        }
        if self.nguid != other.nguid {
            return Some("NGUID differs".into());
        }
        if self.eui64 != other.eui64 {
            return Some("EUI64 differs".into());
        }
        None
    }
}

/// A namespace the controller lists but the driver cannot use, and why.
#[derive(Debug)]
pub struct UnusableNamespace {
    /// The namespace identifier.
    pub nsid: u32,
    /// Why it is refused ([`Error::NamespaceMetadata`], [`Error::NamespaceUnusable`]).
    pub reason: Error,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::identify_ns::LbaFormat;
    use bytemuck::Zeroable;

    fn device() -> PciAddress {
        "01:00.0".parse().unwrap()
    }

    fn identify(lbads: u8, ms: u16) -> IdentifyNamespace {
        let mut id = IdentifyNamespace::zeroed();
        id.nsze = 1000;
        id.ncap = 1000;
        id.nlbaf = 1;
        id.set_lba_format(0, LbaFormat::new().with_lbads(9));
        id.set_lba_format(1, LbaFormat::new().with_lbads(lbads).with_ms(ms));
        id.set_formatted_lba_format(1);
        id
    }

    #[test]
    fn decodes_block_size_and_limits() {
        let ns = Namespace::from_identify(device(), 1, &identify(12, 0), 128 * 1024, true, false)
            .unwrap();
        assert_eq!(ns.block_size(), 4096);
        assert_eq!(ns.size_bytes(), 1000 * 4096);
        assert_eq!(ns.max_blocks_per_command(), 32);
        assert_eq!(ns.lba_formats().len(), 2);
        assert_eq!(
            ns.lba_format(),
            LbaFormatInfo {
                index: 1,
                block_size: Some(4096),
                metadata_size: 0,
                relative_performance: 0,
            }
        );
        assert!(ns.supports_write_zeroes() && !ns.supports_trim());
        // 512-byte blocks with no MDTS limit: capped by NLB.
        let ns =
            Namespace::from_identify(device(), 1, &identify(9, 0), 1 << 40, false, false).unwrap();
        assert_eq!(ns.max_blocks_per_command(), 65536);
    }

    #[test]
    fn metadata_and_odd_formats_are_refused() {
        let err = Namespace::from_identify(device(), 3, &identify(12, 8), 1 << 20, false, false)
            .unwrap_err();
        assert!(
            matches!(err, Error::NamespaceMetadata { nsid: 3, ms: 8, .. }),
            "{err}"
        );
        let err = Namespace::from_identify(device(), 1, &identify(8, 0), 1 << 20, false, false)
            .unwrap_err();
        assert!(err.to_string().contains("block size"), "{err}");
        let mut id = identify(12, 0);
        id.flbas = 5;
        let err = Namespace::from_identify(device(), 1, &id, 1 << 20, false, false).unwrap_err();
        assert!(err.to_string().contains("NLBAF"), "{err}");
        assert_eq!(
            err.to_string(),
            "0000:01:00.0: namespace 1 is unusable: formatted LBA format 5 is beyond the 2 \
             formats it lists (NLBAF)"
        );
    }

    #[test]
    fn the_format_in_use_follows_flbas_with_its_upper_bits() {
        // 20 formats; FLBAS 0x21 selects format 17 (bits 6:5 = 01b above bits 3:0 = 0001b).
        let mut id = IdentifyNamespace::zeroed();
        id.nsze = 8;
        id.nlbaf = 19;
        for i in 0..20 {
            id.set_lba_format(i, LbaFormat::new().with_lbads(9).with_rp((i % 4) as u8));
        }
        id.set_lba_format(17, LbaFormat::new().with_lbads(12).with_rp(2));
        id.flbas = 0x21;
        let ns = Namespace::from_identify(device(), 1, &id, 1 << 20, false, false).unwrap();
        let format = ns.lba_format();
        assert_eq!((format.index, format.block_size), (17, Some(4096)));
        assert_eq!(format.relative_performance, 2);
        assert_eq!(ns.block_size(), 4096);
        assert_eq!(ns.lba_formats().len(), 20);
        // The same FLBAS with only 16 formats listed is out of range.
        id.nlbaf = 15;
        let err = Namespace::from_identify(device(), 1, &id, 1 << 20, false, false).unwrap_err();
        assert!(
            err.to_string().contains("format 17 is beyond the 16"),
            "{err}"
        );
    }

    #[test]
    fn ranges_and_buffers_are_checked() {
        let ns =
            Namespace::from_identify(device(), 1, &identify(9, 0), 1 << 20, false, false).unwrap();
        assert!(ns.check_range(0, 1000).is_ok());
        assert!(ns.check_range(999, 1).is_ok());
        assert!(ns.check_range(999, 2).is_err());
        assert!(ns.check_range(0, 0).is_err());
        assert!(ns.check_range(u64::MAX, 2).is_err());
        assert_eq!(ns.blocks_in(0, 4096).unwrap(), 8);
        assert!(ns.blocks_in(0, 100).is_err());
        assert!(ns.blocks_in(0, 0).is_err());
    }
}
