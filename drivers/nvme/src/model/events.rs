//! Asynchronous events (Base 2.0 "Asynchronous Event Request command"), the Error
//! Information log and the SMART / Health log.
//!
//! Up to `AERL + 1` Asynchronous Event Requests are held; none completes unless an event
//! occurs: an invalid doorbell write while a request is held, or one injected with
//! [`NvmeModel::inject_async_event`]. As in QEMU, a reported event type is masked until the
//! host reads its log page without `RAE`, and at most 16 events wait for a request (more are
//! dropped).

use std::collections::VecDeque;

use bytemuck::Zeroable;
use userpci_framework::backend::sim::ModelContext;

use super::controller::AERL;
use super::NvmeModel;
use crate::spec::features::AsyncEventConfig;
use crate::spec::log::{AsyncEvent, ErrorInformationEntry, LogPageId, SmartHealthLog, U128Le};
use crate::spec::{Status, NSID_ALL};

/// Events that may wait for a request.
const MAX_QUEUED: usize = 16;
/// Error Information log entries kept (Identify Controller `ELPE` + 1).
pub(super) const ERROR_LOG_ENTRIES: usize = 4;
/// Composite temperature reported, in kelvins (QEMU's 0x143, 50 °C).
const TEMPERATURE: u16 = 0x143;

/// Held requests and waiting events.
#[derive(Debug)]
pub(super) struct Events {
    /// CIDs of held Asynchronous Event Requests, oldest first.
    pub(super) requests: VecDeque<u16>,
    queued: VecDeque<AsyncEvent>,
    /// Event types reported and not yet cleared (bit per type).
    masked: u8,
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
fn data_units(bytes: u64) -> u128 {
    u128::from(bytes.div_ceil(512)).div_ceil(1000)
}

impl NvmeModel {
    /// Reports `event` to the host: completes a held Asynchronous Event Request now, or when
    /// the host sends one. SMART / Health and Notice events need the matching Asynchronous
    /// Event Configuration bits; Error events are always reported.
    pub fn inject_async_event(&mut self, ctx: &mut ModelContext<'_>, event: AsyncEvent) {
        self.post_event(event);
        self.run(ctx);
    }

    fn event_enabled(&self, event: AsyncEvent) -> bool {
        let config = self.features.async_config;
        match event.event_type {
            AsyncEvent::TYPE_SMART_HEALTH => {
                config & AsyncEventConfig::SMART_CRITICAL_WARNINGS != 0
            }
            AsyncEvent::TYPE_NOTICE => match event.info {
                AsyncEvent::INFO_NOTICE_NAMESPACE_ATTRIBUTE_CHANGED => {
                    config & AsyncEventConfig::NAMESPACE_ATTRIBUTE != 0
                }
                0x01 => config & AsyncEventConfig::FIRMWARE_ACTIVATION != 0,
                _ => true,
            },
            _ => true,
        }
    }

    pub(super) fn post_event(&mut self, mut event: AsyncEvent) {
        event.event_type &= 0x7;
        if !self.event_enabled(event) || self.events.queued.len() == MAX_QUEUED {
            return;
        }
        self.events.queued.push_back(event);
        self.deliver_events();
    }

    /// An invalid doorbell write: an Error event pointing at the Error Information log, if
    /// an Asynchronous Event Request is outstanding (Base "Submission Queue Tail Doorbell").
    pub(super) fn doorbell_error(&mut self, ctx: &mut ModelContext<'_>, info: u8) {
        self.error_log.record(0xffff, 0xffff, Status::INVALID_FIELD);
        if self.events.requests.is_empty() {
            return;
        }
        self.post_event(AsyncEvent {
            event_type: AsyncEvent::TYPE_ERROR,
            info,
            log_page: LogPageId::ErrorInformation as u8,
        });
        self.run(ctx);
    }

    /// Completes held requests with waiting events whose type is not masked.
    pub(super) fn deliver_events(&mut self) {
        while !self.events.requests.is_empty() {
            let masked = self.events.masked;
            let Some(index) = self
                .events
                .queued
                .iter()
                .position(|e| masked & (1 << e.event_type) == 0)
            else {
                return;
            };
            let Some(event) = self.events.queued.remove(index) else {
                return;
            };
            let Some(cid) = self.events.requests.pop_front() else {
                return;
            };
            self.events.masked |= 1 << event.event_type;
            self.complete_held(cid, event.to_dword(), Status::SUCCESS);
        }
    }

    /// Completes a held admin command (an AER), counting it as outstanding again.
    pub(super) fn complete_held(&mut self, cid: u16, dw0: u32, status: Status) {
        if let Some(sq) = self.sqs[0].as_mut() {
            sq.outstanding += 1;
        }
        self.complete(0, cid, dw0, status);
    }

    /// Asynchronous Event Request: held, or refused beyond `AERL + 1`.
    pub(super) fn async_event_request(&mut self, cid: u16) -> Option<Status> {
        if self.events.requests.len() > usize::from(AERL) {
            return Some(Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED);
        }
        self.events.requests.push_back(cid);
        None
    }

    /// Reading log page `lid` without `RAE` clears the events that name it.
    pub(super) fn clear_events_for(&mut self, lid: LogPageId) {
        let event_type = match lid {
            LogPageId::ErrorInformation => AsyncEvent::TYPE_ERROR,
            LogPageId::SmartHealth => AsyncEvent::TYPE_SMART_HEALTH,
        };
        self.events.masked &= !(1 << event_type);
        self.events.queued.retain(|e| e.event_type != event_type);
    }

    /// The SMART / Health log at virtual time `now`.
    pub(super) fn smart_log(&self, ctx: &ModelContext<'_>) -> SmartHealthLog {
        let mut log = SmartHealthLog::zeroed();
        log.set_composite_temperature(TEMPERATURE);
        log.available_spare = 100;
        log.available_spare_threshold = 10;
        log.data_units_read = U128Le::new(data_units(self.smart.bytes_read));
        log.data_units_written = U128Le::new(data_units(self.smart.bytes_written));
        log.host_read_commands = U128Le::new(self.smart.read_commands.into());
        log.host_write_commands = U128Le::new(self.smart.write_commands.into());
        log.power_cycles = U128Le::new(1);
        log.power_on_hours = U128Le::new(u128::from(ctx.now().as_secs() / 3600));
        log.error_log_entries = U128Le::new(self.error_log.count.into());
        log
    }
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
