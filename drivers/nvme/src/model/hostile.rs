//! Hostile writes: a test hook that sees, and may replace, what the controller is about to
//! write into host memory, for fuzzing the driver with device data no correct controller
//! would produce.
//!
//! The hook is a closure set with [`super::NvmeModel::set_hostile`]. It is called with a
//! [`DeviceWrite`] just before each write it covers and may change the bytes or value in
//! place; the model then writes what the hook left. Only the content changes: the address
//! and the length stay what the command asked for, so a hostile controller still writes
//! only where the host pointed it (the simulated IOMMU checks that as always). The model's
//! own state is not affected: it believes it wrote the true value.
//!
//! Covered: completion queue entries (admin and I/O), Identify data (every CNS), log page
//! data, and shadow-doorbell EventIdx values. Deterministic: the model calls the hook in its
//! processing order; a hook that is a pure function of its inputs and its own state gives
//! the same run every time.

/// One write the controller is about to make, for the hostile hook to change.
#[derive(Debug)]
pub enum DeviceWrite<'a> {
    /// A completion queue entry for a command of submission queue `sqid`, as 16 bytes (the
    /// phase tag is bit 0 of byte 14).
    Completion {
        /// The submission queue of the command completed.
        sqid: u16,
        /// The entry as the controller built it.
        entry: &'a mut [u8; 16],
    },
    /// Identify data for `cns` and `nsid`, as many bytes as the controller transfers.
    Identify {
        /// The Controller or Namespace Structure requested.
        cns: u8,
        /// The command's NSID.
        nsid: u32,
        /// The data.
        data: &'a mut [u8],
    },
    /// Log page `lid` from byte `offset`, as many bytes as the controller transfers.
    LogPage {
        /// The log page identifier.
        lid: u8,
        /// The command's offset into the page.
        offset: u64,
        /// The data.
        data: &'a mut [u8],
    },
    /// A shadow-doorbell EventIdx value for queue `qid` (`sq`: the submission queue's, else
    /// the completion queue's).
    EventIdx {
        /// The queue.
        qid: u16,
        /// True for a submission queue.
        sq: bool,
        /// The value.
        value: &'a mut u32,
    },
}

/// The hostile hook: called before each covered write.
pub type HostileHook = Box<dyn FnMut(DeviceWrite<'_>) + Send>;

/// The hook and how often it was offered a write.
#[derive(Default)]
pub(super) struct Hostile {
    hook: Option<HostileHook>,
    offered: u64,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hostile")
            .field("hook", &self.hook.is_some())
            .field("offered", &self.offered)
            .finish()
    }
}

impl Hostile {
    /// Offers a write to the hook, if there is one.
    pub(super) fn offer(&mut self, write: DeviceWrite<'_>) {
        if let Some(hook) = self.hook.as_mut() {
            self.offered += 1;
            hook(write);
        }
    }

    /// Sets (or with `None` removes) the hook.
    pub(super) fn set_hook(&mut self, hook: Option<HostileHook>) {
        self.hook = hook;
    }

    /// How many writes the hook was offered.
    pub(super) fn offered(&self) -> u64 {
        self.offered
    }

    /// True when a hook is set (callers copy read-only data only then).
    pub(super) fn active(&self) -> bool {
        self.hook.is_some()
    }

    /// The EventIdx value to write for `qid` in place of `value`.
    pub(super) fn eventidx(&mut self, qid: u16, sq: bool, mut value: u32) -> u32 {
        self.offer(DeviceWrite::EventIdx {
            qid,
            sq,
            value: &mut value,
        });
        value
    }

    /// The data to transfer in place of `bytes`, through the hook (`bytes` itself without
    /// one). `scratch` holds the copy.
    pub(super) fn data<'a>(
        &mut self,
        bytes: &'a [u8],
        scratch: &'a mut Vec<u8>,
        write: impl FnOnce(&mut [u8]) -> DeviceWrite<'_>,
    ) -> &'a [u8] {
        if !self.active() {
            return bytes;
        }
        scratch.clear();
        scratch.extend_from_slice(bytes);
        self.offer(write(scratch.as_mut_slice()));
        scratch.as_slice()
    }
}
