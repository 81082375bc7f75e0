//! Data buffers the queue pairs accept.
//!
//! The raw API takes a buffer **by value** and gives it back in the completion
//! ([`crate::IoCompletion::buffer`]), so the caller cannot free or touch memory the controller
//! may still read or write: the queue pair holds it while the command is in flight. The async
//! API borrows the buffer for the life of the future instead, and a dropped future waits for
//! its command (see [`crate::AsyncQueuePair`]).
//!
//! [`IoBuffer`] is sealed: it is implemented for the framework's [`DmaBuffer`] and
//! [`PoolBuffer`], whose device addresses the framework guarantees are mapped for as long as
//! the value lives.

use userpci_framework::dma::{DmaBuffer, DmaDirection, PoolBuffer};

mod sealed {
    pub trait Sealed {}
}

/// Memory a controller can transfer data to or from: device address, length and direction.
pub trait IoBuffer: sealed::Sealed {
    /// Device address (IOVA) of the first byte.
    fn iova(&self) -> u64;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Never true for the framework's buffers.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the device may write it (a read's destination).
    fn device_writable(&self) -> bool;
    /// Whether the device may read it (a write's source).
    fn device_readable(&self) -> bool;
}

impl sealed::Sealed for DmaBuffer {}

impl IoBuffer for DmaBuffer {
    fn iova(&self) -> u64 {
        DmaBuffer::iova(self)
    }
    fn len(&self) -> usize {
        DmaBuffer::len(self)
    }
    fn device_writable(&self) -> bool {
        self.region().direction().device_writes()
    }
    fn device_readable(&self) -> bool {
        self.region().direction().device_reads()
    }
}

impl sealed::Sealed for PoolBuffer {}

impl IoBuffer for PoolBuffer {
    fn iova(&self) -> u64 {
        PoolBuffer::iova(self)
    }
    fn len(&self) -> usize {
        PoolBuffer::len(self)
    }
    // Pools are mapped bidirectional.
    fn device_writable(&self) -> bool {
        true
    }
    fn device_readable(&self) -> bool {
        true
    }
}

/// The device address range of a buffer that the async layer borrows for the life of a
/// future; it carries no ownership, so it is crate-private.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BorrowedRange {
    iova: u64,
    len: usize,
    direction: DmaDirection,
}

impl BorrowedRange {
    pub(crate) fn of(buffer: &DmaBuffer) -> Self {
        BorrowedRange {
            iova: buffer.iova(),
            len: buffer.len(),
            direction: buffer.region().direction(),
        }
    }
}

impl sealed::Sealed for BorrowedRange {}

impl IoBuffer for BorrowedRange {
    fn iova(&self) -> u64 {
        self.iova
    }
    fn len(&self) -> usize {
        self.len
    }
    fn device_writable(&self) -> bool {
        self.direction.device_writes()
    }
    fn device_readable(&self) -> bool {
        self.direction.device_reads()
    }
}
