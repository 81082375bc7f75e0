//! Hostile-device fuzzing of the data the driver reads through admin commands: Identify
//! Controller, the Active Namespace ID list and Identify Namespace at bring-up, then the
//! SMART / Health and Error Information log pages, with bytes decoded from the input.
//!
//! Invariants: no panic; bring-up and each log read end (with a value or an error) in a
//! bounded number of admin commands (the hook counts the Identify and log transfers it
//! sees); the simulated IOMMU records no fault (the controller writes only as many bytes as
//! the host's command asked for, into the host's buffer); a namespace the driver accepts
//! has a block size it could address.
//!
//! Input: `[flags]` then mutations `[op, a, b, len, bytes;len]`, applied to the data
//! transfers in order. `op & 3`: 0 keeps the data, 1 overwrites at offset `a | b << 8` (modulo
//! the length), 2 fills it with the first byte, 3 overwrites at a field of interest
//! (`FIELDS[a]`). `op & 4` keeps the mutation for every later transfer; `op & 8` makes an
//! Active Namespace ID list count up from the command's NSID (a list that never ends).

mod driver_support;
#[path = "../../../framework/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use driver_support::*;
use fuzz_support::Bytes;
use proptest::prelude::*;
use userpci_nvme::model::{DeviceWrite, NvmeModel};
use userpci_nvme::{Controller, ControllerOptions};

/// Offsets that matter in Identify Controller, Identify Namespace and the logs: NSZE, NCAP,
/// NUSE, NLBAF, FLBAS, MDTS, LBAF0-1, OACS, ELPE, LPA, SQES, CQES, NN, ONCS, VWC, the last
/// dword; a list's first, second and last entry.
const FIELDS: [usize; 20] = [
    0, 4, 8, 16, 25, 26, 77, 128, 130, 132, 134, 256, 262, 261, 512, 513, 516, 520, 525, 4092,
];

/// Identify and log transfers a run may take: bring-up (controller, list pages up to the
/// driver's namespace limit, one per namespace) and the log reads, with room to spare.
const MAX_TRANSFERS: u64 = 64;

struct Mutation {
    op: u8,
    at: usize,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Plan {
    queue: VecDeque<Mutation>,
    sticky: Vec<Mutation>,
    transfers: u64,
}

fn apply(m: &Mutation, data: &mut [u8]) {
    if data.is_empty() {
        return;
    }
    match m.op & 3 {
        1 | 3 => {
            let at = if m.op & 3 == 1 {
                m.at % data.len()
            } else {
                FIELDS[m.at % FIELDS.len()]
            };
            for (i, &b) in m.bytes.iter().enumerate() {
                if let Some(d) = data.get_mut(at + i) {
                    *d = b;
                }
            }
        }
        2 => data.fill(m.bytes.first().copied().unwrap_or(0xff)),
        _ => {}
    }
}

fn count_up(nsid: u32, data: &mut [u8]) {
    for (i, id) in data.chunks_exact_mut(4).enumerate() {
        let value = nsid.saturating_add(1 + i as u32);
        id.copy_from_slice(&value.to_le_bytes());
    }
}

fn hook(plan: Arc<Mutex<Plan>>) -> Box<dyn FnMut(DeviceWrite<'_>) + Send> {
    Box::new(move |write| {
        let (data, list_nsid) = match write {
            DeviceWrite::Identify { cns, nsid, data } => (data, (cns == 2).then_some(nsid)),
            DeviceWrite::LogPage { data, .. } => (data, None),
            _ => return,
        };
        let mut plan = plan.lock().unwrap();
        plan.transfers += 1;
        if plan.transfers > MAX_TRANSFERS {
            // Runaway: stop lying so the run can end, and let the check report it.
            return;
        }
        let plan = &mut *plan;
        let next = plan.queue.pop_front();
        for m in plan.sticky.iter().chain(next.as_ref()) {
            apply(m, data);
            if let (true, Some(nsid)) = (m.op & 8 != 0, list_nsid) {
                count_up(nsid, data);
            }
        }
        if let Some(m) = next.filter(|m| m.op & 4 != 0) {
            plan.sticky.push(m);
        }
    })
}

fn check(input: &[u8]) -> Result<(), TestCaseError> {
    let mut bytes = Bytes::new(input);
    let flags = bytes.u8();
    let mut plan = Plan::default();
    while !bytes.is_empty() && plan.queue.len() < 32 {
        let (op, a, b, len) = (bytes.u8(), bytes.u8(), bytes.u8(), bytes.u8() % 17);
        let data = bytes.take(usize::from(len)).to_vec();
        let at = usize::from(a) | usize::from(b) << 8;
        let at = if op & 3 == 3 { usize::from(a) } else { at };
        plan.queue.push_back(Mutation {
            op,
            at,
            bytes: data,
        });
    }
    let namespaces = 1 + u32::from(flags & 3);
    let bus = bus(&format!("blocks = 1024\nnamespaces = {namespaces}"));
    let plan = Arc::new(Mutex::new(plan));
    bus.with_model(addr(), |m: &mut NvmeModel| {
        m.set_hostile(Some(hook(plan.clone())))
    })
    .unwrap();
    let function = bus.open(addr()).unwrap();
    let result = Controller::new(function, ControllerOptions::default());
    if let Ok(ctrl) = &result {
        for ns in ctrl.namespaces() {
            prop_assert!(ns.block_size() >= 512, "block size {}", ns.block_size());
            prop_assert!(ns.blocks() > 0);
        }
        let _ = ctrl.smart_health_log();
        let _ = ctrl.error_log();
        let mut page = [0u8; 512];
        let _ = ctrl.read_log_page(0x02, u32::MAX, 0, &mut page);
        let _ = ctrl.read_log_page(0x01, u32::MAX, 0, &mut page[..64]);
    }
    let transfers = plan.lock().unwrap().transfers;
    prop_assert!(
        transfers <= MAX_TRANSFERS,
        "{transfers} Identify/log transfers: unbounded"
    );
    let faults = bus.iommu().faults();
    prop_assert!(faults.is_empty(), "IOMMU faults: {faults:?}");
    Ok(())
}

#[test]
fn hostile_identify_and_log_data() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/admin_data");
    fuzz_support::run("nvme_admin_data", &dir, 200, 400, check);
}
