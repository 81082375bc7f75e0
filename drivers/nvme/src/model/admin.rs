//! Admin commands (Base 2.0 "Admin Command Set"): queue management, Identify, features, log
//! pages, Abort, Asynchronous Event Request and Doorbell Buffer Config.

use userpci_framework::backend::sim::ModelContext;

use super::hostile::DeviceWrite;
use super::queues::{CompQueue, ShadowDoorbells, SubQueue};
use super::shared::Outcome;
use super::{prp, NvmeModel};
use crate::spec::admin::{CreateIoCq, CreateIoSq, GetFeatures, GetLogPage, Identify, SetFeatures};
use crate::spec::features::{FeatureId, NumberOfQueues, TemperatureThreshold, ThresholdKind};
use crate::spec::identify::ActiveNamespaceList;
use crate::spec::log::LogPageId;
use crate::spec::queue::{CQE_SIZE, IOCQES, IOSQES, PSDT_PRP, SQE_SIZE};
use crate::spec::status::StatusCodeType;
use crate::spec::{AdminCommand, Cns, Status, SubmissionEntry, NSID_ALL};

fn dnr(status: Status) -> Outcome {
    Outcome::status(status.with_dnr())
}

fn success(dw0: u32) -> Outcome {
    Outcome::Done(dw0, Status::SUCCESS)
}

/// Feature Identifier Not Changeable / Feature Not Namespace Specific (not in `spec::status`).
const FEATURE_NOT_NAMESPACE_SPECIFIC: Status = Status::new(StatusCodeType::CommandSpecific, 0x0f);

/// Get Features `SEL` 011b: the capabilities of every feature here: changeable, not saveable,
/// not namespace specific.
const FEATURE_CAPABILITIES: u32 = 1 << 2;

