//! After setup, the raw data path allocates nothing: submitting reads and writes (single and
//! split by MDTS, with PRP lists), writing doorbells, reaping completions and handing pool
//! buffers back. A counting global allocator counts the calls made on this thread while
//! counting is switched on.
//!
//! The model runs inside the doorbell writes on the same thread, so its allocations would
//! count too; the counted loop touches only namespace chunks written during warm-up, and the
//! model keeps its queues' capacity, so what is counted is the driver's path.

mod driver_support;

use driver_support::*;
use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_nvme::{IoQueuePair, QpairOptions};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

type Qp = IoQueuePair<SimFunction, u32, PoolBuffer>;

/// Writes then reads every buffer of the pool `rounds` times.
/// `back` is the caller's, with room for the whole pool, so the loop itself allocates nothing.
fn run(
    qp: &mut Qp,
    pool: &std::sync::Arc<BufferPool>,
    ns: &userpci_nvme::Namespace,
    rounds: u32,
    back: &mut Vec<PoolBuffer>,
) -> u64 {
    let mut completed = 0u64;
    for round in 0..rounds {
        for i in 0..pool.capacity() as u32 {
            let buf = pool.get().expect("pool sized for the queue");
            let lba = u64::from(i) * 64;
            let submitted = if round % 2 == 0 {
                qp.submit_write(ns, lba, buf, i)
            } else {
                qp.submit_read(ns, lba, buf, i)
            };
            assert!(submitted.is_ok());
        }
        while back.len() < pool.capacity() {
            qp.process_completions(0, &mut |c| {
                assert!(c.result.is_ok());
                back.push(c.buffer.expect("data request"));
                completed += 1;
            });
        }
        back.clear();
    }
    completed
}

#[test]
fn the_raw_data_path_does_not_allocate() {
    let bus = bus("mdts = 2\nblocks = 8192");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    // 24 KiB buffers: MDTS 16 KiB splits each into two commands, one with a PRP list.
    let pool = BufferPool::new(bus.dma_space(), "io", 24 * 1024, 16, 16).unwrap();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 64,
            ..QpairOptions::default()
        })
        .unwrap();
    // Warm-up: thread-local pool cache, the model's namespace chunks and queues.
    let mut back = Vec::with_capacity(pool.capacity());
    assert_eq!(run(&mut qp, &pool, &ns, 4, &mut back), 64);
    let mut completed = 0;
    let calls = allocator_calls(|| completed = run(&mut qp, &pool, &ns, 20, &mut back));
    assert_eq!(completed, 320);
    assert_eq!(calls, 0, "allocator calls in the data path");
    assert_eq!(qp.stats().submitted, 2 * (64 + 320));
}

#[test]
fn the_counter_sees_allocations() {
    let calls = allocator_calls(|| {
        let v: Vec<u8> = Vec::with_capacity(100);
        std::hint::black_box(&v);
    });
    assert_eq!(calls, 2);
}

#[test]
fn polling_asynchronous_events_does_not_allocate() {
    use userpci_nvme::spec::features::{AsyncEventConfig, ThresholdKind};
    let bus = bus("");
    let ctrl = controller(&bus);
    let config = AsyncEventConfig(AsyncEventConfig::SMART_CRITICAL_WARNINGS);
    assert_eq!(ctrl.enable_async_events(config).unwrap(), 4);
    let mut seen = 0u32;
    // Warm-up: one event through the whole path (the model's queues reach their capacity).
    ctrl.set_temperature_threshold(ThresholdKind::Over, 300)
        .unwrap();
    ctrl.set_temperature_threshold(ThresholdKind::Over, 0x157)
        .unwrap();
    assert_eq!(ctrl.poll_async_events(&mut |_| seen += 1), 1);
    for round in 0..5 {
        ctrl.set_temperature_threshold(ThresholdKind::Over, 300)
            .unwrap();
        ctrl.set_temperature_threshold(ThresholdKind::Over, 0x157)
            .unwrap();
        // Counted: reap, read the SMART page, arm the request again, hand the notice over.
        let calls = allocator_calls(|| {
            assert_eq!(
                ctrl.poll_async_events(&mut |n| {
                    assert!(n.log.is_ok());
                    seen += 1;
                }),
                1
            );
        });
        assert_eq!(
            calls, 0,
            "allocator calls polling asynchronous events (round {round})"
        );
        let idle = allocator_calls(|| {
            assert_eq!(ctrl.poll_async_events(&mut |_| seen += 1), 0);
        });
        assert_eq!(idle, 0, "allocator calls polling with no event");
    }
    assert_eq!(seen, 6);
}
