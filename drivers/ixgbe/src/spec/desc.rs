//! Advanced receive and transmit descriptors (datasheet 7.1.6 and 7.2.3.2.4).
//!
//! The layout, the status bits and the command bits are the ones the 82599 shares with the
//! 82576; they live in the ring engine ([`userpci_intel_ring::desc`]) and are re-exported
//! here, so `spec::desc::AdvRxDesc` and friends keep their paths. What is the 82599's own is
//! defined below: the meaning of the write-back's `Extended Error` bits (the 82576 puts
//! `RXE` at bit 31 and `TCPE` at bit 29, where the 82599 has `IPE` and `RXE`), and the
//! `RSS Type` / `Packet Type` values.

pub use userpci_intel_ring::desc::*;

/// `RX error HBO` (bit 23): header buffer overflow.
pub const RXD_ERR_HBO: u32 = 1 << 23;
/// `RX error RXE` (bit 29), the datasheet's name: any MAC error (CRC, length, ...). Linux
/// calls the bit `IXGBE_RXDADV_ERR_USE` (the 82598's "undersize"); DPDK has both names.
pub const RXD_ERR_RXE: u32 = 1 << 29;
/// `RX error` bit 30: TCP/UDP checksum error (Linux/DPDK `IXGBE_RXDADV_ERR_TCPE`).
pub const RXD_ERR_TCPE: u32 = 1 << 30;
/// `RX error` bit 31: IPv4 header checksum error (Linux/DPDK `IXGBE_RXDADV_ERR_IPE`).
pub const RXD_ERR_IPE: u32 = 1 << 31;

/// `RSS Type` values of the write-back (bits 3:0 of the first dword).
pub mod rss_type {
    /// No hash computed.
    pub const NONE: u8 = 0x0;
    /// TCP over IPv4.
    pub const IPV4_TCP: u8 = 0x1;
    /// IPv4 addresses only.
    pub const IPV4: u8 = 0x2;
    /// TCP over IPv6.
    pub const IPV6_TCP: u8 = 0x3;
    /// IPv6 addresses only.
    pub const IPV6: u8 = 0x5;
    /// UDP over IPv4.
    pub const IPV4_UDP: u8 = 0x7;
    /// UDP over IPv6.
    pub const IPV6_UDP: u8 = 0x8;
}

/// `Packet Type` bits of the write-back (bits 16:4 of the first dword, given here shifted
/// down by 4).
pub mod packet_type {
    /// IPv4 header present.
    pub const IPV4: u16 = 1 << 0;
    /// IPv4 with extensions (options).
    pub const IPV4_EX: u16 = 1 << 1;
    /// IPv6 header present.
    pub const IPV6: u16 = 1 << 2;
    /// IPv6 with extension headers.
    pub const IPV6_EX: u16 = 1 << 3;
    /// TCP header present.
    pub const TCP: u16 = 1 << 4;
    /// UDP header present.
    pub const UDP: u16 = 1 << 5;
    /// SCTP header present.
    pub const SCTP: u16 = 1 << 6;
}
