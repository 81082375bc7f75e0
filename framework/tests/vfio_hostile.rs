//! Regression tests for the VFIO reply handling bugs found with the fake kernel's hostile
//! replies (`FakeVfio::set_hostile`, `fuzz_vfio_replies.rs` corpus 02 and 06): each fails
//! before its fix.

mod fuzz_vfio_support;

use fuzz_vfio_support::{kernel, Roots, DEVICE};
use userpci_framework::backend::vfio::fake::FakeReply;

const ENOSPC: i32 = 28;

/// `ENOSPC` with a count of FFFFFFFFh made the backend allocate a 32 GiB buffer for the
/// retry (the test process aborted); the count is now bounded by a full bus hierarchy.
#[test]
fn a_huge_hot_reset_count_is_an_error_not_a_32_gib_buffer() {
    let roots = Roots::new();
    let fake = kernel();
    let ctx = roots.context(&fake);
    let f = ctx.open(DEVICE.parse().unwrap()).unwrap();
    fake.set_hostile(Some(Box::new(|reply| {
        if let FakeReply::HotResetInfo { buf, result, .. } = reply {
            assert!(buf.len() <= 12 + 65536 * 8, "a {}-byte buffer", buf.len());
            buf[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
            *result = Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
    })));
    let err = f.hot_reset_info().unwrap_err().to_string();
    assert!(err.contains(DEVICE), "{err}");
    assert!(err.contains("4294967295 devices"), "{err}");
    assert!(err.contains("at most 65536"), "{err}");
}

/// A config region whose offset plus size passes 2^64 made config reads overflow the offset
/// addition (a panic in debug builds, a read at a wrapped offset in release); it is refused
/// at open, naming the values.
#[test]
fn a_config_region_past_2_64_is_refused_at_open() {
    let roots = Roots::new();
    let fake = kernel();
    let ctx = roots.context(&fake);
    fake.set_hostile(Some(Box::new(|reply| {
        if let FakeReply::RegionInfo {
            index: 7,
            reply: Ok(info),
            ..
        } = reply
        {
            info.offset = u64::MAX - 8;
        }
    })));
    let err = ctx.open(DEVICE.parse().unwrap()).unwrap_err().to_string();
    assert!(err.contains(DEVICE), "{err}");
    assert!(err.contains("0xfffffffffffffff7"), "{err}");
    assert!(err.contains("0x1000 bytes"), "{err}");
}
