//! Receive classification: the packet type the write-back reports, and Receive Side Scaling
//! (datasheet 7.1.2.8): the Toeplitz hash over the fields `MRQC` enables, the RSS type, and
//! the redirection table lookup.
//!
//! Parsing is total: a frame too short for a header it announces is classified as far as its
//! bytes go (an IPv4 frame cut inside the UDP header hashes as plain IPv4), never panics.

use crate::spec::desc::{packet_type, rss_type};
use crate::spec::regs::{
    MRQC_MRQE_MASK, MRQC_MRQE_RSS, MRQC_RSS_FIELD_IPV4, MRQC_RSS_FIELD_IPV4_TCP,
    MRQC_RSS_FIELD_IPV4_UDP, MRQC_RSS_FIELD_IPV6, MRQC_RSS_FIELD_IPV6_TCP, MRQC_RSS_FIELD_IPV6_UDP,
    RSS_KEY_LEN,
};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The transport header found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// No TCP or UDP header (another protocol, a fragment, or cut short).
    None,
    /// TCP with its ports.
    Tcp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// UDP with its ports.
    Udp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
}

/// What the receive parser found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The write-back `Packet Type` (bits of [`packet_type`]).
    pub packet_type: u16,
    /// IPv4 source and destination, when the frame is IPv4.
    pub ipv4: Option<([u8; 4], [u8; 4])>,
    /// IPv6 source and destination, when the frame is IPv6.
    pub ipv6: Option<([u8; 16], [u8; 16])>,
    /// The transport header.
    pub l4: L4,
    /// The frame carries an 802.1Q tag.
    pub vlan: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ports(frame: &[u8], at: usize, proto: u8) -> L4 {
    match (proto, be16(frame, at), be16(frame, at + 2)) {
        (PROTO_TCP, Some(src), Some(dst)) if frame.len() >= at + 20 => L4::Tcp { src, dst },
        (PROTO_UDP, Some(src), Some(dst)) if frame.len() >= at + 8 => L4::Udp { src, dst },
        _ => L4::None,
    }
}

/// Parses the Ethernet, (one) VLAN, IPv4 or IPv6 and TCP or UDP headers of `frame`.
pub fn parse(frame: &[u8]) -> Parsed {
    let mut parsed = Parsed {
        packet_type: 0,
        ipv4: None,
        ipv6: None,
        l4: L4::None,
        vlan: false,
    };
    let mut at = 12;
    let Some(mut ethertype) = be16(frame, at) else {
        return parsed;
    };
    if ethertype == ETHERTYPE_VLAN {
        parsed.vlan = true;
        at += 4;
        let Some(inner) = be16(frame, at) else {
            return parsed;
        };
        ethertype = inner;
    }
    let l3 = at + 2;
    match ethertype {
        ETHERTYPE_IPV4 => {
            let Some(ip) = frame.get(l3..l3 + 20) else {
                return parsed;
            };
            if ip[0] >> 4 != 4 || ip[0] & 0xF < 5 {
                return parsed;
            }
            let ihl = usize::from(ip[0] & 0xF) * 4;
            parsed.packet_type |= packet_type::IPV4;
            if ihl > 20 {
                parsed.packet_type |= packet_type::IPV4_EX;
            }
            let src = [ip[12], ip[13], ip[14], ip[15]];
            let dst = [ip[16], ip[17], ip[18], ip[19]];
            parsed.ipv4 = Some((src, dst));
            let flags_offset = u16::from_be_bytes([ip[6], ip[7]]);
            let fragment = flags_offset & 0x3FFF != 0; // MF or a fragment offset
            if !fragment {
                parsed.l4 = ports(frame, l3 + ihl, ip[9]);
            }
        }
        ETHERTYPE_IPV6 => {
            let Some(ip) = frame.get(l3..l3 + 40) else {
                return parsed;
            };
            if ip[0] >> 4 != 6 {
                return parsed;
            }
            parsed.packet_type |= packet_type::IPV6;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            parsed.ipv6 = Some((src, dst));
            // Extension headers are not walked: only a TCP or UDP next header is found.
            parsed.l4 = ports(frame, l3 + 40, ip[6]);
        }
        _ => {}
    }
    match parsed.l4 {
        L4::Tcp { .. } => parsed.packet_type |= packet_type::TCP,
        L4::Udp { .. } => parsed.packet_type |= packet_type::UDP,
        L4::None => {}
    }
    parsed
}

/// The Toeplitz hash of `input` under `key` (datasheet 7.1.2.8.1): for every set bit of the
/// input, most significant bit of each byte first, XOR in the 32 key bits that start at that
/// bit position. `input` may be at most `RSS_KEY_LEN - 4` bytes (36, IPv6 with ports).
pub fn toeplitz(key: &[u8; RSS_KEY_LEN], input: &[u8]) -> u32 {
    let mut result = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().take(RSS_KEY_LEN - 4).enumerate() {
        let next = key[i + 4];
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((next >> bit) & 1);
        }
    }
    result
}

