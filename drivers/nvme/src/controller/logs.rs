//! Get Log Page (Base 2.0 "Get Log Page command"): the Error Information (01h) and SMART /
//! Health Information (02h) pages, typed, and any page as bytes; and the Temperature
//! Threshold feature that makes the controller raise a SMART / Health event.
//!
//! Requests are checked before they are sent: a length of whole dwords (`NUMD` is a
//! zero-based dword count, split into `NUMDL` and `NUMDU`), within the driver's one-page log
//! buffer and the controller's MDTS, and an offset only when `LPA` offers extended data. What
//! the controller writes is untrusted: the buffer is zeroed first (a controller may return
//! less than asked, QEMU does for the error log), pages are decoded from fixed-size bytes,
//! and the entry count `ELPE` reports is capped by the buffer.

use userpci_framework::device::PciFunction;
use userpci_framework::pci::PciAddress;

use super::inner::{AdminState, Inner};
use super::Controller;
use crate::error::{Error, Result};
use crate::spec::admin::{GetFeatures, GetLogPage};
use crate::spec::features::{FeatureId, TemperatureThreshold, ThresholdKind};
use crate::spec::identify::IdentifyController;
use crate::spec::log::{ErrorInformationEntry, LogPageId, SmartHealthLog};
use crate::spec::{AdminCommand, SubmissionEntry, IDENTIFY_DATA_SIZE, NSID_ALL};

/// The largest log page read the driver makes: its admin data buffer, one memory page.
pub const LOG_BUFFER_SIZE: usize = IDENTIFY_DATA_SIZE;

const ENTRY_SIZE: usize = std::mem::size_of::<ErrorInformationEntry>();

/// `NUMD` (zero-based dwords) for a request of `len` bytes at `offset`, or why it is refused.
pub(crate) fn log_request_numd(
    device: PciAddress,
    lid: u8,
    len: usize,
    offset: u64,
    lpa: u8,
    max_transfer: u64,
) -> Result<u32> {
    let refuse = |reason| Error::InvalidLogPageRequest {
        device,
        lid,
        len,
        offset,
        reason,
    };
    if len == 0 || !len.is_multiple_of(4) {
        return Err(refuse(
            "the length must be a non-zero multiple of 4 bytes (NUMD counts whole dwords)",
        ));
    }
    if len > LOG_BUFFER_SIZE {
        return Err(refuse("longer than the driver's 4096-byte log buffer"));
    }
    if len as u64 > max_transfer {
        return Err(refuse(
            "longer than the controller's largest transfer (MDTS)",
        ));
    }
    if !offset.is_multiple_of(4) {
        return Err(refuse("the offset must be a multiple of 4 bytes"));
    }
    let extended = lpa & IdentifyController::LPA_EXTENDED_DATA != 0;
    if offset != 0 && !extended {
        return Err(refuse(
            "a nonzero offset needs Identify Controller LPA bit 2 (extended data)",
        ));
    }
    let numd = (len / 4 - 1) as u32;
    if numd > 0xffff && !extended {
        return Err(refuse(
            "more than 65536 dwords needs NUMDU, which needs LPA bit 2 (extended data)",
        ));
    }
    Ok(numd)
}

impl<F: PciFunction> Inner<F> {
    /// Reads `len` bytes of log page `lid` from `offset` into the admin data buffer (zeroed
    /// first). `retain` sets `RAE`: the asynchronous event naming the page stays uncleared.
    pub(crate) fn read_log_locked(
        &self,
        admin: &mut AdminState,
        lid: u8,
        nsid: u32,
        len: usize,
        offset: u64,
        retain: bool,
    ) -> Result<()> {
        let numd = log_request_numd(
            self.device,
            lid,
            len,
            offset,
            self.info.lpa,
            self.info.max_transfer,
        )?;
        admin.data.as_mut_slice().fill(0);
        let sqe = AdminCommand::GetLogPage(GetLogPage {
            nsid,
            lid,
            rae: retain,
            numd,
            offset,
            prp1: admin.data.iova(),
            prp2: 0,
        })
        .encode();
        self.admin_command(admin, sqe)?;
        Ok(())
    }

    /// The SMART / Health log, controller-wide (`NSID` FFFFFFFFh: QEMU refuses 0).
    pub(crate) fn smart_log_locked(
        &self,
        admin: &mut AdminState,
        retain: bool,
    ) -> Result<SmartHealthLog> {
        let len = std::mem::size_of::<SmartHealthLog>();
        let lid = LogPageId::SmartHealth as u8;
        self.read_log_locked(admin, lid, NSID_ALL, len, 0, retain)?;
        Ok(bytemuck::pod_read_unaligned(&admin.data.as_slice()[..len]))
    }

    /// Error Information entries the driver reads: `ELPE + 1`, at most a buffer's worth.
    pub(crate) fn error_log_entries(&self) -> usize {
        (usize::from(self.info.elpe) + 1).min(LOG_BUFFER_SIZE / ENTRY_SIZE)
    }

    /// Reads the Error Information log into the data buffer; returns the entry count read.
    pub(crate) fn read_error_log_locked(
        &self,
        admin: &mut AdminState,
        retain: bool,
    ) -> Result<usize> {
        let entries = self.error_log_entries();
        let lid = LogPageId::ErrorInformation as u8;
        self.read_log_locked(admin, lid, NSID_ALL, entries * ENTRY_SIZE, 0, retain)?;
        Ok(entries)
    }
}

