//! Hostile-device fuzzing of the capability-list walk (`device::config::capabilities`) on
//! config-space images decoded from the input, and of the reads a driver makes at the
//! capabilities it finds (PCIe DEVCAP, MSI-X Message Control and table offsets).
//!
//! Invariants: no panic; the walk ends after at most 48 capabilities (the most that fit in
//! the 192 bytes after the header), each at a dword-aligned offset in 40h..=FCh inside the
//! image; it follows the chain exactly: the first entry is at the Capabilities Pointer (bits
//! 1:0 ignored), each next one at the previous one's next pointer, each `id` is the byte at
//! its offset, and it ends only at a pointer below 40h, past the image, or at 48 entries;
//! without `STATUS.Capabilities List` it finds nothing.
//!
//! Input: `[len_selector, status_bit, cap_pointer]` then `(offset, byte)` pairs written into
//! an image of zeroes (a pair with offset FFh and byte FFh starts a run of plain bytes at
//! 40h); the image is 64, 68, 256 or 4096 bytes.

mod fuzz_support;

use std::path::Path;

use fuzz_support::Bytes;
use proptest::prelude::*;
use userpci_framework::device::config::{
    capabilities, read_u16, read_u32, CAPABILITIES_POINTER, MSIX_MESSAGE_CONTROL, MSIX_TABLE,
    PCIE_DEVCAP, STATUS, STATUS_CAPABILITIES,
};

fn image(input: &[u8]) -> Vec<u8> {
    let mut bytes = Bytes::new(input);
    let len = [64, 68, 256, 4096][usize::from(bytes.u8() % 4)];
    let mut config = vec![0u8; len];
    if bytes.u8() & 1 != 0 {
        config[usize::from(STATUS)] = STATUS_CAPABILITIES as u8;
    }
    config[usize::from(CAPABILITIES_POINTER)] = bytes.u8();
    while !bytes.is_empty() {
        let (offset, byte) = (usize::from(bytes.u8()), bytes.u8());
        if (offset, byte) == (0xff, 0xff) {
            let run = bytes.take(192);
            let end = (0x40 + run.len()).min(len);
            config[0x40..end].copy_from_slice(&run[..end - 0x40]);
        } else if let Some(b) = config.get_mut(offset) {
            *b = byte;
        }
    }
    config
}

fn check(input: &[u8]) -> Result<(), TestCaseError> {
    let config = image(input);
    let caps = capabilities(&config);
    prop_assert!(caps.len() <= 48, "{} capabilities", caps.len());
    if config[usize::from(STATUS)] & STATUS_CAPABILITIES as u8 == 0 {
        prop_assert!(caps.is_empty());
        return Ok(());
    }
    let mut pointer = config[usize::from(CAPABILITIES_POINTER)] & !3;
    for cap in &caps {
        prop_assert_eq!(cap.offset, u16::from(pointer), "not the chain's next entry");
        prop_assert!((0x40..=0xfc).contains(&cap.offset) && cap.offset % 4 == 0);
        let at = usize::from(cap.offset);
        prop_assert!(at + 1 < config.len(), "entry at {at:#x} past the image");
        prop_assert_eq!(cap.id, config[at]);
        pointer = config[at + 1] & !3;
        // What drivers read at a capability: bounds-checked, never a panic.
        let _ = read_u32(&config, cap.offset + PCIE_DEVCAP);
        let _ = read_u16(&config, cap.offset + MSIX_MESSAGE_CONTROL);
        let _ = read_u32(&config, cap.offset + MSIX_TABLE);
    }
    // Why it ended: a pointer below 40h, a header past the image, or 48 entries.
    let ended = pointer < 0x40 || usize::from(pointer) + 1 >= config.len() || caps.len() == 48;
    prop_assert!(ended, "stopped early at pointer {pointer:#x}");
    Ok(())
}

#[test]
fn hostile_capability_lists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/config_caps");
    fuzz_support::run("config_caps", &dir, 2000, 400, check);
}
