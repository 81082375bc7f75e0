//! Hostile-kernel fuzzing of the VFIO replies the backend decodes: device info, region info
//! (config region and BARs), IRQ info (MSI-X, error, request) and the hot-reset info with its
//! `ENOSPC` retry, through the fake kernel's hostile hook while a function is opened and
//! used; and the reply decoders on raw bytes (hot-reset info, type1 IOMMU info).
//!
//! Invariants: no panic; errors name the device; a hot-reset info buffer never exceeds the
//! room for `MAX_HOT_RESET_DEVICES` (the retry size comes from the kernel's count) and the
//! query is retried a bounded number of times; config reads stay inside the region the
//! kernel described; decoded replies are consistent (as many devices as the count, IOVA
//! ranges with start <= end).
//!
//! Input: `[mode]`; mode bit 0 clear: the rest are bytes for the decoders. Set: an override
//! per reply kind (`DeviceInfo`, region info by index, IRQ info by index), then hot-reset
//! answers in order; see `Overrides::decode`.

mod fuzz_support;
mod fuzz_vfio_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fuzz_support::Bytes;
use fuzz_vfio_support::{kernel, Roots, DEVICE};
use proptest::prelude::*;
use userpci_framework::backend::vfio::fake::{FakeReply, FakeVfio};
use userpci_framework::backend::vfio::reply::{
    hot_reset_info_count, parse_hot_reset_info, parse_type1_info, MAX_HOT_RESET_DEVICES,
};
use userpci_framework::backend::vfio::VfioContext;
use userpci_framework::device::{PciFunction, PciFunctionExt};

const ENOSPC: i32 = 28;
/// The largest hot-reset info buffer a bounded backend asks for (header, devices, growth).
const MAX_BUF: usize = 12 + MAX_HOT_RESET_DEVICES as usize * 8 + 64;

/// Replies to rewrite: (field selector, value) per kind and index.
#[derive(Default)]
struct Overrides {
    device: Option<(u8, u32)>,
    regions: BTreeMap<u32, (u8, u64)>,
    irqs: BTreeMap<u32, (u8, u32)>,
    hot_reset: Vec<(u8, u32, u32)>,
    largest_buf: usize,
    hot_reset_calls: usize,
}

impl Overrides {
    /// `[n]` then n entries of `[kind, index, selector, value: u64]`: kind 0 device info, 1
    /// region, 2 IRQ, 3 a hot-reset answer (selector 0 ENOSPC with count `value`, 1 success
    /// with count `value` and flags, 2 ENODEV, 3 the fake's own answer).
    fn decode(bytes: &mut Bytes<'_>) -> Self {
        let mut o = Overrides::default();
        for _ in 0..bytes.u8() % 12 {
            let (kind, index, selector, value) =
                (bytes.u8() % 4, bytes.u8(), bytes.u8(), bytes.u64());
            match kind {
                0 => o.device = Some((selector, value as u32)),
                1 => drop(o.regions.insert(u32::from(index % 10), (selector, value))),
                2 => drop(
                    o.irqs
                        .insert(u32::from(index % 5), (selector, value as u32)),
                ),
                _ => o
                    .hot_reset
                    .push((selector % 4, value as u32, (value >> 32) as u32)),
            }
        }
        o
    }

