//! The simulated IOMMU: every device-side DMA is translated through the mappings and checked
//! against their permissions. An access that is not wholly mapped with the right permission is
//! recorded as a fault and touches no memory, as a real IOMMU blocks it.

use std::collections::BTreeMap;
use std::fmt;
use std::ptr::NonNull;
use std::sync::{Mutex, RwLock};

use serde::Serialize;

use crate::dma::{DmaDirection, IommuMapper, IovaAllocator, IovaRange};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// Which way a faulting DMA went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaAccess {
    /// The device read memory.
    Read,
    /// The device wrote memory.
    Write,
}

/// Why a DMA was blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultReason {
    /// Part of the range has no mapping.
    Unmapped,
    /// A write to a mapping the device may only read.
    ReadOnly,
    /// A read of a mapping the device may only write.
    WriteOnly,
    /// The function's Bus Master Enable is clear: it may not issue DMA at all (not an IOMMU
    /// fault; never recorded, only returned).
    BusMasterDisabled,
}

/// One blocked device access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DmaFault {
    /// The function that issued the access.
    pub device: PciAddress,
    /// First IOVA of the access.
    pub iova: u64,
    /// Length of the access in bytes.
    pub len: usize,
    /// Read or write.
    pub access: DmaAccess,
    /// Why it was blocked.
    pub reason: FaultReason,
}

impl fmt::Display for DmaFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: DMA {:?} of {} bytes at IOVA {:#x} blocked ({:?})",
            self.device, self.access, self.len, self.iova, self.reason
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    host: NonNull<u8>,
    len: usize,
    direction: DmaDirection,
}

// SAFETY: a mapping is an address plus the promise, made by `IommuMapper::map`'s caller, that
// the memory stays valid until unmapped; it carries no thread affinity.
unsafe impl Send for Mapping {}
// SAFETY: as above; the map of mappings is read under an `RwLock`.
unsafe impl Sync for Mapping {}

/// The IOMMU domain of a simulated bus.
#[derive(Debug)]
pub struct SimIommu {
    ranges: Vec<IovaRange>,
    mappings: RwLock<BTreeMap<u64, Mapping>>,
    faults: Mutex<Vec<DmaFault>>,
}

/// The valid ranges of the default simulated IOMMU: 39-bit addresses with the x86 MSI window
/// (`0xfee00000..=0xfeefffff`) reserved, as an Intel VT-d domain reports them.
pub const DEFAULT_IOVA_RANGES: [IovaRange; 2] = [
    IovaRange::new(0, 0xfedf_ffff),
    IovaRange::new(0xfef0_0000, (1 << 39) - 1),
];

impl SimIommu {
    /// An IOMMU translating `ranges`; refuses empty, inverted or overlapping ranges, naming
    /// them.
    pub fn new(ranges: Vec<IovaRange>) -> Result<Self> {
        // The allocator's checks are exactly the ones a valid-range list must pass.
        let checked = IovaAllocator::new("sim iommu", &ranges)?;
        Ok(SimIommu {
            ranges: checked.ranges().to_vec(),
            mappings: RwLock::new(BTreeMap::new()),
            faults: Mutex::new(Vec::new()),
        })
    }

    /// Faults recorded so far, oldest first.
    pub fn faults(&self) -> Vec<DmaFault> {
        self.faults.lock().expect("iommu lock poisoned").clone()
    }

    /// Takes the recorded faults, leaving none.
    pub fn take_faults(&self) -> Vec<DmaFault> {
        std::mem::take(&mut *self.faults.lock().expect("iommu lock poisoned"))
    }

    /// Number of live mappings.
    pub fn mapping_count(&self) -> usize {
        self.mappings.read().expect("iommu lock poisoned").len()
    }

