//! A worker's counters and latency histogram, and the progress line shared by the cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms track: one minute.
pub(super) const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A worker's counters.
pub(super) struct CoreStats {
    pub(super) core: usize,
    pub(super) qid: u16,
    pub(super) ios: u64,
    pub(super) errors: u64,
    pub(super) mismatches: u64,
    pub(super) elapsed: Duration,
    pub(super) histogram: Histogram<u64>,
}

impl CoreStats {
    pub(super) fn new(core: usize) -> Self {
        CoreStats {
            core,
            qid: 0,
            ios: 0,
            errors: 0,
            mismatches: 0,
            elapsed: Duration::ZERO,
            histogram: new_histogram(),
        }
    }

    pub(super) fn record(&mut self, latency_ns: u64) {
        self.ios += 1;
        // The progress line's count, shared by the cores: one atomic add per batch of I/Os
        // keeps the cache line quiet.
        if self.ios.is_multiple_of(PROGRESS_BATCH) {
            PROGRESS_IOS.fetch_add(PROGRESS_BATCH, Ordering::Relaxed);
        }
        self.histogram.saturating_record(latency_ns);
    }
}

/// I/Os completed by all cores so far, in steps of [`PROGRESS_BATCH`], for the progress line.
pub(super) static PROGRESS_IOS: AtomicU64 = AtomicU64::new(0);
pub(super) const PROGRESS_BATCH: u64 = 1024;

/// Waits for the workers, printing a progress line once a second meanwhile.
pub(super) fn progress_while_running(
    running: &dyn Fn() -> bool,
    bs: u64,
    progress: &mut dyn FnMut(&str),
) {
    let start = Instant::now();
    let mut last = (start, PROGRESS_IOS.load(Ordering::Relaxed));
    while running() {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let since = now.duration_since(last.0);
        if since >= Duration::from_secs(1) {
            let ios = PROGRESS_IOS.load(Ordering::Relaxed);
            let iops = (ios - last.1) as f64 / since.as_secs_f64();
            progress(&format!(
                "{:>6.1} s  {:>12.0} IOPS  {:>10.1} MB/s",
                now.duration_since(start).as_secs_f64(),
                iops,
                iops * bs as f64 / 1e6
            ));
            last = (now, ios);
        }
    }
}

pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds are valid")
}

pub(super) fn latency_fields(h: &Histogram<u64>) -> (f64, u64, u64, u64, u64, u64) {
    if h.is_empty() {
        return (0.0, 0, 0, 0, 0, 0);
    }
    (
        h.mean(),
        h.min(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    )
}
