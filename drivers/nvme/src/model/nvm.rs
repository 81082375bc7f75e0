//! NVM Command Set I/O commands (NVM CS 1.0): Read, Write, Flush, Write Zeroes and Dataset
//! Management, and the namespaces they act on.
//!
//! Checks come in QEMU's order: namespace, transfer size against `MDTS`, LBA range, then the
//! data pointer while moving data. Data moves by DMA directly between guest memory and the
//! namespace store, one PRP segment at a time. A Write first reads every source segment (and
//! the metadata buffer) to make sure the IOMMU lets it through, and only then stores the data,
//! so a blocked source leaves the namespace unchanged. Metadata (a separate buffer at `MPTR`)
//! is not kept: writes read and discard it, reads return zeroes.

use userpci_framework::backend::sim::ModelContext;

use super::prp::{self, PrpWalker};
use super::shared::Outcome;
use super::storage::{CHUNK, ZEROES};
use super::NvmeModel;
use crate::spec::nvm::{DatasetManagement, ReadWrite, WriteZeroes};
use crate::spec::queue::PSDT_PRP;
use crate::spec::{DsmRange, NvmCommand, NvmOpcode, Status, SubmissionEntry, NSID_ALL};

fn dnr(status: Status) -> Outcome {
    Outcome::status(status.with_dnr())
}

/// A transfer that could not complete: its status.
type Failed = Status;

impl NvmeModel {
    /// Counts a fetched command by class.
    pub(super) fn count_command(&mut self, sqid: u16, sqe: &SubmissionEntry) {
        let stats = &mut self.stats;
        if sqid == 0 {
            stats.admin_commands += 1;
            return;
        }
        match NvmOpcode::from_raw(sqe.opcode()) {
            Some(NvmOpcode::Read) => stats.reads += 1,
            Some(NvmOpcode::Write) => stats.writes += 1,
            Some(NvmOpcode::Flush) => stats.flushes += 1,
            Some(NvmOpcode::WriteZeroes) => stats.write_zeroes += 1,
            Some(NvmOpcode::DatasetManagement) => stats.dataset_management += 1,
            None => stats.other_io += 1,
        }
    }

