//! Feature identifiers and the values of the features the driver sets (Base 2.0 "Feature
//! Values" and the sections of each feature).
//!
//! The value of these features travels in Set Features CDW11 and comes back in the Get/Set
//! Features completion DW0, with the same layout.

/// `FID`, the Feature Identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FeatureId {
    /// Number of Queues ([`NumberOfQueues`]).
    NumberOfQueues = 0x07,
    /// Interrupt Coalescing ([`InterruptCoalescing`]).
    InterruptCoalescing = 0x08,
    /// Asynchronous Event Configuration ([`AsyncEventConfig`]).
    AsyncEventConfiguration = 0x0b,
}

impl FeatureId {
    /// The identifier for `raw`, or `None` for one not defined here (the model answers
    /// Invalid Field in Command).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0x07 => Self::NumberOfQueues,
            0x08 => Self::InterruptCoalescing,
            0x0b => Self::AsyncEventConfiguration,
            _ => return None,
        })
    }
}

/// Number of Queues (FID 07h), both counts zero-based and excluding the admin queue pair.
///
/// In Set Features CDW11 these are `NSQR` (15:0) and `NCQR` (31:16), the numbers requested;
/// 65535 is invalid. In the completion DW0 they are `NSQA` (15:0) and `NCQA` (31:16), the
/// numbers allocated, which may be more or fewer than requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumberOfQueues {
    /// I/O submission queues - 1 (`NSQR` / `NSQA`).
    pub nsq: u16,
    /// I/O completion queues - 1 (`NCQR` / `NCQA`).
    pub ncq: u16,
}

impl NumberOfQueues {
    /// Decodes CDW11 (request) or completion DW0 (allocation).
    pub const fn from_dword(dword: u32) -> Self {
        NumberOfQueues {
            nsq: dword as u16,
            ncq: (dword >> 16) as u16,
        }
    }

    /// Encodes CDW11 or DW0.
    pub const fn to_dword(self) -> u32 {
        ((self.ncq as u32) << 16) | self.nsq as u32
    }
}

/// Interrupt Coalescing (FID 08h): applies to I/O completion queues whose vector has not
/// opted out through Interrupt Vector Configuration; never to the admin queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterruptCoalescing {
    /// `THR` (7:0): Aggregation Threshold, completions per vector - 1 (zero-based).
    pub thr: u8,
    /// `TIME` (15:8): Aggregation Time, in 100 microsecond units; 0 for no delay.
    pub time: u8,
}

impl InterruptCoalescing {
    /// Decodes CDW11 or DW0.
    pub const fn from_dword(dword: u32) -> Self {
        InterruptCoalescing {
            thr: dword as u8,
            time: (dword >> 8) as u8,
        }
    }

    /// Encodes CDW11 or DW0.
    pub const fn to_dword(self) -> u32 {
        ((self.time as u32) << 8) | self.thr as u32
    }
}

/// Asynchronous Event Configuration (FID 0Bh): which events complete an outstanding
/// Asynchronous Event Request. A bitmask; these are the bits the driver enables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsyncEventConfig(pub u32);

impl AsyncEventConfig {
    /// Bits 7:0: SMART / Health Critical Warnings, one per critical warning bit of the SMART /
    /// Health log (spare below threshold, temperature, reliability, read only, volatile backup).
    pub const SMART_CRITICAL_WARNINGS: u32 = 0xff;
    /// Bit 8: Namespace Attribute Notices.
    pub const NAMESPACE_ATTRIBUTE: u32 = 1 << 8;
    /// Bit 9: Firmware Activation Notices.
    pub const FIRMWARE_ACTIVATION: u32 = 1 << 9;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_ids() {
        for (fid, raw) in [
            (FeatureId::NumberOfQueues, 0x07),
            (FeatureId::InterruptCoalescing, 0x08),
            (FeatureId::AsyncEventConfiguration, 0x0b),
        ] {
            assert_eq!(fid as u8, raw);
            assert_eq!(FeatureId::from_raw(raw), Some(fid));
        }
        assert_eq!(FeatureId::from_raw(0x06), None);
    }

    #[test]
    fn number_of_queues_layout() {
        // QEMU's default (max_ioqpairs 64): 63 of each, zero-based.
        let dw0 = 0x003f_003f;
        assert_eq!(
            NumberOfQueues::from_dword(dw0),
            NumberOfQueues { nsq: 63, ncq: 63 }
        );
        let requested = NumberOfQueues { nsq: 7, ncq: 3 };
        assert_eq!(requested.to_dword(), 0x0003_0007);
        assert_eq!(NumberOfQueues::from_dword(requested.to_dword()), requested);
    }

    #[test]
    fn interrupt_coalescing_layout() {
        let ic = InterruptCoalescing { thr: 7, time: 10 };
        assert_eq!(ic.to_dword(), 0x0a07);
        assert_eq!(InterruptCoalescing::from_dword(0xffff_0a07), ic);
    }

    #[test]
    fn async_event_config_bits() {
        let all = AsyncEventConfig::SMART_CRITICAL_WARNINGS
            | AsyncEventConfig::NAMESPACE_ATTRIBUTE
            | AsyncEventConfig::FIRMWARE_ACTIVATION;
        assert_eq!(AsyncEventConfig(all).0, 0x3ff);
    }
}
