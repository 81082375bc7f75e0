//! The 82599 model's hostile-write hook (`model::hostile`): each covered write reaches the
//! hook, and the driver's answer to the values it puts there.

mod driver_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use driver_support::*;
use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_ixgbe::model::{DeviceWrite, IxgbeModel};
use userpci_ixgbe::spec::queue::TDH;
use userpci_ixgbe::IxgbeOptions;

#[test]
fn an_rx_length_past_the_buffer_is_dropped_and_the_next_frame_arrives() {
    let bus = pair();
    let (a, b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let limit = b.pool().buffer_size() + 1;
    let mut first = true;
    model(&bus, B, |m: &mut IxgbeModel| {
        m.set_hostile(Some(Box::new(move |write| {
            if let DeviceWrite::RxWriteback { desc, .. } = write {
                if std::mem::take(&mut first) {
                    desc[12..14].copy_from_slice(&(limit as u16).to_le_bytes());
                }
            }
        })))
    });
    let f = flow(0, MAC_B, MAC_A);
    let mut packets = vec![
        packet(&a, &frame(0, 100, &f)),
        packet(&a, &frame(1, 100, &f)),
    ];
    send_all(&mut tx, &mut packets);
    let got = receive(&bus, &mut rx, 1, 8);
    assert_eq!(got, vec![frame(1, 100, &f)]);
    assert_eq!(rx.stats().bad_length, 1);
    assert_eq!(model(&bus, B, |m| m.hostile_writes()), 2);
}

#[test]
fn tx_status_writes_and_head_reads_reach_the_hook() {
    let bus = pair();
    let (a, _b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    model(&bus, A, |m: &mut IxgbeModel| {
        m.set_hostile(Some(Box::new(move |write| match write {
            DeviceWrite::TxStatus {
                queue,
                slot,
                status,
            } => log.lock().unwrap().push(("dd", queue, slot, *status)),
            DeviceWrite::HeadRead {
                queue,
                tx: true,
                value,
            } => {
                if let Ok(mut log) = log.lock() {
                    log.push(("tdh", queue, 0, *value));
                }
                *value = 0xffff;
            }
            _ => {}
        })))
    });
    let f = flow(0, MAC_B, MAC_A);
    // 40 frames: the driver asks for write-backs (RS) once per batch of descriptors.
    let mut packets: Vec<_> = (0..40).map(|k| packet(&a, &frame(k, 64, &f))).collect();
    send_all(&mut tx, &mut packets);
    settle(&bus);
    let regs = a.function().map_bar(0).unwrap();
    assert_eq!(regs.read32(TDH(0)), 0xffff, "the hook's TDH");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|&(what, q, _, v)| (what, q, v) == ("dd", 0, 1)),
        "a DD write-back: {seen:?}"
    );
    assert!(
        seen.contains(&("tdh", 0, 0, 40)),
        "TDH 40 after 40 descriptors: {seen:?}"
    );
}

/// Found with the hook (`fuzz_writebacks` shows it as a ring that never drains): a device
/// that processes every descriptor (`TDH` reaches `TDT`) but whose `DD` write-backs are lost
/// left the ring full for good and was never found hung, since a head equal to the tail was
/// excused. With the idle poll asking for held-back write-backs each time, two windows of
/// no cleaning at head = tail are now a hang.
#[test]
fn lost_tx_write_backs_are_a_hang() {
    let bus = pair();
    let options = IxgbeOptions {
        tx_hang_timeout: Some(Duration::from_millis(40)),
        ..options(1, 1)
    };
    let (a, _b) = devices(&bus, options);
    let mut tx = a.take_tx_queue(0).unwrap();
    model(&bus, A, |m: &mut IxgbeModel| {
        m.set_hostile(Some(Box::new(|write| {
            if let DeviceWrite::TxStatus { status, .. } = write {
                *status = 0;
            }
        })))
    });
    let f = flow(0, MAC_B, MAC_A);
    let mut packets: Vec<_> = (0..20).map(|k| packet(&a, &frame(k, 64, &f))).collect();
    send_all(&mut tx, &mut packets);
    for _ in 0..20 {
        tx.tx_batch(&mut Vec::new());
        bus.clock().advance(Duration::from_millis(10));
    }
    assert_eq!(tx.in_flight(), 20, "nothing cleaned: every DD lost");
    assert!(
        tx.hangs() >= 1,
        "no hang reported in 200 ms (timeout 40 ms)"
    );
    let regs = a.function().map_bar(0).unwrap();
    assert_eq!(regs.read32(TDH(0)), 20, "the device processed everything");
}
