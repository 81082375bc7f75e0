//! I/O queue pairs: the raw, polled, zero-allocation data path.
//!
//! An [`IoQueuePair`] belongs to the core that created it: it embeds
//! [`CoreLocal`], so it is neither `Send` nor `Sync`, and handing it to another thread does
//! not compile:
//!
//! ```compile_fail
//! use userpci_framework::backend::sim::SimFunction;
//! use userpci_nvme::IoQueuePair;
//!
//! fn require_send<T: Send>() {}
//! require_send::<IoQueuePair<SimFunction>>();
//! ```
//!
//! The controller handle, by contrast, is shared between cores, and each core creates its
//! own queue pair from it:
//!
//! ```
//! use userpci_framework::backend::sim::SimFunction;
//! use userpci_nvme::Controller;
//!
//! fn require_send_sync<T: Send + Sync>() {}
//! require_send_sync::<Controller<SimFunction>>();
//! ```
//!
//! # Submitting and completing
//! `submit_*` validate the request (LBA range against the namespace size, buffer length a
//! whole number of blocks, buffer direction) **before** anything is queued, split it into
//! commands of at most [`crate::Namespace::max_blocks_per_command`] blocks (MDTS and the
//! 16-bit block count), and write the entries; none reaches the controller until
//! [`IoQueuePair::commit`] or the next [`IoQueuePair::process_completions`] writes the SQ tail
//! doorbell, once for the whole batch. A request the queue cannot take completely (too few
//! free command slots or SQ entries) is refused with [`Error::QueueFull`] and its token and
//! buffer come back in [`Rejected`]: backpressure, never a panic or a spin.
//!
//! [`IoQueuePair::process_completions`] reaps completions (phase tag first, with an acquire
//! fence), writes the CQ head doorbell once, and hands each finished request to the callback,
//! once, after all of its commands completed, with the first error any of them reported.
//!
//! Buffers are taken by value and handed back in the completion, so memory the controller
//! may still access cannot be freed or reused by the caller meanwhile.
//!
//! # Untrusted completions
//! A completion whose SQ ID is not this queue's, whose CID is out of range or names no
//! command in flight (a duplicate, or a stale generation), is counted in [`QpairStats`],
//! logged (the first few at `warn`, then at `debug`) and ignored. An `SQHD` outside the range
//! the controller could have fetched is counted and not used, but the CID is still honoured:
//! Dword 3 was validated on its own. Free SQ entries are computed from the last valid `SQHD`,
//! so an entry is never overwritten before the controller fetched it.
//!
//! # Timeouts
//! The clock is read once per poll; commands are stamped when their doorbell is written.
//! At most every [`QpairOptions::timeout_check_interval`] the trackers are scanned: a command
//! older than [`QpairOptions::timeout`] gets an Abort (admin), and one that still has not
//! completed [`QpairOptions::abort_timeout`] later causes a controller reset (see
//! [`crate::Controller`]), after which it is re-issued. A controller reporting `CSTS.CFS` is
//! reset at once; one reading all ones is gone, and its commands fail with
//! [`Error::DeviceGone`].
//!
//! # Allocation
//! After creation nothing on the data path allocates: trackers, requests, PRP list pages and
//! free lists are arrays sized at creation (`tests/driver_no_alloc.rs` checks it).

mod complete;
mod recovery;
mod submit;
mod tracker;

use std::sync::Arc;
use std::time::Duration;
use userpci_framework::reset::ResetCause;

use userpci_framework::device::{InterruptVector, PciFunction};
use userpci_framework::dma::{DmaBuffer, DmaRegion};
use userpci_framework::pci::PciAddress;
use userpci_framework::runtime::CoreLocal;

use crate::buffer::IoBuffer;
use crate::controller::inner::{Inner, QueueMemory};
use crate::controller::state::QpairShared;
use crate::error::{Error, Result};
use crate::prp::{self, PrpListPages, PAGE_SIZE};
use crate::queue::{CqRing, Doorbell, SqRing};
use crate::spec::registers;

use tracker::{Requests, Trackers};

/// How to create an I/O queue pair.
#[derive(Clone, Debug)]
pub struct QpairOptions {
    /// Entries of the submission and completion queue (2..=`CAP.MQES + 1`); `entries - 1`
    /// commands can be in flight.
    pub entries: u16,
    /// How long a command may take before it is aborted.
    pub timeout: Duration,
    /// How long an aborted command may still take before the controller is reset.
    pub abort_timeout: Duration,
    /// Least time between two scans for expired commands.
    pub timeout_check_interval: Duration,
    /// How often a command is re-issued after controller resets before it fails with
    /// [`Error::Retriable`].
    pub max_reissues: u8,
}

