//! The spec against known values: offsets and bits as Linux's igb headers
//! (`e1000_regs.h`, `e1000_defines.h`) and QEMU's `igb_regs.h` give them.

use super::desc::*;
use super::phy::*;
use super::queue::*;
use super::regs::*;
use super::stats::*;

fn check(table: &[(&str, usize, usize)]) {
    for &(name, got, want) in table {
        assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
    }
}

#[test]
fn general_and_interrupt_offsets() {
    check(&[
        ("CTRL", CTRL, 0x00000),
        ("STATUS", STATUS, 0x00008),
        ("EECD", EECD, 0x00010),
        ("CTRL_EXT", CTRL_EXT, 0x00018),
        ("MDIC", MDIC, 0x00020),
        ("ICR", ICR, 0x000C0),
        ("IMC", IMC, 0x000D8),
        ("IAM", IAM, 0x000E0),
        ("RCTL", RCTL, 0x00100),
        ("TCTL", TCTL, 0x00400),
        ("GPIE", GPIE, 0x01514),
        ("EICS", EICS, 0x01520),
        ("EIMS", EIMS, 0x01524),
        ("EIMC", EIMC, 0x01528),
        ("EIAC", EIAC, 0x0152C),
        ("EIAM", EIAM, 0x01530),
        ("EICR", EICR, 0x01580),
        ("EITR(0)", EITR(0), 0x01680),
        ("EITR(24)", EITR(24), 0x016E0),
        ("IVAR(0)", IVAR(0), 0x01700),
        ("IVAR(7)", IVAR(7), 0x0171C),
        ("IVAR_MISC", IVAR_MISC, 0x01740),
    ]);
}

#[test]
fn filter_rss_and_stats_offsets() {
    check(&[
        ("RXCSUM", RXCSUM, 0x05000),
        ("MTA(0)", MTA(0), 0x05200),
        ("MTA(127)", MTA(127), 0x053FC),
        ("RAL(0)", RAL(0), 0x05400),
        ("RAH(0)", RAH(0), 0x05404),
        ("RAL(15)", RAL(15), 0x05478),
        ("RAL(16)", RAL(16), 0x054E0),
        ("RAH(23)", RAH(23), 0x0551C),
        ("MRQC", MRQC, 0x05818),
        ("RETA(0)", RETA(0), 0x05C00),
        ("RETA(31)", RETA(31), 0x05C7C),
        ("RSSRK(0)", RSSRK(0), 0x05C80),
        ("RSSRK(9)", RSSRK(9), 0x05CA4),
        ("CRCERRS", CRCERRS, 0x04000),
        ("ALGNERRC", ALGNERRC, 0x04004),
        ("RXERRC", RXERRC, 0x0400C),
        ("MPC", MPC, 0x04010),
        ("RLEC", RLEC, 0x04040),
        ("GPRC", GPRC, 0x04074),
        ("BPRC", BPRC, 0x04078),
        ("MPRC", MPRC, 0x0407C),
        ("GPTC", GPTC, 0x04080),
        ("GORCL", GORCL, 0x04088),
        ("GORCH", GORCH, 0x0408C),
        ("GOTCL", GOTCL, 0x04090),
        ("GOTCH", GOTCH, 0x04094),
        ("RNBC", RNBC, 0x040A0),
        ("RUC", RUC, 0x040A4),
        ("ROC", ROC, 0x040AC),
        ("TPR", TPR, 0x040D0),
        ("TPT", TPT, 0x040D4),
        ("MPTC", MPTC, 0x040F0),
        ("BPTC", BPTC, 0x040F4),
    ]);
}

#[test]
fn queue_offsets() {
    check(&[
        ("RDBAL(0)", RDBAL(0), 0x0C000),
        ("RDBAH(0)", RDBAH(0), 0x0C004),
        ("RDLEN(0)", RDLEN(0), 0x0C008),
        ("SRRCTL(0)", SRRCTL(0), 0x0C00C),
        ("RDH(0)", RDH(0), 0x0C010),
        ("RXCTL(0)", RXCTL(0), 0x0C014),
        ("RDT(0)", RDT(0), 0x0C018),
        ("RXDCTL(0)", RXDCTL(0), 0x0C028),
        ("RQDPC(0)", RQDPC(0), 0x0C030),
        ("RDT(1)", RDT(1), 0x0C058),
        ("RXDCTL(15)", RXDCTL(15), 0x0C3E8),
        ("TDBAL(0)", TDBAL(0), 0x0E000),
        ("TDBAH(0)", TDBAH(0), 0x0E004),
        ("TDLEN(0)", TDLEN(0), 0x0E008),
        ("TDH(0)", TDH(0), 0x0E010),
        ("TXCTL(0)", TXCTL(0), 0x0E014),
        ("TDT(0)", TDT(0), 0x0E018),
        ("TXDCTL(0)", TXDCTL(0), 0x0E028),
        ("TDWBAL(0)", TDWBAL(0), 0x0E038),
        ("TDWBAH(0)", TDWBAH(0), 0x0E03C),
        ("TDT(15)", TDT(15), 0x0E3D8),
    ]);
}

