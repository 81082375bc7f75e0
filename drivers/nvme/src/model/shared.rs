//! What the model's pieces share, below all of them: the command outcome, the AER limit and
//! the timer tokens the processing loop schedules.

use crate::spec::Status;

/// Asynchronous Event Request Limit, zero-based (4 outstanding), as QEMU.
pub(super) const AERL: u8 = 3;

/// Timer token: a latency-mode command is due.
pub(super) const TIMER_COMMAND: u64 = 3;
/// Timer token: an interrupt coalescing window closed.
pub(super) const TIMER_COALESCE: u64 = 4;
/// Timer token: shutdown processing finished.
pub(super) const TIMER_SHUTDOWN: u64 = 5;

/// What executing a command led to.
pub(super) enum Outcome {
    /// Complete with completion DW0 and a status.
    Done(u32, Status),
    /// Held by the controller (an Asynchronous Event Request): no completion yet.
    Parked,
}

impl Outcome {
    pub(super) fn status(status: Status) -> Self {
        Outcome::Done(0, status)
    }
}
