//! Log pages and asynchronous events (Base 2.0 "Log Page Identifiers", "Error Information
//! (Log Page Identifier 01h)", "SMART / Health Information (Log Page Identifier 02h)",
//! "Asynchronous Event Request command").

use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};

use super::status::Status;

/// `LID`, the Log Page Identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LogPageId {
    /// Error Information: Identify Controller `ELPE + 1` entries of [`ErrorInformationEntry`],
    /// newest first.
    ErrorInformation = 0x01,
    /// SMART / Health Information: one [`SmartHealthLog`], controller-wide with
    /// `NSID` = FFFFFFFFh.
    SmartHealth = 0x02,
}

impl LogPageId {
    /// The identifier for `raw`, or `None` for one not defined here (the model answers
    /// Invalid Log Page).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0x01 => Self::ErrorInformation,
            0x02 => Self::SmartHealth,
            _ => return None,
        })
    }
}

/// One Error Information log entry (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct ErrorInformationEntry {
    /// Error Count: a unique, increasing number for the error; 0 for an empty entry.
    pub error_count: u64,
    /// Submission Queue ID of the failed command (FFFFh when not command related).
    pub sqid: u16,
    /// Command ID of the failed command (FFFFh when not command related).
    pub cid: u16,
    /// Phase tag (bit 0) and Status Field (15:1) of the failed command's completion
    /// ([`ErrorInformationEntry::status`]).
    pub status_field: u16,
    /// Parameter Error Location: byte (7:0) and bit (10:8) in the command of the bad field;
    /// FFFFh when not applicable.
    pub parameter_error_location: u16,
    /// The first LBA that experienced the error.
    pub lba: u64,
    /// Namespace of the error (FFFFFFFFh when not namespace specific).
    pub nsid: u32,
    /// Vendor Specific Information Available: the log page holding more, or 0.
    pub vendor_specific: u8,
    /// Transport type of the controller that detected the error.
    pub trtype: u8,
    _reserved30: [u8; 2],
    /// Command Specific Information.
    pub command_specific: u64,
    /// Transport Type Specific Information.
    pub transport_specific: u16,
    _reserved42: [u8; 22],
}
const _: () = assert!(size_of::<ErrorInformationEntry>() == 64);
const _: () = assert!(offset_of!(ErrorInformationEntry, lba) == 16);
const _: () = assert!(offset_of!(ErrorInformationEntry, nsid) == 24);
const _: () = assert!(offset_of!(ErrorInformationEntry, command_specific) == 32);
const _: () = assert!(offset_of!(ErrorInformationEntry, transport_specific) == 40);

impl ErrorInformationEntry {
    /// The failed command's status (bits 15:1 of `status_field`).
    pub const fn status(&self) -> Status {
        Status::from_field(self.status_field >> 1)
    }
}

/// A 128-bit little-endian counter, as the SMART / Health log keeps them (unaligned in the
/// log's layout, hence bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(transparent)]
pub struct U128Le(pub [u8; 16]);

impl U128Le {
    /// The counter `value`.
    pub const fn new(value: u128) -> Self {
        U128Le(value.to_le_bytes())
    }

    /// The counter's value.
    pub const fn get(self) -> u128 {
        u128::from_le_bytes(self.0)
    }
}

