//! Constructors on [`SubmissionEntry`] for the admin commands the driver sends: shorthands
//! for [`AdminCommand::encode`] with the values the driver always uses (`PC` set, `CNTID` 0,
//! `SV` clear, current values, `RAE` clear).

use super::{AdminCommand, CreateIoCq, CreateIoSq, GetFeatures, GetLogPage, Identify, SetFeatures};
use crate::spec::features::{FeatureId, NumberOfQueues};
use crate::spec::identify::Cns;
use crate::spec::log::LogPageId;
use crate::spec::queue::SubmissionEntry;

/// Constructors for the admin commands the driver sends.
impl SubmissionEntry {
    /// Identify with `cns` for `nsid` into the 4096-byte buffer at `prp1`, which must not cross
    /// a memory page boundary (no `PRP2`).
    pub const fn identify(cns: Cns, nsid: u32, prp1: u64) -> Self {
        AdminCommand::Identify(Identify {
            cns: cns as u8,
            cntid: 0,
            nsid,
            prp1,
            prp2: 0,
        })
        .encode()
    }

    /// Create I/O Completion Queue `qid` of `qsize + 1` entries at `prp1` (contiguous), on MSI-X
    /// vector `iv`, interrupts enabled when `ien`.
    pub const fn create_io_cq(qid: u16, qsize: u16, prp1: u64, iv: u16, ien: bool) -> Self {
        AdminCommand::CreateIoCq(CreateIoCq {
            qid,
            qsize,
            prp1,
            iv,
            ien,
            pc: true,
        })
        .encode()
    }

    /// Create I/O Submission Queue `qid` of `qsize + 1` entries at `prp1` (contiguous), posting
    /// to completion queue `cqid`, with priority `qprio` (0 urgent .. 3 low).
    pub const fn create_io_sq(qid: u16, qsize: u16, prp1: u64, cqid: u16, qprio: u8) -> Self {
        AdminCommand::CreateIoSq(CreateIoSq {
            qid,
            qsize,
            prp1,
            cqid,
            qprio,
            pc: true,
        })
        .encode()
    }

    /// Delete I/O Submission Queue `qid` (before its completion queue).
    pub const fn delete_io_sq(qid: u16) -> Self {
        AdminCommand::DeleteIoSq { qid }.encode()
    }

    /// Delete I/O Completion Queue `qid` (after every submission queue posting to it).
    pub const fn delete_io_cq(qid: u16) -> Self {
        AdminCommand::DeleteIoCq { qid }.encode()
    }

    /// Get Log Page `lid` for `nsid`: `numd + 1` dwords from byte `offset` into `prp1`/`prp2`.
    pub const fn get_log_page(
        nsid: u32,
        lid: LogPageId,
        numd: u32,
        offset: u64,
        prp1: u64,
        prp2: u64,
    ) -> Self {
        AdminCommand::GetLogPage(GetLogPage {
            nsid,
            lid: lid as u8,
            rae: false,
            numd,
            offset,
            prp1,
            prp2,
        })
        .encode()
    }

    /// Set Features `fid` to the value `cdw11`, not saved.
    pub const fn set_features(fid: FeatureId, cdw11: u32) -> Self {
        AdminCommand::SetFeatures(SetFeatures {
            nsid: 0,
            fid: fid as u8,
            sv: false,
            cdw11,
        })
        .encode()
    }

    /// Set Features Number of Queues: request `nsqr + 1` I/O submission and `ncqr + 1` I/O
    /// completion queues. The completion's DW0 has what was allocated
    /// ([`NumberOfQueues::from_dword`]).
    pub const fn set_features_number_of_queues(nsqr: u16, ncqr: u16) -> Self {
        Self::set_features(
            FeatureId::NumberOfQueues,
            NumberOfQueues {
                nsq: nsqr,
                ncq: ncqr,
            }
            .to_dword(),
        )
    }

    /// Get Features `fid`, current value.
    pub const fn get_features(fid: FeatureId) -> Self {
        AdminCommand::GetFeatures(GetFeatures {
            nsid: 0,
            fid: fid as u8,
            sel: 0,
            cdw11: 0,
        })
        .encode()
    }

    /// Abort command `cid` on submission queue `sqid`.
    pub const fn abort(sqid: u16, cid: u16) -> Self {
        AdminCommand::Abort { sqid, cid }.encode()
    }

    /// Asynchronous Event Request (at most Identify Controller `AERL + 1` outstanding).
    pub const fn async_event_request() -> Self {
        AdminCommand::AsyncEventRequest.encode()
    }

