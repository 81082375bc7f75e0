//! Frame storage and building, without allocation after construction.
//!
//! - `FrameFifo`: a byte ring of length-prefixed records, each a frame with a small `Pod`
//!   header. It backs the receive packet buffer (`RXPBSIZE(0)`), both directions of a
//!   [`super::Wire`] and the transmit sink's "last N frames". Records never wrap, so a frame
//!   is always one contiguous slice.
//! - The Ethernet FCS (CRC-32, IEEE 802.3) and the IPv4 header checksum.
//! - [`write_udp_frame`]: the IPv4/UDP frames of the traffic generator.

use std::mem::size_of;

use bytemuck::{Pod, Zeroable};

/// The largest frame the model stores, without FCS: the 82599's 15.5 KiB jumbo limit (MAXFRS
/// at most 0x3F00) rounded up to 16 KiB.
pub const MAX_FRAME: usize = 16 * 1024;
/// The smallest frame on the wire without FCS (64 bytes with it).
pub const MIN_FRAME: usize = 60;
/// Bytes of the Ethernet frame check sequence.
pub const FCS_LEN: usize = 4;

/// Records start on 8-byte boundaries.
const ALIGN: usize = 8;
/// A record length of all ones marks the unused tail of the buffer before a wrap.
const WRAP: u32 = u32::MAX;

/// A ring of frames with a per-frame header `M`, holding at most `limit` bytes of records.
#[derive(Clone)]
pub(crate) struct FrameFifo<M: Pod> {
    buf: Vec<u8>,
    /// Byte budget for records (header, frame, padding); at most `buf.len() - 2 * max record`.
    limit: usize,
    head: usize,
    tail: usize,
    used: usize,
    count: usize,
    _meta: std::marker::PhantomData<M>,
}

impl<M: Pod> std::fmt::Debug for FrameFifo<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameFifo")
            .field("frames", &self.count)
            .field("used", &self.used)
            .field("limit", &self.limit)
            .finish()
    }
}

