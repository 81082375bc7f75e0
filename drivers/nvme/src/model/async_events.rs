//! Asynchronous events (Base 2.0 "Asynchronous Event Request command"), the Error
//! Information log and the SMART / Health log, on the state in `events.rs`.
//!
//! Up to `AERL + 1` Asynchronous Event Requests are held; none completes unless an event
//! occurs: an invalid doorbell write while a request is held, or one injected with
//! [`NvmeModel::inject_async_event`]. As in QEMU, a reported event type is masked until the
//! host reads its log page without `RAE`, and at most 16 events wait for a request (more are
//! dropped).

use bytemuck::Zeroable;
use userpci_framework::backend::sim::ModelContext;

use super::controller::NvmeModel;
use super::events::{data_units, MAX_QUEUED, TEMPERATURE};
use super::shared::AERL;
use crate::spec::features::AsyncEventConfig;
use crate::spec::log::{AsyncEvent, LogPageId, SmartHealthLog, U128Le};
use crate::spec::Status;

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

    /// A temperature threshold was set: a SMART / Health event when the temperature is at or
    /// past one (QEMU checks at Set Features only; the temperature is constant).
    pub(super) fn temperature_threshold_changed(&mut self) {
        if self.features.temperature_warning() {
            self.post_event(AsyncEvent {
                event_type: AsyncEvent::TYPE_SMART_HEALTH,
                info: AsyncEvent::INFO_SMART_TEMPERATURE_THRESHOLD,
                log_page: LogPageId::SmartHealth as u8,
            });
        }
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
        if self.features.temperature_warning() {
            log.critical_warning |= SmartHealthLog::WARNING_TEMPERATURE;
        }
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
