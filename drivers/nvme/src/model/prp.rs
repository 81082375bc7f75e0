//! Physical Region Page lists (Base 2.0 "Physical Region Page Entry and List"): turning a
//! command's `PRP1`/`PRP2` into the guest memory segments of a transfer.
//!
//! - `PRP1` may start at any dword-aligned offset into a memory page (`CC.MPS`); it covers
//!   up to the end of that page.
//! - When the rest fits in one page, `PRP2` is that page (offset zero).
//! - Otherwise `PRP2` points to a PRP list (qword aligned, may start inside a page). Every entry
//!   of a list is a page address with offset zero, except the last slot of a list page when
//!   more than one page of data remains: that slot points to the next list page (also page
//!   aligned). List entries are fetched by DMA one at a time, so a list costs no memory here.
//!
//! A misplaced offset is `PRP Offset Invalid`; a list entry the IOMMU blocks is
//! `Data Transfer Error`. Segments are at most one page, so a walk never allocates.

use userpci_framework::backend::sim::ModelContext;

use crate::spec::Status;

/// One contiguous piece of guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    /// Device address.
    pub(super) iova: u64,
    /// Bytes, at most one memory page.
    pub(super) len: u64,
}

#[derive(Clone, Copy, Debug)]
enum Next {
    First(u64),
    Second(u64),
    List { addr: u64, slots: u64 },
    Done,
}

/// Iterates over the segments of a transfer of `len` bytes described by `PRP1`/`PRP2`.
#[derive(Clone, Copy, Debug)]
pub(super) struct PrpWalker {
    page: u64,
    prp2: u64,
    remaining: u64,
    next: Next,
}

fn offset_invalid() -> Status {
    Status::PRP_OFFSET_INVALID.with_dnr()
}

impl PrpWalker {
    /// A walk of `len` bytes with memory page size `page` (a power of two).
    pub(super) fn new(page: u64, prp1: u64, prp2: u64, len: u64) -> Self {
        PrpWalker {
            page,
            prp2,
            remaining: len,
            next: if len == 0 {
                Next::Done
            } else {
                Next::First(prp1)
            },
        }
    }

    fn after_data(&mut self, n: u64, then: Next) {
        self.remaining -= n;
        self.next = if self.remaining == 0 {
            Next::Done
        } else {
            then
        };
    }

    /// The next segment, `Ok(None)` at the end.
    pub(super) fn next(&mut self, ctx: &mut ModelContext<'_>) -> Result<Option<Segment>, Status> {
        let page = self.page;
        match self.next {
            Next::Done => Ok(None),
            Next::First(prp1) => {
                if prp1 & 0x3 != 0 {
                    return Err(offset_invalid());
                }
                let n = self.remaining.min(page - prp1 % page);
                let rest = self.remaining - n;
                let then = if rest <= page {
                    Next::Second(self.prp2)
                } else {
                    if self.prp2 & 0x7 != 0 {
                        return Err(offset_invalid());
                    }
                    Next::List {
                        addr: self.prp2,
                        slots: (page - self.prp2 % page) / 8,
                    }
                };
                self.after_data(n, then);
                Ok(Some(Segment { iova: prp1, len: n }))
            }
            Next::Second(prp2) => {
                if prp2 % page != 0 {
                    return Err(offset_invalid());
                }
                let n = self.remaining;
                self.after_data(n, Next::Done);
                Ok(Some(Segment { iova: prp2, len: n }))
            }
            Next::List {
                mut addr,
                mut slots,
            } => {
                let entry = loop {
                    let entry: u64 = ctx
                        .dma_read_pod(addr)
                        .map_err(|_| Status::DATA_TRANSFER_ERROR)?;
                    if slots == 1 && self.remaining > page {
                        // The last slot of a list page chains to the next list page.
                        if !entry.is_multiple_of(page) {
                            return Err(offset_invalid());
                        }
                        addr = entry;
                        slots = page / 8;
                        continue;
                    }
                    break entry;
                };
                if entry % page != 0 {
                    return Err(offset_invalid());
                }
                let n = self.remaining.min(page);
                self.after_data(
                    n,
                    Next::List {
                        addr: addr.wrapping_add(8),
                        slots: slots - 1,
                    },
                );
                Ok(Some(Segment {
                    iova: entry,
                    len: n,
                }))
            }
        }
    }
}

/// Copies `data` to the host buffer described by `PRP1`/`PRP2`.
pub(super) fn copy_to_host(
    ctx: &mut ModelContext<'_>,
    page: u64,
    prp1: u64,
    prp2: u64,
    data: &[u8],
) -> Result<(), Status> {
    let mut walker = PrpWalker::new(page, prp1, prp2, data.len() as u64);
    let mut at = 0usize;
    while let Some(seg) = walker.next(ctx)? {
        let n = seg.len as usize;
        ctx.dma_write(seg.iova, &data[at..at + n])
            .map_err(|_| Status::DATA_TRANSFER_ERROR)?;
        at += n;
    }
    Ok(())
}

/// Fills `buf` from the host buffer described by `PRP1`/`PRP2`.
pub(super) fn copy_from_host(
    ctx: &mut ModelContext<'_>,
    page: u64,
    prp1: u64,
    prp2: u64,
    buf: &mut [u8],
) -> Result<(), Status> {
    let mut walker = PrpWalker::new(page, prp1, prp2, buf.len() as u64);
    let mut at = 0usize;
    while let Some(seg) = walker.next(ctx)? {
        let n = seg.len as usize;
        ctx.dma_read(seg.iova, &mut buf[at..at + n])
            .map_err(|_| Status::DATA_TRANSFER_ERROR)?;
        at += n;
    }
    Ok(())
}
