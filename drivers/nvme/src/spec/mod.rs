//! The NVMe specification as Rust types, shared by the driver and the controller model.
//!
//! Sources: NVM Express Base Specification 2.0 ("Base"), NVMe over PCIe Transport Specification
//! 1.0 (doorbells) and NVM Command Set Specification 1.0 ("NVM CS"). Names follow the
//! specifications (`CAP.MQES`, `CC.IOSQES`, `FLBAS`, `NSQR`) so that a reader can search the PDF
//! for them. Only what the driver or the model uses is defined.
//!
//! | module | contents | specification |
//! |---|---|---|
//! | [`registers`] | `CAP`, `VS`, `CC`, `CSTS`, `AQA`, `CMBLOC`, `CMBSZ`, doorbell offsets | Base "Controller Properties"; PCIe Transport "Register Definition" |
//! | [`queue`] | 64-byte submission and 16-byte completion queue entries | Base "Submission Queue Entry", "Completion Queue Entry" |
//! | [`opcodes`] | admin and NVM opcodes | Base "Opcodes for Admin Commands"; NVM CS "Opcodes for NVM Commands" |
//! | [`admin`] | admin commands: construction (driver) and decoding (model) | Base "Admin Command Set" |
//! | [`nvm`] | Read, Write, Flush, Write Zeroes, Dataset Management, [`nvm::DsmRange`] | NVM CS "I/O Commands for the NVM Command Set" |
//! | [`status`] | the completion status field and its names | Base "Status Field Definition" |
//! | [`identify`] | Identify Controller, CNS values, Active Namespace ID list | Base "Identify command" |
//! | [`identify_ns`] | Identify Namespace, LBA formats | NVM CS "Identify Namespace data structure" |
//! | [`features`] | feature identifiers and their CDW11 / DW0 encodings | Base "Feature Values" |
//! | [`log`] | log page identifiers, Error Information, SMART / Health, AER results | Base "Log Page Identifiers", "Asynchronous Event Request" |
//!
//! # Conventions
//! - **Values read from a device are untrusted: these types decode; validation happens in the
//!   driver.** Every accessor is total: it extracts bits and never panics on any input (a
//!   value that would overflow a computation is returned as `None`). Whether a decoded value
//!   is *acceptable* (MQES at least 1, a block size of at least 512 bytes, a CID the driver
//!   issued) is the driver's decision, and the model checks what the driver sends the same way.
//! - Fields the specification defines as zero-based ("0's based": `MQES`, `AQA.ASQS`, `QSIZE`,
//!   `NLB`, `NR`, `NSQR`, `NUMD`) are taken and returned zero-based, exactly as encoded, and
//!   named as in the specification. The helpers that convert say so in their name
//!   ([`registers::Cap::max_queue_entries`]). The one-based exception is
//!   [`nvm::DsmRange::length`], which the specification defines as a count.
//! - Register newtypes (`Cap(u64)`, `Cc(u32)`) have a getter per field and a `with_*` builder
//!   that returns a modified copy, for the model to compose the values it reports and the
//!   driver to compose the values it writes. A builder given a value wider than its field
//!   masks it (and panics in debug builds, where that is a bug in the caller).
//! - Memory structures (`SubmissionEntry`, `IdentifyController`) are `#[repr(C)]`
//!   [`bytemuck::Pod`] types whose size and field offsets are checked at compile time. Their
//!   integer fields are stored in host order, which is the specification's little-endian
//!   order on the hosts this crate builds for (see the `compile_error!` below).
//! - No `unsafe`: the crate forbids it.

pub mod admin;
pub mod features;
pub mod identify;
pub mod identify_ns;
pub mod log;
pub mod nvm;
pub mod opcodes;
pub mod queue;
pub mod registers;
pub mod status;

pub use admin::AdminCommand;
pub use identify::{Cns, IdentifyController};
pub use identify_ns::{IdentifyNamespace, LbaFormat};
pub use nvm::{DsmRange, NvmCommand};
pub use opcodes::{AdminOpcode, NvmOpcode};
pub use queue::{CompletionEntry, SubmissionEntry};
pub use status::{Status, StatusCodeType};