    fn apply(&mut self, reply: FakeReply<'_>) {
        match reply {
            FakeReply::DeviceInfo {
                reply: Ok(info), ..
            } => match self.device {
                Some((s, v)) if s % 3 == 0 => info.flags = v,
                Some((s, v)) if s % 3 == 1 => info.num_regions = v,
                Some((_, v)) => info.num_irqs = v,
                None => {}
            },
            FakeReply::RegionInfo { index, reply, .. } => match (self.regions.get(&index), reply) {
                (Some(&(s, v)), Ok(info)) if s % 4 == 0 => info.size = v,
                (Some(&(s, v)), Ok(info)) if s % 4 == 1 => info.offset = v,
                (Some(&(s, v)), Ok(info)) if s % 4 == 2 => info.flags = v as u32,
                (Some(_), reply) => *reply = Err(std::io::Error::from_raw_os_error(22)),
                (None, _) => {}
            },
            FakeReply::IrqInfo { index, reply, .. } => match (self.irqs.get(&index), reply) {
                (Some(&(s, v)), Ok(info)) if s % 3 == 0 => info.count = v,
                (Some(&(s, v)), Ok(info)) if s % 3 == 1 => info.flags = v,
                (Some(_), reply) => *reply = Err(std::io::Error::from_raw_os_error(22)),
                (None, _) => {}
            },
            FakeReply::HotResetInfo { buf, result, .. } => {
                self.largest_buf = self.largest_buf.max(buf.len());
                let call = self.hot_reset_calls;
                self.hot_reset_calls += 1;
                let Some(&(selector, count, flags)) = self.hot_reset.get(call) else {
                    return;
                };
                let mut put = |at: usize, v: u32| {
                    if let Some(dst) = buf.get_mut(at..at + 4) {
                        dst.copy_from_slice(&v.to_ne_bytes());
                    }
                };
                match selector {
                    0 => {
                        put(8, count);
                        *result = Err(std::io::Error::from_raw_os_error(ENOSPC));
                    }
                    1 => {
                        put(4, flags);
                        put(8, count);
                        *result = Ok(());
                    }
                    2 => *result = Err(std::io::Error::from_raw_os_error(19)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

fn through_the_fake(
    fake: &Arc<FakeVfio>,
    ctx: &VfioContext,
    bytes: &mut Bytes<'_>,
) -> Result<(), TestCaseError> {
    let overrides = Arc::new(Mutex::new(Overrides::decode(bytes)));
    let hook = overrides.clone();
    fake.set_hostile(Some(Box::new(move |reply| {
        hook.lock().unwrap().apply(reply)
    })));
    let opened = ctx.open(DEVICE.parse().unwrap());
    let named = |e: &dyn std::fmt::Display| e.to_string().contains("02:00.0");
    match &opened {
        Ok(f) => {
            let size = f.config_size();
            let mut header = [0u8; 64];
            match f.read_config(0, &mut header) {
                Ok(()) => prop_assert!(size >= 64, "read 64 bytes of a {size}-byte region"),
                Err(e) => prop_assert!(named(&e), "{e}"),
            }
            let offset = bytes.u16() % 4096;
            let mut word = [0u8; 4];
            if f.read_config(offset, &mut word).is_ok() {
                prop_assert!(usize::from(offset) + 4 <= size, "read past the region");
            }
            let _ = f.capabilities();
            let _ = f.msix_vector_count();
            for bar in 0..7 {
                if let Err(e) = f.map_bar(bar) {
                    prop_assert!(named(&e), "{e}");
                }
            }
            if let Ok(vectors) = f.enable_msix(1 + bytes.u16() % 70) {
                prop_assert!(!vectors.is_empty());
                let _ = f.disable_msix();
            }
            if let Err(e) = f.hot_reset_info() {
                prop_assert!(named(&e), "{e}");
            }
            let _ = f.reset_group();
        }
        Err(e) => prop_assert!(named(e), "{e}"),
    }
    drop(opened);
    fake.set_hostile(None);
    let o = overrides.lock().unwrap();
    prop_assert!(
        o.largest_buf <= MAX_BUF,
        "a {}-byte hot-reset info buffer",
        o.largest_buf
    );
    prop_assert!(
        o.hot_reset_calls <= 2 * 5,
        "{} hot-reset info calls",
        o.hot_reset_calls
    );
    Ok(())
}

fn decoders(data: &[u8]) -> Result<(), TestCaseError> {
    let _ = hot_reset_info_count(data);
    if let Ok(info) = parse_hot_reset_info(data) {
        let count = hot_reset_info_count(data).unwrap() as usize;
        prop_assert_eq!(info.devices.len(), count);
        prop_assert!(12 + 8 * count <= data.len());
    }
    if let Ok(info) = parse_type1_info(data) {
        for range in info.iova_ranges.iter().flatten() {
            prop_assert!(range.start <= range.last, "{range:?}");
        }
    }
    Ok(())
}

#[test]
fn hostile_vfio_replies() {
    let roots = Roots::new();
    let fake = kernel();
    let ctx = roots.context(&fake);
    let check = |input: &[u8]| {
        let mut bytes = Bytes::new(input);
        if bytes.u8() & 1 == 0 {
            decoders(bytes.take(usize::MAX))
        } else {
            through_the_fake(&fake, &ctx, &mut bytes)
        }
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/vfio_replies");
    fuzz_support::run("vfio_replies", &dir, 300, 256, check);
}