#[test]
fn bits_match_linux() {
    // e1000_defines.h
    let table: &[(&str, u32, u32)] = &[
        (
            "CTRL_GIO_MASTER_DISABLE",
            CTRL_GIO_MASTER_DISABLE,
            0x0000_0004,
        ),
        ("CTRL_SLU", CTRL_SLU, 0x0000_0040),
        ("CTRL_FRCSPD", CTRL_FRCSPD, 0x0000_0800),
        ("CTRL_FRCDPX", CTRL_FRCDPX, 0x0000_1000),
        ("CTRL_RST", CTRL_RST, 0x0400_0000),
        ("CTRL_PHY_RST", CTRL_PHY_RST, 0x8000_0000),
        ("STATUS_LU", STATUS_LU, 0x0000_0002),
        (
            "STATUS_GIO_MASTER_ENABLE",
            STATUS_GIO_MASTER_ENABLE,
            0x0008_0000,
        ),
        ("EECD_PRES", EECD_PRES, 0x0000_0100),
        ("EECD_AUTO_RD", EECD_AUTO_RD, 0x0000_0200),
        ("CTRL_EXT_DRV_LOAD", CTRL_EXT_DRV_LOAD, 0x1000_0000),
        ("MDIC_OP_WRITE", MDIC_OP_WRITE, 0x0400_0000),
        ("MDIC_OP_READ", MDIC_OP_READ, 0x0800_0000),
        ("MDIC_READY", MDIC_READY, 0x1000_0000),
        ("MDIC_ERROR", MDIC_ERROR, 0x4000_0000),
        ("RCTL_EN", RCTL_EN, 0x0000_0002),
        ("RCTL_UPE", RCTL_UPE, 0x0000_0008),
        ("RCTL_MPE", RCTL_MPE, 0x0000_0010),
        ("RCTL_BAM", RCTL_BAM, 0x0000_8000),
        ("RCTL_SECRC", RCTL_SECRC, 0x0400_0000),
        ("TCTL_EN", TCTL_EN, 0x0000_0002),
        ("TCTL_PSP", TCTL_PSP, 0x0000_0008),
        ("TCTL_RTLC", TCTL_RTLC, 0x0100_0000),
        ("GPIE_MSIX_MODE", GPIE_MSIX_MODE, 0x0000_0010),
        ("GPIE_EIAME", GPIE_EIAME, 0x4000_0000),
        ("GPIE_PBA", GPIE_PBA, 0x8000_0000),
        ("RXCSUM_PCSD", RXCSUM_PCSD, 0x0000_2000),
        (
            "MRQC_RSS_FIELD_IPV4_TCP",
            MRQC_RSS_FIELD_IPV4_TCP,
            0x0001_0000,
        ),
        ("MRQC_RSS_FIELD_IPV4", MRQC_RSS_FIELD_IPV4, 0x0002_0000),
        (
            "MRQC_RSS_FIELD_IPV6_TCP_EX",
            MRQC_RSS_FIELD_IPV6_TCP_EX,
            0x0004_0000,
        ),
        ("MRQC_RSS_FIELD_IPV6", MRQC_RSS_FIELD_IPV6, 0x0010_0000),
        (
            "MRQC_RSS_FIELD_IPV6_TCP",
            MRQC_RSS_FIELD_IPV6_TCP,
            0x0020_0000,
        ),
        (
            "MRQC_RSS_FIELD_IPV4_UDP",
            MRQC_RSS_FIELD_IPV4_UDP,
            0x0040_0000,
        ),
        (
            "MRQC_RSS_FIELD_IPV6_UDP",
            MRQC_RSS_FIELD_IPV6_UDP,
            0x0080_0000,
        ),
        (
            "SRRCTL_DESCTYPE_ADV_ONEBUF",
            SRRCTL_DESCTYPE_ADV_ONEBUF,
            0x0200_0000,
        ),
        ("SRRCTL_DESCTYPE_MASK", SRRCTL_DESCTYPE_MASK, 0x0E00_0000),
        ("SRRCTL_DROP_EN", SRRCTL_DROP_EN, 0x8000_0000),
        (
            "SRRCTL_BSIZEPACKET_MASK",
            SRRCTL_BSIZEPACKET_MASK,
            0x0000_007F,
        ),
        ("RXDCTL_ENABLE", RXDCTL_ENABLE, 0x0200_0000),
        ("TXDCTL_ENABLE", TXDCTL_ENABLE, 0x0200_0000),
        ("IVAR_VALID", IVAR_VALID, 0x80),
        ("EITR_CNT_IGNR", EITR_CNT_IGNR, 0x8000_0000),
        ("RXD_ERR_CE", RXD_ERR_CE, 0x0100_0000),
        ("RXD_ERR_TCPE", RXD_ERR_TCPE, 0x2000_0000),
        ("RXD_ERR_IPE", RXD_ERR_IPE, 0x4000_0000),
        ("RXD_ERR_RXE", RXD_ERR_RXE, 0x8000_0000),
        ("RAH_AV", RAH_AV, 0x8000_0000),
    ];
    for &(name, got, want) in table {
        assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
    }
}