// The Pod layouts keep multi-byte fields in host order; NVMe data structures are little-endian.
#[cfg(not(target_endian = "little"))]
compile_error!(
    "userpci-nvme's spec types assume a little-endian host, as NVMe data structures are"
);

/// The namespace identifier that addresses every namespace (broadcast), where a command allows
/// it (Base "Namespace Identifier").
pub const NSID_ALL: u32 = 0xffff_ffff;

/// Size of an Identify data structure and of the smallest memory page, 4 KiB.
pub const IDENTIFY_DATA_SIZE: usize = 4096;

/// Defines, for a register newtype over `$raw`, a getter and a `with_*` builder per bit field.
///
/// `name / with_name: bool @ bit;` for single bits, `name / with_name: type @ hi:lo;` for wider
/// fields (inclusive bit range, as the specification writes it).
macro_rules! bitfields {
    ($reg:ident($raw:ty) { $($body:tt)* }) => {
        impl $reg { bitfields!(@fields $raw; $($body)*); }
    };
    (@fields $raw:ty;) => {};
    (@fields $raw:ty; $(#[$doc:meta])* $get:ident / $with:ident : bool @ $bit:literal; $($rest:tt)*) => {
        $(#[$doc])*
        #[inline]
        pub const fn $get(self) -> bool {
            (self.0 >> $bit) & 1 != 0
        }
        #[doc = concat!("Returns a copy with `", stringify!($get), "` (bit ", stringify!($bit), ") set to `value`.")]
        #[inline]
        #[must_use]
        pub const fn $with(self, value: bool) -> Self {
            Self((self.0 & !(1 << $bit)) | ((value as $raw) << $bit))
        }
        bitfields!(@fields $raw; $($rest)*);
    };
    (@fields $raw:ty; $(#[$doc:meta])* $get:ident / $with:ident : $ty:ident @ $hi:literal : $lo:literal; $($rest:tt)*) => {
        $(#[$doc])*
        #[inline]
        pub const fn $get(self) -> $ty {
            ((self.0 >> $lo) & ((1 << ($hi - $lo + 1)) - 1)) as $ty
        }
        #[doc = concat!("Returns a copy with `", stringify!($get), "` (bits ", stringify!($hi), ":", stringify!($lo), ") set to `value`.")]
        #[inline]
        #[must_use]
        pub const fn $with(self, value: $ty) -> Self {
            let mask: $raw = (1 << ($hi - $lo + 1)) - 1;
            debug_assert!((value as $raw) <= mask, "value wider than its register field");
            Self((self.0 & !(mask << $lo)) | (((value as $raw) & mask) << $lo))
        }
        bitfields!(@fields $raw; $($rest)*);
    };
}
pub(crate) use bitfields;

/// Copies `text` into a fixed-width identify string field, padded with `pad` and truncated to
/// the field (Base: ASCII fields are "padded with spaces", NQNs "padded with nulls").
pub(crate) fn write_padded(field: &mut [u8], text: &str, pad: u8) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    field[n..].fill(pad);
}

/// Decodes a fixed-width identify string field: lossy UTF-8 (the device is untrusted), with
/// trailing spaces and NULs removed.
pub(crate) fn read_padded(field: &[u8]) -> String {
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_strings_round_trip_and_trim() {
        let mut field = [0u8; 8];
        write_padded(&mut field, "QEMU", b' ');
        assert_eq!(&field, b"QEMU    ");
        assert_eq!(read_padded(&field), "QEMU");
        write_padded(&mut field, "0123456789", b' ');
        assert_eq!(&field, b"01234567");
        assert_eq!(read_padded(b"ab\0\0  \0"), "ab");
        assert_eq!(read_padded(b"    "), "");
        assert_eq!(read_padded(&[0xff, b'a', b' ']), "\u{fffd}a");
    }
}
