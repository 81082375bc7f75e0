//! What both sleepers share, below them and the backend choice in the module root.

use std::time::Duration;

/// Generations are kept to 30 bits so that they fit in io_uring user data next to the index.
pub(crate) const GEN_MASK: u32 = (1 << 30) - 1;

/// The `ppoll` backend looks at its fds without blocking once per this many checks.
pub(crate) const POLL_CHECK_EVERY: u32 = 64;

/// A `timespec` for `timeout`, saturating at `time_t::MAX` seconds.
pub(crate) fn timespec(timeout: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Always below 1e9, which fits every c_long (32 or 64 bits).
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    }
}