#[test]
fn mdic_commands() {
    // Read of PHY register 1 (BMSR) at address 1: REGADD 1, PHYADD 1, OP read.
    assert_eq!(mdic_read(PHY_ADDRESS, BMSR), 0x0821_0000);
    assert_eq!(mdic_write(PHY_ADDRESS, BMCR, 0x1340), 0x0420_1340);
}

#[test]
fn bmcr_restart_keeps_speed_and_duplex() {
    // QEMU's BMCR after reset: 1000 Mb/s, full duplex, auto-negotiation enabled.
    let reset = (BMCR_SPEED_MSB | BMCR_FULL_DUPLEX | BMCR_AN_ENABLE) as u16;
    assert_eq!(reset, 0x1140);
    assert_eq!(bmcr_restart_autoneg(reset), 0x1340);
    // Power-down, isolate, loopback and reset are cleared; auto-negotiation switched on.
    let odd = (BMCR_POWER_DOWN | BMCR_ISOLATE | BMCR_LOOPBACK | BMCR_RESET) as u16;
    assert_eq!(
        u32::from(bmcr_restart_autoneg(odd)),
        BMCR_AN_ENABLE | BMCR_AN_RESTART
    );
}

#[test]
fn srrctl_encoding() {
    assert_eq!(srrctl_bsizepacket(2048), 2);
    assert_eq!(srrctl_bsizepacket(3000), 2, "rounded down");
    assert_eq!(srrctl_bsizepacket(100), 1, "at least 1 KiB");
    assert_eq!(srrctl_bsizepacket(1 << 20), 16, "at most 16 KiB");
    // What Linux writes for 2 KiB buffers with several queues: 0x82000002.
    assert_eq!(srrctl_value(0, 2048, true), 0x8200_0002);
    // RDMTS and the header size are kept; the descriptor type replaced.
    let kept = SRRCTL_RDMTS_MASK | SRRCTL_BSIZEHEADER_MASK;
    let old = kept | (0b101 << 25) | 0x7F | SRRCTL_DROP_EN;
    assert_eq!(
        srrctl_value(old, 4096, false),
        kept | SRRCTL_DESCTYPE_ADV_ONEBUF | 4
    );
}

#[test]
fn eitr_and_status_decoding() {
    assert_eq!(eitr_interval(0), 0);
    // Linux's IGB_START_ITR (648, ~6000 interrupts/s) is 162 µs.
    assert_eq!(eitr_interval(162), 648);
    assert_eq!(eitr_interval(100_000), EITR_INTERVAL_MASK, "saturated");
    assert_eq!(status_speed(0), None);
    assert_eq!(
        status_speed(STATUS_LU | (0b11 << 6)),
        Some(LinkSpeed::Gbps1)
    );
}

#[test]
fn mac_address_round_trip() {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let (ral, rah) = ral_rah_from_mac(mac, true);
    assert_eq!(ral, 0x1200_5452);
    assert_eq!(rah, 0x8000_5634);
    assert_eq!(mac_from_ral_rah(ral, rah), mac);
}

#[test]
fn frame_errors() {
    assert!(!frame_error(RXD_STAT_DD | RXD_STAT_EOP | RXD_ERR_TCPE));
    assert!(frame_error(RXD_STAT_DD | RXD_STAT_EOP | RXD_ERR_RXE));
    assert!(frame_error(RXD_ERR_CE));
}
