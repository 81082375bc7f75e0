//! Hostile-device fuzzing of the I/O path: the controller model's completion entries (admin
//! and I/O: CID, SQ head, SQ ID, status, phase) and shadow-doorbell EventIdx values are
//! replaced with bytes decoded from the input, while the driver runs rounds of writes, reads
//! and flushes.
//!
//! Invariants: no panic; every request completes exactly once, with its own buffer (its
//! IOVA, and a write's pattern untouched) or, failed after a failed recovery, without one
//! (the driver leaks a buffer the controller may still use); the simulated IOMMU records no fault; all of it
//! within a bounded number of polls (the clock is virtual, advanced when a poll finds
//! nothing, so timeouts, aborts and resets happen); afterwards, with the device honest again
//! (and one reset if the controller or the pair failed), a write and its read-back work.
//!
//! Input: `[entries, flags, rounds, per_round]` then 18-byte mutations `[op, arg, value;16]`.
//! Mutations with `op` bit 7 set are EventIdx values (`value[0..4]`), the others apply to
//! completion entries in the order the model posts them: `op & 7` 0 keeps the entry, 1
//! replaces the CID, 2 the SQ head, 3 the SQ ID, 4 the status (phase kept), 5 flips the
//! phase, 6 replaces all but the phase, 7 all 16 bytes; `op` bit 3 makes a CID change keep
//! the generation bits (so it names another command in flight).

mod driver_support;
#[path = "../../../framework/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driver_support::*;
use fuzz_support::Bytes;
use proptest::prelude::*;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::DmaBuffer;
use userpci_nvme::model::{DeviceWrite, NvmeModel};
use userpci_nvme::{ControllerState, IoQueuePair, QpairOptions, QpairState};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

/// Polls before a run counts as hung.
const MAX_POLLS: usize = 4000;
const BLOCK: usize = 4096;

/// Hostile writes made and controller resets, over all cases: a run that made none tested
/// nothing.
static APPLIED: AtomicU64 = AtomicU64::new(0);
static RESETS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Plan {
    completions: VecDeque<[u8; 18]>,
    eventidx: VecDeque<u32>,
    applied: u64,
}

fn mutate(m: &[u8; 18], entry: &mut [u8; 16]) {
    let (op, value) = (m[0], &m[2..18]);
    let phase = entry[14] & 1;
    match op & 7 {
        1 if op & 8 != 0 => entry[12] = (entry[12] & !0x1f) | (value[12] & 0x1f),
        1 => entry[12..14].copy_from_slice(&value[12..14]),
        2 => entry[8..10].copy_from_slice(&value[8..10]),
        3 => entry[10..12].copy_from_slice(&value[10..12]),
        4 => {
            entry[14] = (value[14] & !1) | phase;
            entry[15] = value[15];
        }
        5 => entry[14] ^= 1,
        6 => {
            entry.copy_from_slice(value);
            entry[14] = (entry[14] & !1) | phase;
        }
        7 => entry.copy_from_slice(value),
        _ => {}
    }
}

fn hook(plan: Arc<Mutex<Plan>>) -> Box<dyn FnMut(DeviceWrite<'_>) + Send> {
    Box::new(move |write| {
        let mut plan = plan.lock().unwrap();
        match write {
            DeviceWrite::Completion { entry, .. } => {
                if let Some(m) = plan.completions.pop_front() {
                    mutate(&m, entry);
                    plan.applied += 1;
                }
            }
            DeviceWrite::EventIdx { value, .. } => {
                if let Some(v) = plan.eventidx.pop_front() {
                    *value = v;
                    plan.applied += 1;
                }
            }
            _ => {}
        }
    })
}

/// What a request was submitted with.
struct Sent {
    iova: u64,
    write_seed: Option<u64>,
}

