//! The raw data path against the model: write, read back, compare, across LBAs, sizes, buffer
//! offsets (PRP edge cases), MDTS splits, both block sizes, shadow doorbells, backpressure and
//! the checks made before submission.

mod driver_support;

use std::sync::Arc;

use driver_support::*;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::{BufferPool, DmaBuffer, DmaDirection, PoolBuffer};
use userpci_nvme::{ControllerOptions, Error, IoQueuePair, QpairOptions};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

fn write_read(
    qp: &mut Qp,
    bus: &userpci_framework::backend::sim::SimBus,
    ns: &userpci_nvme::Namespace,
    lba: u64,
    len: usize,
    seed: u64,
) {
    qp.submit_write(ns, lba, patterned(bus, len, seed), seed)
        .unwrap();
    let c = one(qp);
    assert_eq!(c.token, seed);
    c.result.unwrap();
    qp.submit_read(ns, lba, zeroed(bus, len), seed + 1).unwrap();
    let c = one(qp);
    c.result.unwrap();
    assert!(
        check(c.buffer.unwrap().as_slice(), seed),
        "lba {lba} len {len}"
    );
}

#[test]
fn writes_read_back_across_lbas_and_sizes() {
    for params in [
        "lba_size = 512\nblocks = 65536\nmdts = 5",
        "lba_size = 4096\nblocks = 8192\nmdts = 5\nshadow_doorbells = true",
    ] {
        let bus = bus(params);
        let ctrl = controller(&bus);
        let ns = ctrl.namespaces()[0].clone();
        let bs = ns.block_size() as usize;
        let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
        let mut seed = 1;
        for (lba, blocks) in [
            (0u64, 1usize),
            (1, 7),
            (100, 8),
            (1000, 9),
            (ns.blocks() - 1, 1),
            (4095, 64),
            (2000, 33),
        ] {
            write_read(&mut qp, &bus, &ns, lba, blocks * bs, seed);
            seed += 2;
        }
        // The largest single command (MDTS = 128 KiB) and one just over it (split in two).
        let one_cmd = 128 * 1024;
        let writes = model_stats(&bus).writes;
        write_read(&mut qp, &bus, &ns, 10, one_cmd, 99);
        assert_eq!(model_stats(&bus).writes, writes + 1);
        write_read(&mut qp, &bus, &ns, 10, one_cmd + bs, 101);
        assert_eq!(
            model_stats(&bus).writes,
            writes + 3,
            "split into two commands"
        );
        let stats = qp.stats();
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.bogus.total(), 0);
        assert_eq!(stats.completed, stats.submitted);
        assert_eq!(model_stats(&bus).violations.total(), 0);
        if ctrl.info().shadow_doorbells {
            assert!(stats.doorbell_writes_elided > 0 || stats.doorbell_writes > 0);
        }
    }
}

#[test]
fn an_mdts_split_completes_once_with_every_part_in_place() {
    // MDTS 2: 16 KiB per command; a 100 KiB request is 7 commands.
    let bus = bus("mdts = 2\nblocks = 4096");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    assert_eq!(ns.max_blocks_per_command(), 32);
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    let len = 100 * 1024;
    let writes = model_stats(&bus).writes;
    qp.submit_write(&ns, 300, patterned(&bus, len, 7), 70)
        .unwrap();
    let done = drain(&mut qp, 1, 10);
    assert_eq!(done[0].token, 70);
    done[0].result.as_ref().unwrap();
    assert_eq!(model_stats(&bus).writes - writes, 7);
    assert_eq!(qp.stats().submitted, 7);
    assert_eq!(qp.stats().requests, 1);
    // Read back in differently sized pieces.
    for (offset, pieces) in [(0usize, 1usize), (0, 25), (50 * 1024, 2)] {
        let piece = (len - offset) / pieces;
        for p in 0..pieces {
            let lba = 300 + ((offset + p * piece) / 512) as u64;
            qp.submit_read(&ns, lba, zeroed(&bus, piece), p as u64)
                .unwrap();
            let c = one(&mut qp);
            let buf = c.buffer.unwrap();
            let expected = patterned(&bus, len, 7);
            let start = offset + p * piece;
            assert_eq!(buf.as_slice(), &expected.as_slice()[start..start + piece]);
        }
    }
    // A request needing more commands than the queue has is refused up front.
    let mut small: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 4,
            ..QpairOptions::default()
        })
        .unwrap();
    let err = small
        .submit_write(&ns, 0, patterned(&bus, 64 * 1024, 1), 1)
        .unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::RequestTooLarge {
                commands: 4,
                capacity: 3,
                ..
            }
        ),
        "{}",
        err.error
    );
    assert!(err.buffer.is_some(), "the buffer comes back");
}