impl NvmeModel {
    /// Executes one admin command.
    pub(super) fn admin(&mut self, ctx: &mut ModelContext<'_>, sqe: &SubmissionEntry) -> Outcome {
        // PCIe admin commands use PRPs; fused operations are not supported.
        if sqe.psdt() != PSDT_PRP {
            return dnr(Status::INVALID_FIELD);
        }
        if sqe.fuse() != 0 {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let Some(command) = AdminCommand::decode(sqe) else {
            return dnr(Status::INVALID_OPCODE);
        };
        match command {
            AdminCommand::DeleteIoSq { qid } => self.delete_sq(qid),
            AdminCommand::CreateIoSq(c) => self.create_sq(c),
            AdminCommand::GetLogPage(c) => self.get_log_page(ctx, c),
            AdminCommand::DeleteIoCq { qid } => self.delete_cq(qid),
            AdminCommand::CreateIoCq(c) => self.create_cq(c),
            AdminCommand::Identify(c) => self.identify(ctx, c),
            AdminCommand::Abort { sqid, cid } => self.abort(sqid, cid),
            AdminCommand::SetFeatures(c) => self.set_features(c),
            AdminCommand::GetFeatures(c) => self.get_features(c),
            AdminCommand::AsyncEventRequest => match self.async_event_request(sqe.cid()) {
                Some(status) => Outcome::status(status),
                None => Outcome::Parked,
            },
            AdminCommand::DoorbellBufferConfig { shadow, eventidx } => {
                self.doorbell_buffer_config(ctx, shadow, eventidx)
            }
        }
    }

    /// Number of Queues allocated (zero-based SQs, CQs): as set, else everything.
    pub(super) fn granted_queues(&self) -> (u16, u16) {
        let max = self.config.max_queues - 1;
        self.features.queues.unwrap_or((max, max))
    }

    fn queue_fits(base: u64, entries: u32, entry_size: usize) -> bool {
        base.checked_add(u64::from(entries) * entry_size as u64)
            .is_some()
    }

    fn create_cq(&mut self, c: CreateIoCq) -> Outcome {
        let (_, ncq) = self.granted_queues();
        let qid = usize::from(c.qid);
        if self.cc.iosqes() != IOSQES || self.cc.iocqes() != IOCQES {
            // QEMU's answer to unset or unsupported CC.IOSQES / CC.IOCQES.
            return dnr(Status::INVALID_QUEUE_SIZE);
        }
        if c.qid == 0 || c.qid > ncq.saturating_add(1) || self.cqs[qid].is_some() {
            return dnr(Status::INVALID_QUEUE_IDENTIFIER);
        }
        if c.qsize == 0 || c.qsize > self.cap.mqes() {
            return dnr(Status::INVALID_QUEUE_SIZE);
        }
        if !c.prp1.is_multiple_of(self.page) {
            return dnr(Status::PRP_OFFSET_INVALID);
        }
        if u32::from(c.iv) > u32::from(self.config.max_queues) {
            return dnr(Status::INVALID_INTERRUPT_VECTOR);
        }
        let size = u32::from(c.qsize) + 1;
        // CAP.CQR: queues must be physically contiguous.
        if !c.pc || !Self::queue_fits(c.prp1, size, CQE_SIZE) {
            return dnr(Status::INVALID_FIELD);
        }
        self.cqs[qid] = Some(CompQueue::new(c.prp1, size, c.iv, c.ien, 0));
        self.features.queues_created = true;
        success(0)
    }

    fn create_sq(&mut self, c: CreateIoSq) -> Outcome {
        let (nsq, _) = self.granted_queues();
        let qid = usize::from(c.qid);
        if self.cc.iosqes() != IOSQES || self.cc.iocqes() != IOCQES {
            return dnr(Status::INVALID_QUEUE_SIZE);
        }
        let cq_exists = self
            .cqs
            .get(usize::from(c.cqid))
            .is_some_and(Option::is_some);
        if c.cqid == 0 || !cq_exists {
            return dnr(Status::COMPLETION_QUEUE_INVALID);
        }
        if c.qid == 0 || c.qid > nsq.saturating_add(1) || self.sqs[qid].is_some() {
            return dnr(Status::INVALID_QUEUE_IDENTIFIER);
        }
        if c.qsize == 0 || c.qsize > self.cap.mqes() {
            return dnr(Status::INVALID_QUEUE_SIZE);
        }
        if !c.prp1.is_multiple_of(self.page) {
            return dnr(Status::PRP_OFFSET_INVALID);
        }
        let size = u32::from(c.qsize) + 1;
        if !c.pc || !Self::queue_fits(c.prp1, size, SQE_SIZE) {
            return dnr(Status::INVALID_FIELD);
        }
        let latency = !self.config.latency.is_zero();
        self.sqs[qid] = Some(SubQueue::new(c.prp1, size, c.cqid, latency));
        if let Some(cq) = self.cqs[usize::from(c.cqid)].as_mut() {
            cq.sq_count += 1;
            cq.pending.reserve(size as usize);
        }
        self.features.queues_created = true;
        success(0)
    }

    fn delete_sq(&mut self, qid: u16) -> Outcome {
        self.stats.sq_deletes += 1;
        let index = usize::from(qid);
        if qid == 0 || !self.sqs.get(index).is_some_and(Option::is_some) {
            return dnr(Status::INVALID_QUEUE_IDENTIFIER);
        }
        // Commands still in flight complete as aborted before the queue goes.
        while let Some(command) = self.sqs[index]
            .as_mut()
            .and_then(|sq| sq.inflight.pop_front())
        {
            self.complete(qid, command.sqe.cid(), 0, Status::ABORTED_SQ_DELETION);
        }
        if let Some(sq) = self.sqs[index].take() {
            if let Some(cq) = self.cqs[usize::from(sq.cqid)].as_mut() {
                cq.sq_count = cq.sq_count.saturating_sub(1);
            }
        }
        success(0)
    }

    fn delete_cq(&mut self, qid: u16) -> Outcome {
        self.stats.cq_deletes += 1;
        let index = usize::from(qid);
        let Some(cq) = self
            .cqs
            .get(index)
            .and_then(Option::as_ref)
            .filter(|_| qid != 0)
        else {
            return dnr(Status::INVALID_QUEUE_IDENTIFIER);
        };
        if cq.sq_count != 0 {
            // Retrying after the submission queues are gone succeeds: no DNR.
            return Outcome::status(Status::INVALID_QUEUE_DELETION);
        }
        self.cqs[index] = None;
        success(0)
    }

    fn identify(&mut self, ctx: &mut ModelContext<'_>, c: Identify) -> Outcome {
        let namespaces = self.config.namespaces;
        let transfer = |model: &mut Self, ctx: &mut ModelContext<'_>, bytes: &[u8]| {
            let mut scratch = Vec::new();
            let (cns, nsid) = (c.cns, c.nsid);
            let bytes = model
                .hostile
                .data(bytes, &mut scratch, |data| DeviceWrite::Identify {
                    cns,
                    nsid,
                    data,
                });
            match prp::copy_to_host(ctx, model.page, c.prp1, c.prp2, bytes) {
                Ok(()) => success(0),
                Err(status) => Outcome::status(status),
            }
        };
        match Cns::from_raw(c.cns) {
            Some(Cns::Controller) => {
                let id = self.identify_controller();
                transfer(self, ctx, bytemuck::bytes_of(&id))
            }
            Some(Cns::Namespace) => {
                if c.nsid == 0 || c.nsid > namespaces {
                    return dnr(Status::INVALID_NAMESPACE_OR_FORMAT);
                }
                let ns = self.identify_namespace(c.nsid);
                transfer(self, ctx, bytemuck::bytes_of(&ns))
            }
            Some(Cns::ActiveNamespaceList) => {
                // Both FFFFFFFFh and FFFFFFFEh leave no greater NSID to list.
                if c.nsid >= NSID_ALL - 1 {
                    return dnr(Status::INVALID_NAMESPACE_OR_FORMAT);
                }
                let list = ActiveNamespaceList::from_ids(c.nsid + 1..=namespaces);
                transfer(self, ctx, bytemuck::bytes_of(&list))
            }
            None => dnr(Status::INVALID_FIELD),
        }
    }

