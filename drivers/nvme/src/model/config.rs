//! The model's parameters: [`NvmeModelConfig`] and its checks (the topology-file factory that
//! reads them is in the module root).

use std::path::PathBuf;
use std::time::Duration;

use userpci_framework::{Error, Result};

use crate::spec::registers::DOORBELLS;

/// The name models are registered under in topology files (`model = "nvme"`).
pub const MODEL_NAME: &str = "nvme";

/// The smallest BAR0: registers (4 KiB) and doorbells, as QEMU's controller has it.
const MIN_BAR0: u64 = 16 * 1024;
/// MSI-X allows at most 2048 vectors, and the model has one per queue pair plus the admin one.
const MAX_QUEUE_PAIRS: u16 = 2047;
/// `MDTS` at most 2^16 units of 4 KiB (256 MiB); `NLB` bounds a transfer well below that.
const MAX_MDTS: u8 = 16;
/// The Active Namespace ID list holds 1024 entries.
const MAX_NAMESPACES: u32 = 1024;

/// How the controller model is built. `Default` is the configuration the factory uses for an
/// empty parameter table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeModelConfig {
    /// `CAP.MQES`, zero-based: I/O queues may have up to `mqes + 1` entries (at least 1).
    pub mqes: u16,
    /// `CAP.DSTRD`: doorbells are `4 << dstrd` bytes apart (0..=15).
    pub dstrd: u8,
    /// `CAP.TO`, in 500 ms units (1..=255).
    pub timeout_500ms: u8,
    /// How long `CSTS.RDY` takes to follow `CC.EN`, both ways. May exceed `CAP.TO` to test a
    /// driver's timeout.
    pub ready_delay: Duration,
    /// How long shutdown processing takes: `CSTS.SHST` reads 01b (occurring) for this long
    /// after `CC.SHN` is set, then 10b; zero completes at once (as QEMU).
    pub shutdown_delay: Duration,
    /// Identify Controller `RTD3E`, microseconds (0: not reported, as QEMU).
    pub rtd3e_us: u32,
    /// Identify Controller `MDTS`: transfers up to `4 KiB << mdts`; 0 for no limit (0..=16).
    pub mdts: u8,
    /// I/O queue pairs the controller grants at most (Number of Queues), 1..=2047. The
    /// function has `max_queues + 1` MSI-X vectors.
    pub max_queues: u16,
    /// Active namespaces, NSIDs `1..=namespaces` (1..=1024).
    pub namespaces: u32,
    /// Logical blocks per namespace.
    pub blocks: u64,
    /// Bytes per logical block: 512 or 4096.
    pub lba_size: u32,
    /// Metadata bytes per block (separate buffer through `MPTR`); 0 for none.
    pub metadata_size: u16,
    /// Doorbell Buffer Config supported (`OACS` bit 8).
    pub shadow_doorbells: bool,
    /// Each command completes this long after it is fetched; zero processes commands inside
    /// the doorbell write.
    pub latency: Duration,
    /// Identify Controller `SN` (at most 20 ASCII bytes).
    pub serial: String,
    /// Identify Controller `MN` (at most 40 ASCII bytes).
    pub model_number: String,
    /// A file holding the namespaces back to back, instead of sparse memory.
    pub backing: Option<PathBuf>,
}

