//! The state behind asynchronous events and the logs: held requests and waiting events, the
//! Error Information log and the SMART / Health counters. The behaviour is in
//! `async_events.rs`.

use std::collections::VecDeque;

use bytemuck::Zeroable;

use super::shared::AERL;
use crate::spec::log::{AsyncEvent, ErrorInformationEntry};
use crate::spec::{Status, NSID_ALL};

/// Events that may wait for a request.
pub(super) const MAX_QUEUED: usize = 16;
/// Error Information log entries kept (Identify Controller `ELPE` + 1).
pub(super) const ERROR_LOG_ENTRIES: usize = 4;
/// Composite temperature reported, in kelvins (QEMU's 0x143, 50 °C).
pub(super) const TEMPERATURE: u16 = 0x143;
/// Warning Composite Temperature Threshold and the default over threshold (QEMU's 0x157).
pub(super) const TEMPERATURE_WARNING: u16 = 0x157;
/// Critical Composite Temperature Threshold (QEMU's 0x175).
pub(super) const TEMPERATURE_CRITICAL: u16 = 0x175;

/// Held requests and waiting events.
#[derive(Debug)]
pub(super) struct Events {
    /// CIDs of held Asynchronous Event Requests, oldest first.
    pub(super) requests: VecDeque<u16>,
    pub(super) queued: VecDeque<AsyncEvent>,
    /// Event types reported and not yet cleared (bit per type).
    pub(super) masked: u8,
}

impl Events {
    pub(super) fn new() -> Self {
        Events {
            requests: VecDeque::with_capacity(usize::from(AERL) + 1),
            queued: VecDeque::with_capacity(MAX_QUEUED),
            masked: 0,
        }
    }

    /// Forgets requests and events (a reset), keeping the memory.
    pub(super) fn clear(&mut self) {
        self.requests.clear();
        self.queued.clear();
        self.masked = 0;
    }
}

/// The Error Information log: the newest entries, newest first when read.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ErrorLog {
    entries: [ErrorInformationEntry; ERROR_LOG_ENTRIES],
    next: usize,
    /// Errors over the controller's life.
    pub(super) count: u64,
}

impl ErrorLog {
    /// Records a failed command (`FFFFh`/`FFFFh` when no command is involved).
    pub(super) fn record(&mut self, sqid: u16, cid: u16, status: Status) {
        self.count += 1;
        let mut entry = ErrorInformationEntry::zeroed();
        entry.error_count = self.count;
        entry.sqid = sqid;
        entry.cid = cid;
        entry.status_field = status.field() << 1;
        entry.parameter_error_location = 0xffff;
        entry.nsid = NSID_ALL;
        self.entries[self.next] = entry;
        self.next = (self.next + 1) % ERROR_LOG_ENTRIES;
    }

    /// The log page: entries newest first, unused ones zero.
    pub(super) fn page(&self) -> [ErrorInformationEntry; ERROR_LOG_ENTRIES] {
        let mut page = [ErrorInformationEntry::zeroed(); ERROR_LOG_ENTRIES];
        for (i, slot) in page.iter_mut().enumerate() {
            let index = (self.next + ERROR_LOG_ENTRIES - 1 - i) % ERROR_LOG_ENTRIES;
            *slot = self.entries[index];
        }
        page
    }
}

/// Host command counters for the SMART / Health log (successful commands only).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SmartCounters {
    pub(super) read_commands: u64,
    pub(super) write_commands: u64,
    pub(super) bytes_read: u64,
    pub(super) bytes_written: u64,
}

/// Data Units: thousands of 512-byte units, rounded up.
pub(super) fn data_units(bytes: u64) -> u128 {
    u128::from(bytes.div_ceil(512)).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_units_round_up_to_thousands() {
        assert_eq!(data_units(0), 0);
        assert_eq!(data_units(1), 1);
        assert_eq!(data_units(512 * 1000), 1);
        assert_eq!(data_units(512 * 1000 + 1), 2);
    }

    #[test]
    fn error_log_is_newest_first() {
        let mut log = ErrorLog::default();
        for cid in 1..=5 {
            log.record(1, cid, Status::INVALID_FIELD);
        }
        let page = log.page();
        let cids: Vec<u16> = page.iter().map(|e| e.cid).collect();
        assert_eq!(cids, vec![5, 4, 3, 2]);
        assert_eq!(page[0].error_count, 5);
        assert_eq!(page[0].status(), Status::INVALID_FIELD);
        assert_eq!(ErrorLog::default().page()[0].error_count, 0);
    }
}
