//! Receive-side scaling (datasheet 7.1.1.7 and the RSS registers of 8.10): the hash key
//! (`RSSRK`), the redirection table (`RETA`), the hash fields (`MRQC`) and
//! `RXCSUM.PCSD`, which RSS needs (the write-back's hash dword). The encodings are pure
//! functions, tested here; [`program`] writes them.
//!
//! [`toeplitz_hash`] and [`queue_for_hash`] compute what the device computes, so a test can
//! predict the queue a flow lands on.

use userpci_framework::device::PciFunction;

use crate::shared::Shared;
use crate::spec::regs;

/// The RSS hash key: the one of Microsoft's RSS verification suite, so that hashes can be
/// checked against its published examples.
pub const RSS_KEY: [u8; regs::RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The hash fields: addresses, and TCP / UDP ports, of IPv4 and IPv6 (with and without
/// extension headers).
pub const MRQC_RSS_FIELDS: u32 = regs::MRQC_RSS_FIELD_IPV4
    | regs::MRQC_RSS_FIELD_IPV4_TCP
    | regs::MRQC_RSS_FIELD_IPV4_UDP
    | regs::MRQC_RSS_FIELD_IPV6
    | regs::MRQC_RSS_FIELD_IPV6_EX
    | regs::MRQC_RSS_FIELD_IPV6_TCP
    | regs::MRQC_RSS_FIELD_IPV6_TCP_EX
    | regs::MRQC_RSS_FIELD_IPV6_UDP;

/// `MRQC` for RSS over the hash fields.
pub const MRQC_RSS: u32 = regs::MRQC_MRQE_RSS | MRQC_RSS_FIELDS;

/// The ten `RSSRK` values holding `key` (byte `4n` in bits 7:0 of `RSSRK(n)`).
pub const fn rssrk_values(key: &[u8; regs::RSS_KEY_LEN]) -> [u32; 10] {
    let mut out = [0u32; 10];
    let mut n = 0;
    while n < 10 {
        out[n] = u32::from_le_bytes([key[4 * n], key[4 * n + 1], key[4 * n + 2], key[4 * n + 3]]);
        n += 1;
    }
    out
}

/// The queue of redirection table entry `entry` when RSS spreads over `queues` queues:
/// round robin.
pub const fn reta_queue(entry: usize, queues: u16) -> u8 {
    let queues = if queues == 0 { 1 } else { queues as usize };
    (entry % queues) as u8
}

/// The 32 `RETA` values for `queues` queues: entry `4n + i` in byte `i` of `RETA(n)`.
pub const fn reta_values(queues: u16) -> [u32; regs::RETA_ENTRIES / 4] {
    let mut out = [0u32; regs::RETA_ENTRIES / 4];
    let mut n = 0;
    while n < regs::RETA_ENTRIES / 4 {
        let mut value = 0u32;
        let mut i = 0;
        while i < 4 {
            value |= (reta_queue(4 * n + i, queues) as u32) << (8 * i);
            i += 1;
        }
        out[n] = value;
        n += 1;
    }
    out
}

/// The queue the device picks for a frame whose RSS hash is `hash`: the redirection table
/// entry of the hash's low 7 bits.
pub const fn queue_for_hash(hash: u32, queues: u16) -> u8 {
    reta_queue((hash & 0x7F) as usize, queues)
}

/// The Toeplitz hash of `input` under `key`, as RSS computes it: for each set bit of the
/// input (most significant bit of byte 0 first), the 32 key bits starting at that bit
/// position are XORed into the result. For IPv4 with ports the input is source address,
/// destination address, source port, destination port, in network order.
pub fn toeplitz_hash(key: &[u8; regs::RSS_KEY_LEN], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit window of the key starting at the current bit, and the next key bits.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (next, &byte) in (4..).zip(input.iter().take(regs::RSS_KEY_LEN - 4)) {
        let following = key.get(next).copied().unwrap_or(0);
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((following >> bit) & 1);
        }
    }
    result
}

/// 7.1.1.7: key, redirection table over `queues` queues, `RXCSUM.PCSD` (the hash in the
/// write-back), then `MRQC` (RSS on).
pub(crate) fn program<F: PciFunction>(s: &Shared<F>, queues: u16) {
    for (n, v) in rssrk_values(&RSS_KEY).iter().enumerate() {
        s.write(regs::RSSRK(n), *v);
    }
    for (n, v) in reta_values(queues).iter().enumerate() {
        s.write(regs::RETA(n), *v);
    }
    s.modify(regs::RXCSUM, regs::RXCSUM_PCSD, 0);
    s.write(regs::MRQC, MRQC_RSS);
}

/// RSS off: every frame to queue 0.
pub(crate) fn disable<F: PciFunction>(s: &Shared<F>) {
    s.modify(regs::MRQC, 0, regs::MRQC_MRQE_MASK);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_input(src: [u8; 4], dst: [u8; 4], ports: Option<(u16, u16)>) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        if let Some((sp, dp)) = ports {
            v.extend_from_slice(&sp.to_be_bytes());
            v.extend_from_slice(&dp.to_be_bytes());
        }
        v
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" IPv4 examples.
    #[test]
    fn toeplitz_matches_the_published_verification_values() {
        let cases = [
            (
                [66, 9, 149, 187],
                2794,
                [161, 142, 100, 80],
                1766,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                [199, 92, 111, 2],
                14230,
                [65, 69, 140, 83],
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                12898,
                [12, 22, 207, 184],
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                [38, 27, 205, 30],
                48228,
                [209, 142, 163, 6],
                2217,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                [153, 39, 163, 191],
                44251,
                [202, 188, 127, 2],
                1303,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        for (src, sport, dst, dport, ip_only, with_ports) in cases {
            assert_eq!(
                toeplitz_hash(&RSS_KEY, &ipv4_input(src, dst, None)),
                ip_only,
                "{src:?} -> {dst:?}"
            );
            assert_eq!(
                toeplitz_hash(&RSS_KEY, &ipv4_input(src, dst, Some((sport, dport)))),
                with_ports,
                "{src:?}:{sport} -> {dst:?}:{dport}"
            );
        }
    }

    #[test]
    fn key_registers_hold_the_bytes_in_order() {
        let v = rssrk_values(&RSS_KEY);
        assert_eq!(v[0], 0xda56_5a6d, "byte 0 in bits 7:0");
        assert_eq!(v[9], 0xfa01_acbe);
    }

    #[test]
    fn redirection_table_spreads_round_robin() {
        let four = reta_values(4);
        assert!(four.iter().all(|&r| r == 0x0302_0100));
        let three = reta_values(3);
        assert_eq!(three[0], 0x0002_0100);
        assert_eq!(three[1], 0x0100_0201);
        assert!(reta_values(1).iter().all(|&r| r == 0));
        // Every queue gets 128 / queues entries, give or take one.
        let eight = reta_values(8);
        let mut per_queue = [0usize; 8];
        for r in eight {
            for b in r.to_le_bytes() {
                per_queue[usize::from(b)] += 1;
            }
        }
        assert_eq!(per_queue, [16; 8]);
    }

    #[test]
    fn queue_for_hash_uses_the_low_seven_bits() {
        assert_eq!(queue_for_hash(0x51cc_c178, 4), (0x78 % 4) as u8);
        assert_eq!(queue_for_hash(0xffff_ff80, 3), 0, "entry 0");
        assert_eq!(queue_for_hash(0x7f, 3), (127 % 3) as u8);
    }

    #[test]
    fn mrqc_enables_rss_and_the_fields() {
        assert_eq!(MRQC_RSS & regs::MRQC_MRQE_MASK, 0b010);
        assert_eq!(
            MRQC_RSS >> 16,
            0xFF,
            "bits 23:16, every field but IPv6 UDP-ex"
        );
    }
}
