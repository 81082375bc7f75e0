//! A model of one port of an Intel 82599ES 10 GbE controller (SFP+) for the simulated PCI
//! bus, following the *Intel 82599 10 GbE Controller Datasheet*: register offsets of chapter
//! 8, the initialisation of section 4.6, the advanced descriptors of 7.1.6 and 7.2.3, RSS of
//! 7.1.2.8, interrupts of 7.3. No other emulator of this NIC exists (QEMU has none), so it is
//! checked against the datasheet and the register definitions of ixy.rs, DPDK and Linux, not
//! against our driver. It shares only [`crate::spec`] with the driver, and defines locally
//! what `spec` does not ([`regs`]).
//!
//! # What it is
//! - PCI identity 8086:10FB (82599ES SFP+; the `device_id` parameter presents any other ID
//!   of [`crate::spec::ids::DEVICE_IDS_82599`]), class 020000h, revision 01h; BAR0 of
//!   512 KiB; 64 MSI-X vectors.
//! - Every BAR0 dword has storage (unmodelled registers read back what was written). The
//!   model answers only the 82599's own register addresses: the 82598 aliases the silicon
//!   also decodes (`MRQC` 0x05818, `RETA` 0x05C00, `RSSRK` 0x05C80, `RAL/RAH(0..16)` 0x05400,
//!   `SRRCTL(0..16)` 0x02100, `DCA_RXCTRL(0..16)` 0x02200, `QPTC(0..16)` 0x06030; the table
//!   is in [`crate::spec`]) are plain storage, so a driver that wrote one would see no effect.
//!
//! # Initialisation (4.6.3)
//! - `CTRL.RST` resets the device at once: every register to its power-on value, packet
//!   buffer emptied, link down, pending interrupts and timers forgotten. `CTRL.RST` (and
//!   `CTRL.LRST` written with it) read 1 for `reset_delay`, then `EEC.ARD` and
//!   `RDRXCTL.DMAIDONE` read 0 for `auto_read_delay` more, then 1. `RAL(0)`/`RAH(0)` hold the
//!   configured MAC (the EEPROM's) with `AV`.
//! - `CTRL.LRST` alone: the link goes down; when the bit self-clears it trains again.
//! - A function-level or bus reset ([`DeviceModel::reset`]) is power-on, already past the
//!   auto-read (the bus waits 100 ms before the next access).
//! - Link (4.6.4): down at power-on. `AUTOC.RESTART_AN` (self-clearing) or setting
//!   `AUTOC.FLU` takes it down and brings it up `link_delay` later at 10 Gb/s: `LINKS.LINK_UP`,
//!   `LINKS.LINK_SPEED` = 11b, `STATUS.LINK_UP`. Every change sets `EICR.LSC`. The model does
//!   not bring the link up on its own after a reset.
//! - `STATUS.LAN_ID` is the PCI function number's low bit; `STATUS.PCIE_MASTER_ENABLE_STATUS`
//!   reads 1 unless `CTRL.PCIE_MASTER_DISABLE`.
//! - Statistics registers are read-only and clear on read; the 36-bit octet counters are
//!   split low / high, each half cleared when read (read the low half first).
//! - `RXDCTL.ENABLE` / `TXDCTL.ENABLE` read back 1 at once when written 1 for a queue below
//!   `rx_queues` / `tx_queues`, never otherwise; writing `RDH`/`TDH` of an enabled queue is
//!   counted as a protocol violation (and done).
//!
//! # Data path
//! [`rx`] (filters, RSS, packet buffer, RX descriptors), [`tx`] (TX descriptors, write-back
//! modes), [`interrupts`]. Processing is deterministic and synchronous: TX runs inside the
//! `TDT` write, RX when a frame arrives (generator timer, wire poll, [`IxgbeModel::receive_frame`])
//! or descriptors are given. Nothing allocates per packet: frames live in byte rings
//! allocated when the model is built.
//!
//! # Traffic
//! [`traffic`]: a generator ([`GeneratorConfig`], parameters or
//! [`IxgbeModel::start_generator`]), a [`Wire`] between two ports ([`connect`] or the `wire`
//! parameter), and the [`TxSink`] that counts and keeps the last frames sent. The wire runs
//! at the link speed, 10 Gb/s with each frame's preamble, SFD and inter-frame gap counted
//! ([`wire`]); so does the generator, whatever rate it is asked for. The sink alone takes
//! frames as fast as the transmit path runs.
//!
//! # Faults and counters
//! See [`faults`]: link flap, TX hang, corrupt RX write-backs; [`IxgbeModel::stats`].
//!
//! # Not modelled
//! DCB, virtualisation (pools, VFs, mailboxes), flow director and the 5-tuple filters, RSC,
//! checksum and segmentation offloads (context descriptors are consumed, `TSE` packets
//! dropped), VLAN filtering and stripping, header split, flow control, IPsec, FCoE, the
//! EEPROM / flash / PHY / SFP interfaces (`EEC` holds `PRES` and `ARD` only), the RX
//! `WTHRESH` (RX write-backs are immediate).

