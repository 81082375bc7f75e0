//! `nvme_identify`: the controller and its namespaces, as `nvme id-ctrl` and `nvme id-ns`
//! show them, from what the driver's bring-up learned (Identify Controller, Identify
//! Namespace, `CAP`, `VS`, Set Features Number of Queues) and the PCI config space.

use std::fmt::Write as _;

use crate::framework::device::{PciFunction, PciFunctionExt};
use crate::nvme::{Controller, ControllerOptions};
use clap::Parser;
use serde::Serialize;

use super::device::{DeviceArgs, Opened, Result};

/// Command line of `nvme_identify`.
#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "nvme_identify",
    about = "Identify an NVMe controller and its namespaces (the simulated model by default)"
)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `OACS` bits (Base 2.0, Identify Controller bytes 257:256).
const OACS_BITS: &[(u32, &str)] = &[
    (0, "Security Send/Receive"),
    (1, "Format NVM"),
    (2, "Firmware Commit/Image Download"),
    (3, "Namespace Management"),
    (4, "Device Self-test"),
    (5, "Directives"),
    (6, "NVMe-MI Send/Receive"),
    (7, "Virtualization Management"),
    (8, "Doorbell Buffer Config (shadow doorbells)"),
    (9, "Get LBA Status"),
    (10, "Command and Feature Lockdown"),
];

/// `ONCS` bits (Base 2.0, Identify Controller bytes 521:520).
const ONCS_BITS: &[(u32, &str)] = &[
    (0, "Compare"),
    (1, "Write Uncorrectable"),
    (2, "Dataset Management"),
    (3, "Write Zeroes"),
    (4, "Save/Select in Set/Get Features"),
    (5, "Reservations"),
    (6, "Timestamp"),
    (7, "Verify"),
    (8, "Copy"),
];

const OACS_DOORBELL_BUFFER_CONFIG: u16 = 1 << 8;