/// Entry `index` of an Error Information log in `bytes`.
pub(crate) fn error_entry(bytes: &[u8], index: usize) -> Option<ErrorInformationEntry> {
    let start = index.checked_mul(ENTRY_SIZE)?;
    let raw = bytes.get(start..start.checked_add(ENTRY_SIZE)?)?;
    Some(bytemuck::pod_read_unaligned(raw))
}

impl<F: PciFunction> Controller<F> {
    /// Reads the SMART / Health Information log (LID 02h) for the whole controller. `RAE` is
    /// set, so an asynchronous event pointing at this page stays for
    /// [`Controller::poll_async_events`] to clear.
    pub fn smart_health_log(&self) -> Result<SmartHealthLog> {
        let mut admin = self.inner.lock_admin();
        self.inner.smart_log_locked(&mut admin, true)
    }

    /// Reads the Error Information log (LID 01h): the entries in use (`Error Count` nonzero),
    /// newest (highest count) first. `RAE` is set, as for [`Controller::smart_health_log`].
    pub fn error_log(&self) -> Result<Vec<ErrorInformationEntry>> {
        let mut admin = self.inner.lock_admin();
        let entries = self.inner.read_error_log_locked(&mut admin, true)?;
        let bytes = admin.data.as_slice();
        let mut log: Vec<ErrorInformationEntry> = (0..entries)
            .filter_map(|i| error_entry(bytes, i))
            .filter(|e| e.error_count != 0)
            .collect();
        log.sort_by_key(|e| std::cmp::Reverse(e.error_count));
        Ok(log)
    }

    /// Reads `out.len()` bytes of log page `lid` for `nsid` from byte `offset` (a multiple of
    /// 4, nonzero only with `LPA` bit 2), with `RAE` set. `out.len()` must be a non-zero
    /// multiple of 4 up to [`LOG_BUFFER_SIZE`].
    pub fn read_log_page(&self, lid: u8, nsid: u32, offset: u64, out: &mut [u8]) -> Result<()> {
        let mut admin = self.inner.lock_admin();
        self.inner
            .read_log_locked(&mut admin, lid, nsid, out.len(), offset, true)?;
        out.copy_from_slice(&admin.data.as_slice()[..out.len()]);
        Ok(())
    }

    /// Sets a Composite Temperature threshold (Set Features FID 04h). A temperature at or past
    /// it sets SMART Critical Warning bit 1 and raises a SMART / Health event.
    pub fn set_temperature_threshold(&self, kind: ThresholdKind, kelvin: u16) -> Result<()> {
        let value = TemperatureThreshold::composite(kind, kelvin).to_dword();
        let sqe = SubmissionEntry::set_features(FeatureId::TemperatureThreshold, value);
        let mut admin = self.inner.lock_admin();
        self.inner.admin_command(&mut admin, sqe)?;
        Ok(())
    }

    /// The current Composite Temperature threshold of `kind`, kelvins (Get Features FID 04h).
    pub fn temperature_threshold(&self, kind: ThresholdKind) -> Result<u16> {
        let sqe = AdminCommand::GetFeatures(GetFeatures {
            nsid: 0,
            fid: FeatureId::TemperatureThreshold as u8,
            sel: 0,
            cdw11: TemperatureThreshold::composite(kind, 0).to_dword(),
        })
        .encode();
        let mut admin = self.inner.lock_admin();
        let cqe = self.inner.admin_command(&mut admin, sqe)?;
        Ok(TemperatureThreshold::from_dword(cqe.dw0).kelvin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> PciAddress {
        "01:00.0".parse().unwrap()
    }

    #[test]
    fn log_requests_are_checked_with_the_reason_named() {
        let ext = IdentifyController::LPA_EXTENDED_DATA;
        assert_eq!(
            log_request_numd(device(), 2, 512, 0, 0, 1 << 20).unwrap(),
            127
        );
        assert_eq!(log_request_numd(device(), 1, 4, 0, 0, 1 << 20).unwrap(), 0);
        assert_eq!(
            log_request_numd(device(), 2, 256, 256, ext, 1 << 20).unwrap(),
            63
        );
        let err = log_request_numd(device(), 2, 6, 0, 0, 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0000:01:00.0: invalid Get Log Page request for log page 0x02: 6 bytes at offset 0: \
             the length must be a non-zero multiple of 4 bytes (NUMD counts whole dwords)"
        );
        let err = log_request_numd(device(), 2, 0, 0, 0, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("0 bytes"), "{err}");
        let err = log_request_numd(device(), 1, 8192, 0, ext, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("4096-byte log buffer"), "{err}");
        let err = log_request_numd(device(), 1, 4096, 0, 0, 2048).unwrap_err();
        assert!(err.to_string().contains("MDTS"), "{err}");
        let err = log_request_numd(device(), 2, 512, 2, ext, 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("offset must be a multiple of 4"),
            "{err}"
        );
        let err = log_request_numd(device(), 2, 256, 256, 0, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("LPA bit 2"), "{err}");
    }

    #[test]
    fn error_entries_are_read_within_the_bytes() {
        let mut bytes = vec![0u8; 3 * ENTRY_SIZE + 10];
        bytes[ENTRY_SIZE] = 7;
        assert_eq!(error_entry(&bytes, 1).unwrap().error_count, 7);
        assert!(error_entry(&bytes, 2).is_some());
        assert!(
            error_entry(&bytes, 3).is_none(),
            "a partial entry is not read"
        );
        assert!(error_entry(&bytes, usize::MAX).is_none());
    }
}
