//! One-shot blocking I/O on an NVMe queue pair: submit one request, poll until it completes,
//! hand the buffer back. For tools and first programs; the raw polled API
//! ([`IoQueuePair`](crate::nvme::IoQueuePair)) and the `async` one
//! ([`AsyncQueuePair`](crate::nvme::AsyncQueuePair)) are what a data path uses.
//!
//! Each call drains the queue pair before it returns, so use a queue pair of its own for
//! these calls: a completion of a request submitted some other way would be consumed here.

use crate::framework::device::PciFunction;
use crate::nvme::{Error, IoBuffer, IoCompletion, IoQueuePair, Namespace, Rejected, Result};

/// Reads `buffer.len()` bytes from block `lba` into `buffer`; returns the filled buffer.
pub fn read<F: PciFunction, B: IoBuffer>(
    qp: &mut IoQueuePair<F, (), B>,
    ns: &Namespace,
    lba: u64,
    buffer: B,
) -> Result<B> {
    let submitted = qp.submit_read(ns, lba, buffer, ());
    wait(qp, submitted)
}

/// Writes `buffer` at block `lba`; returns the buffer once the controller acknowledged it.
pub fn write<F: PciFunction, B: IoBuffer>(
    qp: &mut IoQueuePair<F, (), B>,
    ns: &Namespace,
    lba: u64,
    buffer: B,
) -> Result<B> {
    let submitted = qp.submit_write(ns, lba, buffer, ());
    wait(qp, submitted)
}

fn wait<F: PciFunction, B: IoBuffer>(
    qp: &mut IoQueuePair<F, (), B>,
    submitted: std::result::Result<(), Rejected<(), B>>,
) -> Result<B> {
    submitted.map_err(Rejected::into_error)?;
    let device = qp.device();
    let mut done: Option<IoCompletion<(), B>> = None;
    // process_completions rings the doorbell and drives timeouts (abort, then reset), so
    // this loop ends: with the completion, or with the error the timeout handling gives it.
    let completion = loop {
        qp.process_completions(1, &mut |c| done = Some(c));
        if let Some(completion) = done.take() {
            break completion;
        }
    };
    completion.result?;
    completion.buffer.ok_or(Error::InvalidOption {
        device,
        what: "completed data request",
        value: 0,
        expected: "its buffer handed back".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use crate::framework::dma::{DmaBuffer, DmaDirection};
    use crate::nvme::{Controller, ControllerOptions, QpairOptions};

    fn controller() -> Controller<crate::framework::backend::sim::SimFunction> {
        let function = crate::sim::nvme_function().unwrap();
        Controller::new(function, ControllerOptions::default()).unwrap()
    }

    #[test]
    fn a_written_block_reads_back_and_a_bad_lba_names_itself() {
        use crate::framework::device::PciFunction;
        let ctrl = controller();
        let ns = ctrl.namespace(1).unwrap().clone();
        let mut qp = ctrl
            .create_io_qpair::<(), DmaBuffer>(QpairOptions::default())
            .unwrap();
        let dma = ctrl.function().dma_space();
        let size = ns.block_size() as usize;
        let mut out = dma.allocate_buffer(size, DmaDirection::ToDevice).unwrap();
        out.as_mut_slice().fill(0xa5);
        super::write(&mut qp, &ns, 3, out).unwrap();
        let into = dma.allocate_buffer(size, DmaDirection::FromDevice).unwrap();
        let back = super::read(&mut qp, &ns, 3, into).unwrap();
        assert!(back.as_slice().iter().all(|&b| b == 0xa5));
        assert_eq!(qp.in_flight(), 0);

        let past_end = dma.allocate_buffer(size, DmaDirection::FromDevice).unwrap();
        let err = super::read(&mut qp, &ns, ns.blocks(), past_end).unwrap_err();
        assert!(err.to_string().contains(&ns.blocks().to_string()), "{err}");
    }

    #[test]
    fn a_refused_submission_converts_into_box_dyn_error_with_its_message() {
        use crate::framework::device::PciFunction;
        let ctrl = controller();
        let ns = ctrl.namespace(1).unwrap().clone();
        let mut qp = ctrl
            .create_io_qpair::<u32, DmaBuffer>(QpairOptions::default())
            .unwrap();
        let dma = ctrl.function().dma_space();
        let buffer = dma
            .allocate_buffer(ns.block_size() as usize, DmaDirection::FromDevice)
            .unwrap();
        let submit = || -> Result<(), Box<dyn std::error::Error>> {
            qp.submit_read(&ns, ns.blocks(), buffer, 7)?;
            Ok(())
        };
        let err = submit().unwrap_err();
        let rejected = err
            .downcast_ref::<crate::nvme::Rejected<u32, DmaBuffer>>()
            .expect("the Rejected itself");
        assert_eq!(rejected.token, 7);
        assert_eq!(err.to_string(), rejected.error.to_string());
    }
}