/// The hash and RSS type for `parsed` under `MRQC` (field enables only; the caller checks
/// `MRQE`). `(0, NONE)` when no enabled field set applies.
pub fn rss_hash(mrqc: u32, key: &[u8; RSS_KEY_LEN], parsed: &Parsed) -> (u32, u8) {
    let mut input = [0u8; 36];
    if let Some((src, dst)) = parsed.ipv4 {
        input[0..4].copy_from_slice(&src);
        input[4..8].copy_from_slice(&dst);
        let l4 = match parsed.l4 {
            L4::Tcp { src, dst } if mrqc & MRQC_RSS_FIELD_IPV4_TCP != 0 => {
                Some((src, dst, rss_type::IPV4_TCP))
            }
            L4::Udp { src, dst } if mrqc & MRQC_RSS_FIELD_IPV4_UDP != 0 => {
                Some((src, dst, rss_type::IPV4_UDP))
            }
            _ => None,
        };
        if let Some((sp, dp, kind)) = l4 {
            input[8..10].copy_from_slice(&sp.to_be_bytes());
            input[10..12].copy_from_slice(&dp.to_be_bytes());
            return (toeplitz(key, &input[..12]), kind);
        }
        if mrqc & MRQC_RSS_FIELD_IPV4 != 0 {
            return (toeplitz(key, &input[..8]), rss_type::IPV4);
        }
    } else if let Some((src, dst)) = parsed.ipv6 {
        input[0..16].copy_from_slice(&src);
        input[16..32].copy_from_slice(&dst);
        let l4 = match parsed.l4 {
            L4::Tcp { src, dst } if mrqc & MRQC_RSS_FIELD_IPV6_TCP != 0 => {
                Some((src, dst, rss_type::IPV6_TCP))
            }
            L4::Udp { src, dst } if mrqc & MRQC_RSS_FIELD_IPV6_UDP != 0 => {
                Some((src, dst, rss_type::IPV6_UDP))
            }
            _ => None,
        };
        if let Some((sp, dp, kind)) = l4 {
            input[32..34].copy_from_slice(&sp.to_be_bytes());
            input[34..36].copy_from_slice(&dp.to_be_bytes());
            return (toeplitz(key, &input[..36]), kind);
        }
        if mrqc & MRQC_RSS_FIELD_IPV6 != 0 {
            return (toeplitz(key, &input[..32]), rss_type::IPV6);
        }
    }
    (0, rss_type::NONE)
}

/// Whether `MRQC.MRQE` selects plain RSS (the only multiple-queue mode the model has).
pub fn rss_enabled(mrqc: u32) -> bool {
    mrqc & MRQC_MRQE_MASK == MRQC_MRQE_RSS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the verification suite (datasheet 7.1.2.8.3, Microsoft's "Verifying the RSS
    /// Hash Calculation").
    pub(crate) const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    #[test]
    fn toeplitz_matches_the_verification_suite() {
        // (source, destination, source port, destination port, IPv4 hash, with ports)
        let cases = [
            (
                [66, 9, 149, 187],
                [161, 142, 100, 80],
                2794u16,
                1766u16,
                0x323e_8fc2u32,
                0x51cc_c178u32,
            ),
            (
                [199, 92, 111, 2],
                [65, 69, 140, 83],
                14230,
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                [12, 22, 207, 184],
                12898,
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
        ];
        for (src, dst, sp, dp, v4, v4tcp) in cases {
            let parsed = Parsed {
                packet_type: packet_type::IPV4 | packet_type::TCP,
                ipv4: Some((src, dst)),
                ipv6: None,
                l4: L4::Tcp { src: sp, dst: dp },
                vlan: false,
            };
            let all = MRQC_RSS_FIELD_IPV4 | MRQC_RSS_FIELD_IPV4_TCP;
            assert_eq!(rss_hash(all, &KEY, &parsed), (v4tcp, rss_type::IPV4_TCP));
            assert_eq!(
                rss_hash(MRQC_RSS_FIELD_IPV4, &KEY, &parsed),
                (v4, rss_type::IPV4)
            );
            assert_eq!(rss_hash(0, &KEY, &parsed), (0, rss_type::NONE));
        }
    }

    #[test]
    fn parse_finds_udp_over_ipv4_behind_a_vlan_tag_and_skips_fragments() {
        let mut frame = vec![0u8; 64];
        frame[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        frame[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        frame[18] = 0x45;
        frame[27] = PROTO_UDP;
        frame[30..34].copy_from_slice(&[10, 0, 0, 1]);
        frame[34..38].copy_from_slice(&[10, 0, 0, 2]);
        frame[38..40].copy_from_slice(&53u16.to_be_bytes());
        frame[40..42].copy_from_slice(&99u16.to_be_bytes());
        let parsed = parse(&frame);
        assert!(parsed.vlan);
        assert_eq!(parsed.packet_type, packet_type::IPV4 | packet_type::UDP);
        assert_eq!(parsed.l4, L4::Udp { src: 53, dst: 99 });
        frame[24] = 0x20; // MF
        assert_eq!(parse(&frame).l4, L4::None);
        assert_eq!(
            parse(&frame[..20]).packet_type,
            0,
            "cut inside the IPv4 header"
        );
        assert_eq!(parse(&[]).packet_type, 0);
    }
}
