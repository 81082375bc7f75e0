//! Controller model: a hostile host cannot make the model panic or stop for good. Random
//! register and doorbell writes and random commands (with pointers into mapped and unmapped
//! memory) run against every processing mode; afterwards a reset brings the controller back.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::RegisterIo;
use userpci_framework::dma::DmaDirection;
use userpci_nvme::spec::registers as regs;
use userpci_nvme::spec::{Status, SubmissionEntry};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs 3000 random host actions; returns the bytes the model moved to or from namespaces.
fn hostile(params: &str, seed: u64) -> u64 {
    let mut ctrl = Ctrl::enabled(params);
    let mut pair = ctrl.create_io(1, 16);
    let regs = ctrl.regs.clone();
    let bar = regs.len() as u64;
    let memory = ctrl.buffer(8 * PAGE, DmaDirection::Bidirectional, pattern(1));
    // A valid PRP list, which commands may use (and corrupt).
    let mut list = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0);
    for (i, slot) in list.as_mut_slice().chunks_exact_mut(8).enumerate() {
        let page = memory.iova() + (i % 8 * PAGE) as u64;
        slot.copy_from_slice(&page.to_le_bytes());
    }
    let mut rng = Rng(seed);
    let pointer = |rng: &mut Rng| match rng.below(12) {
        0..=3 => memory.iova() + rng.below(8) * PAGE as u64,
        4 | 5 => memory.iova() + rng.below(8 * PAGE as u64),
        6 | 7 => list.iova() + rng.below(PAGE as u64 / 8) * 8,
        8 | 9 => rng.next(),
        _ => 0,
    };
    for _ in 0..3000 {
        match rng.below(10) {
            0..=3 => {
                let mut sqe = SubmissionEntry::new(0);
                let opcodes = [
                    0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x7c,
                ];
                // FUSE and PSDT set now and then.
                sqe.cdw0 = rng.next() as u32 & [0xc3ff, 0, 0, 0][rng.below(4) as usize];
                sqe.cdw0 = (sqe.cdw0 & !0xff) | opcodes[rng.below(opcodes.len() as u64) as usize];
                sqe.nsid = [1, 1, 1, 0, 2, u32::MAX, rng.next() as u32][rng.below(7) as usize];
                sqe.mptr = pointer(&mut rng);
                sqe.prp1 = pointer(&mut rng);
                sqe.prp2 = pointer(&mut rng);
                sqe.cdw10 = rng.next() as u32
                    & [0xffff_ffff, 0xff, 0x000f_00ff, 0xfff][rng.below(4) as usize];
                sqe.cdw11 =
                    rng.next() as u32 & [0xffff_ffff, 0x0, 0x0001_0003, 0x0][rng.below(4) as usize];
                sqe.cdw12 = rng.next() as u32
                    & [0xffff_ffff, 0x3f, 0x4000_0007, 0x1][rng.below(4) as usize];
                sqe.cdw13 = rng.next() as u32 & [0xffff_ffff, 0][rng.below(2) as usize];
                if rng.below(3) == 0 {
                    let admin = ctrl.admin.as_mut().unwrap();
                    admin.place(sqe);
                    admin.ring_sq(&regs);
                } else {
                    pair.place(sqe);
                    pair.ring_sq(&regs);
                }
            }
            4 => {
                let offset =
                    regs::DOORBELLS as u64 + rng.below((bar - regs::DOORBELLS as u64) / 4) * 4;
                let value = [rng.below(20), rng.next()][rng.below(2) as usize] as u32;
                regs.write32(offset as usize, value);
            }
            5 => {
                let value = [rng.below(20), rng.next()][rng.below(2) as usize] as u32;
                let offset = rng.below(0x40 / 4) * 4;
                if offset as usize != regs::CC || rng.below(20) == 0 {
                    regs.write32(offset as usize, value);
                }
            }
            6 | 7 => {
                pair.drain(&regs);
                ctrl.admin.as_mut().unwrap().drain(&regs);
            }
            8 => ctrl
                .bus
                .clock()
                .advance(Duration::from_micros(rng.below(3000))),
            _ => {
                // Keep the host's view in step with the queues it may have lost.
                if !ctrl.csts().rdy() || ctrl.csts().cfs() || rng.below(50) == 0 {
                    ctrl.enable(8);
                    pair = ctrl.create_io(1, 16);
                }
            }
        }
    }
    // A controller reset brings it back whatever happened.
    ctrl.model(|m| m.clear_faults());
    ctrl.enable(8);
    let mut pair = ctrl.create_io(1, 16);
    let cid = pair.submit(&regs, SubmissionEntry::flush(1));
    ctrl.bus.clock().advance(Duration::from_millis(1));
    let cqe = pair.poll().expect("the flush completes");
    assert_eq!(
        (cqe.cid(), cqe.status()),
        (cid, Status::SUCCESS),
        "{params}"
    );
    let stats = ctrl.stats();
    stats.bytes_read + stats.bytes_written
}

#[test]
fn random_host_behaviour_never_panics() {
    for (i, params) in [
        "",
        "latency_ns = 500\nmdts = 0",
        "shadow_doorbells = true\ndstrd = 1\nnamespaces = 2",
        "lba_size = 4096\nmetadata_size = 16\nready_delay_us = 3",
    ]
    .into_iter()
    .enumerate()
    {
        let moved: u64 = (1..=4u64)
            .map(|seed| hostile(params, seed * 7919 + i as u64))
            .sum();
        assert!(moved > 0, "{params}: some random commands moved data");
    }
}
