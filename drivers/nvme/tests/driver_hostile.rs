//! The model's hostile-write hook (`model::hostile`), and the driver bugs it found: each
//! test states the device behaviour and what the driver must do.

mod driver_support;

use std::sync::{Arc, Mutex};

use driver_support::*;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::DmaBuffer;
use userpci_nvme::model::{DeviceWrite, NvmeModel};
use userpci_nvme::{IoQueuePair, QpairOptions};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

fn set_hook(
    bus: &userpci_framework::backend::sim::SimBus,
    hook: impl FnMut(DeviceWrite<'_>) + Send + 'static,
) {
    bus.with_model(addr(), |m: &mut NvmeModel| {
        m.set_hostile(Some(Box::new(hook)))
    })
    .unwrap();
}

fn hostile_writes(bus: &userpci_framework::backend::sim::SimBus) -> u64 {
    bus.with_model(addr(), |m: &mut NvmeModel| m.hostile_writes())
        .unwrap()
}

#[test]
fn the_hook_rewrites_a_completion_entry() {
    let bus = bus("blocks = 1024");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 8,
            ..QpairOptions::default()
        })
        .unwrap();
    // The I/O completion's CID becomes FFFFh; the driver counts and ignores it.
    set_hook(&bus, |write| {
        if let DeviceWrite::Completion { sqid: 1, entry } = write {
            entry[12..14].copy_from_slice(&[0xff, 0xff]);
        }
    });
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    let mut done = 0;
    qp.process_completions(0, &mut |_| done += 1);
    assert_eq!(done, 0);
    assert_eq!(qp.stats().bogus.cid_reserved, 1);
    assert_eq!(qp.in_flight(), 1);
    assert_eq!(hostile_writes(&bus), 1);
}

#[test]
fn the_hook_rewrites_identify_data_and_sees_eventidx() {
    let bus = bus("blocks = 1024\nshadow_doorbells = true");
    set_hook(&bus, |write| {
        if let DeviceWrite::Identify { cns: 1, data, .. } = write {
            data[4..12].copy_from_slice(b"HOSTILE!");
        }
    });
    let ctrl = controller(&bus);
    assert!(
        ctrl.info().serial.starts_with("HOSTILE!"),
        "{}",
        ctrl.info().serial
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    set_hook(&bus, move |write| {
        if let DeviceWrite::EventIdx { qid, sq, value } = write {
            log.lock().unwrap().push((qid, sq, *value));
        }
    });
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 8,
            ..QpairOptions::default()
        })
        .unwrap();
    qp.submit_write(&ns, 0, patterned(&bus, 4096, 1), 1)
        .unwrap();
    let c = one(&mut qp);
    c.result.unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.contains(&(1, true, 1)),
        "SQ 1 EventIdx after fetching one: {seen:?}"
    );
    assert!(
        seen.iter().any(|&(qid, sq, _)| qid == 1 && !sq),
        "CQ 1 EventIdx: {seen:?}"
    );
}