fn decode(bits: &[(u32, &'static str)], value: u16) -> Vec<String> {
    (0..16)
        .filter(|bit| value & (1 << bit) != 0)
        .map(|bit| match bits.iter().find(|(b, _)| *b == bit) {
            Some((_, name)) => format!("[{bit}] {name}"),
            None => format!("[{bit}] reserved or newer than NVMe 2.0"),
        })
        .collect()
}

/// One LBA format of a namespace.
#[derive(Serialize, Debug, Clone)]
pub struct LbaFormatReport {
    pub index: usize,
    /// Bytes per block; `None` when the device reports an impossible `LBADS`.
    pub block_size: Option<u64>,
    pub metadata_size: u16,
    pub relative_performance: u8,
    /// The format the namespace is formatted with.
    pub in_use: bool,
}

/// One usable namespace.
#[derive(Serialize, Debug, Clone)]
pub struct NamespaceReport {
    pub nsid: u32,
    /// `NSZE`, in logical blocks.
    pub blocks: u64,
    pub bytes: u64,
    pub block_size: u32,
    /// Blocks per Read or Write command (MDTS and the 16-bit NLB); larger I/Os are split.
    pub max_blocks_per_command: u64,
    pub nguid: String,
    pub eui64: String,
    pub lba_formats: Vec<LbaFormatReport>,
    pub write_zeroes: bool,
    pub trim: bool,
}

/// A namespace the driver refuses, with the reason.
#[derive(Serialize, Debug, Clone)]
pub struct UnusableReport {
    pub nsid: u32,
    pub reason: String,
}

/// Everything `nvme_identify` prints.
#[derive(Serialize, Debug, Clone)]
pub struct IdentifyReport {
    /// [`crate::tools::run::SCHEMA_VERSION`].
    pub schema: u32,
    /// `"sim"` (the controller model) or `"vfio"`.
    pub backend: &'static str,
    pub device: String,
    /// PCI vendor and device ID, subsystem vendor and subsystem ID (config space).
    pub vid: String,
    pub did: String,
    pub ssvid: String,
    pub ssid: String,
    /// `SN`, `MN`, `FR`.
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// `VS`.
    pub version: String,
    pub cntlid: u16,
    /// `MDTS` as reported, and in bytes (`None`: no limit).
    pub mdts: u8,
    pub mdts_bytes: Option<u64>,
    /// The largest transfer per command the driver uses (MDTS and its own cap).
    pub max_transfer_bytes: u64,
    /// I/O queue pairs the controller granted (Set Features Number of Queues, as many as
    /// asked for).
    pub max_io_queues: u16,
    /// Entries per I/O queue, `CAP.MQES + 1`.
    pub max_queue_entries: u32,
    /// `CAP.TO` in milliseconds, `CAP.DSTRD`, `CAP.MPSMIN` / `MPSMAX` in bytes.
    pub timeout_ms: u64,
    pub doorbell_stride: usize,
    pub page_size_min: u64,
    pub page_size_max: u64,
    /// `NN`.
    pub nn: u32,
    pub oacs: String,
    pub oacs_features: Vec<String>,
    /// `OACS` bit 8, and whether the driver configured it.
    pub shadow_doorbells_supported: bool,
    pub shadow_doorbells_in_use: bool,
    pub oncs: String,
    pub oncs_features: Vec<String>,
    /// `VWC` bit 0.
    pub vwc: String,
    pub volatile_write_cache: bool,
    pub namespaces: Vec<NamespaceReport>,
    pub unusable_namespaces: Vec<UnusableReport>,
}

/// `134217728` as `128 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the report for a controller brought up on any backend.
pub fn report<F: PciFunction>(
    ctrl: &Controller<F>,
    backend: &'static str,
) -> Result<IdentifyReport> {
    let function = ctrl.function();
    let (vid, did) = function.ids()?;
    let ssvid = function.read_config_u16(0x2c)?;
    let ssid = function.read_config_u16(0x2e)?;
    let info = ctrl.info();
    let cap = info.cap;
    let namespaces = ctrl
        .namespaces()
        .iter()
        .map(|ns| {
            // The driver uses only namespaces formatted without metadata, so the format in use
            // is the first one of the namespace's block size without metadata.
            let in_use = ns.lba_formats().iter().position(|f| {
                f.block_size == Some(u64::from(ns.block_size())) && f.metadata_size == 0
            });
            NamespaceReport {
                nsid: ns.nsid(),
                blocks: ns.blocks(),
                bytes: ns.size_bytes(),
                block_size: ns.block_size(),
                max_blocks_per_command: ns.max_blocks_per_command(),
                nguid: hex(&ns.nguid()),
                eui64: hex(&ns.eui64()),
                lba_formats: ns
                    .lba_formats()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| LbaFormatReport {
                        index: f.index,
                        block_size: f.block_size,
                        metadata_size: f.metadata_size,
                        relative_performance: f.relative_performance,
                        in_use: in_use == Some(i),
                    })
                    .collect(),
                write_zeroes: ns.supports_write_zeroes(),
                trim: ns.supports_trim(),
            }
        })
        .collect();
    Ok(IdentifyReport {
        schema: crate::tools::run::SCHEMA_VERSION,
        backend,
        device: ctrl.device().to_string(),
        vid: format!("{vid:#06x}"),
        did: format!("{did:#06x}"),
        ssvid: format!("{ssvid:#06x}"),
        ssid: format!("{ssid:#06x}"),
        serial: info.serial.clone(),
        model: info.model.clone(),
        firmware: info.firmware.clone(),
        version: info.version.to_string(),
        cntlid: info.cntlid,
        mdts: info.mdts,
        mdts_bytes: (info.mdts != 0).then(|| cap.mps_min_bytes() << info.mdts),
        max_transfer_bytes: info.max_transfer,
        max_io_queues: info.io_queues,
        max_queue_entries: cap.max_queue_entries(),
        timeout_ms: cap.timeout_ms(),
        doorbell_stride: cap.doorbell_stride(),
        page_size_min: cap.mps_min_bytes(),
        page_size_max: cap.mps_max_bytes(),
        nn: info.nn,
        oacs: format!("{:#06x}", info.oacs),
        oacs_features: decode(OACS_BITS, info.oacs),
        shadow_doorbells_supported: info.oacs & OACS_DOORBELL_BUFFER_CONFIG != 0,
        shadow_doorbells_in_use: info.shadow_doorbells,
        oncs: format!("{:#06x}", info.oncs),
        oncs_features: decode(ONCS_BITS, info.oncs),
        vwc: format!("{:#04x}", info.vwc),
        volatile_write_cache: info.vwc & 1 != 0,
        namespaces,
        unusable_namespaces: ctrl
            .unusable_namespaces()
            .iter()
            .map(|u| UnusableReport {
                nsid: u.nsid,
                reason: u.reason.to_string(),
            })
            .collect(),
    })
}

/// How `nvme_identify` brings the controller up: polled (no MSI-X), asking for as many I/O
/// queues as the controller grants so that the report shows its maximum.
pub fn controller_options() -> ControllerOptions {
    ControllerOptions {
        io_queues: u16::MAX - 1,
        interrupts: false,
        ..ControllerOptions::default()
    }
}

/// Opens the device, brings the controller up and builds the report.
pub fn run(args: &IdentifyArgs) -> Result<IdentifyReport> {
    let opened = args.device.open()?;
    let backend = opened.backend();
    match opened {
        Opened::Sim { function, .. } => {
            report(&Controller::new(function, controller_options())?, backend)
        }
        Opened::Vfio(function) => {
            report(&Controller::new(*function, controller_options())?, backend)
        }
    }
}

impl IdentifyReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    /// The report as text, field names as `nvme id-ctrl` / `id-ns` print them.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let what = match self.backend {
            "sim" => "simulated NVMe controller model",
            _ => "vfio-pci",
        };
        let _ = writeln!(out, "NVMe controller {} ({what})", self.device);
        let mut field = |name: &str, value: String| {
            let _ = writeln!(out, "{name:<9} : {value}");
        };
        field("vid", self.vid.clone());
        field("did", self.did.clone());
        field("ssvid", self.ssvid.clone());
        field("ssid", self.ssid.clone());
        field("sn", self.serial.clone());
        field("mn", self.model.clone());
        field("fr", self.firmware.clone());
        field("ver", self.version.clone());
        field("cntlid", self.cntlid.to_string());
        field(
            "mdts",
            match self.mdts_bytes {
                Some(bytes) => format!(
                    "{} ({bytes} bytes; the driver splits I/O into commands of at most {} bytes)",
                    self.mdts, self.max_transfer_bytes
                ),
                None => format!(
                    "0 (no limit; the driver splits I/O into commands of at most {} bytes)",
                    self.max_transfer_bytes
                ),
            },
        );
        field(
            "queues",
            format!(
                "{} I/O queue pairs, up to {} entries each (CAP.MQES {})",
                self.max_io_queues,
                self.max_queue_entries,
                self.max_queue_entries - 1
            ),
        );
        field(
            "cap",
            format!(
                "TO {} ms, doorbell stride {} bytes, page size {}..={} bytes",
                self.timeout_ms, self.doorbell_stride, self.page_size_min, self.page_size_max
            ),
        );
        field("nn", self.nn.to_string());
        field("oacs", self.oacs.clone());
        let list = |out: &mut String, items: &[String]| {
            for item in items {
                let _ = writeln!(out, "            {item}");
            }
        };
        list(&mut out, &self.oacs_features);
        let _ = writeln!(
            out,
            "{:<9} : {}",
            "shadow db",
            match (
                self.shadow_doorbells_supported,
                self.shadow_doorbells_in_use
            ) {
                (true, true) => "supported, in use",
                (true, false) => "supported, not in use",
                (false, _) => "not supported",
            }
        );
        let _ = writeln!(out, "{:<9} : {}", "oncs", self.oncs);
        list(&mut out, &self.oncs_features);
        let _ = writeln!(
            out,
            "{:<9} : {} (volatile write cache {})",
            "vwc",
            self.vwc,
            if self.volatile_write_cache {
                "present"
            } else {
                "absent"
            }
        );
        for ns in &self.namespaces {
            let _ = writeln!(out);
            let _ = writeln!(out, "Namespace {}", ns.nsid);
            let _ = writeln!(
                out,
                "{:<9} : {} blocks ({} bytes, {})",
                "nsze",
                ns.blocks,
                ns.bytes,
                human_bytes(ns.bytes)
            );
            let _ = writeln!(out, "{:<9} : {} bytes", "block", ns.block_size);
            let _ = writeln!(
                out,
                "{:<9} : {} blocks per command",
                "max I/O", ns.max_blocks_per_command
            );
            let _ = writeln!(out, "{:<9} : {}", "nguid", ns.nguid);
            let _ = writeln!(out, "{:<9} : {}", "eui64", ns.eui64);
            for f in &ns.lba_formats {
                let lbads = f
                    .block_size
                    .map_or_else(|| "invalid".to_string(), |b| b.trailing_zeros().to_string());
                let _ = writeln!(
                    out,
                    "lbaf {:>2}   : ms:{:<3} lbads:{:<2} rp:{}{}",
                    f.index,
                    f.metadata_size,
                    lbads,
                    f.relative_performance,
                    if f.in_use { " (in use)" } else { "" }
                );
            }
        }
        for u in &self.unusable_namespaces {
            let _ = writeln!(out);
            let _ = writeln!(out, "Namespace {} (not usable): {}", u.nsid, u.reason);
        }
        out
    }
}

impl crate::tools::run::ToolReport for IdentifyReport {
    fn to_text(&self) -> String {
        IdentifyReport::to_text(self)
    }
    fn to_json(&self) -> String {
        IdentifyReport::to_json(self)
    }
}

/// `userpci nvme identify` (and the `nvme_identify` example).
pub fn main(args: &IdentifyArgs) -> std::process::ExitCode {
    crate::tools::run::report_main("nvme identify", args.json, |_progress| run(args))
}