// Bottom to top (ARCHITECTURE.md): leaves, the state, the parts, the life cycle, the
// register dispatch; this file's `DeviceModel` impl on top.
pub mod config;
mod device;
pub mod faults;
pub mod frame;
pub mod hostile;
pub mod interrupts;
mod mmio;
pub mod regs;
pub mod rss;
pub mod rx;
mod shared;
pub mod sink;
mod state;
pub mod traffic;
pub mod tx;
pub mod wire;

use std::any::Any;

use userpci_framework::backend::sim::{
    BarInfo, DeviceModel, ModelContext, ModelInfo, ModelRegistry, ResetKind,
};
use userpci_framework::Result;

pub use config::{GeneratorConfig, GeneratorDst, IxgbeModelConfig, MODEL_NAME};
pub use faults::{IxgbeModelStats, RxCorruption};
pub use hostile::{DeviceWrite, HostileHook};
pub use rx::{RxDrop, RxOutcome};
pub use shared::Link;
pub use state::IxgbeModel;
pub use traffic::{
    connect, GeneratorState, SentFrame, TxSink, Wire, WirePort, WireSide, WireStats,
};

/// Builds an 82599 model from topology-file parameters (see [`IxgbeModelConfig`]; the keys
/// are its field names, durations as `link_delay_us`, `reset_delay_us`,
/// `auto_read_delay_us`, `wire_poll_ns`, the MAC as a string, `generator` as a table of
/// [`GeneratorConfig`]'s fields with `dst = "port" | "broadcast" | "aa:bb:.."`).
pub fn factory(params: &toml::Table) -> Result<Box<dyn DeviceModel>> {
    let config = IxgbeModelConfig::from_params(params)?;
    Ok(Box::new(IxgbeModel::new(config)?))
}

/// Registers the model as [`MODEL_NAME`].
pub fn register(registry: &mut ModelRegistry) {
    registry.register(MODEL_NAME, factory);
}

/// Intel's PCI vendor ID.
pub const VENDOR_ID: u16 = 0x8086;
/// The default device ID, 82599ES SFP+ (Linux `IXGBE_DEV_ID_82599_SFP`); the `device_id`
/// parameter picks another of the family.
pub const DEVICE_ID: u16 = config::DEFAULT_DEVICE_ID;
/// Network controller, Ethernet.
pub const CLASS_CODE: u32 = 0x02_00_00;
/// Revision ID.
pub const REVISION: u8 = 0x01;

impl DeviceModel for IxgbeModel {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            vendor_id: VENDOR_ID,
            device_id: self.config.device_id,
            class_code: CLASS_CODE,
            revision: REVISION,
            bars: vec![BarInfo {
                index: 0,
                size: regs::BAR0_SIZE as u64,
            }],
            msix_vectors: interrupts::MSIX_VECTORS as u16,
        }
    }

    fn mmio_read(&mut self, ctx: &mut ModelContext<'_>, bar: u8, offset: u64, width: u8) -> u64 {
        let Some(offset) = checked_offset(bar, offset, width) else {
            return 0;
        };
        self.service_wire(ctx);
        let low = u64::from(self.read32(ctx, offset));
        if width == 8 {
            low | (u64::from(self.read32(ctx, offset + 4)) << 32)
        } else {
            low
        }
    }

    fn mmio_write(
        &mut self,
        ctx: &mut ModelContext<'_>,
        bar: u8,
        offset: u64,
        width: u8,
        value: u64,
    ) {
        let Some(offset) = checked_offset(bar, offset, width) else {
            return;
        };
        self.service_wire(ctx);
        // A 64-bit access is two 32-bit ones, low half first.
        self.write32(ctx, offset, value as u32);
        if width == 8 {
            self.write32(ctx, offset + 4, (value >> 32) as u32);
        }
    }

    fn on_timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        self.timer(ctx, token);
    }

    fn reset(&mut self, kind: ResetKind) {
        self.function_reset(kind);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The dword offset of an access, if it is a dword-aligned 4- or 8-byte access inside BAR0.
fn checked_offset(bar: u8, offset: u64, width: u8) -> Option<usize> {
    let offset = usize::try_from(offset).ok()?;
    let fits = offset
        .checked_add(usize::from(width))
        .is_some_and(|end| end <= regs::BAR0_SIZE);
    (bar == 0 && offset.is_multiple_of(4) && (width == 4 || width == 8) && fits).then_some(offset)
}

impl IxgbeModel {
    /// Takes in what the wire peer sent and keeps the poll timer going.
    fn service_wire(&mut self, ctx: &mut ModelContext<'_>) {
        if self.wire.is_none() {
            return;
        }
        self.poll_wire(ctx);
        self.arm_wire_poll(ctx);
    }
}