#[test]
fn prp_edge_cases_with_offset_buffers_and_chained_lists() {
    // No MDTS limit, 4 MiB per command: a transfer starting inside a page spans 1025 pages,
    // so its PRP list chains over three list pages.
    let bus = bus("mdts = 0\nblocks = 32768");
    let ctrl = controller_with(
        &bus,
        ControllerOptions {
            max_transfer: 4 << 20,
            ..ControllerOptions::default()
        },
    );
    let ns = ctrl.namespaces()[0].clone();
    assert_eq!(ns.max_blocks_per_command(), 8192);
    // Pool buffers of 4608 bytes are laid out 4608 apart: most start inside a page.
    let pool = BufferPool::new(bus.dma_space(), "odd", 4608, 8, 0).unwrap();
    let mut qp: IoQueuePair<SimFunction, usize, PoolBuffer> = ctrl
        .create_io_qpair(QpairOptions {
            entries: 16,
            ..QpairOptions::default()
        })
        .unwrap();
    let mut bufs: Vec<PoolBuffer> = (0..8).map(|_| pool.get().unwrap()).collect();
    let offsets: Vec<u64> = bufs.iter().map(|b| b.iova() % 4096).collect();
    assert!(
        offsets.iter().any(|&o| o != 0),
        "some buffers start inside a page: {offsets:?}"
    );
    for (i, buf) in bufs.iter_mut().enumerate() {
        // 9 blocks: one page at an offset spans two or three pages.
        fill(buf.as_mut_slice(), 500 + i as u64);
    }
    for (i, buf) in bufs.drain(..).enumerate() {
        qp.submit_write(&ns, i as u64 * 9, buf, i).unwrap();
    }
    let done = drain(&mut qp, 8, 10);
    let mut back = Vec::new();
    for c in done {
        c.result.unwrap();
        let mut buf = c.buffer.unwrap();
        buf.as_mut_slice().fill(0);
        back.push((c.token, buf));
    }
    for (i, buf) in back {
        qp.submit_read(&ns, i as u64 * 9, buf, i).unwrap();
    }
    for c in drain(&mut qp, 8, 10) {
        c.result.unwrap();
        assert!(
            check(c.buffer.unwrap().as_slice(), 500 + c.token as u64),
            "buffer {}",
            c.token
        );
    }

    // Exactly two pages, page aligned; and a 4 MiB transfer at an offset (chained list).
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 8,
            ..QpairOptions::default()
        })
        .unwrap();
    write_read(&mut qp, &bus, &ns, 0, 8192, 31);
    let big = 4 << 20;
    let writes = model_stats(&bus).writes;
    write_read(&mut qp, &bus, &ns, 100, big, 33);
    assert_eq!(model_stats(&bus).writes, writes + 1, "one command of 4 MiB");
    assert_eq!(model_stats(&bus).violations.total(), 0);
}

#[test]
fn flush_write_zeroes_and_trim() {
    let bus = bus("blocks = 4096");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    assert!(ns.supports_write_zeroes() && ns.supports_trim());
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    write_read(&mut qp, &bus, &ns, 0, 64 * 512, 5);
    qp.submit_write_zeroes(&ns, 8, 8, 1).unwrap();
    one(&mut qp).result.unwrap();
    qp.submit_trim(&ns, 32, 16, 2).unwrap();
    one(&mut qp).result.unwrap();
    qp.submit_flush(&ns, 3).unwrap();
    let c = one(&mut qp);
    assert!(c.buffer.is_none());
    c.result.unwrap();
    qp.submit_read(&ns, 0, zeroed(&bus, 64 * 512), 4).unwrap();
    let buf = one(&mut qp).buffer.unwrap();
    let expected = patterned(&bus, 64 * 512, 5);
    for block in 0..64 {
        let range = block * 512..(block + 1) * 512;
        let zero = (8..16).contains(&block) || (32..48).contains(&block);
        if zero {
            assert!(
                buf.as_slice()[range].iter().all(|&b| b == 0),
                "block {block} zeroed"
            );
        } else {
            assert_eq!(
                buf.as_slice()[range.clone()],
                expected.as_slice()[range],
                "block {block}"
            );
        }
    }
    let stats = model_stats(&bus);
    assert_eq!(
        (stats.flushes, stats.write_zeroes, stats.dataset_management),
        (1, 1, 1)
    );
}

