//! 82599 model, transmit: descriptor rings to the sink, write-back modes (RS → DD with
//! WTHRESH 0, head write-back, WTHRESH batching), multi-descriptor packets, gating, padding,
//! statistics and TX interrupts.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::PciFunction;
use userpci_framework::dma::DmaDirection;
use userpci_ixgbe::model::regs::{tdwbah, tdwbal, TDWBAL_HEAD_WB_EN};
use userpci_ixgbe::spec::desc::*;
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;
use userpci_ixgbe::spec::stats;

fn up() -> Port {
    let bus = bus("link_delay_us = 10");
    let port = Port::open(&bus, A);
    port.bring_up();
    port
}

#[test]
fn a_tx_ring_sends_frames_to_the_sink_and_writes_dd_back() {
    let port = up();
    let mut tx = TxRing::new(&port, 0, 16, 0);
    let frames: Vec<Vec<u8>> = (0..5)
        .map(|i| frame_to([0xFF; 6], 100 + i, i as u8))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    tx.send(&port, &refs);
    assert_eq!(port.r(TDH(0)), 5, "the device consumed every descriptor");
    for slot in 0..5 {
        assert!(tx.dd(slot), "DD of {slot}");
        assert_eq!(tx.descs.get(slot).writeback().status, TXD_STAT_DD);
    }
    assert!(!tx.dd(5));
    port.model(|m| {
        let sink = m.sink();
        assert_eq!(sink.frames_sent(), 5);
        let sent: Vec<Vec<u8>> = sink.frames().map(|f| f.data.to_vec()).collect();
        assert_eq!(sent, frames);
        assert!(sink.frames().all(|f| f.fcs && f.queue == 0));
    });
    // Clear-on-read statistics: GOTC counts the FCS too.
    assert_eq!(port.r(stats::GPTC), 5);
    assert_eq!(port.r(stats::GPTC), 0, "cleared by the read");
    let octets: u32 = (0..5).map(|i| 100 + i + 4).sum();
    assert_eq!(port.r(stats::GOTCL), octets);
    assert_eq!(port.r(stats::GOTCH), 0);
    assert_eq!(port.r(stats::GOTCL), 0);
    assert_eq!(port.r(stats::TPT), 5);
    assert_eq!(port.r(0x040F4), 5, "BPTC: broadcast");
    assert_eq!(port.r(stats::QPTC(0)), 5);
    assert_eq!(port.r(stats::QBTC_L(0)), octets - 20);
}

#[test]
fn only_descriptors_with_rs_get_dd_and_packets_may_span_descriptors() {
    let port = up();
    let mut tx = TxRing::new(&port, 2, 8, 0);
    let frame = frame_to(MAC, 300, 1);
    // Three buffers, RS on the last one only.
    for (i, part) in [&frame[..100], &frame[100..250], &frame[250..]]
        .iter()
        .enumerate()
    {
        let slot = tx.tail;
        tx.bufs.write_bytes(slot * TX_BUF, part);
        let mut cmd = TXD_DCMD_DEXT | TXD_DTYP_DATA | TXD_DCMD_IFCS | part.len() as u32;
        if i == 2 {
            cmd |= TXD_DCMD_EOP | TXD_DCMD_RS;
        }
        tx.place_desc(AdvTxRead {
            buffer_addr: tx.buf(slot),
            cmd_type_len: cmd,
            olinfo_status: 300 << TXD_PAYLEN_SHIFT,
        });
    }
    // Give the first two only: the packet waits for its EOP.
    port.w(TDT(2), 2);
    assert_eq!(port.r(TDH(2)), 0);
    assert_eq!(port.model(|m| m.sink().frames_sent()), 0);
    tx.kick(&port);
    assert_eq!(port.r(TDH(2)), 3);
    assert!(!tx.dd(0) && !tx.dd(1) && tx.dd(2));
    port.model(|m| {
        let last = m.sink().last().unwrap();
        assert_eq!(last.data, frame.as_slice());
        assert_eq!(last.queue, 2);
    });
    // A context descriptor is consumed; a TSO packet is consumed and dropped.
    tx.place_desc(AdvTxRead {
        buffer_addr: 0,
        cmd_type_len: TXD_DCMD_DEXT | TXD_DTYP_CTXT | TXD_DCMD_RS,
        olinfo_status: 0,
    });
    let slot = tx.tail;
    tx.bufs.write_bytes(slot * TX_BUF, &frame);
    tx.place_desc(AdvTxRead {
        buffer_addr: tx.buf(slot),
        cmd_type_len: AdvTxRead::packet(0, 300).cmd_type_len | TXD_DCMD_TSE,
        olinfo_status: 0,
    });
    tx.kick(&port);
    assert_eq!(port.r(TDH(2)), 5);
    assert!(tx.dd(3) && tx.dd(4));
    let stats = port.stats();
    assert_eq!(stats.tx_context_descriptors, 1);
    assert_eq!(stats.tx_dropped, 1);
    assert_eq!(stats.tx_frames, 1);
}

