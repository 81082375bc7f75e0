//! The NVMe controller: bring-up, identify, I/O queue pair creation, reset.
//!
//! A [`Controller`] is a cheap handle (`Send + Sync`, clone it freely) to state shared with
//! every queue pair it created. The admin queue and the list of registered queue pairs sit
//! behind one mutex, used only by the control path (bring-up, queue creation and deletion,
//! aborts, resets); the data path never takes it.
//!
//! # Reset
//! [`Controller::reset`] is [`Controller::quiesce`] followed by [`Controller::recover`], the
//! two phases the reset coordinator calls around a function or bus reset:
//!
//! - **quiesce**: every registered queue pair is set `Disabled` and the controller waits for
//!   any submit or poll running on it to leave its critical section (see `state.rs`), so no
//!   doorbell is written from then on. Then `CC.EN` 1 → 0 and `CSTS.RDY` = 0 within `CAP.TO`.
//!   The controller reset deletes every I/O queue, so no Delete SQ/CQ is sent. In-flight
//!   commands stay in their queue pair's trackers: they are taken back, not lost.
//! - **recover**: the admin queue is re-initialised, the controller enabled, Identify
//!   Controller, Set Features Number of Queues, the namespaces checked to be the same ones
//!   (NSID, size, block size, NGUID, EUI64: re-issuing writes to a different namespace would
//!   corrupt it), shadow doorbells configured again, and every registered queue pair's CQ and
//!   SQ created again with the same QID and memory (completion memory zeroed first). Each
//!   queue pair is then set `NeedsReconnect`; its owner core, on its next submit or poll,
//!   resets its indices and re-issues every command it had in flight, once. A reissued copy is
//!   only ever sent after the reset finished, so the old instance cannot complete after it.
//!
//! When recovery fails the controller is `Failed` and so is every queue pair: in-flight
//! commands complete with [`Error::Retriable`], and new ones are refused.

mod admin;
mod aer_slots;
mod events;
mod init;
pub(crate) mod inner;
mod logs;
mod options;
mod reset;
mod shutdown;
pub(crate) mod state;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::dma::DmaDirection;
use userpci_framework::pci::PciAddress;

pub use events::{AsyncEventNotice, EventLog};
pub use init::NVME_CLASS_CODE;
pub use logs::LOG_BUFFER_SIZE;
pub use options::{ControllerInfo, ControllerOptions, ResetHandler};
pub use shutdown::{ShutdownReport, DEFAULT_SHUTDOWN_TIMEOUT};
pub use state::{ControllerState, QpairState};

use admin::AdminQueue;
use init::Hw;
use inner::{AdminState, Inner, QpairEntry, QueueMemory};
use state::{AtomicControllerState, QpairShared};

use crate::buffer::IoBuffer;
use crate::error::{Error, Result};
use crate::namespace::{Namespace, UnusableNamespace};
use crate::qpair::{IoQueuePair, QpairOptions};
use crate::spec::registers::{self, Cap, Vs};

/// A handle to an NVMe controller. Clone it to share it between cores.
pub struct Controller<F: PciFunction> {
    pub(crate) inner: Arc<Inner<F>>,
}