    /// Runs `copy` on each host chunk of `[iova, iova + len)` if the whole range is mapped with
    /// permission for `access`; otherwise records and returns the fault, touching nothing.
    fn transfer(
        &self,
        device: PciAddress,
        iova: u64,
        len: usize,
        access: DmaAccess,
        mut copy: impl FnMut(NonNull<u8>, usize, usize),
    ) -> std::result::Result<(), DmaFault> {
        let fault = |reason| DmaFault {
            device,
            iova,
            len,
            access,
            reason,
        };
        let mappings = self.mappings.read().expect("iommu lock poisoned");
        // First pass: check the whole range, so a blocked access changes no memory at all.
        let mut chunks: [(NonNull<u8>, usize, usize); 8] = [(NonNull::dangling(), 0, 0); 8];
        let mut count = 0;
        let mut cursor = iova;
        let mut done = 0usize;
        let result = loop {
            if done == len {
                break Ok(());
            }
            let Some((&start, mapping)) = mappings.range(..=cursor).next_back() else {
                break Err(fault(FaultReason::Unmapped));
            };
            let offset = cursor - start;
            if offset >= mapping.len as u64 {
                break Err(fault(FaultReason::Unmapped));
            }
            let allowed = match access {
                DmaAccess::Read => mapping.direction.device_reads(),
                DmaAccess::Write => mapping.direction.device_writes(),
            };
            if !allowed {
                break Err(fault(match access {
                    DmaAccess::Read => FaultReason::WriteOnly,
                    DmaAccess::Write => FaultReason::ReadOnly,
                }));
            }
            let take = (mapping.len - offset as usize).min(len - done);
            // SAFETY: `offset < mapping.len`, so the pointer stays inside the mapping.
            let host =
                unsafe { NonNull::new_unchecked(mapping.host.as_ptr().add(offset as usize)) };
            if count == chunks.len() {
                // Spanning more than eight mappings is nothing a device model does; refuse it
                // rather than allocate on the data path.
                break Err(fault(FaultReason::Unmapped));
            }
            chunks[count] = (host, done, take);
            count += 1;
            done += take;
            cursor += take as u64;
        };
        if let Err(f) = result {
            drop(mappings);
            self.faults.lock().expect("iommu lock poisoned").push(f);
            return Err(f);
        }
        for &(host, at, take) in &chunks[..count] {
            copy(host, at, take);
        }
        Ok(())
    }

    /// A device read of guest memory into `buf`.
    pub(crate) fn dma_read(
        &self,
        device: PciAddress,
        iova: u64,
        buf: &mut [u8],
    ) -> std::result::Result<(), DmaFault> {
        let out = buf.as_mut_ptr();
        self.transfer(
            device,
            iova,
            buf.len(),
            DmaAccess::Read,
            |host, at, take| {
                // SAFETY: `host..host+take` is inside a live mapping (checked, and unmap waits for
                // the read lock we hold); `out+at..+take` is inside `buf`.
                unsafe { std::ptr::copy_nonoverlapping(host.as_ptr(), out.add(at), take) }
            },
        )
    }

    /// A device write of `data` into guest memory.
    pub(crate) fn dma_write(
        &self,
        device: PciAddress,
        iova: u64,
        data: &[u8],
    ) -> std::result::Result<(), DmaFault> {
        let src = data.as_ptr();
        self.transfer(
            device,
            iova,
            data.len(),
            DmaAccess::Write,
            |host, at, take| {
                // SAFETY: as in `dma_read`, with source and destination swapped.
                unsafe { std::ptr::copy_nonoverlapping(src.add(at), host.as_ptr(), take) }
            },
        )
    }
}

impl IommuMapper for SimIommu {
    fn name(&self) -> String {
        "sim iommu".to_string()
    }

    fn iova_ranges(&self) -> Result<Vec<IovaRange>> {
        Ok(self.ranges.clone())
    }

    unsafe fn map(
        &self,
        iova: u64,
        host: NonNull<u8>,
        len: usize,
        direction: DmaDirection,
    ) -> Result<()> {
        let refuse = |reason: &str| Error::IommuMap {
            iova,
            len: len as u64,
            reason: reason.to_string(),
        };
        let last = iova
            .checked_add(len as u64)
            .and_then(|e| e.checked_sub(1))
            .filter(|_| len > 0)
            .ok_or_else(|| refuse("empty or overflowing range"))?;
        if !self
            .ranges
            .iter()
            .any(|r| r.start <= iova && last <= r.last)
        {
            return Err(refuse("outside the IOMMU's valid IOVA ranges"));
        }
        let mut mappings = self.mappings.write().expect("iommu lock poisoned");
        let overlaps_before = mappings
            .range(..=last)
            .next_back()
            .is_some_and(|(&s, m)| s + m.len as u64 > iova);
        if overlaps_before {
            return Err(refuse("overlaps an existing mapping"));
        }
        mappings.insert(
            iova,
            Mapping {
                host,
                len,
                direction,
            },
        );
        Ok(())
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        let mut mappings = self.mappings.write().expect("iommu lock poisoned");
        match mappings.get(&iova) {
            Some(m) if m.len == len => {
                mappings.remove(&iova);
                Ok(())
            }
            _ => Err(Error::IommuMap {
                iova,
                len: len as u64,
                reason: "unmap of a range that is not exactly one mapping".to_string(),
            }),
        }
    }
}
