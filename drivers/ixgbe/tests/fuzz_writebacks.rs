//! Hostile-device fuzzing of the 82599 data path: port B's RX write-backs (`PKT_LEN`,
//! `STATUS_ERROR` with `DD`/`EOP` and the error bits, the whole descriptor) and port A's TX
//! `DD` write-backs and `TDH`/`RDH` reads are replaced with values decoded from the input,
//! while A sends frames to B over the wire.
//!
//! Invariants: no panic; every call returns (the run is a bounded number of send/receive
//! rounds); a delivered packet is 1 to buffer-size bytes and a prefix of a frame that was
//! sent, or starts with one (a `PKT_LEN` longer than the frame exposes the buffer's old
//! bytes, which the driver cannot tell); no pool buffer is delivered twice while
//! the application holds it; the TX queue never reports more packets sent than it was given;
//! the simulated IOMMU records no fault.
//!
//! Input: `[frames, len_seed, batch]` then 18-byte mutations `[op, arg, value;16]`; `op >> 5`
//! picks the target (0-2: RX write-back, 3: TX `DD` dword, 4: `TDH` read, 5: `RDH` read,
//! 6-7: TX head write-back, unused by the driver) and the mutations of a target apply in
//! order. RX, `op & 7`: 1 `PKT_LEN`, 2 `STATUS_ERROR`, 3 clears `DD`, 4 clears `EOP`, 5 sets
//! `RXE`, 6 all but `DD`, 7 all 16 bytes. TX `DD` and heads: `value[0..4]`, or with `op & 1`
//! that modulo the ring size.

mod driver_support;
#[path = "../../../framework/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driver_support::*;
use fuzz_support::Bytes;
use proptest::prelude::*;
use userpci_framework::dma::PoolBuffer;
use userpci_ixgbe::model::{DeviceWrite, IxgbeModel};
use userpci_ixgbe::IxgbeOptions;

const RING: u32 = 64;
const ROUNDS: usize = 400;

/// Hostile values used over all cases: a run that used none tested nothing.
static APPLIED: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Plan {
    targets: [VecDeque<[u8; 18]>; 8],
}

fn value32(m: &[u8; 18]) -> u32 {
    let v = u32::from_le_bytes([m[2], m[3], m[4], m[5]]);
    if m[0] & 1 != 0 {
        v % RING
    } else {
        v
    }
}

fn mutate_rx(m: &[u8; 18], desc: &mut [u8; 16]) {
    let value = &m[2..18];
    match m[0] & 7 {
        1 => desc[12..14].copy_from_slice(&value[12..14]),
        2 => desc[8..12].copy_from_slice(&value[8..12]),
        3 => desc[8] &= !1,
        4 => desc[8] &= !2,
        5 => desc[11] |= 0x20,
        6 => {
            let dd = desc[8] & 1;
            desc.copy_from_slice(value);
            desc[8] = (desc[8] & !1) | dd;
        }
        7 => desc.copy_from_slice(value),
        _ => {}
    }
}

fn hook(plan: Arc<Mutex<Plan>>) -> Box<dyn FnMut(DeviceWrite<'_>) + Send> {
    Box::new(move |write| {
        let mut plan = plan.lock().unwrap();
        let mut take = |targets: &[usize]| {
            targets
                .iter()
                .find_map(|&t| plan.targets[t].pop_front())
                .inspect(|_| {
                    APPLIED.fetch_add(1, Ordering::Relaxed);
                })
        };
        match write {
            DeviceWrite::RxWriteback { desc, .. } => {
                if let Some(m) = take(&[0, 1, 2]) {
                    mutate_rx(&m, desc);
                }
            }
            DeviceWrite::TxStatus { status, .. } => {
                if let Some(m) = take(&[3]) {
                    *status = value32(&m);
                }
            }
            DeviceWrite::HeadRead { tx, value, .. } => {
                if let Some(m) = take(&[if tx { 4 } else { 5 }]) {
                    *value = value32(&m);
                }
            }
            DeviceWrite::TxHead { head, .. } => {
                if let Some(m) = take(&[6, 7]) {
                    *head = value32(&m);
                }
            }
        }
    })
}

fn check(input: &[u8]) -> Result<(), TestCaseError> {
    let mut bytes = Bytes::new(input);
    let frames = 1 + u64::from(bytes.u8() % 96);
    let len_seed = bytes.u8();
    let batch = 1 + usize::from(bytes.u8() % 32);
    let mut plan = Plan::default();
    let mut planned = 0;
    while !bytes.is_empty() && planned < 64 {
        let m: [u8; 18] = bytes.array();
        plan.targets[usize::from(m[0] >> 5)].push_back(m);
        planned += 1;
    }
    let bus = pair();
    let options = IxgbeOptions {
        tx_hang_timeout: Some(Duration::from_millis(40)),
        ..options(1, 1)
    };
    let (a, b) = devices(&bus, options);
    let plan = Arc::new(Mutex::new(plan));
    for port in [A, B] {
        model(&bus, port, |m: &mut IxgbeModel| {
            m.set_hostile(Some(hook(plan.clone())))
        });
    }
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(1, MAC_B, MAC_A);
    let sent: Vec<Vec<u8>> = (0..frames)
        .map(|seq| {
            let len = 60 + (usize::from(len_seed) * 37 + seq as usize * 101) % 1455;
            frame(seq, len, &f)
        })
        .collect();
    let mut next = 0usize;
    let mut given = 0u64;
    let mut pending: Vec<PoolBuffer> = Vec::new();
    let mut held: Vec<PoolBuffer> = Vec::new();
    let mut indices = BTreeSet::new();
    let mut got = Vec::with_capacity(batch);
    let capacity = b.pool().buffer_size();
    let mut idle = 0;
    for _ in 0..ROUNDS {
        while pending.len() < batch && next < sent.len() {
            pending.push(packet(&a, &sent[next]));
            next += 1;
            given += 1;
        }
        let before = (tx.in_flight(), pending.len());
        tx.tx_batch(&mut pending);
        settle(&bus);
        if rx.rx_batch(&mut got, batch) == 0 && before == (tx.in_flight(), pending.len()) {
            // Nothing moved: let time pass, so TX hang detection can act.
            bus.clock().advance(Duration::from_millis(20));
            idle += 1;
        } else {
            idle = 0;
        }
        for p in got.drain(..) {
            let data = p.as_slice();
            prop_assert!(
                !data.is_empty() && data.len() <= capacity,
                "{} bytes",
                data.len()
            );
            let framed = sent
                .iter()
                .any(|s| s.starts_with(data) || data.starts_with(s));
            prop_assert!(
                framed,
                "a {}-byte packet that is no frame's prefix",
                data.len()
            );
            prop_assert!(
                indices.insert(p.index()),
                "pool buffer {} delivered twice",
                p.index()
            );
            held.push(p);
        }
        // Everything given and nothing moving for 0.24 s (six hang timeouts): done.
        if next == sent.len() && pending.is_empty() && idle > 12 {
            break;
        }
    }
    prop_assert!(
        tx.stats().packets <= given,
        "{} sent of {given}",
        tx.stats().packets
    );
    let faults = bus.iommu().faults();
    prop_assert!(faults.is_empty(), "IOMMU faults: {faults:?}");
    Ok(())
}

#[test]
fn hostile_rx_and_tx_writebacks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/writebacks");
    fuzz_support::run("ixgbe_writebacks", &dir, 48, 18 * 32 + 3, check);
    assert!(
        APPLIED.load(Ordering::Relaxed) > 0,
        "no hostile value was used"
    );
}
