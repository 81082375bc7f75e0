//! A model of an NVMe controller for the simulated PCI bus, following the NVM Express Base
//! Specification 2.0, the NVMe over PCIe Transport Specification 1.0 and the NVM Command Set
//! Specification 1.0, checked against QEMU's `hw/nvme/ctrl.c` where the specification leaves
//! a choice. It shares only [`crate::spec`] with the driver.
//!
//! # What it is
//! - PCI identity of QEMU's controller: 1b36:0010, class 010802h; BAR0 of 16 KiB (larger when
//!   `max_queues` and `CAP.DSTRD` need more doorbells); `max_queues + 1` MSI-X vectors.
//! - `CAP`: `MQES`, `DSTRD` and `TO` from the configuration, `CQR` 1, `CSS` NVM only,
//!   `MPSMIN` 0 (4 KiB), `MPSMAX` 4 (64 KiB). `VS` 1.4.0. No CMB, PMR or NVM subsystem reset.
//! - Admin commands: Identify (CNS 0, 1, 2), Create/Delete I/O SQ and CQ, Get/Set Features
//!   (Temperature Threshold, Number of Queues, Interrupt Coalescing, Asynchronous Event
//!   Configuration), Get Log Page
//!   (Error Information, SMART / Health), Abort, Asynchronous Event Request and, with
//!   `shadow_doorbells`, Doorbell Buffer Config.
//! - NVM commands: Read, Write, Flush, Write Zeroes, Dataset Management (deallocate zeroes the
//!   blocks), with PRPs and PRP lists (chained), `MDTS`, LBA range and NSID checks.
//! - Namespaces in sparse memory (64 KiB chunks allocated on first write) or a file. Resets
//!   keep their data.
//!
//! # Processing
//! Deterministic: with `latency` zero, commands run inside the doorbell write that announces
//! them and their completions are posted before it returns. With a latency, I/O commands are
//! fetched at the doorbell write and each executes and completes that long after on the
//! bus's virtual clock (admin commands are not delayed, so that Abort can reach a delayed
//! command and bring-up stays short). A completion queue that is full holds further
//! completions until the host's head doorbell makes room; a submission queue has at most its
//! size in commands outstanding. A queue entry the controller cannot read or write (the IOMMU
//! blocks it) is a fatal error, `CSTS.CFS`, as QEMU.
//!
//! # Choices where the specification and QEMU differ, or leave room
//! - **Enable checks.** `CC.EN` 0 to 1 checks `AQA` (each queue at least two entries),
//!   `ASQ`/`ACQ` page alignment, `CC.CSS`, `CC.AMS`, `CC.MPS` and `CC.IOSQES`/`CC.IOCQES` (0
//!   or the supported 6/4). A bad value sets `CSTS.CFS` with `RDY` 0, as QEMU; clearing
//!   `CC.EN` recovers.
//! - **`CSTS.RDY` timing.** Follows `CC.EN` both ways after `ready_delay` (QEMU: at once). A
//!   controller reset happens at `CC.EN` 1 to 0 itself; only `RDY` lags.
//! - **`CC` after a reset.** `CC` keeps what the host wrote (QEMU zeroes it); `AQA`, `ASQ`,
//!   `ACQ` survive a controller reset and are cleared by a function reset.
//! - **Number of Queues.** Grants `min(requested, max_queues)` of each kind (QEMU always
//!   grants its maximum). The first Set Features fixes the allocation until the next reset
//!   (later ones return it unchanged); once an I/O queue was created, Command Sequence Error.
//!   Before any Set Features, `max_queues` pairs are allowed.
//! - **Queue creation errors** as QEMU: unset `CC.IOSQES`/`IOCQES` gives Invalid Queue Size,
//!   an unaligned queue PRP Offset Invalid, `PC` 0 Invalid Field. Delete I/O CQ of a missing
//!   queue answers Invalid Queue Identifier (the specification's code; QEMU answers Completion
//!   Queue Invalid).
//! - **Delete I/O SQ** completes the queue's commands in flight with "Command Aborted due to
//!   SQ Deletion" first; completions already waiting for room are still posted.
//! - **Abort** aborts commands fetched and not yet completed (latency mode) and held
//!   Asynchronous Event Requests; it does not look at entries not yet fetched.
//! - **Get Log Page** of an unknown page is Invalid Log Page (QEMU: Invalid Field); SMART with
//!   an NSID other than 0 or FFFFFFFFh is Invalid Field, as `LPA` bit 0 is clear.
//! - **PRPs.** `PRP1` must be dword aligned (PRP Offset Invalid otherwise; QEMU does not
//!   check).
//! - **Doorbells.** A write while not enabled and ready, to a queue that does not exist, or
//!   with a value out of range (an SQ tail at or past the size, a CQ head past the posted
//!   entries: QEMU checks only the size) is ignored and counted in
//!   [`ProtocolViolations`]; the last two also raise an Error asynchronous event when a
//!   request is held, as QEMU.
//! - **Shadow doorbells** (Doorbell Buffer Config), as QEMU: for I/O queues the controller
//!   reads the shadow tail (SQ) when the MMIO doorbell is rung and the shadow head (CQ) before
//!   posting, and writes EventIdx (the SQ tail after fetching, the CQ head it read). For the
//!   admin queue the MMIO value is used and mirrored into the shadow buffer, since hosts do
//!   not maintain it. Slots are laid out by `CAP.DSTRD` as the specification says. Creating
//!   a queue does not write its slots (nor does QEMU): a host reusing a QID resets them.
//! - **Interrupts**: one MSI-X message per batch of completions on a queue with interrupts
//!   enabled. Interrupt Coalescing applies to I/O queues: a message once more than `THR`
//!   entries wait, or `TIME` after the first (QEMU does not implement it). `INTMS`/`INTMC`
//!   only hold the mask; with MSI-X they have no effect.
//! - **Metadata** (`metadata_size`) is in a separate buffer (`FLBAS` bit 4 clear): writes read
//!   and discard it, reads return zeroes.
//! - **Shutdown** (`CC.SHN`): `CSTS.SHST` reads 01b for `shutdown_delay`, then 10b (QEMU:
//!   10b at once, which a zero delay gives). The controller keeps processing commands, as
//!   QEMU; clearing `CC.EN` afterwards resets it and `SHST` to 00b.
//! - **Temperature** as QEMU: a constant 323 K, over threshold 343 K (`WCTEMP`), under
//!   threshold 0. Setting a threshold the temperature is at or past sets SMART Critical
//!   Warning bit 1 and raises a SMART / Health event (information 01h, log page 02h) when
//!   Asynchronous Event Configuration enables SMART warnings.
//! - **SMART / Health**: Data Units count successful Reads and Writes; Host Write Commands
//!   count Write and Write Zeroes.
//!
//! # Faults and counters
//! See [`faults`]: hang, fatal, a failing Nth command, corrupt completions, and
//! [`NvmeModel::stats`] with [`ProtocolViolations`]. For fuzzing, [`hostile`] lets a test
//! replace what the controller writes into host memory (completions, Identify data, log
//! pages, EventIdx).