impl Default for QpairOptions {
    fn default() -> Self {
        QpairOptions {
            entries: 128,
            timeout: Duration::from_secs(5),
            abort_timeout: Duration::from_secs(1),
            timeout_check_interval: Duration::from_millis(100),
            max_reissues: 3,
        }
    }
}

impl QpairOptions {
    pub(crate) fn validate(&self, device: PciAddress) -> Result<()> {
        for (what, value) in [
            ("command timeout (ms)", self.timeout),
            ("abort timeout (ms)", self.abort_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidOption {
                    device,
                    what,
                    value: 0,
                    expected: "more than 0".into(),
                });
            }
        }
        Ok(())
    }
}

/// A finished request.
#[derive(Debug)]
pub struct IoCompletion<T, B> {
    /// The caller's token.
    pub token: T,
    /// The caller's buffer, back in its hands (`None` for requests without data).
    pub buffer: Option<B>,
    /// The outcome: the first error of any of its commands.
    pub result: Result<()>,
}

/// Completions that named no command of this queue, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BogusCompletions {
    /// CID FFFFh, reserved by the NVMe base specification (never assigned to a command; seen
    /// in some controllers' error completions).
    pub cid_reserved: u64,
    /// CID beyond the tracker array.
    pub cid_out_of_range: u64,
    /// CID of no command in flight (duplicate or stale).
    pub cid_not_in_flight: u64,
    /// `SQHD` outside what the controller could have fetched (entry still used).
    pub sq_head_invalid: u64,
    /// `SQID` of another queue.
    pub sq_id_mismatch: u64,
}

impl BogusCompletions {
    /// All bogus completions.
    pub fn total(&self) -> u64 {
        self.cid_reserved
            + self.cid_out_of_range
            + self.cid_not_in_flight
            + self.sq_head_invalid
            + self.sq_id_mismatch
    }
}

/// Counters of one queue pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QpairStats {
    /// Caller requests accepted.
    pub requests: u64,
    /// Commands submitted (a split request counts each part; re-issues are not counted).
    pub submitted: u64,
    /// Commands completed by the controller.
    pub completed: u64,
    /// Requests that completed with an error.
    pub errors: u64,
    /// Completions ignored as bogus.
    pub bogus: BogusCompletions,
    /// Commands that timed out.
    pub timeouts: u64,
    /// Abort commands sent.
    pub aborts: u64,
    /// Commands re-issued after a controller reset.
    pub reissued: u64,
    /// Controller resets this queue pair reconnected after.
    pub reconnects: u64,
    /// Doorbell writes that went to MMIO.
    pub doorbell_writes: u64,
    /// Doorbell updates that stayed in the shadow buffer (EventIdx not passed).
    pub doorbell_writes_elided: u64,
}

/// The kind of an I/O request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Flush,
    WriteZeroes,
    Trim,
}

/// One I/O queue pair (an SQ and its CQ), for one core. See the module documentation.
///
/// `T` is the caller's token, handed back with each completion; `B` the buffer type.
pub struct IoQueuePair<F: PciFunction, T = u64, B: IoBuffer = DmaBuffer> {
    shared: Arc<QpairShared>,
    core: QpairCore<F, T, B>,
    _core: CoreLocal,
}

impl<F: PciFunction, T, B: IoBuffer> std::fmt::Debug for IoQueuePair<F, T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoQueuePair")
            .field("device", &self.core.device)
            .field("qid", &self.core.qid)
            .field("entries", &self.core.entries)
            .field("in_flight", &self.core.trackers.in_flight())
            .field("state", &self.shared.state())
            .finish_non_exhaustive()
    }
}

/// Everything but the shared word, so that a guard borrowing the word and `&mut` access to
/// the rest can coexist.
struct QpairCore<F: PciFunction, T, B: IoBuffer> {
    ctrl: Arc<Inner<F>>,
    device: PciAddress,
    qid: u16,
    entries: u16,
    memory: Arc<QueueMemory>,
    prp: Arc<DmaRegion>,
    prp_pages: usize,
    sq: SqRing,
    cq: CqRing,
    sq_db: Doorbell<F::Registers>,
    cq_db: Doorbell<F::Registers>,
    trackers: Trackers,
    requests: Requests<T, B>,
    /// Trackers written to the SQ whose doorbell has not been written yet.
    unstamped: Vec<u16>,
    /// Trackers that timed out, to abort outside the critical section.
    to_abort: Vec<u16>,
    /// A controller reset this queue pair needs, and why.
    reset_wanted: Option<ResetCause>,
    /// Trackers in the `Doomed` state wait for the next poll.
    doomed: bool,
    seen_generation: u64,
    now: Duration,
    last_check: Duration,
    options: QpairOptions,
    stats: QpairStats,
    interrupt: Option<InterruptVector>,
    warnings: u32,
}