#[test]
fn a_full_queue_pushes_back_and_recovers() {
    let bus = bus("");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 4,
            ..QpairOptions::default()
        })
        .unwrap();
    for i in 0..3 {
        qp.submit_write(&ns, i, patterned(&bus, 512, i), i).unwrap();
    }
    assert_eq!(qp.in_flight(), 3);
    let rejected = qp
        .submit_write(&ns, 3, patterned(&bus, 512, 3), 3)
        .unwrap_err();
    assert!(
        matches!(
            rejected.error,
            Error::QueueFull {
                qid: 1,
                in_flight: 3,
                ..
            }
        ),
        "{}",
        rejected.error
    );
    assert!(rejected.error.is_retriable());
    assert_eq!(rejected.token, 3);
    let buffer = rejected.buffer.unwrap();
    // Nothing reached the controller before the doorbell.
    assert_eq!(model_stats(&bus).writes, 0);
    let done = drain(&mut qp, 3, 5);
    assert_eq!(done.iter().map(|c| c.token).collect::<Vec<_>>(), [0, 1, 2]);
    qp.submit_write(&ns, 3, buffer, 3).unwrap();
    qp.commit().unwrap();
    assert_eq!(model_stats(&bus).writes, 4);
    assert_eq!(one(&mut qp).token, 3);
}

#[test]
fn requests_are_checked_before_submission() {
    let bus = bus("blocks = 1000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    let err = qp.submit_read(&ns, 999, zeroed(&bus, 1024), 1).unwrap_err();
    assert!(
        matches!(
            err.error,
            Error::LbaOutOfRange {
                lba: 999,
                blocks: 2,
                size: 1000,
                ..
            }
        ),
        "{}",
        err.error
    );
    let err = qp.submit_write(&ns, 0, zeroed(&bus, 700), 1).unwrap_err();
    assert!(
        matches!(err.error, Error::InvalidBuffer { len: 700, .. }),
        "{}",
        err.error
    );
    let err = qp.submit_write_zeroes(&ns, 990, 11, 1).unwrap_err();
    assert!(matches!(err.error, Error::LbaOutOfRange { .. }));
    let err = qp.submit_trim(&ns, 0, 0, 1).unwrap_err();
    assert!(matches!(err.error, Error::LbaOutOfRange { blocks: 0, .. }));
    // A read into memory the device may not write.
    let to_device = bus
        .dma_space()
        .allocate_buffer(512, DmaDirection::ToDevice)
        .unwrap();
    let err = qp.submit_read(&ns, 0, to_device, 1).unwrap_err();
    assert!(
        matches!(err.error, Error::InvalidBuffer { .. }),
        "{}",
        err.error
    );
    assert_eq!(qp.in_flight(), 0);
    assert_eq!(model_stats(&bus).reads + model_stats(&bus).writes, 0);
}

#[test]
fn queue_pairs_on_several_threads() {
    let bus = bus("max_queues = 4\nblocks = 65536\nshadow_doorbells = true");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ctrl = ctrl.clone();
            let ns = ns.clone();
            let bus = Arc::clone(&bus);
            std::thread::spawn(move || {
                let mut qp: Qp = ctrl
                    .create_io_qpair(QpairOptions {
                        entries: 32,
                        ..QpairOptions::default()
                    })
                    .unwrap();
                for i in 0..50u64 {
                    let lba = t * 10_000 + i * 16;
                    write_read(&mut qp, &bus, &ns, lba, 8192, t * 1000 + i * 2 + 1);
                }
                qp.stats()
            })
        })
        .collect();
    for t in threads {
        let stats = t.join().unwrap();
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.completed, 100);
    }
    assert_eq!(model_stats(&bus).violations.total(), 0);
}

#[test]
fn a_reused_qid_starts_with_fresh_shadow_doorbells() {
    // The controller leaves EventIdx where the deleted queue ended; a new queue with the same
    // QID starts at 0, so its slots must be reset or its first doorbell is never rung.
    let bus = bus("shadow_doorbells = true\nblocks = 4096");
    let ctrl = controller(&bus);
    assert!(ctrl.info().shadow_doorbells);
    let ns = ctrl.namespaces()[0].clone();
    for round in 0..3u64 {
        let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
        assert_eq!(qp.qid(), 1);
        for i in 0..5 {
            write_read(&mut qp, &bus, &ns, i * 8, 4096, round * 100 + i * 2 + 1);
        }
        assert_eq!(qp.stats().completed, 10);
    }
    assert_eq!(model_stats(&bus).violations.total(), 0);
}