    /// Executes one I/O command.
    pub(super) fn io(&mut self, ctx: &mut ModelContext<'_>, sqe: &SubmissionEntry) -> Outcome {
        // Identify Controller SGLS is zero: PRPs only. No fused operations.
        if sqe.psdt() != PSDT_PRP {
            return dnr(Status::INVALID_FIELD);
        }
        if sqe.fuse() != 0 {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let Some(command) = NvmCommand::decode(sqe) else {
            return dnr(Status::INVALID_OPCODE);
        };
        let result = match command {
            NvmCommand::Flush { nsid } if nsid == NSID_ALL => Ok(()),
            NvmCommand::Flush { nsid } => self.namespace(nsid).map(|_| ()),
            NvmCommand::Read(rw) => self.read(ctx, sqe.mptr, rw),
            NvmCommand::Write(rw) => self.write(ctx, sqe.mptr, rw),
            NvmCommand::WriteZeroes(wz) => self.write_zeroes(wz),
            NvmCommand::DatasetManagement(dsm) => self.dataset_management(ctx, dsm),
        };
        match result {
            Ok(()) => Outcome::status(Status::SUCCESS),
            Err(status) => Outcome::status(status),
        }
    }

    /// The index of active namespace `nsid`.
    fn namespace(&self, nsid: u32) -> Result<usize, Failed> {
        match nsid {
            0 => Err(Status::INVALID_NAMESPACE_OR_FORMAT.with_dnr()),
            n if n > self.config.namespaces => Err(Status::INVALID_NAMESPACE_OR_FORMAT.with_dnr()),
            n => Ok(n as usize - 1),
        }
    }

    /// Checks a block range, returning its byte offset and length.
    fn block_range(&self, index: usize, slba: u64, count: u64) -> Result<(u64, u64), Failed> {
        let ns = &self.namespaces[index];
        match slba.checked_add(count) {
            Some(end) if end <= ns.blocks => Ok((slba << ns.lba_shift, count << ns.lba_shift)),
            _ => Err(Status::LBA_OUT_OF_RANGE.with_dnr()),
        }
    }

    /// Namespace, MDTS and range checks of Read and Write: (index, byte offset, length).
    fn check_read_write(&self, rw: &ReadWrite) -> Result<(usize, u64, u64), Failed> {
        let index = self.namespace(rw.nsid)?;
        let blocks = u64::from(rw.nlb) + 1;
        let len = blocks << self.namespaces[index].lba_shift;
        if self.config.max_transfer().is_some_and(|max| len > max) {
            return Err(Status::INVALID_FIELD.with_dnr());
        }
        let (offset, len) = self.block_range(index, rw.slba, blocks)?;
        Ok((index, offset, len))
    }

    fn metadata_len(&self, index: usize, rw: &ReadWrite) -> u64 {
        (u64::from(rw.nlb) + 1) * u64::from(self.namespaces[index].metadata_size)
    }

    fn read(&mut self, ctx: &mut ModelContext<'_>, mptr: u64, rw: ReadWrite) -> Result<(), Failed> {
        let (index, mut position, len) = self.check_read_write(&rw)?;
        let mut walker = PrpWalker::new(self.page, rw.prp1, rw.prp2, len);
        let store = &self.namespaces[index].store;
        while let Some(seg) = walker.next(ctx)? {
            let copied = store.read_with(position, seg.len, &mut self.scratch, |at, bytes| {
                ctx.dma_write(seg.iova + at, bytes)
            });
            match copied {
                Ok(Ok(())) => position += seg.len,
                Ok(Err(_)) => return Err(Status::DATA_TRANSFER_ERROR),
                Err(_) => return Err(Status::UNRECOVERED_READ_ERROR),
            }
        }
        let mut metadata = self.metadata_len(index, &rw);
        let mut at = mptr;
        while metadata > 0 {
            let n = metadata.min(CHUNK as u64);
            ctx.dma_write(at, &ZEROES[..n as usize])
                .map_err(|_| Status::DATA_TRANSFER_ERROR)?;
            at = at.wrapping_add(n);
            metadata -= n;
        }
        self.stats.bytes_read += len;
        self.smart.read_commands += 1;
        self.smart.bytes_read += len;
        Ok(())
    }

    fn write(
        &mut self,
        ctx: &mut ModelContext<'_>,
        mptr: u64,
        rw: ReadWrite,
    ) -> Result<(), Failed> {
        let (index, mut position, len) = self.check_read_write(&rw)?;
        // Pass 1: every source segment and the metadata must be readable.
        let mut walker = PrpWalker::new(self.page, rw.prp1, rw.prp2, len);
        while let Some(seg) = walker.next(ctx)? {
            ctx.dma_read(seg.iova, &mut self.scratch[..seg.len as usize])
                .map_err(|_| Status::DATA_TRANSFER_ERROR)?;
        }
        let mut metadata = self.metadata_len(index, &rw);
        let mut at = mptr;
        while metadata > 0 {
            let n = metadata.min(self.scratch.len() as u64);
            ctx.dma_read(at, &mut self.scratch[..n as usize])
                .map_err(|_| Status::DATA_TRANSFER_ERROR)?;
            at = at.wrapping_add(n);
            metadata -= n;
        }
        // Pass 2: DMA straight into the store.
        let mut walker = PrpWalker::new(self.page, rw.prp1, rw.prp2, len);
        let store = &mut self.namespaces[index].store;
        while let Some(seg) = walker.next(ctx)? {
            let copied = store.write_with(position, seg.len, &mut self.scratch, |at, dst| {
                ctx.dma_read(seg.iova + at, dst)
            });
            match copied {
                Ok(Ok(())) => position += seg.len,
                Ok(Err(_)) => return Err(Status::DATA_TRANSFER_ERROR),
                Err(_) => return Err(Status::WRITE_FAULT),
            }
        }
        self.stats.bytes_written += len;
        self.smart.write_commands += 1;
        self.smart.bytes_written += len;
        Ok(())
    }

    fn write_zeroes(&mut self, wz: WriteZeroes) -> Result<(), Failed> {
        // No data moves: MDTS does not apply.
        let index = self.namespace(wz.nsid)?;
        let (offset, len) = self.block_range(index, wz.slba, u64::from(wz.nlb) + 1)?;
        self.namespaces[index]
            .store
            .zero(offset, len)
            .map_err(|_| Status::WRITE_FAULT)?;
        self.smart.write_commands += 1;
        Ok(())
    }

    fn dataset_management(
        &mut self,
        ctx: &mut ModelContext<'_>,
        dsm: DatasetManagement,
    ) -> Result<(), Failed> {
        let index = self.namespace(dsm.nsid)?;
        let mut ranges = [DsmRange::default(); 256];
        let ranges = &mut ranges[..usize::from(dsm.nr) + 1];
        prp::copy_from_host(
            ctx,
            self.page,
            dsm.prp1,
            dsm.prp2,
            bytemuck::cast_slice_mut(ranges),
        )?;
        for range in ranges.iter() {
            self.block_range(index, range.slba, range.length.into())?;
        }
        if dsm.attributes & DatasetManagement::AD != 0 {
            // Deallocated blocks read as zeroes (DLFEAT 001b).
            for range in ranges.iter() {
                let (offset, len) = self.block_range(index, range.slba, range.length.into())?;
                self.namespaces[index]
                    .store
                    .zero(offset, len)
                    .map_err(|_| Status::WRITE_FAULT)?;
            }
        }
        Ok(())
    }

    /// Reads namespace `nsid` directly, bypassing the controller (for tests): `buf.len()`
    /// bytes from byte `offset`.
    pub fn read_namespace(&self, nsid: u32, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let ns = self
            .namespace(nsid)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::NotFound, "no such namespace"))?;
        let mut scratch = vec![0; CHUNK];
        self.namespaces[ns]
            .store
            .read_with(offset, buf.len() as u64, &mut scratch, |at, bytes| {
                let at = at as usize;
                buf[at..at + bytes.len()].copy_from_slice(bytes);
                Ok::<(), ()>(())
            })?
            .map_err(|()| std::io::Error::other("unreachable"))
    }

    /// Sparse-memory chunks (64 KiB) namespace `nsid` has allocated; 0 for a file backing.
    pub fn allocated_chunks(&self, nsid: u32) -> usize {
        self.namespace(nsid)
            .map_or(0, |ns| self.namespaces[ns].store.allocated_chunks())
    }
}