    fn get_log_page(&mut self, ctx: &mut ModelContext<'_>, c: GetLogPage) -> Outcome {
        if !c.offset.is_multiple_of(4) {
            return dnr(Status::INVALID_FIELD);
        }
        let len = c.len_bytes();
        if self.config.max_transfer().is_some_and(|max| len > max) {
            return dnr(Status::INVALID_FIELD);
        }
        let Some(lid) = LogPageId::from_raw(c.lid) else {
            return dnr(Status::INVALID_LOG_PAGE);
        };
        let errors;
        let smart;
        let bytes: &[u8] = match lid {
            LogPageId::ErrorInformation => {
                errors = self.error_log.page();
                bytemuck::cast_slice(&errors)
            }
            LogPageId::SmartHealth => {
                // Identify Controller LPA bit 0 is clear: no per-namespace SMART data.
                if c.nsid != 0 && c.nsid != NSID_ALL {
                    return dnr(Status::INVALID_FIELD);
                }
                smart = self.smart_log(ctx);
                bytemuck::bytes_of(&smart)
            }
        };
        let Some(rest) = usize::try_from(c.offset)
            .ok()
            .and_then(|offset| bytes.get(offset..))
            .filter(|rest| !rest.is_empty())
        else {
            return dnr(Status::INVALID_FIELD);
        };
        let n = rest.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let mut scratch = Vec::new();
        let (raw_lid, offset) = (c.lid, c.offset);
        let data = self
            .hostile
            .data(&rest[..n], &mut scratch, |data| DeviceWrite::LogPage {
                lid: raw_lid,
                offset,
                data,
            });
        if let Err(status) = prp::copy_to_host(ctx, self.page, c.prp1, c.prp2, data) {
            return Outcome::status(status);
        }
        if !c.rae {
            self.clear_events_for(lid);
            self.deliver_events();
        }
        success(0)
    }

    fn abort(&mut self, sqid: u16, cid: u16) -> Outcome {
        // Completion DW0 bit 0: 0 when the command was aborted, 1 when it was not.
        const NOT_ABORTED: u32 = 1;
        let index = usize::from(sqid);
        let Some(sq) = self.sqs.get_mut(index).and_then(Option::as_mut) else {
            return dnr(Status::INVALID_FIELD);
        };
        if let Some(at) = sq.inflight.iter().position(|c| c.sqe.cid() == cid) {
            sq.inflight.remove(at);
            self.complete(sqid, cid, 0, Status::ABORT_REQUESTED);
            return success(0);
        }
        if sqid == 0 {
            if let Some(at) = self.events.requests.iter().position(|&c| c == cid) {
                self.events.requests.remove(at);
                self.complete_held(cid, 0, Status::ABORT_REQUESTED);
                return success(0);
            }
        }
        success(NOT_ABORTED)
    }