impl<F: PciFunction> Clone for Controller<F> {
    fn clone(&self) -> Self {
        Controller {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F: PciFunction> std::fmt::Debug for Controller<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("device", &self.inner.device)
            .field("state", &self.inner.state.get())
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl<F: PciFunction> Controller<F> {
    /// Claims `function` and brings the controller up (Base 2.0 section 3.5.1):
    ///
    /// 1. checks the class code (01 08 02h), enables memory decoding and bus mastering, maps
    ///    BAR0, reads `CAP` and `VS`;
    /// 2. if the controller is enabled or fatal, disables it and waits for `CSTS.RDY` = 0
    ///    within `CAP.TO`;
    /// 3. programs the admin queue and `CC` (NVM command set, 4 KiB pages, round robin,
    ///    64/16-byte entries), enables it and waits for `CSTS.RDY` = 1 within `CAP.TO`;
    /// 4. Identify Controller; Set Features Number of Queues; the active namespace list and
    ///    Identify Namespace for each (namespaces with metadata are listed as unusable; the
    ///    controller fails with [`Error::NoUsableNamespace`] only when none is usable);
    /// 5. Doorbell Buffer Config when offered and wanted; MSI-X vectors.
    pub fn new(function: F, options: ControllerOptions) -> Result<Self> {
        let device = function.address();
        let span = tracing::info_span!("nvme_bringup", %device);
        let _enter = span.enter();
        init::check_class(&function)?;
        function.set_bus_master(true)?;
        let regs = function.map_bar(0)?;
        let min_len = registers::cq_head_doorbell(0, 0) + 4;
        if regs.len() < min_len {
            return Err(userpci_framework::Error::InvalidBar {
                device,
                bar: 0,
                reason: "is smaller than the NVMe registers and admin doorbells",
            }
            .into());
        }
        let cap = Cap(regs.read64(registers::CAP));
        init::check_cap(device, cap)?;
        let version = Vs(regs.read32(registers::VS));
        options.validate(device, cap)?;
        tracing::info!(
            cap = format_args!("{:#x}", cap.0),
            version = %version,
            mqes = cap.mqes(),
            timeout_ms = cap.timeout_ms(),
            dstrd = cap.dstrd(),
            "controller registers"
        );
        let hw = Hw {
            function: &function,
            regs: &regs,
            device,
            cap,
            admin_timeout: options.admin_timeout,
        };
        hw.disable()?;
        let mut queue = AdminQueue::new(function.dma_space(), options.admin_entries, cap.dstrd())?;
        hw.enable(&queue)?;
        tracing::debug!("controller enabled");
        let mut data = init::identify_buffer(&function)?;
        let id = hw.identify_controller(&mut queue, &mut data)?;
        let max_transfer = init::max_transfer(cap, id.mdts(), options.max_transfer);
        tracing::info!(
            serial = %id.serial(),
            model = %id.model(),
            firmware = %id.firmware(),
            mdts = id.mdts(),
            max_transfer,
            "Identify Controller"
        );
        // Only queues whose doorbells lie inside BAR0 can be used.
        let bar_limit = (0..=options.io_queues)
            .rev()
            .find(|&q| registers::cq_head_doorbell(q, cap.dstrd()) + 4 <= regs.len())
            .unwrap_or(0);
        let wanted = options.io_queues.min(bar_limit.max(1));
        let io_queues = hw.set_queue_count(&mut queue, wanted)?;
        let (namespaces, unusable) = hw.namespaces(&mut queue, &mut data, &id, max_transfer)?;
        if namespaces.is_empty() {
            let details = if unusable.is_empty() {
                "the controller reports no active namespace".to_string()
            } else {
                unusable
                    .iter()
                    .map(|u| u.reason.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(Error::NoUsableNamespace { device, details });
        }
        let shadow = if options.shadow_doorbells && id.supports_doorbell_buffer_config() {
            let buffers = init::allocate_shadow(&function)?;
            hw.configure_shadow_doorbells(&mut queue, &buffers)
                .then_some(buffers)
        } else {
            None
        };
        let vectors = Self::enable_interrupts(&function, &options, io_queues)?;
        let info = ControllerInfo {
            serial: id.serial(),
            model: id.model(),
            firmware: id.firmware(),
            cap,
            version,
            mdts: id.mdts(),
            max_transfer,
            oacs: id.oacs,
            oncs: id.oncs,
            vwc: id.vwc,
            nn: id.nn,
            cntlid: id.cntlid,
            aerl: id.aerl,
            lpa: id.lpa,
            elpe: id.elpe,
            rtd3e_us: id.rtd3e,
            warning_temperature: id.wctemp,
            critical_temperature: id.cctemp,
            io_queues,
            shadow_doorbells: shadow.is_some(),
        };
        tracing::info!(
            io_queues,
            namespaces = namespaces.len(),
            shadow_doorbells = info.shadow_doorbells,
            msix_vectors = vectors.len(),
            "controller ready"
        );
        let inner = Inner {
            regs,
            device,
            cap,
            info,
            namespaces,
            unusable,
            admin: Mutex::new(AdminState {
                queue,
                data,
                qpairs: Vec::new(),
                io_queues,
            }),
            state: AtomicControllerState::new(ControllerState::Enabled),
            generation: AtomicU64::new(0),
            quiet: AtomicBool::new(false),
            vectors,
            shadow,
            options,
            function,
        };
        Ok(Controller {
            inner: Arc::new(inner),
        })
    }

    fn enable_interrupts(
        function: &F,
        options: &ControllerOptions,
        io_queues: u16,
    ) -> Result<Vec<InterruptVector>> {
        if !options.interrupts {
            return Ok(Vec::new());
        }
        let available = function.msix_vector_count()?;
        if available == 0 {
            tracing::info!("no MSI-X capability: polled mode only");
            return Ok(Vec::new());
        }
        let count = available.min(io_queues.saturating_add(1));
        Ok(function.enable_msix(count)?)
    }

    /// The controller's PCI address.
    pub fn device(&self) -> PciAddress {
        self.inner.device
    }

    /// The PCI function.
    pub fn function(&self) -> &F {
        &self.inner.function
    }

    /// What bring-up learned.
    pub fn info(&self) -> &ControllerInfo {
        &self.inner.info
    }

    /// The current state.
    pub fn state(&self) -> ControllerState {
        self.inner.state.get()
    }

    /// Completed controller resets.
    pub fn resets(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The usable namespaces, by increasing NSID.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.inner.namespaces
    }

    /// The namespace `nsid`, if usable.
    pub fn namespace(&self, nsid: u32) -> Result<&Namespace> {
        self.inner
            .namespaces
            .iter()
            .find(|ns| ns.nsid == nsid)
            .ok_or(Error::NoSuchNamespace {
                device: self.inner.device,
                nsid,
            })
    }

    /// Active namespaces the driver cannot use, with the reason.
    pub fn unusable_namespaces(&self) -> &[UnusableNamespace] {
        &self.inner.unusable
    }

    /// The MSI-X vectors enabled (empty in polled-only mode): vector 0 is the admin queue's.
    pub fn interrupt_vectors(&self) -> &[InterruptVector] {
        &self.inner.vectors
    }

    /// Reads `CSTS`: an error when the controller is fatal (`CFS`) or the device is gone.
    pub fn check_health(&self) -> Result<()> {
        let csts = self.inner.hw().csts()?;
        if csts.cfs() {
            return Err(Error::ControllerFatal {
                device: self.inner.device,
                csts: csts.0,
            });
        }
        Ok(())
    }

    /// Creates an I/O queue pair for the calling core: the lowest free QID, a completion
    /// queue then a submission queue of `options.entries` entries each.
    ///
    /// `T` is the caller's per-request token and `B` the buffer type it submits
    /// ([`userpci_framework::dma::DmaBuffer`] or [`userpci_framework::dma::PoolBuffer`]).
    pub fn create_io_qpair<T, B: IoBuffer>(
        &self,
        options: QpairOptions,
    ) -> Result<IoQueuePair<F, T, B>> {
        let inner = &self.inner;
        let device = inner.device;
        let max_entries = inner.cap.max_queue_entries().min(u32::from(u16::MAX)) as u16;
        if options.entries < 2 || options.entries > max_entries {
            return Err(Error::InvalidOption {
                device,
                what: "I/O queue entries",
                value: options.entries.into(),
                expected: format!("2..={max_entries} (CAP.MQES + 1)"),
            });
        }
        options.validate(device)?;
        let mut admin = inner.lock_admin();
        inner.check_enabled()?;
        let qid = (1..=admin.io_queues)
            .find(|q| admin.qpairs.iter().all(|e| e.qid != *q))
            .ok_or(Error::NoQueueAvailable {
                device,
                granted: admin.io_queues,
            })?;
        let space = inner.function.dma_space();
        let entries = usize::from(options.entries);
        let memory = Arc::new(QueueMemory {
            sq: space.allocate_array(entries, DmaDirection::ToDevice)?,
            cq: space.allocate_array(entries, DmaDirection::Bidirectional)?,
        });
        memory.cq.region().fill(0);
        // Device reads only: PRP lists and Dataset Management ranges.
        let prp_pages = crate::qpair::prp_pages_per_tracker(inner.info.max_transfer);
        let prp = space.allocate(
            (entries - 1) * prp_pages * crate::prp::PAGE_SIZE as usize,
            DmaDirection::ToDevice,
        )?;
        let vector = inner.vector_for(qid);
        let entry = QpairEntry {
            qid,
            entries: options.entries,
            vector: vector.unwrap_or(0),
            interrupts: vector.is_some(),
            memory: Arc::clone(&memory),
            shared: Arc::new(QpairShared::new()),
        };
        inner.create_queues(&mut admin.queue, &entry)?;
        let shared = Arc::clone(&entry.shared);
        admin.qpairs.push(entry);
        drop(admin);
        tracing::info!(%device, qid, entries, ?vector, "I/O queue pair created");
        let interrupt = vector.map(|v| inner.vectors[usize::from(v)].clone());
        Ok(IoQueuePair::new(
            Arc::clone(inner),
            qid,
            memory,
            prp,
            shared,
            interrupt,
            options,
        ))
    }

    /// Quiesces and recovers the controller (see the module documentation).
    pub fn reset(&self) -> Result<()> {
        self.inner.reset("requested", None)
    }

    /// Stops every queue pair and disables the controller; in-flight commands stay with
    /// their queue pairs for [`Controller::recover`] to re-issue.
    pub fn quiesce(&self) -> Result<()> {
        let mut admin = self.inner.lock_admin();
        self.inner.quiesce_locked(&mut admin)
    }

    /// Stops every queue pair and asks the controller to stop, for a function or bus reset
    /// that someone else (the reset coordinator) performs next: no Delete SQ/CQ is sent (the
    /// reset deletes the queues) and in-flight commands stay with their queue pairs, to be
    /// re-issued once by [`Controller::recover`] after the reset.
    pub fn quiesce_for_reset(&self) {
        let admin = self.inner.lock_admin();
        self.inner.quiesce_for_reset(&admin);
    }

    /// Gives the controller up (its device did not come back, or it missed a deadline):
    /// queue pairs fail what they hold with [`Error::Retriable`] and refuse new work.
    pub fn abandon(&self, reason: &str) {
        let admin = self.inner.lock_admin();
        self.inner.abandon(&admin, reason);
    }

    /// Brings a quiesced (or freshly reset) controller back and lets every queue pair
    /// re-issue its in-flight commands.
    pub fn recover(&self) -> Result<()> {
        let mut admin = self.inner.lock_admin();
        self.inner.recover_locked(&mut admin)
    }
}