fn check(input: &[u8]) -> Result<(), TestCaseError> {
    let mut bytes = Bytes::new(input);
    let entries = 4 + u16::from(bytes.u8() % 29);
    let flags = bytes.u8();
    let rounds = 1 + bytes.u8() % 3;
    let per_round = 1 + usize::from(bytes.u8()) % usize::from(entries - 1);
    let mut plan = Plan::default();
    while !bytes.is_empty() && plan.completions.len() + plan.eventidx.len() < 64 {
        let m: [u8; 18] = bytes.array();
        if m[0] & 0x80 != 0 {
            plan.eventidx
                .push_back(u32::from_le_bytes([m[2], m[3], m[4], m[5]]));
        } else {
            plan.completions.push_back(m);
        }
    }
    let planned = (plan.completions.len() + plan.eventidx.len()) as u64;
    let shadow = flags & 1 != 0;
    let bus = bus(&format!("blocks = 1024\nshadow_doorbells = {shadow}"));
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries,
            ..QpairOptions::default()
        })
        .unwrap();
    let plan = Arc::new(Mutex::new(plan));
    bus.with_model(addr(), |m: &mut NvmeModel| {
        m.set_hostile(Some(hook(plan.clone())))
    })
    .unwrap();

    let mut sent: BTreeMap<u64, Sent> = BTreeMap::new();
    let mut done: BTreeMap<u64, bool> = BTreeMap::new();
    let mut polls = 0;
    let mut token = 0u64;
    for round in 0..rounds {
        for i in 0..per_round {
            token += 1;
            let lba = (token % 200) * 2;
            let kind = (flags >> 1).wrapping_add(i as u8 + round) % 3;
            let result = match kind {
                0 => {
                    let buf = patterned(&bus, 2 * BLOCK, token);
                    sent.insert(
                        token,
                        Sent {
                            iova: buf.iova(),
                            write_seed: Some(token),
                        },
                    );
                    qp.submit_write(&ns, lba, buf, token)
                }
                1 => {
                    let buf = zeroed(&bus, BLOCK);
                    sent.insert(
                        token,
                        Sent {
                            iova: buf.iova(),
                            write_seed: None,
                        },
                    );
                    qp.submit_read(&ns, lba, buf, token)
                }
                _ => {
                    sent.insert(
                        token,
                        Sent {
                            iova: 0,
                            write_seed: None,
                        },
                    );
                    qp.submit_flush(&ns, token)
                }
            };
            if let Err(rejected) = result {
                // Refused before anything was queued (queue full after bogus entries, or
                // the controller failed): the request is not in flight.
                prop_assert_eq!(rejected.token, token);
                sent.remove(&token);
            }
        }
        while done.len() < sent.len() {
            prop_assert!(
                polls < MAX_POLLS,
                "hung: {} of {} done after {polls} polls",
                done.len(),
                sent.len()
            );
            polls += 1;
            let mut finished = Vec::new();
            qp.process_completions(0, &mut |c| finished.push(c));
            if finished.is_empty() {
                bus.clock().advance(Duration::from_millis(500));
            }
            for c in finished {
                let Some(s) = sent.get(&c.token) else {
                    return Err(TestCaseError::fail(format!("token {} never sent", c.token)));
                };
                prop_assert!(
                    done.insert(c.token, c.result.is_ok()).is_none(),
                    "token {} completed twice",
                    c.token
                );
                match (&c.buffer, s.iova) {
                    (None, 0) => {}
                    (Some(b), iova) => {
                        prop_assert_eq!(b.iova(), iova, "token {} got another buffer", c.token);
                        if let Some(seed) = s.write_seed {
                            prop_assert!(
                                check_pattern(b.as_slice(), seed),
                                "write buffer {} changed",
                                c.token
                            );
                        }
                    }
                    // The documented exception: after a failed recovery the controller may
                    // still be running, so the buffer is leaked rather than handed back.
                    (None, _) => {
                        let failed = matches!(
                            ctrl.state(),
                            ControllerState::Failed | ControllerState::Gone
                        );
                        prop_assert!(
                            c.result.is_err() && failed,
                            "token {} lost its buffer: {:?}, state {:?}",
                            c.token,
                            c.result,
                            ctrl.state()
                        );
                    }
                }
            }
        }
    }
    let faults = bus.iommu().faults();
    prop_assert!(faults.is_empty(), "IOMMU faults: {faults:?}");
    let plan = plan.lock().unwrap();
    prop_assert!(plan.applied <= planned);
    APPLIED.fetch_add(plan.applied, Ordering::Relaxed);
    RESETS.fetch_add(ctrl.resets(), Ordering::Relaxed);
    drop(plan);
    bus.with_model(addr(), |m: &mut NvmeModel| m.set_hostile(None))
        .unwrap();
    if ctrl.state() != ControllerState::Enabled || qp.state() != QpairState::Enabled {
        // A failed recovery (or a pair not recreated) is allowed while the device lies; once
        // it is honest, one reset must bring everything back.
        ctrl.reset()
            .map_err(|e| TestCaseError::fail(format!("reset of an honest device: {e}")))?;
    }
    honest_round_trip(&bus, &mut qp, &ns)?;
    Ok(())
}

fn check_pattern(bytes: &[u8], seed: u64) -> bool {
    driver_support::check(bytes, seed)
}

/// With the hook gone, a write and its read-back work (the driver recovered).
fn honest_round_trip(
    bus: &userpci_framework::backend::sim::SimBus,
    qp: &mut Qp,
    ns: &userpci_nvme::Namespace,
) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    if let Err(r) = qp.submit_write(ns, 900, patterned(bus, BLOCK, 77), 1 << 40) {
        return Err(TestCaseError::fail(format!(
            "honest write refused: {}; {:?}, in flight {}",
            r.error,
            qp.stats(),
            qp.in_flight()
        )));
    }
    for _ in 0..100 {
        if !out.is_empty() {
            break;
        }
        qp.process_completions(0, &mut |c| out.push(c));
        bus.clock().advance(Duration::from_millis(500));
    }
    prop_assert_eq!(out.len(), 1, "honest write after the hostile run");
    let c = out.pop().unwrap();
    prop_assert!(c.result.is_ok(), "{:?}", c.result);
    prop_assert!(qp.submit_read(ns, 900, zeroed(bus, BLOCK), 1 << 41).is_ok());
    for _ in 0..100 {
        if !out.is_empty() {
            break;
        }
        qp.process_completions(0, &mut |c| out.push(c));
    }
    prop_assert_eq!(out.len(), 1, "honest read after the hostile run");
    let c = out.pop().unwrap();
    prop_assert!(c.result.is_ok(), "{:?}", c.result);
    prop_assert!(
        check_pattern(c.buffer.unwrap().as_slice(), 77),
        "read-back differs"
    );
    Ok(())
}

#[test]
fn hostile_completions_and_eventidx() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/completions");
    fuzz_support::run("nvme_completions", &dir, 200, 18 * 24 + 4, check);
    // The corpus alone makes hostile writes and forces resets (phase flips time out).
    assert!(
        APPLIED.load(Ordering::Relaxed) > 0,
        "no hostile write was made"
    );
    assert!(
        RESETS.load(Ordering::Relaxed) > 0,
        "no case led to a controller reset"
    );
}