impl Default for NvmeModelConfig {
    fn default() -> Self {
        NvmeModelConfig {
            mqes: 1023,
            dstrd: 0,
            timeout_500ms: 15,
            ready_delay: Duration::ZERO,
            shutdown_delay: Duration::ZERO,
            rtd3e_us: 0,
            mdts: 5,
            max_queues: 8,
            namespaces: 1,
            blocks: 262_144,
            lba_size: 512,
            metadata_size: 0,
            shadow_doorbells: false,
            latency: Duration::ZERO,
            serial: "USERPCI0001".to_string(),
            model_number: "userpci NVMe model".to_string(),
            backing: None,
        }
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Error {
    Error::Topology(format!(
        "{MODEL_NAME}: parameter {key} = {value}: expected {expected}"
    ))
}

impl NvmeModelConfig {
    /// `LBADS`, log2 of the block size.
    pub fn lba_shift(&self) -> u8 {
        self.lba_size.trailing_zeros() as u8
    }

    /// Bytes per namespace.
    pub fn namespace_bytes(&self) -> u64 {
        self.blocks << self.lba_shift()
    }

    /// The largest transfer in bytes, `None` for no limit.
    pub fn max_transfer(&self) -> Option<u64> {
        (self.mdts != 0).then(|| 4096u64 << self.mdts)
    }

    /// BAR0 size: the registers and every queue pair's doorbells, a power of two of at least
    /// 16 KiB.
    pub fn bar0_size(&self) -> u64 {
        let stride = 4u64 << self.dstrd;
        let end = DOORBELLS as u64 + (u64::from(self.max_queues) + 1) * 2 * stride;
        end.next_power_of_two().max(MIN_BAR0)
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.mqes == 0 {
            return Err(invalid("mqes", 0, "1..=65535 (zero-based; 0 is reserved)"));
        }
        if self.dstrd > 15 {
            return Err(invalid("dstrd", self.dstrd, "0..=15"));
        }
        if self.timeout_500ms == 0 {
            return Err(invalid("timeout_500ms", 0, "1..=255"));
        }
        if self.mdts > MAX_MDTS {
            return Err(invalid("mdts", self.mdts, "0..=16 (0 for no limit)"));
        }
        if self.max_queues == 0 || self.max_queues > MAX_QUEUE_PAIRS {
            return Err(invalid("max_queues", self.max_queues, "1..=2047"));
        }
        if self.bar0_size() > 1 << 32 {
            return Err(invalid(
                "dstrd",
                self.dstrd,
                "a stride whose doorbells for max_queues fit in a 4 GiB BAR",
            ));
        }
        if self.namespaces == 0 || self.namespaces > MAX_NAMESPACES {
            return Err(invalid("namespaces", self.namespaces, "1..=1024"));
        }
        if self.lba_size != 512 && self.lba_size != 4096 {
            return Err(invalid("lba_size", self.lba_size, "512 or 4096"));
        }
        let total = self
            .blocks
            .checked_mul(u64::from(self.lba_size))
            .and_then(|b| b.checked_mul(u64::from(self.namespaces)));
        if self.blocks == 0 || total.is_none_or(|t| t > i64::MAX as u64) {
            return Err(invalid(
                "blocks",
                self.blocks,
                "at least 1, with namespaces * blocks * lba_size below 2^63 bytes",
            ));
        }
        if !self.serial.is_ascii() || self.serial.len() > 20 {
            return Err(invalid(
                "serial",
                format!("{:?}", self.serial),
                "at most 20 ASCII bytes",
            ));
        }
        if !self.model_number.is_ascii() || self.model_number.len() > 40 {
            return Err(invalid(
                "model_number",
                format!("{:?}", self.model_number),
                "at most 40 ASCII bytes",
            ));
        }
        Ok(())
    }

    /// Reads the topology-file parameters over the defaults; every key is checked.
    pub fn from_params(params: &toml::Table) -> Result<Self> {
        let mut config = NvmeModelConfig::default();
        for (key, value) in params {
            let int = |max: u64| -> Result<u64> {
                match value.as_integer() {
                    Some(n) if n >= 0 && (n as u64) <= max => Ok(n as u64),
                    _ => Err(invalid(key, value, &format!("an integer in 0..={max}"))),
                }
            };
            let string = || -> Result<String> {
                value
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(key, value, "a string"))
            };
            match key.as_str() {
                "mqes" => config.mqes = int(u16::MAX.into())? as u16,
                "dstrd" => config.dstrd = int(15)? as u8,
                "timeout_500ms" => config.timeout_500ms = int(u8::MAX.into())? as u8,
                "ready_delay_us" => {
                    config.ready_delay = Duration::from_micros(int(i64::MAX as u64)?)
                }
                "shutdown_delay_us" => {
                    config.shutdown_delay = Duration::from_micros(int(i64::MAX as u64)?)
                }
                "rtd3e_us" => config.rtd3e_us = int(u32::MAX.into())? as u32,
                "mdts" => config.mdts = int(MAX_MDTS.into())? as u8,
                "max_queues" => config.max_queues = int(MAX_QUEUE_PAIRS.into())? as u16,
                "namespaces" => config.namespaces = int(MAX_NAMESPACES.into())? as u32,
                "blocks" => config.blocks = int(i64::MAX as u64)?,
                "lba_size" => config.lba_size = int(4096)? as u32,
                "metadata_size" => config.metadata_size = int(u16::MAX.into())? as u16,
                "shadow_doorbells" => {
                    config.shadow_doorbells = value
                        .as_bool()
                        .ok_or_else(|| invalid(key, value, "true or false"))?
                }
                "latency_ns" => config.latency = Duration::from_nanos(int(i64::MAX as u64)?),
                "serial" => config.serial = string()?,
                "model_number" => config.model_number = string()?,
                "backing" => config.backing = Some(PathBuf::from(string()?)),
                _ => {
                    return Err(Error::Topology(format!(
                        "{MODEL_NAME}: unknown parameter {key} = {value} (known: mqes, dstrd, \
                         timeout_500ms, ready_delay_us, shutdown_delay_us, rtd3e_us, mdts, max_queues, namespaces, blocks, \
                         lba_size, metadata_size, shadow_doorbells, latency_ns, serial, \
                         model_number, backing)"
                    )))
                }
            }
        }
        config.validate()?;
        Ok(config)
    }
}
