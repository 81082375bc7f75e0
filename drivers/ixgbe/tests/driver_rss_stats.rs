//! RSS spreads flows over every RX queue (each flow staying on one queue), and the
//! counters (hardware, accumulated because they clear on read; and per queue) match the
//! packets sent.

mod driver_support;

use std::collections::HashMap;

use driver_support::*;
use userpci_framework::dma::PoolBuffer;

const QUEUES: u16 = 4;

#[test]
fn rss_spreads_flows_over_all_queues_and_keeps_each_flow_on_one() {
    let bus = pair();
    let a = device(&bus, A, options(1, 1));
    let b = device(&bus, B, options(QUEUES, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rxs: Vec<_> = (0..QUEUES).map(|q| b.take_rx_queue(q).unwrap()).collect();
    let flows = 64u32;
    let mut queue_of_flow: HashMap<u32, u16> = HashMap::new();
    let mut per_queue = vec![0u64; usize::from(QUEUES)];
    let mut bufs = Vec::with_capacity(32);
    for round in 0..4u64 {
        let mut pkts: Vec<PoolBuffer> = (0..flows)
            .map(|fl| {
                packet(
                    &a,
                    &frame(round * 1000 + u64::from(fl), 100, &flow(fl, MAC_B, MAC_A)),
                )
            })
            .collect();
        send_all(&mut tx, &mut pkts);
        settle(&bus);
        for rx in &mut rxs {
            while rx.rx_batch(&mut bufs, 32) > 0 {
                for p in bufs.drain(..) {
                    // The flow is in the source port (1024 + flow).
                    let bytes = p.as_slice();
                    let fl = u32::from(u16::from_be_bytes([bytes[34], bytes[35]]) - 1024);
                    let q = rx.index();
                    per_queue[usize::from(q)] += 1;
                    let first = *queue_of_flow.entry(fl).or_insert(q);
                    assert_eq!(first, q, "flow {fl} moved from queue {first} to {q}");
                }
            }
        }
    }
    assert_eq!(queue_of_flow.len(), flows as usize, "every flow arrived");
    assert_eq!(per_queue.iter().sum::<u64>(), 4 * u64::from(flows));
    for (q, n) in per_queue.iter().enumerate() {
        assert!(*n > 0, "queue {q} got nothing: {per_queue:?}");
    }
    // The hardware's per-queue counters (queue i in statistics set i) agree.
    let stats = b.stats();
    for (q, n) in per_queue.iter().enumerate() {
        assert_eq!(stats.queues[q].rx_packets, *n, "QPRC({q})");
    }
}

#[test]
fn counters_match_the_packets_sent_and_accumulate_across_reads() {
    let bus = pair();
    let (a, b) = devices(&bus, options(2, 2));
    let mut tx0 = a.take_tx_queue(0).unwrap();
    let mut tx1 = a.take_tx_queue(1).unwrap();
    let mut rx0 = b.take_rx_queue(0).unwrap();
    let mut rx1 = b.take_rx_queue(1).unwrap();
    let len = 200usize;
    let mut total = 0u64;
    let mut received = 0u64;
    let mut bufs = Vec::with_capacity(64);
    for round in 0..3u64 {
        let n0 = 10 + round * 7;
        let n1 = 5 + round * 3;
        let mut p0: Vec<_> = (0..n0)
            .map(|k| packet(&a, &frame(k, len, &flow(k as u32, MAC_B, MAC_A))))
            .collect();
        let mut p1: Vec<_> = (0..n1)
            .map(|k| packet(&a, &frame(k, len, &flow(k as u32, MAC_B, MAC_A))))
            .collect();
        send_all(&mut tx0, &mut p0);
        send_all(&mut tx1, &mut p1);
        total += n0 + n1;
        settle(&bus);
        for rx in [&mut rx0, &mut rx1] {
            while rx.rx_batch(&mut bufs, 64) > 0 {
                received += bufs.drain(..).count() as u64;
            }
        }
        // Reading in between clears the hardware counters: the totals must still add up.
        let sa = a.stats();
        let sb = b.stats();
        assert_eq!(sa.tx_packets, total, "GPTC after round {round}");
        assert_eq!(sb.rx_packets, total, "GPRC after round {round}");
        assert_eq!(received, total);
    }
    let sa = a.stats();
    let sb = b.stats();
    // GOTC / GORC count the FCS the MAC appends (IFCS): 4 more bytes per frame.
    assert_eq!(sa.tx_bytes, total * (len as u64 + 4), "GOTC");
    assert_eq!(sb.rx_bytes, total * (len as u64 + 4), "GORC");
    assert_eq!(sa.queues[0].tx_packets, tx0.stats().packets, "QPTC(0)");
    assert_eq!(sa.queues[1].tx_packets, tx1.stats().packets, "QPTC(1)");
    assert_eq!(
        sb.queues[0].rx_packets + sb.queues[1].rx_packets,
        rx0.stats().packets + rx1.stats().packets
    );
    assert_eq!(sb.rx_missed + sb.crc_errors + sb.length_errors, 0);
    assert_eq!(
        rx0.stats().bytes + rx1.stats().bytes,
        total * len as u64,
        "CRC stripped"
    );
}
