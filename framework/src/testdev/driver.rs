//! A small polled driver for the copy engine, written against [`PciFunction`] only.
//!
//! The driver owns one descriptor ring (device reads) and one completion ring (device writes)
//! of the same size. A descriptor slot is reused only after its completion has been consumed,
//! so at most `ring_size - 1` copies are in flight and the completion ring cannot overrun.
//! [`CopyEngineDriver::submit`] only queues; [`CopyEngineDriver::flush`] rings the doorbell once
//! for everything queued since the last flush.

#![deny(unsafe_code)]

use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use super::spec::{self, CompletionEntry, CompletionStatus, Descriptor};
use crate::device::{InterruptVector, PciFunction, PciFunctionExt, RegisterIo};
use crate::dma::{DmaArray, DmaDirection};
use crate::error::{Error, Result};
use crate::time::poll_until;

/// One finished copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The tag given at submission (from the driver's own descriptor, not the device).
    pub tag: u32,
    /// The status the engine reported.
    pub status: CompletionStatus,
    /// Bytes the engine wrote, at most the requested length.
    pub bytes: u32,
    /// The requested length.
    pub len: u32,
    /// The engine's entry disagreed with the descriptor (tag, unknown status, or more bytes
    /// than asked): treat the copy as failed.
    pub corrupt: bool,
}

impl Completion {
    /// True when the whole length was copied and the entry is consistent.
    pub fn is_ok(&self) -> bool {
        !self.corrupt && self.status.is_ok() && self.bytes == self.len
    }
}

/// One copy for [`CopyEngineDriver::submit_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyRequest {
    /// Source IOVA.
    pub src: u64,
    /// Destination IOVA.
    pub dst: u64,
    /// Bytes to copy.
    pub len: u32,
    /// Caller's tag, returned in the completion.
    pub tag: u32,
}

/// A copy engine driven through any backend.
#[derive(Debug)]
pub struct CopyEngineDriver<F: PciFunction> {
    function: F,
    regs: F::Registers,
    vector: InterruptVector,
    descriptors: DmaArray<Descriptor>,
    completions: DmaArray<CompletionEntry>,
    size: u32,
    /// Next descriptor slot to fill.
    tail: u32,
    /// Tail last written to `DOORBELL`.
    doorbell: u32,
    /// Next completion slot to consume.
    head: u32,
    /// Phase a new completion at `head` carries.
    phase: bool,
    in_flight: usize,
}

impl<F: PciFunction> CopyEngineDriver<F> {
    /// Claims `function`: checks its identity, enables bus mastering and MSI-X, allocates rings
    /// of `ring_size` entries and brings the engine up.
    pub fn new(function: F, ring_size: u32) -> Result<Self> {
        let device = function.address();
        if !spec::valid_ring_size(ring_size) {
            return Err(Error::InvalidArgument {
                device,
                what: "ring size",
                value: u64::from(ring_size),
                expected: format!(
                    "a power of two in {}..={}",
                    spec::MIN_RING_SIZE,
                    spec::MAX_RING_SIZE
                ),
            });
        }
        let (vendor, device_id) = function.ids()?;
        let ids = u32::from(vendor) | (u32::from(device_id) << 16);
        let expected = u32::from(spec::VENDOR_ID) | (u32::from(spec::DEVICE_ID) << 16);
        if ids != expected {
            return Err(Error::UnexpectedDevice {
                device,
                what: "PCI device:vendor ID",
                found: u64::from(ids),
                expected: u64::from(expected),
            });
        }
        function.set_bus_master(true)?;
        let regs = function.map_bar(spec::BAR)?;
        if (regs.len() as u64) < spec::BAR_SIZE {
            return Err(Error::InvalidBar {
                device,
                bar: spec::BAR,
                reason: "is smaller than the copy engine's 4 KiB register file",
            });
        }
        match regs.read32(spec::ID) {
            spec::ID_VALUE => {}
            u32::MAX => return Err(Error::DeviceGone { device }),
            found => {
                return Err(Error::UnexpectedDevice {
                    device,
                    what: "copy engine BAR0 ID register",
                    found: u64::from(found),
                    expected: u64::from(spec::ID_VALUE),
                })
            }
        }
        let vector = Self::enable_interrupt(&function)?;
        let space = function.dma_space();
        let count = ring_size as usize;
        let descriptors = space.allocate_array(count, DmaDirection::ToDevice)?;
        let completions = space.allocate_array(count, DmaDirection::FromDevice)?;
        let mut driver = CopyEngineDriver {
            function,
            regs,
            vector,
            descriptors,
            completions,
            size: ring_size,
            tail: 0,
            doorbell: 0,
            head: 0,
            phase: true,
            in_flight: 0,
        };
        driver.initialize()?;
        Ok(driver)
    }

