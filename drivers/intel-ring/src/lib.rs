//! The Intel advanced-descriptor ring engine shared by `userpci-ixgbe` (82599) and
//! `userpci-igb` (82576): the data path both chips have in common, written once.
//!
//! # What the engine owns
//! - the advanced RX and TX descriptor formats and their common bits ([`desc`]);
//! - [`RxRing`]: the descriptor ring and a pool buffer per slot, filling it ([`RxRing::fill`],
//!   [`RxRing::restart`]), batch receive with the write-back checks ([`RxRing::receive`]),
//!   refills from a stash filled by one batched pool get per [`RX_REFILL_BATCH`] packets;
//! - [`TxRing`]: batch send with one tail write ([`TxRing::send`]), `DD`-based cleaning of
//!   whole batches ([`TxRing::clean_batches`]) and descriptor by descriptor
//!   ([`TxRing::clean_done`], [`TxRing::reclaim`], the idle poll [`TxRing::clean_idle`] that
//!   drains the ring when traffic stops), cleaned buffers returned with one batched pool put
//!   ([`userpci_framework::dma::BufferPool::put_batch`]), emptying after a reset
//!   ([`TxRing::reset`]), hang detection ([`TxRing::check_stall`], the rule in [`tx_stall`]);
//! - per-ring software counters ([`RxRingStats`], [`TxRingStats`]);
//! - stopping the queue when a ring is dropped (clear the enable bit, wait for it to read 0;
//!   TX drains first), so no buffer goes back to the pool while the device may use it; if
//!   the queue does not stop, the buffers are leaked instead.
//!
//! # What a driver supplies
//! Everything that differs between the chips, as parameters ([`RxConfig`], [`TxConfig`]):
//! the register access (the ring is generic over the framework's
//! [`RegisterIo`](userpci_framework::device::RegisterIo), so the doorbell write is a direct,
//! monomorphised call), the tail and head register offsets (`RDT(n)`, `TDT(n)`, `TDH(n)`), the
//! queue enable register and bit ([`QueueControl`]: `RXDCTL(n)` / `TXDCTL(n)`, `ENABLE`), the
//! write-back bits that mean "MAC error" ([`RxConfig::mac_error_mask`]: the 82599's is bit
//! 29, `0x20000000`: the datasheet's `RXE`, Linux's `IXGBE_RXDADV_ERR_USE` ("Undersize
//! Error"), DPDK's both; the 82576's is bit 31, Linux `E1000_RXDEXT_STATERR_RXE` =
//! `0x80000000`, and its bit 29 is `TCPE`), the largest frame, and the "flush pending
//! write-backs" action of [`TxRing::reclaim`] (82599: `TXDCTL.SWFLSH`) as a closure.
//!
//! The driver keeps the rest: programming the ring registers (`RDBAL`, `RDLEN`, `SRRCTL`,
//! `RXDCTL`, `TDBAL`, `TXDCTL` thresholds...) with [`RxRing::iova`] / [`TxRing::iova`],
//! enabling the queues, interrupts and their arming, reset gates and generations, statistics
//! registers, link, RSS.
//!
//! # Untrusted write-backs
//! What the device writes into a descriptor is not trusted ([`rx`] has the details):
//! - `DD` is read first, alone (the status dword), then an acquire fence, then the rest of
//!   the descriptor; TX buffers are reused only after `DD` was seen, with a fence;
//! - a length of zero or beyond the slot's buffer is dropped (no slice past a buffer is ever
//!   made), as are frames with a MAC error bit;
//! - `EOP` clear (a frame over several descriptors, unsupported) drops every descriptor up
//!   to and including the one with `EOP`;
//! - a descriptor the device skipped (`DD` clear while the next one's is set) is dropped;
//! - each dropped descriptor is counted and given back to the device with the same buffer.
//!
//! [`check_writeback`] is total over any 16 bytes.
//!
//! # The data path
//! `receive`, `send`, the cleaning, `reclaim`, `clean_idle` and `check_stall` allocate nothing
//! and take no lock
//! (`tests/no_alloc.rs` counts allocator calls), never panic on device-written data, and
//! write the doorbell once per batch.
//!
//! # Modules, in dependency order
//! [`desc`] (leaf) → [`stats`], `error`, `control` (queue stop) → `rx_check` (the write-back
//! rules), `tx_clean` (the cleaning index arithmetic), [`tx_stall`] (the hang rule) → [`rx`],
//! [`tx`]. No file imports one above it.

#![forbid(unsafe_code)]

mod control;
pub mod desc;
mod error;
pub mod rx;
mod rx_check;
pub mod stats;
pub mod tx;
mod tx_clean;
pub mod tx_stall;

pub use control::QueueControl;
pub use error::{Error, Result, MIN_RING_SIZE};
pub use rx::{RxConfig, RxRing, RX_REFILL_BATCH};
pub use rx_check::{check_writeback, DropReason, Verdict};
pub use stats::{RxRingStats, TxRingStats};
pub use tx::{TxConfig, TxRing};
pub use tx_clean::{clean_batches, in_flight, slot_ranges};
pub use tx_stall::{HeadReading, StallCheck, StallWatch};

#[cfg(not(target_endian = "little"))]
compile_error!("the descriptor types store fields in host order, which must be little-endian");
