//! Opcodes of the commands the driver issues and the model implements (Base 2.0 "Opcodes for
//! Admin Commands"; NVM CS 1.0 "Opcodes for NVM Commands").
//!
//! Bits 1:0 of an opcode give its data transfer direction (00b none, 01b host to controller,
//! 10b controller to host), which is why Write is 01h and Read 02h.

/// Admin command opcodes (submitted on the admin queue, QID 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AdminOpcode {
    /// Delete I/O Submission Queue.
    DeleteIoSq = 0x00,
    /// Create I/O Submission Queue.
    CreateIoSq = 0x01,
    /// Get Log Page.
    GetLogPage = 0x02,
    /// Delete I/O Completion Queue.
    DeleteIoCq = 0x04,
    /// Create I/O Completion Queue.
    CreateIoCq = 0x05,
    /// Identify.
    Identify = 0x06,
    /// Abort.
    Abort = 0x08,
    /// Set Features.
    SetFeatures = 0x09,
    /// Get Features.
    GetFeatures = 0x0a,
    /// Asynchronous Event Request.
    AsyncEventRequest = 0x0c,
    /// Doorbell Buffer Config (shadow doorbells, for emulated controllers).
    DoorbellBufferConfig = 0x7c,
}

impl AdminOpcode {
    /// The opcode for `raw`, or `None` for one not defined here (the model answers
    /// Invalid Command Opcode).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0x00 => Self::DeleteIoSq,
            0x01 => Self::CreateIoSq,
            0x02 => Self::GetLogPage,
            0x04 => Self::DeleteIoCq,
            0x05 => Self::CreateIoCq,
            0x06 => Self::Identify,
            0x08 => Self::Abort,
            0x09 => Self::SetFeatures,
            0x0a => Self::GetFeatures,
            0x0c => Self::AsyncEventRequest,
            0x7c => Self::DoorbellBufferConfig,
            _ => return None,
        })
    }
}

/// NVM Command Set I/O opcodes (submitted on I/O queues).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NvmOpcode {
    /// Flush.
    Flush = 0x00,
    /// Write.
    Write = 0x01,
    /// Read.
    Read = 0x02,
    /// Write Zeroes.
    WriteZeroes = 0x08,
    /// Dataset Management (deallocate, "trim").
    DatasetManagement = 0x09,
}

impl NvmOpcode {
    /// The opcode for `raw`, or `None` for one not defined here.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0x00 => Self::Flush,
            0x01 => Self::Write,
            0x02 => Self::Read,
            0x08 => Self::WriteZeroes,
            0x09 => Self::DatasetManagement,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_opcodes_round_trip() {
        let all = [
            (AdminOpcode::DeleteIoSq, 0x00),
            (AdminOpcode::CreateIoSq, 0x01),
            (AdminOpcode::GetLogPage, 0x02),
            (AdminOpcode::DeleteIoCq, 0x04),
            (AdminOpcode::CreateIoCq, 0x05),
            (AdminOpcode::Identify, 0x06),
            (AdminOpcode::Abort, 0x08),
            (AdminOpcode::SetFeatures, 0x09),
            (AdminOpcode::GetFeatures, 0x0a),
            (AdminOpcode::AsyncEventRequest, 0x0c),
            (AdminOpcode::DoorbellBufferConfig, 0x7c),
        ];
        for (op, raw) in all {
            assert_eq!(op as u8, raw);
            assert_eq!(AdminOpcode::from_raw(raw), Some(op));
        }
        let known = (0..=255u8)
            .filter(|&raw| AdminOpcode::from_raw(raw).is_some())
            .count();
        assert_eq!(known, all.len());
    }

    #[test]
    fn nvm_opcodes_round_trip() {
        let all = [
            (NvmOpcode::Flush, 0x00),
            (NvmOpcode::Write, 0x01),
            (NvmOpcode::Read, 0x02),
            (NvmOpcode::WriteZeroes, 0x08),
            (NvmOpcode::DatasetManagement, 0x09),
        ];
        for (op, raw) in all {
            assert_eq!(op as u8, raw);
            assert_eq!(NvmOpcode::from_raw(raw), Some(op));
        }
        assert_eq!(NvmOpcode::from_raw(0x05), None); // Compare: not implemented
                                                     // Data direction bits: Write sends data, Read receives it.
        assert_eq!(NvmOpcode::Write as u8 & 0x3, 0b01);
        assert_eq!(NvmOpcode::Read as u8 & 0x3, 0b10);
    }
}