mod admin;
mod async_events;
mod config;
mod controller;
mod events;
pub mod faults;
pub mod hostile;
mod identify;
mod inject;
mod namespace;
mod nvm;
mod processing;
mod prp;
mod queues;
mod shared;
mod storage;

use std::any::Any;

use userpci_framework::backend::sim::{
    BarInfo, DeviceModel, ModelContext, ModelInfo, ModelRegistry, ResetKind,
};
use userpci_framework::Result;

pub use config::{NvmeModelConfig, MODEL_NAME};
pub use controller::NvmeModel;
pub use faults::{CommandClass, Corruption, NvmeModelStats, ProtocolViolations, Recovery};
pub use hostile::{DeviceWrite, HostileHook};
pub use identify::{CLASS_CODE, DEVICE_ID, FIRMWARE_REVISION, SUBSYSTEM_VENDOR_ID, VENDOR_ID};

/// Builds an NVMe controller model from topology-file parameters (see [`NvmeModelConfig`];
/// the keys are its field names, with `ready_delay_us`, `shutdown_delay_us` and `latency_ns`
/// for the durations).
pub fn factory(params: &toml::Table) -> Result<Box<dyn DeviceModel>> {
    let config = NvmeModelConfig::from_params(params)?;
    Ok(Box::new(NvmeModel::new(config)?))
}

/// Registers the model as [`MODEL_NAME`].
pub fn register(registry: &mut ModelRegistry) {
    registry.register(MODEL_NAME, factory);
}

/// QEMU's controller revision.
const REVISION: u8 = 0x02;

impl DeviceModel for NvmeModel {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            vendor_id: VENDOR_ID,
            device_id: DEVICE_ID,
            class_code: CLASS_CODE,
            revision: REVISION,
            bars: vec![BarInfo {
                index: 0,
                size: self.config.bar0_size(),
            }],
            msix_vectors: self.config.max_queues + 1,
        }
    }

    fn mmio_read(&mut self, _ctx: &mut ModelContext<'_>, bar: u8, offset: u64, width: u8) -> u64 {
        let Ok(offset) = usize::try_from(offset) else {
            return 0;
        };
        if bar != 0 || offset % 4 != 0 {
            return 0;
        }
        let low = u64::from(self.read32(offset));
        if width == 8 {
            low | (u64::from(self.read32(offset + 4)) << 32)
        } else {
            low
        }
    }

    fn mmio_write(
        &mut self,
        ctx: &mut ModelContext<'_>,
        bar: u8,
        offset: u64,
        width: u8,
        value: u64,
    ) {
        let Ok(offset) = usize::try_from(offset) else {
            return;
        };
        if bar != 0 || offset % 4 != 0 {
            return;
        }
        // A 64-bit access is two 32-bit ones, low half first (Base "Controller Properties").
        self.write32(ctx, offset, value as u32);
        if width == 8 {
            self.write32(ctx, offset + 4, (value >> 32) as u32);
        }
    }

    fn on_timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        self.timer(ctx, token);
    }

    fn reset(&mut self, _kind: ResetKind) {
        self.function_reset();
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
