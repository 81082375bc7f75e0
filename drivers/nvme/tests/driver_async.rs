//! The async API on the framework runtime: read / write / flush / write zeroes / trim on
//! `block_on`, futures waiting for room in a full queue, and a dropped in-flight future.

mod driver_support;

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use driver_support::*;
use userpci_framework::runtime::{block_on, spawn_local};
use userpci_nvme::{Error, QpairOptions};

#[test]
fn reads_and_writes_on_block_on() {
    let bus = bus("blocks = 4096\nshadow_doorbells = true");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    block_on(async {
        let qp = ctrl.create_async_qpair(QpairOptions::default()).unwrap();
        assert_eq!(qp.qid(), 1);
        let data = patterned(&bus, 16 * 1024, 3);
        qp.write(&ns, 10, &data).await.unwrap();
        let mut back = zeroed(&bus, 16 * 1024);
        qp.read(&ns, 10, &mut back).await.unwrap();
        assert_eq!(back.as_slice(), data.as_slice());

        qp.write_zeroes(&ns, 10, 4).await.unwrap();
        qp.trim(&ns, 20, 4).await.unwrap();
        qp.flush(&ns).await.unwrap();
        qp.read(&ns, 10, &mut back).await.unwrap();
        for block in 0..32 {
            let range = block * 512..(block + 1) * 512;
            if (0..4).contains(&block) || (10..14).contains(&block) {
                assert!(
                    back.as_slice()[range].iter().all(|&b| b == 0),
                    "block {block}"
                );
            } else {
                assert_eq!(back.as_slice()[range.clone()], data.as_slice()[range]);
            }
        }
        let err = qp.read(&ns, 4095, &mut back).await.unwrap_err();
        assert!(matches!(err, Error::LbaOutOfRange { .. }), "{err}");
        assert_eq!(qp.in_flight(), 0);
        assert_eq!(qp.stats().errors, 0);
    })
    .unwrap();
    assert_eq!(model_stats(&bus).violations.total(), 0);
}

#[test]
fn more_futures_than_queue_slots_wait_for_room() {
    let bus = bus("blocks = 8192");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let finished = Rc::new(Cell::new(0));
    block_on(async {
        // Three commands in flight at most, twenty tasks.
        let qp = Rc::new(
            ctrl.create_async_qpair(QpairOptions {
                entries: 4,
                ..QpairOptions::default()
            })
            .unwrap(),
        );
        let handles: Vec<_> = (0..20u64)
            .map(|i| {
                let (qp, ns, bus, finished) =
                    (qp.clone(), ns.clone(), bus.clone(), finished.clone());
                spawn_local(async move {
                    let data = patterned(&bus, 4096, 100 + i);
                    qp.write(&ns, i * 8, &data).await.unwrap();
                    let mut back = zeroed(&bus, 4096);
                    qp.read(&ns, i * 8, &mut back).await.unwrap();
                    assert!(check(back.as_slice(), 100 + i), "task {i}");
                    finished.set(finished.get() + 1);
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
        assert_eq!(qp.stats().completed, 40);
    })
    .unwrap();
    assert_eq!(finished.get(), 20);
}

#[test]
fn dropping_an_in_flight_future_waits_for_its_command() {
    // 1 ms per command on the virtual clock: the future is dropped while its read is in
    // flight, and the drop polls (advancing virtual time) until the read completed.
    let bus = bus("latency_ns = 1000000\nblocks = 4096");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    block_on(async {
        let qp = ctrl.create_async_qpair(QpairOptions::default()).unwrap();
        let mut buf = zeroed(&bus, 4096);
        {
            let mut read = pin!(qp.read(&ns, 0, &mut buf));
            std::future::poll_fn(|cx| {
                assert!(read.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(qp.in_flight(), 1);
            assert_eq!(model_stats(&bus).reads, 0, "doorbell not yet written");
            // Let the poller write the doorbell: the model fetches the read.
            userpci_framework::runtime::yield_now().await;
            assert_eq!(model_stats(&bus).reads, 1);
            assert_eq!(qp.in_flight(), 1);
        }
        // The drop returned only after the command completed.
        assert_eq!(qp.in_flight(), 0);
        assert_eq!(model_stats(&bus).reads, 1);
        assert_eq!(qp.stats().completed, 1);
        // The slot is free again.
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    })
    .unwrap();
}