const fn round_up(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

impl<M: Pod> FrameFifo<M> {
    const HEADER: usize = round_up(4 + size_of::<M>());

    /// The bytes a record of a `len`-byte frame takes.
    pub(crate) const fn record_size(len: usize) -> usize {
        Self::HEADER + round_up(len)
    }

    /// A ring that can hold up to `max_limit` bytes of records (the limit starts there).
    pub(crate) fn new(max_limit: usize) -> Self {
        let max_record = Self::record_size(MAX_FRAME);
        FrameFifo {
            // Room for the budget plus the waste a wrap can leave, so that a record within
            // the budget always fits physically.
            buf: vec![0; round_up(max_limit) + 2 * max_record],
            limit: max_limit,
            head: 0,
            tail: 0,
            used: 0,
            count: 0,
            _meta: std::marker::PhantomData,
        }
    }

    /// Changes the byte budget (clamped to what the ring was built for). Records already
    /// stored stay even if they now exceed it.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        let max = self.buf.len() - 2 * Self::record_size(MAX_FRAME);
        debug_assert!(max.is_multiple_of(ALIGN));
        self.limit = limit.min(max);
    }

    /// Frames stored.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// No frame stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets every frame.
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
        self.used = 0;
        self.count = 0;
    }

    /// Whether a `len`-byte frame fits within the budget now.
    pub(crate) fn fits(&self, len: usize) -> bool {
        len <= MAX_FRAME && self.used + Self::record_size(len) <= self.limit
    }

    /// Stores a frame; `false` (nothing stored) when it does not fit the budget.
    pub(crate) fn push(&mut self, meta: M, frame: &[u8]) -> bool {
        if !self.fits(frame.len()) {
            return false;
        }
        let size = Self::record_size(frame.len());
        let Some(at) = self.place(size) else {
            return false;
        };
        let len = frame.len() as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        let meta_at = at + 4;
        self.buf[meta_at..meta_at + size_of::<M>()].copy_from_slice(bytemuck::bytes_of(&meta));
        let data = at + Self::HEADER;
        self.buf[data..data + frame.len()].copy_from_slice(frame);
        self.tail = at + size;
        self.used += size;
        self.count += 1;
        true
    }

    /// Where a record of `size` bytes goes, writing a wrap marker if it goes to the start.
    fn place(&mut self, size: usize) -> Option<usize> {
        if self.count == 0 {
            self.head = 0;
            self.tail = 0;
        }
        let cap = self.buf.len();
        if self.count == 0 || self.tail > self.head {
            if cap - self.tail >= size {
                return Some(self.tail);
            }
            if self.head >= size {
                if self.tail < cap {
                    self.buf[self.tail..self.tail + 4].copy_from_slice(&WRAP.to_le_bytes());
                }
                return Some(0);
            }
            return None;
        }
        // Wrapped: free space is between tail and head.
        (self.head - self.tail >= size).then_some(self.tail)
    }

    /// The oldest record's position, following a wrap marker.
    fn head_record(&self) -> Option<usize> {
        if self.count == 0 {
            return None;
        }
        Some(self.follow_wrap(self.head))
    }

    /// `at`, or the start of the buffer when `at` is the end or a wrap marker.
    fn follow_wrap(&self, at: usize) -> usize {
        if at >= self.buf.len()
            || u32::from_le_bytes(self.buf[at..at + 4].try_into().expect("4 bytes")) == WRAP
        {
            0
        } else {
            at
        }
    }

    /// The oldest frame and its header.
    pub(crate) fn peek(&self) -> Option<(M, &[u8])> {
        let at = self.head_record()?;
        Some(self.record_at(at))
    }

    fn record_at(&self, at: usize) -> (M, &[u8]) {
        let len = u32::from_le_bytes(self.buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        let meta: M = bytemuck::pod_read_unaligned(&self.buf[at + 4..at + 4 + size_of::<M>()]);
        let data = at + Self::HEADER;
        (meta, &self.buf[data..data + len])
    }

    /// Drops the oldest frame.
    pub(crate) fn pop(&mut self) {
        let Some(at) = self.head_record() else {
            return;
        };
        let len = u32::from_le_bytes(self.buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        let size = Self::record_size(len);
        self.head = at + size;
        self.used -= size;
        self.count -= 1;
        if self.count == 0 {
            self.head = 0;
            self.tail = 0;
        }
    }

    /// Every stored frame, oldest first.
    pub(crate) fn iter(&self) -> FifoIter<'_, M> {
        FifoIter {
            fifo: self,
            at: self.head,
            left: self.count,
        }
    }
}

/// Iterator over a [`FrameFifo`], oldest first.
pub(crate) struct FifoIter<'a, M: Pod> {
    fifo: &'a FrameFifo<M>,
    at: usize,
    left: usize,
}

impl<'a, M: Pod> Iterator for FifoIter<'a, M> {
    type Item = (M, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let at = self.fifo.follow_wrap(self.at);
        let (meta, data) = self.fifo.record_at(at);
        self.at = at + FrameFifo::<M>::record_size(data.len());
        self.left -= 1;
        Some((meta, data))
    }
}

/// No header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct NoMeta {
    _unused: u32,
}

// ---------------------------------------------------------------------------------------------
// Checksums
// ---------------------------------------------------------------------------------------------

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC32: [u32; 256] = crc32_table();

