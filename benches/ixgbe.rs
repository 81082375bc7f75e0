//! CPU cost of the ixgbe driver's data path, forwarding on the 82599 model: the loop of
//! `examples/fwd.rs` (`Forwarder::round`: `rx_batch` on one port, `tx_batch` of the same
//! buffers on the other, both ways), at batch sizes 1, 8, 32 and 64. Each iteration is one
//! round: the bus clock is advanced by `batch` ns, in which each port's generator (one 60-byte
//! frame per virtual nanosecond) puts `batch` frames into its RX ring, then both directions
//! are forwarded, so an iteration moves `2 × batch` packets (`Throughput::Elements`).
//!
//! Side by side in one run:
//!
//! - `total`: the whole round, the model's work included;
//! - `excl_generator`: the same round with the time spent in `SimClock::advance` (the model's
//!   generators building frames and writing them, descriptors and all, into the RX rings)
//!   taken out (two `Instant::now` per round, so ~2 clock reads per round are left in);
//! - `generator_only`: that `advance` time alone.
//!
//! What `excl_generator` still holds of the model: the work it does inside the driver's
//! register writes, chiefly the TDT write, in which the model fetches every descriptor and
//! frame, "transmits" it into its sink and writes the descriptor back, and the RDT write. So
//! `excl_generator` is an upper bound of the driver's cost; for the split inside it, profile
//! `examples/fwd.rs` (`perf record`, see BENCHMARKS.md).
//!
//! `cargo bench --bench ixgbe` (`-- --quick` for a short run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use userpci::tools::net;

const BATCHES: [usize; 4] = [1, 8, 32, 64];
const SIZE: usize = 60;

/// Runs `iters` rounds; returns (total time, time inside `advance`).
fn rounds(
    clock: &userpci::framework::backend::sim::SimClock,
    fwd: &mut net::Forwarder<
        userpci::ixgbe::IxgbeDevice<userpci::framework::backend::sim::SimFunction>,
    >,
    batch: usize,
    iters: u64,
    split: bool,
) -> (Duration, Duration) {
    let step = Duration::from_nanos(batch as u64);
    let mut in_model = Duration::ZERO;
    let start = Instant::now();
    if split {
        for _ in 0..iters {
            let t0 = Instant::now();
            clock.advance(step);
            in_model += t0.elapsed();
            std::hint::black_box(fwd.round(batch));
        }
    } else {
        for _ in 0..iters {
            clock.advance(step);
            std::hint::black_box(fwd.round(batch));
        }
    }
    (start.elapsed(), in_model)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ixgbe_fwd");
    for batch in BATCHES {
        let (bus, a, b) = net::fwd_sim(SIZE).expect("simulated ports");
        let mut fwd = net::Forwarder::new(&a, &b, batch).expect("queues");
        let clock = Arc::clone(bus.clock());
        // Warm up: rings, pools and the model's buffers in steady state.
        rounds(&clock, &mut fwd, batch, 20_000, false);
        let before = fwd.forwarded;
        let (_, _) = rounds(&clock, &mut fwd, batch, 1000, false);
        let per_round = (fwd.forwarded - before) as f64 / 1000.0;
        eprintln!(
            "ixgbe_fwd batch {batch}: {per_round:.2} packets per round (expected {})",
            2 * batch
        );
        group.throughput(Throughput::Elements(2 * batch as u64));
        group.bench_function(BenchmarkId::new("total", batch), |bch| {
            bch.iter_custom(|iters| rounds(&clock, &mut fwd, batch, iters, false).0)
        });
        group.bench_function(BenchmarkId::new("excl_generator", batch), |bch| {
            bch.iter_custom(|iters| {
                let (total, model) = rounds(&clock, &mut fwd, batch, iters, true);
                total.saturating_sub(model)
            })
        });
        group.bench_function(BenchmarkId::new("generator_only", batch), |bch| {
            bch.iter_custom(|iters| rounds(&clock, &mut fwd, batch, iters, true).1)
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
