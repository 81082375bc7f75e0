//! Asynchronous events (Base 2.0 "Asynchronous Event Request command" and "Asynchronous
//! Events"): the driver keeps `AERL + 1` requests outstanding (at most
//! [`MAX_ASYNC_EVENT_REQUESTS`], and leaving room in the admin queue), and
//! [`Controller::poll_async_events`] hands completed events to the application.
//!
//! For each event the poller reads the log page the event names with `RAE` clear, which is
//! what clears the event on the controller (until then it reports no other event of that
//! type), then submits the request again. The completion DW0 and the page are device-written
//! and decoded with bounds checks. Polling allocates nothing: the slots are a fixed array, the
//! page lands in the controller's preallocated data buffer, and the notices are collected on
//! the stack and handed over after the control-path lock is released (so the callback may
//! call the controller).

use userpci_framework::device::PciFunction;

use super::aer_slots::{AerSlots, MAX_ASYNC_EVENT_REQUESTS};
use super::inner::{AdminState, Inner};
use super::logs::{error_entry, LOG_BUFFER_SIZE};
use super::state::ControllerState;
use super::Controller;
use crate::error::{Error, Result};
use crate::spec::features::{AsyncEventConfig, FeatureId};
use crate::spec::log::{AsyncEvent, ErrorInformationEntry, LogPageId, SmartHealthLog};
use crate::spec::{Status, SubmissionEntry, NSID_ALL};

/// The log page read for an event, decoded.
// The SMART page stays inline: boxing it would allocate on the polling path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventLog {
    /// SMART / Health Information (LID 02h).
    SmartHealth(SmartHealthLog),
    /// Error Information (LID 01h): the newest entry in use (highest Error Count), and how
    /// many entries were in use.
    ErrorInformation {
        /// The newest entry, `None` when every entry read was empty (QEMU keeps none).
        newest: Option<ErrorInformationEntry>,
        /// Entries with a nonzero Error Count.
        in_use: usize,
    },
    /// Another page: read (so the event is cleared), not decoded.
    Other {
        /// The Log Page Identifier.
        lid: u8,
    },
}

/// One asynchronous event, as [`Controller::poll_async_events`] reports it.
#[derive(Debug)]
pub struct AsyncEventNotice {
    /// Type, information and log page, from the completion's DW0.
    pub event: AsyncEvent,
    /// The page the event named, read with `RAE` clear; an error if the read failed (the
    /// request is armed again either way).
    pub log: Result<EventLog>,
}

impl<F: PciFunction> Inner<F> {
    /// Requests to keep outstanding: `AERL + 1`, at most [`MAX_ASYNC_EVENT_REQUESTS`], and
    /// leaving two admin queue slots for other commands.
    fn async_event_requests(&self, admin: &AdminState) -> usize {
        let room = usize::from(admin.queue.size()).saturating_sub(2);
        (usize::from(self.info.aerl) + 1)
            .min(MAX_ASYNC_EVENT_REQUESTS)
            .min(room)
    }

    /// Submits an Asynchronous Event Request in every wanted slot that is idle.
    pub(crate) fn arm_async_events(&self, admin: &mut AdminState) -> Result<()> {
        while let Some(index) = admin.queue.events.next_idle() {
            let sqe = SubmissionEntry::async_event_request().with_cid(AerSlots::cid(index));
            admin.queue.submit(&self.regs, self.device, sqe)?;
            admin.queue.events.mark_outstanding(index);
        }
        Ok(())
    }

    /// After a controller reset (which drops held requests): the configuration set again and
    /// every slot armed again, if asynchronous events were enabled.
    pub(crate) fn restore_async_events(&self, admin: &mut AdminState) -> Result<()> {
        if admin.queue.events.wanted() == 0 {
            return Ok(());
        }
        let config = admin.queue.events.config;
        let sqe = SubmissionEntry::set_features(FeatureId::AsyncEventConfiguration, config);
        admin.queue.execute(
            &self.regs,
            self.function.clock().as_ref(),
            self.device,
            sqe,
            self.options.admin_timeout,
        )?;
        self.arm_async_events(admin)
    }