/// SMART / Health Information log page (512 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct SmartHealthLog {
    /// Critical Warning bits: 0 spare below threshold, 1 temperature, 2 reliability degraded,
    /// 3 read only, 4 volatile memory backup failed, 5 persistent memory region unreliable.
    pub critical_warning: u8,
    composite_temperature: [u8; 2],
    /// Available Spare, percent.
    pub available_spare: u8,
    /// Available Spare Threshold, percent.
    pub available_spare_threshold: u8,
    /// Percentage Used (may exceed 100).
    pub percentage_used: u8,
    _bytes6: [u8; 26],
    /// Data Units Read, in thousands of 512-byte units.
    pub data_units_read: U128Le,
    /// Data Units Written, in thousands of 512-byte units.
    pub data_units_written: U128Le,
    /// Host Read Commands.
    pub host_read_commands: U128Le,
    /// Host Write Commands.
    pub host_write_commands: U128Le,
    /// Controller Busy Time, minutes.
    pub controller_busy_time: U128Le,
    /// Power Cycles.
    pub power_cycles: U128Le,
    /// Power On Hours.
    pub power_on_hours: U128Le,
    /// Unsafe Shutdowns.
    pub unsafe_shutdowns: U128Le,
    /// Media and Data Integrity Errors.
    pub media_errors: U128Le,
    /// Number of Error Information Log Entries over the controller's life.
    pub error_log_entries: U128Le,
    _bytes192: [u8; 320],
}
const _: () = assert!(size_of::<SmartHealthLog>() == 512);
const _: () = assert!(offset_of!(SmartHealthLog, available_spare) == 3);
const _: () = assert!(offset_of!(SmartHealthLog, data_units_read) == 32);
const _: () = assert!(offset_of!(SmartHealthLog, power_on_hours) == 128);
const _: () = assert!(offset_of!(SmartHealthLog, error_log_entries) == 176);

impl SmartHealthLog {
    /// Critical Warning bit 0: available spare below its threshold.
    pub const WARNING_SPARE: u8 = 1 << 0;
    /// Critical Warning bit 1: a temperature at or over an over threshold, or at or under an
    /// under threshold.
    pub const WARNING_TEMPERATURE: u8 = 1 << 1;
    /// Critical Warning bit 2: NVM subsystem reliability degraded.
    pub const WARNING_RELIABILITY: u8 = 1 << 2;
    /// Critical Warning bit 3: media placed in read-only mode.
    pub const WARNING_READ_ONLY: u8 = 1 << 3;
    /// Critical Warning bit 4: volatile memory backup device failed.
    pub const WARNING_VOLATILE_BACKUP: u8 = 1 << 4;

    /// Composite Temperature (bytes 2:1), in kelvins.
    pub const fn composite_temperature(&self) -> u16 {
        u16::from_le_bytes(self.composite_temperature)
    }

    /// Sets the Composite Temperature, in kelvins.
    pub fn set_composite_temperature(&mut self, kelvin: u16) {
        self.composite_temperature = kelvin.to_le_bytes();
    }
}

/// The completion DW0 of an Asynchronous Event Request: type (2:0), information (15:8) and
/// the log page to read (23:16), which clears the event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsyncEvent {
    /// Asynchronous Event Type (`TYPE_*`).
    pub event_type: u8,
    /// Asynchronous Event Information, meaning per type (`INFO_*`).
    pub info: u8,
    /// Log Page Identifier to read for details.
    pub log_page: u8,
}

impl AsyncEvent {
    /// Type 0h: Error status.
    pub const TYPE_ERROR: u8 = 0;
    /// Type 1h: SMART / Health status.
    pub const TYPE_SMART_HEALTH: u8 = 1;
    /// Type 2h: Notice.
    pub const TYPE_NOTICE: u8 = 2;
    /// Type 6h: I/O Command Set specific status.
    pub const TYPE_IO_COMMAND_SET: u8 = 6;
    /// Type 7h: Vendor specific.
    pub const TYPE_VENDOR_SPECIFIC: u8 = 7;
    /// Error information 00h: Write to Invalid Doorbell Register.
    pub const INFO_ERROR_INVALID_DOORBELL_REGISTER: u8 = 0x00;
    /// Error information 01h: Invalid Doorbell Write Value.
    pub const INFO_ERROR_INVALID_DOORBELL_VALUE: u8 = 0x01;
    /// Error information 03h: Persistent Internal Error.
    pub const INFO_ERROR_PERSISTENT_INTERNAL: u8 = 0x03;
    /// SMART / Health information 00h: NVM subsystem reliability.
    pub const INFO_SMART_RELIABILITY: u8 = 0x00;
    /// SMART / Health information 01h: Temperature Threshold.
    pub const INFO_SMART_TEMPERATURE_THRESHOLD: u8 = 0x01;
    /// SMART / Health information 02h: Spare Below Threshold.
    pub const INFO_SMART_SPARE_BELOW_THRESHOLD: u8 = 0x02;
    /// Notice information 00h: Namespace Attribute Changed.
    pub const INFO_NOTICE_NAMESPACE_ATTRIBUTE_CHANGED: u8 = 0x00;