    fn enable_interrupt(function: &F) -> Result<InterruptVector> {
        let mut vectors = function.enable_msix(spec::MSIX_VECTORS)?;
        Ok(vectors.swap_remove(usize::from(spec::COMPLETION_VECTOR)))
    }

    /// Resets the engine and programs the rings: `CTRL.RST`, rings, `CTRL.EN`, `STATUS.RDY`.
    fn initialize(&mut self) -> Result<()> {
        let device = self.function.address();
        let clock = self.function.clock().as_ref();
        let timeout = Duration::from_millis(spec::READY_TIMEOUT_MS);
        self.regs.write32(spec::CTRL, spec::CTRL_RST);
        poll_until(clock, device, "copy engine CTRL.RST=0", timeout, || {
            Ok((self.regs.read32(spec::CTRL) & spec::CTRL_RST == 0).then_some(()))
        })?;
        for slot in 0..self.size as usize {
            self.completions.set(slot, CompletionEntry::default());
        }
        self.regs.write64(spec::RING_BASE, self.descriptors.iova());
        self.regs
            .write64(spec::COMPLETION_BASE, self.completions.iova());
        self.regs.write32(spec::RING_SIZE, self.size);
        self.regs.write32(spec::IRQ_MASK, 0);
        self.regs.write32(spec::CTRL, spec::CTRL_EN);
        let status = poll_until(clock, device, "copy engine STATUS.RDY=1", timeout, || {
            let status = self.regs.read32(spec::STATUS);
            Ok((status & (spec::STATUS_RDY | spec::STATUS_ERR) != 0).then_some(status))
        })?;
        (
            self.tail,
            self.doorbell,
            self.head,
            self.phase,
            self.in_flight,
        ) = (0, 0, 0, true, 0);
        self.check_status(status)
    }

    fn check_status(&self, status: u32) -> Result<()> {
        let device = self.function.address();
        if status == u32::MAX {
            return Err(Error::DeviceGone { device });
        }
        if status & spec::STATUS_ERR != 0 {
            let cause = self.regs.read32(spec::ERROR_CAUSE);
            return Err(Error::DeviceHalted {
                device,
                status,
                cause: format!("{} (ERROR_CAUSE {cause})", spec::cause_name(cause)),
            });
        }
        if status & spec::STATUS_RDY == 0 {
            return Err(Error::DeviceHalted {
                device,
                status,
                cause: "copy engine not running (STATUS.RDY clear): reinitialize it".into(),
            });
        }
        Ok(())
    }

    /// Reads `STATUS`: an error if the engine halted, is not running or the device is gone.
    pub fn check_health(&self) -> Result<()> {
        self.check_status(self.regs.read32(spec::STATUS))
    }

    /// Brings the engine back after a reset of the function (FLR, bus reset, `CTRL.RST`):
    /// bus mastering, MSI-X and the rings are set up again. Returns the tags of the copies that
    /// were in flight and will never complete, oldest first, for the caller to retry (a copy
    /// may have landed before the reset; copies are idempotent, so retrying is safe).
    ///
    /// MSI-X is enabled again; vector handles keep their eventfds, so earlier handles still fire.
    pub fn reinitialize(&mut self) -> Result<Vec<u32>> {
        let abandoned = (0..self.in_flight)
            .map(|i| {
                let slot = (self.head as usize + i) & (self.size as usize - 1);
                self.descriptors.get(slot).tag
            })
            .collect();
        self.function.set_bus_master(true)?;
        self.vector = Self::enable_interrupt(&self.function)?;
        self.initialize()?;
        Ok(abandoned)
    }

