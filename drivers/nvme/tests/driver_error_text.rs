//! The text of the errors a caller gets for bad input to the NVMe driver (issue 12 item 5):
//! an LBA range outside the namespace, an oversize I/O, a full queue, an unusable buffer, a
//! bad log page length and a shutdown that does not complete. Each names the device, the
//! value and what was expected; the whole message is checked.

mod driver_support;

use driver_support::*;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_nvme::{IoQueuePair, QpairOptions};

type Qp = IoQueuePair<SimFunction, u64, DmaBuffer>;

#[test]
fn an_lba_range_outside_the_namespace() {
    let bus = bus("blocks = 1000");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    let err = qp.submit_read(&ns, 999, zeroed(&bus, 1024), 1).unwrap_err();
    assert_eq!(
        err.error.to_string(),
        "0000:01:00.0: namespace 1: blocks 999..999+2 are outside its 1000 blocks"
    );
    let err = qp.submit_write_zeroes(&ns, u64::MAX, 2, 2).unwrap_err();
    assert_eq!(
        err.error.to_string(),
        format!(
            "0000:01:00.0: namespace 1: blocks {0}..{0}+2 are outside its 1000 blocks",
            u64::MAX
        )
    );
}

#[test]
fn an_io_larger_than_the_queue_can_carry() {
    // MDTS 2: 16 KiB per command, so 64 KiB needs 4 commands; the queue holds 3.
    let bus = bus("mdts = 2");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl
        .create_io_qpair(QpairOptions {
            entries: 4,
            ..QpairOptions::default()
        })
        .unwrap();
    let err = qp
        .submit_write(&ns, 0, patterned(&bus, 64 * 1024, 1), 1)
        .unwrap_err();
    assert_eq!(
        err.error.to_string(),
        "0000:01:00.0: queue 1: a request of 128 blocks needs 4 commands, more than the 3 the \
         queue holds"
    );
}

#[test]
fn a_full_queue() {
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
    let err = qp
        .submit_write(&ns, 3, patterned(&bus, 512, 3), 3)
        .unwrap_err();
    assert_eq!(
        err.error.to_string(),
        "0000:01:00.0: queue 1 is full (3 commands in flight, 0 submission entries free, 1 \
         needed); process completions, then retry"
    );
    assert!(err.error.is_retriable());
}

#[test]
fn a_buffer_the_transfer_cannot_use() {
    let bus = bus("");
    let ctrl = controller(&bus);
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: Qp = ctrl.create_io_qpair(QpairOptions::default()).unwrap();
    let odd = zeroed(&bus, 700);
    let iova = odd.iova();
    let err = qp.submit_write(&ns, 0, odd, 1).unwrap_err();
    assert_eq!(
        err.error.to_string(),
        format!(
            "0000:01:00.0: buffer at IOVA {iova:#x} (700 bytes): length is not a non-zero \
             multiple of the namespace's block size"
        )
    );
    // A read into memory mapped for the device to read only.
    let to_device = bus
        .dma_space()
        .allocate_buffer(512, DmaDirection::ToDevice)
        .unwrap();
    let iova = to_device.iova();
    let err = qp.submit_read(&ns, 0, to_device, 2).unwrap_err();
    assert_eq!(
        err.error.to_string(),
        format!(
            "0000:01:00.0: buffer at IOVA {iova:#x} (512 bytes): its DMA direction does not let \
             the device move data that way"
        )
    );
}

#[test]
fn a_log_page_length_that_is_not_whole_dwords() {
    let bus = bus("");
    let ctrl = controller(&bus);
    let mut page = [0u8; 514];
    let err = ctrl
        .read_log_page(0x02, u32::MAX, 0, &mut page)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: invalid Get Log Page request for log page 0x02: 514 bytes at offset 0: \
         the length must be a non-zero multiple of 4 bytes (NUMD counts whole dwords)"
    );
}

#[test]
fn a_shutdown_past_its_deadline() {
    let bus = bus("shutdown_delay_us = 3000000");
    let ctrl = controller(&bus);
    let err = ctrl
        .shutdown_within(std::time::Duration::from_millis(250))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: normal shutdown not complete after 250 ms (deadline 250 ms): CSTS.SHST \
         is 01b (shutdown processing occurring), expected 10b (shutdown processing complete)"
    );
}