#[test]
fn short_frames_are_padded_and_legacy_descriptors_work() {
    let port = up();
    let mut tx = TxRing::new(&port, 0, 8, 0);
    let short = frame_to(MAC, 42, 3);
    let slot = tx.tail;
    tx.bufs.write_bytes(0, &short);
    // Legacy: length, CMD.EOP | IFCS | RS, DEXT clear.
    tx.place_desc(AdvTxRead {
        buffer_addr: tx.buf(slot),
        cmd_type_len: 42 | TXD_DCMD_EOP | TXD_DCMD_IFCS | TXD_DCMD_RS,
        olinfo_status: 0,
    });
    tx.kick(&port);
    assert!(tx.dd(0));
    port.model(|m| {
        let last = m.sink().last().unwrap();
        assert_eq!(last.data.len(), 60);
        assert_eq!(&last.data[..42], short.as_slice());
        assert!(last.data[42..].iter().all(|&b| b == 0));
    });
    // Without TXPADEN the frame goes as it is.
    port.clear(HLREG0, HLREG0_TXPADEN);
    tx.place(&short);
    tx.kick(&port);
    assert_eq!(port.model(|m| m.sink().last().unwrap().data.len()), 42);
}

#[test]
fn transmit_needs_te_the_queue_enable_and_the_link() {
    let bus = bus("link_delay_us = 100");
    let port = Port::open(&bus, A);
    port.reset();
    let mut tx = TxRing::new(&port, 1, 8, 0);
    tx.place(&frame_to(MAC, 64, 0));
    tx.kick(&port);
    assert_eq!(port.r(TDH(1)), 0, "DMATXCTL.TE clear");
    port.set(DMATXCTL, DMATXCTL_TE);
    assert_eq!(port.r(TDH(1)), 0, "link down: transmit DMA stops");
    port.link_up();
    assert_eq!(port.r(TDH(1)), 1, "sent when the link came up");
    port.clear(TXDCTL(1), TXDCTL_ENABLE);
    tx.place(&frame_to(MAC, 64, 1));
    tx.kick(&port);
    assert_eq!(port.r(TDH(1)), 1, "queue disabled");
    port.set(TXDCTL(1), TXDCTL_ENABLE);
    assert_eq!(port.r(TDH(1)), 2, "processed on enable");
    assert_eq!(port.model(|m| m.sink().frames_sent()), 2);
}

#[test]
fn head_write_back_replaces_dd() {
    let port = up();
    let mut tx = TxRing::new(&port, 0, 8, 0);
    let head = port
        .function
        .dma_space()
        .allocate_array::<u32>(1, DmaDirection::Bidirectional)
        .unwrap();
    head.set(0, 0xDEAD);
    port.w(tdwbal(0), head.iova() as u32 | TDWBAL_HEAD_WB_EN);
    port.w(tdwbah(0), (head.iova() >> 32) as u32);
    tx.send(&port, &[&frame_to(MAC, 64, 0), &frame_to(MAC, 64, 1)]);
    assert_eq!(head.get(0), 2);
    assert!(!tx.dd(0) && !tx.dd(1), "no descriptor write-back");
}

