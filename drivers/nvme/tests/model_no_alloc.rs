//! The controller model's data path allocates nothing once warm: reads, overwrites of
//! allocated blocks, Flush, Write Zeroes and completion posting, instant and delayed.
//!
//! A counting global allocator counts, per thread, the calls made while counting is on.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
use userpci_framework::dma::DmaDirection;
use userpci_nvme::spec::{Status, SubmissionEntry};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// One round of I/O: write, read, flush and a partial Write Zeroes over blocks already
/// stored, each command awaited (`wait` advances virtual time in latency mode).
fn round(ctrl: &Ctrl, pair: &mut QueuePair, write: u64, read: u64, wait: Duration) {
    let commands = [
        SubmissionEntry::write(1, 0, 15, write, write + PAGE as u64),
        SubmissionEntry::read(1, 0, 15, read, read + PAGE as u64),
        SubmissionEntry::flush(1),
        SubmissionEntry::write_zeroes(1, 16, 3),
    ];
    for sqe in commands {
        let cid = pair.submit(&ctrl.regs, sqe);
        if !wait.is_zero() {
            ctrl.bus.clock().advance(wait);
        }
        let cqe = pair.poll().expect("completed");
        pair.ring_cq(&ctrl.regs);
        assert!(cqe.cid() == cid && cqe.status() == Status::SUCCESS);
    }
}

fn check(params: &str, wait: Duration) {
    let mut ctrl = Ctrl::enabled(params);
    let mut pair = ctrl.create_io(1, 32);
    let source = ctrl.buffer(2 * PAGE, DmaDirection::ToDevice, pattern(1));
    let sink = ctrl.buffer(2 * PAGE, DmaDirection::FromDevice, |_| 0);
    // Warm-up: the first write allocates the chunk, the queues wrap once.
    for _ in 0..10 {
        round(&ctrl, &mut pair, source.iova(), sink.iova(), wait);
    }
    let calls = allocator_calls(|| {
        for _ in 0..50 {
            round(&ctrl, &mut pair, source.iova(), sink.iova(), wait);
        }
    });
    assert_eq!(calls, 0, "allocator calls on a warm data path ({params})");
    assert_eq!(sink.as_slice(), source.as_slice());
}

#[test]
fn the_warm_data_path_never_allocates() {
    check("", Duration::ZERO);
    check("latency_ns = 2000", Duration::from_nanos(2000));
}
