//! Feature identifiers and the values of the features the driver sets (Base 2.0 "Feature
//! Values" and the sections of each feature).
//!
//! The value of these features travels in Set Features CDW11 and comes back in the Get/Set
//! Features completion DW0, with the same layout.

/// `FID`, the Feature Identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FeatureId {
    /// Temperature Threshold ([`TemperatureThreshold`]).
    TemperatureThreshold = 0x04,
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
            0x04 => Self::TemperatureThreshold,
            0x07 => Self::NumberOfQueues,
            0x08 => Self::InterruptCoalescing,
            0x0b => Self::AsyncEventConfiguration,
            _ => return None,
        })
    }
}

/// Which threshold of a temperature sensor (`THSEL`, CDW11 21:20).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThresholdKind {
    /// 00b: Over Temperature Threshold (a warning when the temperature reaches it or more).
    Over = 0b00,
    /// 01b: Under Temperature Threshold (a warning when the temperature falls to it or less).
    Under = 0b01,
}

/// Temperature Threshold (FID 04h; Base 2.0 "Temperature Threshold (Feature Identifier
/// 04h)"): `TMPTH` (15:0) in kelvins, `TMPSEL` (19:16) the sensor (0 the Composite
/// Temperature), `THSEL` (21:20) over or under. When the temperature crosses a threshold the
/// controller sets SMART / Health Critical Warning bit 1 and, if enabled, reports a SMART /
/// Health asynchronous event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemperatureThreshold {
    /// `TMPTH`: the threshold, kelvins.
    pub kelvin: u16,
    /// `TMPSEL`: 0 Composite Temperature, 1..=8 Temperature Sensor 1..8, 0Fh all sensors.
    pub sensor: u8,
    /// `THSEL`, raw (2 and 3 are reserved).
    pub select: u8,
}

impl TemperatureThreshold {
    /// `TMPSEL` 0h: the Composite Temperature.
    pub const COMPOSITE: u8 = 0;

    /// The `kind` threshold of the Composite Temperature at `kelvin`.
    pub const fn composite(kind: ThresholdKind, kelvin: u16) -> Self {
        TemperatureThreshold {
            kelvin,
            sensor: Self::COMPOSITE,
            select: kind as u8,
        }
    }

    /// Decodes CDW11 (or Get Features DW0, where only `TMPTH` is meaningful).
    pub const fn from_dword(dword: u32) -> Self {
        TemperatureThreshold {
            kelvin: dword as u16,
            sensor: ((dword >> 16) & 0xf) as u8,
            select: ((dword >> 20) & 0x3) as u8,
        }
    }

    /// Encodes CDW11.
    pub const fn to_dword(self) -> u32 {
        ((self.select as u32 & 0x3) << 20) | ((self.sensor as u32 & 0xf) << 16) | self.kelvin as u32
    }

    /// `THSEL` decoded; `None` for a reserved value.
    pub const fn kind(self) -> Option<ThresholdKind> {
        match self.select {
            0b00 => Some(ThresholdKind::Over),
            0b01 => Some(ThresholdKind::Under),
            _ => None,
        }
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
            (FeatureId::TemperatureThreshold, 0x04),
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
    fn temperature_threshold_layout() {
        // QEMU's default over threshold, 343 K, Composite sensor.
        let over = TemperatureThreshold::composite(ThresholdKind::Over, 0x157);
        assert_eq!(over.to_dword(), 0x0000_0157);
        let under = TemperatureThreshold::composite(ThresholdKind::Under, 273);
        assert_eq!(under.to_dword(), 0x0010_0111);
        assert_eq!(TemperatureThreshold::from_dword(under.to_dword()), under);
        assert_eq!(under.kind(), Some(ThresholdKind::Under));
        let odd = TemperatureThreshold::from_dword(0x0023_0001);
        assert_eq!((odd.sensor, odd.select, odd.kind()), (3, 2, None));
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