    /// Reads and decodes the page `event` names, with `RAE` clear.
    fn read_event_log(&self, admin: &mut AdminState, event: AsyncEvent) -> Result<EventLog> {
        match LogPageId::from_raw(event.log_page) {
            Some(LogPageId::SmartHealth) => {
                Ok(EventLog::SmartHealth(self.smart_log_locked(admin, false)?))
            }
            Some(LogPageId::ErrorInformation) => {
                let entries = self.read_error_log_locked(admin, false)?;
                let bytes = admin.data.as_slice();
                let used = (0..entries)
                    .filter_map(|i| error_entry(bytes, i))
                    .filter(|e| e.error_count != 0);
                let (newest, in_use) = used.fold((None, 0), |(newest, n), e| {
                    let newer = newest
                        .is_none_or(|old: ErrorInformationEntry| e.error_count > old.error_count);
                    (if newer { Some(e) } else { newest }, n + 1)
                });
                Ok(EventLog::ErrorInformation { newest, in_use })
            }
            None => {
                let lid = event.log_page;
                self.read_log_locked(admin, lid, NSID_ALL, LOG_BUFFER_SIZE, 0, false)?;
                Ok(EventLog::Other { lid })
            }
        }
    }
}

impl<F: PciFunction> Controller<F> {
    /// Enables asynchronous events: Set Features Asynchronous Event Configuration to
    /// `config`, then `AERL + 1` Asynchronous Event Requests (at most 8). Returns how many are
    /// outstanding. They are armed again after every controller reset.
    pub fn enable_async_events(&self, config: AsyncEventConfig) -> Result<usize> {
        let inner = &self.inner;
        let mut admin = inner.lock_admin();
        let sqe = SubmissionEntry::set_features(FeatureId::AsyncEventConfiguration, config.0);
        inner.admin_command(&mut admin, sqe)?;
        let wanted = inner.async_event_requests(&admin);
        if wanted == 0 {
            return Err(Error::InvalidOption {
                device: inner.device,
                what: "admin queue entries for asynchronous events",
                value: admin.queue.size().into(),
                expected: "at least 3 (one request and room for other commands)".into(),
            });
        }
        admin.queue.events.config = config.0;
        admin.queue.events.set_wanted(wanted);
        inner.arm_async_events(&mut admin)?;
        tracing::info!(device = %inner.device, outstanding = wanted, config = format_args!("{:#x}", config.0), "asynchronous events enabled");
        Ok(admin.queue.events.outstanding())
    }

    /// Asynchronous Event Requests outstanding now.
    pub fn async_events_outstanding(&self) -> usize {
        self.inner.lock_admin().queue.events.outstanding()
    }

    /// Asynchronous Event Requests that completed with an error status (not armed again).
    pub fn async_event_failures(&self) -> u64 {
        self.inner.lock_admin().queue.events.failed
    }

    /// Hands every asynchronous event completed since the last call to `on_event`, after
    /// reading (and so clearing) the log page each names and arming its request again.
    /// Returns how many were handed over. Never waits for the control-path lock: while a
    /// reset or another admin command holds it, this returns 0 and the events stay for the
    /// next call. Allocates nothing.
    pub fn poll_async_events(&self, on_event: &mut impl FnMut(AsyncEventNotice)) -> usize {
        let inner = &self.inner;
        let mut notices: [Option<AsyncEventNotice>; MAX_ASYNC_EVENT_REQUESTS] =
            std::array::from_fn(|_| None);
        let mut count = 0;
        {
            let mut admin = match inner.admin.try_lock() {
                Ok(admin) => admin,
                // As `lock_admin`: a panic under the lock leaves the admin queue usable.
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return 0,
            };
            if inner.state.get() != ControllerState::Enabled || admin.queue.events.wanted() == 0 {
                return 0;
            }
            admin.queue.poll(&inner.regs);
            while let Some((slot, dw0, status)) = admin.queue.events.take_completed() {
                if !status.is_success() {
                    // Limit exceeded, aborted: this slot stays idle until the next reset.
                    admin.queue.events.failed += 1;
                    admin.queue.events.retire(slot);
                    let limit = status.code() == Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED;
                    tracing::warn!(device = %inner.device, slot, %status, limit, "Asynchronous Event Request failed");
                    continue;
                }
                let event = AsyncEvent::from_dword(dw0);
                let log = inner.read_event_log(&mut admin, event);
                if let Err(err) = inner.arm_async_events(&mut admin) {
                    tracing::warn!(device = %inner.device, %err, "Asynchronous Event Request not armed again");
                }
                if let Some(place) = notices.get_mut(count) {
                    *place = Some(AsyncEventNotice { event, log });
                    count += 1;
                }
            }
        }
        for notice in notices.iter_mut().take(count) {
            if let Some(notice) = notice.take() {
                on_event(notice);
            }
        }
        count
    }
}
