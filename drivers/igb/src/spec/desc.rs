//! What the 82576's advanced descriptors mean beyond the layout they share with the 82599
//! (the layout, `DD` / `EOP` / `RS` and the `DTYP` / `DCMD` encodings are the shared ring
//! engine's, [`userpci_intel_ring`]): the receive write-back's status and error bits and RSS
//! types (82576 datasheet 7.1.5, advanced receive descriptor write-back format).
//!
//! Every function here is total over whatever the device wrote; checking a write-back is the
//! ring engine's job, with [`RX_ERR_FRAME_MASK`] as this device's "drop it" bits.

/// `RX status DD` (bit 0): descriptor done.
pub const RXD_STAT_DD: u32 = 1 << 0;
/// `RX status EOP` (bit 1): end of packet.
pub const RXD_STAT_EOP: u32 = 1 << 1;
/// `RX status VP` (bit 3): 802.1Q frame, `VLAN Tag` valid.
pub const RXD_STAT_VP: u32 = 1 << 3;
/// `RX status UDPCS` (bit 4): UDP checksum computed.
pub const RXD_STAT_UDPCS: u32 = 1 << 4;
/// `RX status L4I` / `TCPCS` (bit 5): TCP / UDP checksum computed.
pub const RXD_STAT_TCPCS: u32 = 1 << 5;
/// `RX status IPCS` (bit 6): IPv4 header checksum computed.
pub const RXD_STAT_IPCS: u32 = 1 << 6;

/// `RX error CE` (bit 24): CRC or alignment error.
pub const RXD_ERR_CE: u32 = 1 << 24;
/// `RX error SE` (bit 25): symbol error.
pub const RXD_ERR_SE: u32 = 1 << 25;
/// `RX error SEQ` (bit 26): sequence error.
pub const RXD_ERR_SEQ: u32 = 1 << 26;
/// `RX error CXE` (bit 28): carrier extension error.
pub const RXD_ERR_CXE: u32 = 1 << 28;
/// `RX error L4E` / `TCPE` (bit 29): TCP / UDP checksum error (the 82599's `RXE` position).
pub const RXD_ERR_TCPE: u32 = 1 << 29;
/// `RX error IPE` (bit 30): IPv4 header checksum error.
pub const RXD_ERR_IPE: u32 = 1 << 30;
/// `RX error RXE` (bit 31): any other MAC error (the 82599's `IPE` position).
pub const RXD_ERR_RXE: u32 = 1 << 31;
/// The error bits that make a frame unusable (Linux `E1000_RXDEXT_ERR_FRAME_ERR_MASK`):
/// `CE | SE | SEQ | CXE | RXE`. Checksum errors (`TCPE`, `IPE`) are not among them: the frame
/// arrived intact as the wire carried it, and checksums are the stack's business.
pub const RX_ERR_FRAME_MASK: u32 =
    RXD_ERR_CE | RXD_ERR_SE | RXD_ERR_SEQ | RXD_ERR_CXE | RXD_ERR_RXE;

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
    /// IPv6 with extension headers.
    pub const IPV6_EX: u8 = 0x4;
    /// IPv6 addresses only.
    pub const IPV6: u8 = 0x5;
    /// TCP over IPv6 with extension headers.
    pub const IPV6_TCP_EX: u8 = 0x6;
    /// UDP over IPv4.
    pub const IPV4_UDP: u8 = 0x7;
    /// UDP over IPv6.
    pub const IPV6_UDP: u8 = 0x8;
}

/// Whether a write-back's status / error dword marks an unusable frame.
pub const fn frame_error(status_error: u32) -> bool {
    status_error & RX_ERR_FRAME_MASK != 0
}