/// The Ethernet FCS of `frame` (CRC-32 of IEEE 802.3, reflected, 0x04C11DB7). On the wire
/// it follows the frame least significant byte first: `fcs(frame).to_le_bytes()`.
pub fn fcs(frame: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in frame {
        crc = CRC32[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The ones'-complement checksum of an IPv4 header (RFC 791, RFC 1071).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in header.chunks(2) {
        let word = if pair.len() == 2 {
            u16::from_be_bytes([pair[0], pair[1]])
        } else {
            u16::from_be_bytes([pair[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

// ---------------------------------------------------------------------------------------------
// Frame building
// ---------------------------------------------------------------------------------------------

/// Ethernet header bytes.
pub const ETH_HEADER: usize = 14;
/// IPv4 header bytes (no options).
pub const IPV4_HEADER: usize = 20;
/// UDP header bytes.
pub const UDP_HEADER: usize = 8;
/// The smallest generated frame: headers plus an 8-byte sequence number.
pub const MIN_UDP_FRAME: usize = ETH_HEADER + IPV4_HEADER + UDP_HEADER + 8;

/// The addresses of one IPv4/UDP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFlow {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Source IPv4 address.
    pub src_ip: [u8; 4],
    /// Destination IPv4 address.
    pub dst_ip: [u8; 4],
    /// Source UDP port.
    pub src_port: u16,
    /// Destination UDP port.
    pub dst_port: u16,
}

/// Writes an Ethernet/IPv4/UDP frame of `len` bytes (without FCS; at least
/// [`MIN_UDP_FRAME`], at most [`MAX_FRAME`], clamped) into `out`, replacing its contents.
/// The payload starts with `sequence` (big-endian u64) followed by bytes
/// `(sequence + i) as u8`. The IPv4 checksum is set; the UDP checksum is zero (none, as IPv4
/// allows). Does not allocate when `out` has the capacity.
pub fn write_udp_frame(out: &mut Vec<u8>, len: usize, flow: &UdpFlow, sequence: u64) {
    let len = len.clamp(MIN_UDP_FRAME, MAX_FRAME);
    out.clear();
    out.resize(len, 0);
    out[0..6].copy_from_slice(&flow.dst_mac);
    out[6..12].copy_from_slice(&flow.src_mac);
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - ETH_HEADER) as u16;
    {
        let ip = &mut out[ETH_HEADER..ETH_HEADER + IPV4_HEADER];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[4..6].copy_from_slice(&(sequence as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF, not a fragment
        ip[8] = 64;
        ip[9] = 17;
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&flow.src_ip);
        ip[16..20].copy_from_slice(&flow.dst_ip);
        let sum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let udp_at = ETH_HEADER + IPV4_HEADER;
    let udp_len = ip_len - IPV4_HEADER as u16;
    {
        let udp = &mut out[udp_at..udp_at + UDP_HEADER];
        udp[0..2].copy_from_slice(&flow.src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&flow.dst_port.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
    }
    let payload = udp_at + UDP_HEADER;
    out[payload..payload + 8].copy_from_slice(&sequence.to_be_bytes());
    for (i, b) in out[payload + 8..].iter_mut().enumerate() {
        *b = sequence.wrapping_add(i as u64) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
    #[repr(C)]
    struct Tag {
        n: u32,
    }

    #[test]
    fn fifo_keeps_order_across_wraps_and_respects_the_budget() {
        let mut fifo = FrameFifo::<Tag>::new(4096);
        let frame = [7u8; 1000];
        let mut pushed = 0u32;
        let mut popped = 0u32;
        for round in 0..50 {
            while fifo.push(Tag { n: pushed }, &frame[..(100 + round * 13) % 1000]) {
                pushed += 1;
            }
            assert!(fifo.len() >= 3, "a 4 KiB budget holds several frames");
            // Pop two, so that the next pushes wrap.
            for _ in 0..2 {
                let (tag, data) = fifo.peek().unwrap();
                assert_eq!(tag.n, popped);
                assert!(data.iter().all(|&b| b == 7));
                fifo.pop();
                popped += 1;
            }
            let tags: Vec<u32> = fifo.iter().map(|(t, _)| t.n).collect();
            let expected: Vec<u32> = (popped..pushed).collect();
            assert_eq!(tags, expected);
        }
        fifo.clear();
        assert!(fifo.is_empty() && fifo.peek().is_none());
        fifo.set_limit(100);
        assert!(!fifo.push(Tag::default(), &[0; 200]), "over the budget");
        assert!(fifo.push(Tag::default(), &[0; 60]));
    }

    #[test]
    fn fcs_matches_the_check_value() {
        // CRC-32/ISO-HDLC check value.
        assert_eq!(fcs(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn ipv4_checksum_verifies_to_zero() {
        let mut frame = Vec::with_capacity(MAX_FRAME);
        let flow = UdpFlow {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 0, 0, 1],
            dst_ip: [10, 0, 0, 2],
            src_port: 1000,
            dst_port: 2000,
        };
        write_udp_frame(&mut frame, 100, &flow, 5);
        assert_eq!(frame.len(), 100);
        assert_eq!(ipv4_checksum(&frame[14..34]), 0);
        assert_eq!(&frame[42..50], &5u64.to_be_bytes());
        assert_eq!(frame[50], 5);
        write_udp_frame(&mut frame, 10, &flow, 0);
        assert_eq!(frame.len(), MIN_UDP_FRAME);
    }
}