    /// Decodes completion DW0.
    pub const fn from_dword(dw0: u32) -> Self {
        AsyncEvent {
            event_type: (dw0 & 0x7) as u8,
            info: (dw0 >> 8) as u8,
            log_page: (dw0 >> 16) as u8,
        }
    }

    /// Encodes completion DW0.
    pub const fn to_dword(self) -> u32 {
        ((self.log_page as u32) << 16) | ((self.info as u32) << 8) | (self.event_type as u32 & 0x7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_page_ids() {
        assert_eq!(LogPageId::ErrorInformation as u8, 0x01);
        assert_eq!(LogPageId::SmartHealth as u8, 0x02);
        assert_eq!(LogPageId::from_raw(0x02), Some(LogPageId::SmartHealth));
        assert_eq!(LogPageId::from_raw(0x03), None);
    }

    #[test]
    fn error_entry_decodes_bytes() {
        let mut raw = [0u8; 64];
        raw[0] = 9; // error count
        raw[8..10].copy_from_slice(&1u16.to_le_bytes()); // SQID
        raw[10..12].copy_from_slice(&0x22u16.to_le_bytes()); // CID
        raw[12..14].copy_from_slice(&((0x4002u16 << 1) | 1).to_le_bytes()); // status, phase
        raw[16..24].copy_from_slice(&0x1234u64.to_le_bytes()); // LBA
        raw[24..28].copy_from_slice(&1u32.to_le_bytes()); // NSID
        let entry: ErrorInformationEntry = bytemuck::pod_read_unaligned(&raw);
        assert_eq!(entry.error_count, 9);
        assert_eq!((entry.sqid, entry.cid), (1, 0x22));
        assert_eq!(entry.status(), Status::INVALID_FIELD.with_dnr());
        assert_eq!((entry.lba, entry.nsid), (0x1234, 1));
    }

    #[test]
    fn smart_log_fields_at_offsets() {
        let mut log: SmartHealthLog = Zeroable::zeroed();
        log.critical_warning = 0x01;
        log.set_composite_temperature(310);
        log.available_spare = 100;
        log.percentage_used = 3;
        log.data_units_written = U128Le::new(0x0102);
        log.power_on_hours = U128Le::new(u128::MAX);
        log.error_log_entries = U128Le::new(5);
        let bytes = bytemuck::bytes_of(&log);
        assert_eq!(bytes[0], 0x01);
        assert_eq!(&bytes[1..3], &310u16.to_le_bytes());
        assert_eq!(bytes[3], 100);
        assert_eq!(bytes[5], 3);
        assert_eq!(&bytes[48..50], &[0x02, 0x01]);
        assert_eq!(&bytes[128..144], &[0xff; 16]);
        assert_eq!(bytes[176], 5);
        assert_eq!(log.composite_temperature(), 310);
        assert_eq!(log.power_on_hours.get(), u128::MAX);
    }

    #[test]
    fn async_event_layout() {
        let event = AsyncEvent {
            event_type: AsyncEvent::TYPE_SMART_HEALTH,
            info: 0x01,
            log_page: LogPageId::SmartHealth as u8,
        };
        assert_eq!(event.to_dword(), 0x0002_0101);
        assert_eq!(
            AsyncEvent::from_dword(0xff02_01f9),
            AsyncEvent {
                event_type: 1,
                info: 0x01,
                log_page: 0x02,
            }
        );
    }
}