#[test]
fn wthresh_batches_write_backs_until_the_threshold_or_a_flush() {
    let port = up();
    let mut tx = TxRing::new(&port, 0, 16, 4);
    let frame = frame_to(MAC, 64, 0);
    tx.send(&port, &[&frame, &frame, &frame]);
    assert_eq!(port.r(TDH(0)), 3);
    assert!(!tx.dd(0) && !tx.dd(2), "3 of WTHRESH 4 accumulated");
    tx.send(&port, &[&frame]);
    assert!((0..4).all(|s| tx.dd(s)), "written back at the threshold");
    tx.send(&port, &[&frame]);
    assert!(!tx.dd(4));
    port.set(TXDCTL(0), TXDCTL_SWFLSH);
    assert!(tx.dd(4), "flushed by SWFLSH");
    assert_eq!(port.r(TXDCTL(0)) & TXDCTL_SWFLSH, 0, "self-clearing");
    // With an EITR interval on the queue's vector, the accumulated ones go when it ends.
    port.w(GPIE, GPIE_MSIX_MODE);
    port.map_queue(0, true, 2);
    port.w(EITR(2), eitr_interval(100));
    tx.send(&port, &[&frame]);
    assert!(!tx.dd(5));
    port.sleep(Duration::from_micros(99));
    assert!(!tx.dd(5));
    port.sleep(Duration::from_micros(1));
    assert!(tx.dd(5));
}

#[test]
fn tx_write_backs_raise_the_queue_vector_with_auto_clear_and_auto_mask() {
    let port = up();
    let mut tx = TxRing::new(&port, 5, 8, 0);
    port.w(GPIE, GPIE_MSIX_MODE | GPIE_PBA_SUPPORT | GPIE_EIAME);
    port.map_queue(5, true, 7);
    port.w(EIAC, 1 << 7);
    let frame = frame_to(MAC, 64, 0);
    tx.send(&port, &[&frame]);
    assert_eq!(port.interrupts(7), 0, "masked");
    assert_eq!(
        port.r(EICS) & (1 << 7),
        1 << 7,
        "cause pending (EICS reads EICR)"
    );
    port.w(EIMS, 1 << 7);
    assert_eq!(port.interrupts(7), 1, "unmasking fires the pending cause");
    assert_eq!(port.r(EICS) & (1 << 7), 0, "auto-cleared (EIAC)");
    tx.send(&port, &[&frame]);
    assert_eq!(port.interrupts(7), 1);
    // Auto-mask: EIAM with GPIE.EIAME masks the vector once it fired.
    port.w(EIAM, 1 << 7);
    tx.send(&port, &[&frame]);
    assert_eq!(port.interrupts(7), 1);
    assert_eq!(port.r(EIMS) & (1 << 7), 0, "auto-masked");
    tx.send(&port, &[&frame]);
    assert_eq!(port.interrupts(7), 0);
    // Descriptors without RS raise nothing.
    port.w(EIMS, 1 << 7);
    port.interrupts(7);
    let slot = tx.tail;
    tx.bufs.write_bytes(slot * TX_BUF, &frame);
    tx.place_desc(AdvTxRead {
        buffer_addr: tx.buf(slot),
        cmd_type_len: AdvTxRead::packet(0, 64).cmd_type_len & !TXD_DCMD_RS,
        olinfo_status: 0,
    });
    tx.kick(&port);
    assert_eq!(port.interrupts(7), 0);
}

#[test]
fn per_queue_counters_follow_the_tqsm_mapping() {
    let port = up();
    let mut tx3 = TxRing::new(&port, 3, 8, 0);
    let mut tx6 = TxRing::new(&port, 6, 8, 0);
    // Queue 6 (TQSM(1) byte 2) counts in set 9; queue 3 stays in set 0.
    port.w(TQSM(1), 9 << 16);
    tx3.send(&port, &[&frame_to(MAC, 64, 0)]);
    tx6.send(&port, &[&frame_to(MAC, 100, 0), &frame_to(MAC, 100, 1)]);
    assert_eq!(port.r(stats::QPTC(0)), 1);
    assert_eq!(port.r(stats::QPTC(9)), 2);
    assert_eq!(port.r(stats::QBTC_L(9)), 200);
    assert_eq!(
        port.r(0x06030 + 0x40 * 9),
        0,
        "the 82598 alias reads the same, cleared"
    );
}