/// The PRP list pages of one tracker.
struct TrackerList<'a> {
    region: &'a DmaRegion,
    first: usize,
    pages: usize,
}

impl PrpListPages for TrackerList<'_> {
    fn pages(&self) -> usize {
        self.pages
    }
    fn page_iova(&self, page: usize) -> u64 {
        self.region
            .iova_at((self.first + page) * PAGE_SIZE as usize)
    }
    fn write_entry(&mut self, page: usize, index: usize, value: u64) {
        let offset = (self.first + page) * PAGE_SIZE as usize + index * 8;
        self.region.write::<u64>(offset, value);
    }
}

/// PRP list pages each tracker gets: enough for the largest transfer, and at least one (a
/// Dataset Management range list uses it).
pub(crate) fn prp_pages_per_tracker(max_transfer: u64) -> usize {
    prp::list_pages_for_transfer(max_transfer as usize).max(1)
}

impl<F: PciFunction, T, B: IoBuffer> IoQueuePair<F, T, B> {
    pub(crate) fn new(
        ctrl: Arc<Inner<F>>,
        qid: u16,
        memory: Arc<QueueMemory>,
        prp: DmaRegion,
        shared: Arc<QpairShared>,
        interrupt: Option<InterruptVector>,
        options: QpairOptions,
    ) -> Self {
        let dstrd = ctrl.cap.dstrd();
        let shadow_for = |offset: usize| {
            ctrl.shadow
                .as_ref()
                .filter(|_| offset - registers::DOORBELLS + 4 <= PAGE_SIZE as usize)
                .cloned()
        };
        let sq_offset = registers::sq_tail_doorbell(qid, dstrd);
        let cq_offset = registers::cq_head_doorbell(qid, dstrd);
        let entries = options.entries;
        let capacity = entries - 1;
        let now = ctrl.function.clock().now();
        let core = QpairCore {
            device: ctrl.device,
            qid,
            entries,
            prp_pages: prp_pages_per_tracker(ctrl.info.max_transfer),
            prp: Arc::new(prp),
            sq: SqRing::new(entries),
            cq: CqRing::new(entries),
            sq_db: Doorbell::new(ctrl.regs.clone(), sq_offset, shadow_for(sq_offset)),
            cq_db: Doorbell::new(ctrl.regs.clone(), cq_offset, shadow_for(cq_offset)),
            trackers: Trackers::new(capacity),
            requests: Requests::new(capacity),
            unstamped: Vec::with_capacity(usize::from(capacity)),
            to_abort: Vec::with_capacity(usize::from(capacity)),
            reset_wanted: None,
            doomed: false,
            seen_generation: ctrl.generation.load(std::sync::atomic::Ordering::Acquire),
            now,
            last_check: now,
            options,
            stats: QpairStats::default(),
            interrupt,
            warnings: 0,
            memory,
            ctrl,
        };
        IoQueuePair {
            shared,
            core,
            _core: CoreLocal::new(),
        }
    }

    /// The queue identifier (of both the SQ and the CQ).
    pub fn qid(&self) -> u16 {
        self.core.qid
    }

    /// The controller's PCI address.
    pub fn device(&self) -> PciAddress {
        self.core.device
    }

    /// Commands that can be in flight at once (`entries - 1`).
    pub fn capacity(&self) -> usize {
        self.core.trackers.capacity()
    }

    /// Commands in flight (submitted and not completed).
    pub fn in_flight(&self) -> usize {
        self.core.trackers.in_flight()
    }

    /// The counters.
    pub fn stats(&self) -> QpairStats {
        self.core.stats
    }

    /// The queue pair's state as the controller set it.
    pub fn state(&self) -> crate::controller::QpairState {
        self.shared.state()
    }

    /// The MSI-X vector its completion queue signals, when interrupts are enabled.
    pub fn interrupt(&self) -> Option<&InterruptVector> {
        self.core.interrupt.as_ref()
    }

    /// The function's clock (for callers that wait between polls).
    pub(crate) fn clock(&self) -> &Arc<dyn userpci_framework::time::Clock> {
        self.core.ctrl.function.clock()
    }
}