    /// The PCI function.
    pub fn function(&self) -> &F {
        &self.function
    }

    /// BAR0, for tests that poke registers directly.
    pub fn registers(&self) -> &F::Registers {
        &self.regs
    }

    /// The completion interrupt (MSI-X vector 0).
    pub fn interrupt(&self) -> &InterruptVector {
        &self.vector
    }

    /// The completion entry at `slot` as the engine last wrote it (tests, diagnostics).
    pub fn raw_completion(&self, slot: usize) -> CompletionEntry {
        self.completions.get(slot)
    }

    /// Copies that can be in flight at once (`ring_size - 1`).
    pub fn capacity(&self) -> usize {
        self.size as usize - 1
    }

    /// Copies submitted (flushed or not) whose completion has not been consumed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn ring_full(&self) -> Error {
        Error::QueueFull {
            device: self.function.address(),
            queue: "copy engine descriptor ring".into(),
            capacity: self.capacity(),
        }
    }

    /// Queues a copy of `len` bytes from `src` to `dst` (IOVAs). Nothing reaches the engine
    /// until [`flush`](Self::flush).
    pub fn submit(&mut self, src: u64, dst: u64, len: u32, tag: u32) -> Result<()> {
        let device = self.function.address();
        if len == 0 || len > spec::MAX_COPY_LEN {
            return Err(Error::InvalidArgument {
                device,
                what: "copy length",
                value: u64::from(len),
                expected: format!("1..={} (copy tag {tag})", spec::MAX_COPY_LEN),
            });
        }
        if self.in_flight == self.capacity() {
            return Err(self.ring_full());
        }
        let descriptor = Descriptor {
            src,
            dst,
            len,
            tag,
            flags: 0,
            reserved: 0,
        };
        self.descriptors.set(self.tail as usize, descriptor);
        self.tail = (self.tail + 1) & (self.size - 1);
        self.in_flight += 1;
        Ok(())
    }

    /// Queues every request and rings the doorbell once; queues none if they do not all fit.
    pub fn submit_batch(&mut self, requests: &[CopyRequest]) -> Result<()> {
        if requests.len() > self.capacity() - self.in_flight {
            return Err(self.ring_full());
        }
        let (tail, in_flight) = (self.tail, self.in_flight);
        for r in requests {
            if let Err(err) = self.submit(r.src, r.dst, r.len, r.tag) {
                (self.tail, self.in_flight) = (tail, in_flight);
                return Err(err);
            }
        }
        self.flush();
        Ok(())
    }

    /// Rings the doorbell if copies were queued since the last flush. The register write's
    /// release fence orders the descriptor stores before it.
    pub fn flush(&mut self) {
        if self.tail != self.doorbell {
            self.regs.write32(spec::DOORBELL, self.tail);
            self.doorbell = self.tail;
        }
    }

    /// Hands every new completion to `out`, oldest first; returns how many.
    pub fn poll_completions(&mut self, out: &mut impl FnMut(Completion)) -> usize {
        let mut count = 0;
        while self.in_flight > 0 {
            let slot = self.head as usize;
            let offset = slot * size_of::<CompletionEntry>() + spec::COMPLETION_PHASE_OFFSET;
            let phase: u32 = self.completions.region().read(offset);
            if (phase & spec::PHASE != 0) != self.phase {
                break;
            }
            // Acquire: the rest of the entry was written before the phase that makes it valid,
            // so read it only after the phase load.
            fence(Ordering::Acquire);
            let entry = self.completions.get(slot);
            let descriptor = self.descriptors.get(slot);
            let status = CompletionStatus(entry.status);
            out(Completion {
                tag: descriptor.tag,
                status,
                bytes: entry.bytes.min(descriptor.len),
                len: descriptor.len,
                corrupt: entry.tag != descriptor.tag
                    || !status.is_known()
                    || entry.bytes > descriptor.len,
            });
            self.head = (self.head + 1) & (self.size - 1);
            if self.head == 0 {
                self.phase = !self.phase;
            }
            self.in_flight -= 1;
            count += 1;
        }
        count
    }
}