    /// Doorbell Buffer Config with the Shadow Doorbell buffer at `shadow` and the EventIdx
    /// buffer at `eventidx` (Identify Controller `OACS` bit 8).
    pub const fn doorbell_buffer_config(shadow: u64, eventidx: u64) -> Self {
        AdminCommand::DoorbellBufferConfig { shadow, eventidx }.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dword(e: &SubmissionEntry, n: usize) -> u32 {
        let bytes = bytemuck::bytes_of(e);
        u32::from_le_bytes(bytes[n * 4..n * 4 + 4].try_into().unwrap())
    }

    fn qword(e: &SubmissionEntry, n: usize) -> u64 {
        dword(e, n) as u64 | (dword(e, n + 1) as u64) << 32
    }

    #[test]
    fn identify_places_cns_nsid_prp1() {
        let e = SubmissionEntry::identify(Cns::Namespace, 1, 0x1000_2000);
        assert_eq!(dword(&e, 0), 0x06);
        assert_eq!(dword(&e, 1), 1);
        assert_eq!(qword(&e, 6), 0x1000_2000);
        assert_eq!(qword(&e, 8), 0);
        assert_eq!(dword(&e, 10), 0x00);
        let e = SubmissionEntry::identify(Cns::ActiveNamespaceList, 0, 0x3000);
        assert_eq!(dword(&e, 10), 0x02);
        let e = SubmissionEntry::identify(Cns::Controller, 0, 0x3000);
        assert_eq!(bytemuck::bytes_of(&e)[40], 0x01);
    }

    #[test]
    fn create_queues_place_every_field() {
        let e = SubmissionEntry::create_io_cq(3, 1023, 0xabc0_0000, 2, true);
        assert_eq!(dword(&e, 0), 0x05);
        assert_eq!(qword(&e, 6), 0xabc0_0000);
        assert_eq!(dword(&e, 10), (1023 << 16) | 3);
        assert_eq!(dword(&e, 11), (2 << 16) | 0b11);
        let e = SubmissionEntry::create_io_cq(1, 63, 0x1000, 0, false);
        assert_eq!(dword(&e, 11), 0b01);

        let e = SubmissionEntry::create_io_sq(3, 1023, 0xdef0_0000, 3, 2);
        assert_eq!(dword(&e, 0), 0x01);
        assert_eq!(qword(&e, 6), 0xdef0_0000);
        assert_eq!(dword(&e, 10), (1023 << 16) | 3);
        assert_eq!(dword(&e, 11), (3 << 16) | (2 << 1) | 1);

        let e = SubmissionEntry::delete_io_sq(9);
        assert_eq!((dword(&e, 0), dword(&e, 10)), (0x00, 9));
        let e = SubmissionEntry::delete_io_cq(9);
        assert_eq!((dword(&e, 0), dword(&e, 10)), (0x04, 9));
    }

    #[test]
    fn features_abort_aer_dbbuf() {
        let e = SubmissionEntry::set_features_number_of_queues(7, 3);
        assert_eq!(dword(&e, 0), 0x09);
        assert_eq!(dword(&e, 10), 0x07);
        assert_eq!(dword(&e, 11), (3 << 16) | 7);
        let e = SubmissionEntry::get_features(FeatureId::InterruptCoalescing);
        assert_eq!((dword(&e, 0), dword(&e, 10)), (0x0a, 0x08));
        let e = SubmissionEntry::abort(4, 0x1234);
        assert_eq!((dword(&e, 0), dword(&e, 10)), (0x08, 0x1234_0004));
        let e = SubmissionEntry::async_event_request();
        assert_eq!(e, SubmissionEntry::new(0x0c));
        let e = SubmissionEntry::doorbell_buffer_config(0x5000, 0x6000);
        assert_eq!(dword(&e, 0), 0x7c);
        assert_eq!((qword(&e, 6), qword(&e, 8)), (0x5000, 0x6000));
    }

    #[test]
    fn get_log_page_splits_numd_and_offset() {
        let numd = GetLogPage::numd_for_len(512);
        assert_eq!(numd, 127);
        let e = SubmissionEntry::get_log_page(
            crate::spec::NSID_ALL,
            LogPageId::SmartHealth,
            numd,
            0,
            0x7000,
            0,
        );
        assert_eq!(dword(&e, 0), 0x02);
        assert_eq!(dword(&e, 1), 0xffff_ffff);
        assert_eq!(dword(&e, 10), (127 << 16) | 0x02);
        assert_eq!(dword(&e, 11), 0);
        // NUMD above 16 bits and a 64-bit offset.
        let e = SubmissionEntry::get_log_page(
            0,
            LogPageId::ErrorInformation,
            0x0003_0001,
            0x1_0000_0040,
            0,
            0,
        );
        assert_eq!(dword(&e, 10), (0x0001 << 16) | 0x01);
        assert_eq!(dword(&e, 11), 0x0003);
        assert_eq!((dword(&e, 12), dword(&e, 13)), (0x40, 1));
        let AdminCommand::GetLogPage(parsed) = AdminCommand::decode(&e).unwrap() else {
            panic!("not a Get Log Page");
        };
        assert_eq!(parsed.len_bytes(), 0x0003_0002 * 4);
        assert_eq!(GetLogPage::numd_for_len(0), 0);
    }
}