    fn set_features(&mut self, c: SetFeatures) -> Outcome {
        if c.sv {
            return dnr(Status::FEATURE_NOT_SAVEABLE);
        }
        let Some(fid) = FeatureId::from_raw(c.fid) else {
            return dnr(Status::INVALID_FIELD);
        };
        if c.nsid != 0 && c.nsid != NSID_ALL {
            return dnr(FEATURE_NOT_NAMESPACE_SPECIFIC);
        }
        match fid {
            FeatureId::TemperatureThreshold => {
                let t = TemperatureThreshold::from_dword(c.cdw11);
                // As QEMU: only the Composite Temperature has thresholds; others are ignored.
                if t.sensor != TemperatureThreshold::COMPOSITE {
                    return success(0);
                }
                match t.kind() {
                    Some(ThresholdKind::Over) => self.features.temperature_over = t.kelvin,
                    Some(ThresholdKind::Under) => self.features.temperature_under = t.kelvin,
                    None => return dnr(Status::INVALID_FIELD),
                }
                self.temperature_threshold_changed();
                success(0)
            }
            FeatureId::NumberOfQueues => {
                if self.features.queues_created {
                    return dnr(Status::COMMAND_SEQUENCE_ERROR);
                }
                let requested = NumberOfQueues::from_dword(c.cdw11);
                if requested.nsq == u16::MAX || requested.ncq == u16::MAX {
                    return dnr(Status::INVALID_FIELD);
                }
                let max = self.config.max_queues - 1;
                // The allocation does not change until the next reset.
                let (nsq, ncq) = *self
                    .features
                    .queues
                    .get_or_insert((requested.nsq.min(max), requested.ncq.min(max)));
                success(NumberOfQueues { nsq, ncq }.to_dword())
            }
            FeatureId::InterruptCoalescing => {
                self.features.coalescing = c.cdw11 & 0xffff;
                success(0)
            }
            FeatureId::AsyncEventConfiguration => {
                self.features.async_config = c.cdw11;
                self.deliver_events();
                success(0)
            }
        }
    }

    fn get_features(&mut self, c: GetFeatures) -> Outcome {
        let Some(fid) = FeatureId::from_raw(c.fid) else {
            return dnr(Status::INVALID_FIELD);
        };
        let max = self.config.max_queues - 1;
        let all_queues = NumberOfQueues { nsq: max, ncq: max }.to_dword();
        let threshold = TemperatureThreshold::from_dword(c.cdw11);
        let composite = threshold.sensor == TemperatureThreshold::COMPOSITE;
        let defaults = super::controller::Features::default();
        let value = match (c.sel, fid) {
            (0..=2, FeatureId::TemperatureThreshold) => {
                let current = if c.sel == 0 { self.features } else { defaults };
                match threshold.kind() {
                    _ if !composite => 0,
                    Some(ThresholdKind::Over) => u32::from(current.temperature_over),
                    Some(ThresholdKind::Under) => u32::from(current.temperature_under),
                    None => return dnr(Status::INVALID_FIELD),
                }
            }
            (0, FeatureId::NumberOfQueues) => {
                let (nsq, ncq) = self.granted_queues();
                NumberOfQueues { nsq, ncq }.to_dword()
            }
            (0, FeatureId::InterruptCoalescing) => self.features.coalescing,
            (0, FeatureId::AsyncEventConfiguration) => self.features.async_config,
            // Default and saved (nothing is saveable, so saved is the default).
            (1 | 2, FeatureId::NumberOfQueues) => all_queues,
            (1 | 2, _) => 0,
            (3, _) => FEATURE_CAPABILITIES,
            _ => return dnr(Status::INVALID_FIELD),
        };
        success(value)
    }

    fn doorbell_buffer_config(
        &mut self,
        ctx: &mut ModelContext<'_>,
        shadow: u64,
        eventidx: u64,
    ) -> Outcome {
        if !self.config.shadow_doorbells {
            return dnr(Status::INVALID_OPCODE);
        }
        let page = self.page;
        if shadow == 0
            || eventidx == 0
            || !shadow.is_multiple_of(page)
            || !eventidx.is_multiple_of(page)
        {
            return dnr(Status::INVALID_FIELD);
        }
        let buffers = ShadowDoorbells {
            shadow,
            eventidx,
            page,
            dstrd: self.config.dstrd,
        };
        // As QEMU: the shadow buffer starts out holding the current doorbell values.
        for (qid, sq) in self.sqs.iter().enumerate() {
            if let (Some(sq), Some(slot)) = (sq, buffers.sq_slot(qid as u16)) {
                buffers.write_shadow(ctx, slot, u32::from(sq.tail));
            }
        }
        for (qid, cq) in self.cqs.iter().enumerate() {
            if let (Some(cq), Some(slot)) = (cq, buffers.cq_slot(qid as u16)) {
                buffers.write_shadow(ctx, slot, u32::from(cq.head));
            }
        }
        self.shadow = Some(buffers);
        success(0)
    }
}
