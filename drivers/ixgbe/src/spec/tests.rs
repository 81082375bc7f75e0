//! The spec against known values: offsets and bits as the 82599 datasheet, ixy.rs, DPDK and
//! Linux give them, and descriptor layouts from byte fixtures.

use super::desc::*;
use super::queue::*;
use super::regs::*;
use super::stats::*;

#[test]
fn general_and_interrupt_offsets() {
    let table: &[(&str, usize, usize)] = &[
        ("CTRL", CTRL, 0x00000),
        ("STATUS", STATUS, 0x00008),
        ("CTRL_EXT", CTRL_EXT, 0x00018),
        ("EEC", EEC, 0x10010),
        ("EICR", EICR, 0x00800),
        ("EICS", EICS, 0x00808),
        ("EIAC", EIAC, 0x00810),
        ("EIMS", EIMS, 0x00880),
        ("EIMC", EIMC, 0x00888),
        ("EIAM", EIAM, 0x00890),
        ("GPIE", GPIE, 0x00898),
        ("IVAR_MISC", IVAR_MISC, 0x00A00),
        ("EIAM_EX(1)", EIAM_EX(1), 0x00AD4),
        ("IVAR(0)", IVAR(0), 0x00900),
        ("IVAR(63)", IVAR(63), 0x009FC),
        ("EITR(0)", EITR(0), 0x00820),
        ("EITR(23)", EITR(23), 0x0087C),
        ("EITR(24)", EITR(24), 0x12300),
        ("EITR(127)", EITR(127), 0x12300 + 4 * 103),
        ("HLREG0", HLREG0, 0x04240),
        ("AUTOC", AUTOC, 0x042A0),
        ("LINKS", LINKS, 0x042A4),
        ("FCTRL", FCTRL, 0x05080),
        ("MTA(0)", MTA(0), 0x05200),
        ("MTA(127)", MTA(127), 0x053FC),
        ("MRQC", MRQC, 0x0EC80),
        ("RAL(0)", RAL(0), 0x0A200),
        ("RAH(0)", RAH(0), 0x0A204),
        ("RAL(127)", RAL(127), 0x0A200 + 8 * 127),
        ("RETA(0)", RETA(0), 0x0EB00),
        ("RETA(31)", RETA(31), 0x0EB7C),
        ("RSSRK(0)", RSSRK(0), 0x0EB80),
        ("RSSRK(9)", RSSRK(9), 0x0EBA4),
    ];
    for &(name, got, want) in table {
        assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
    }
}

#[test]
fn queue_offsets() {
    let table: &[(&str, usize, usize)] = &[
        ("RDBAL(0)", RDBAL(0), 0x01000),
        ("RDBAH(0)", RDBAH(0), 0x01004),
        ("RDLEN(0)", RDLEN(0), 0x01008),
        ("DCA_RXCTRL(0)", DCA_RXCTRL(0), 0x0100C),
        ("RDH(0)", RDH(0), 0x01010),
        ("SRRCTL(0)", SRRCTL(0), 0x01014),
        ("RDT(0)", RDT(0), 0x01018),
        ("RXDCTL(0)", RXDCTL(0), 0x01028),
        ("RDT(1)", RDT(1), 0x01058),
        ("SRRCTL(15)", SRRCTL(15), 0x01014 + 0x40 * 15),
        ("RDT(63)", RDT(63), 0x01018 + 0x40 * 63),
        ("RDBAL(64)", RDBAL(64), 0x0D000),
        ("RXDCTL(127)", RXDCTL(127), 0x0D028 + 0x40 * 63),
        ("SRRCTL(64)", SRRCTL(64), 0x0D014),
        ("RDRXCTL", RDRXCTL, 0x02F00),
        ("RXCTRL", RXCTRL, 0x03000),
        ("RXPBSIZE(0)", RXPBSIZE(0), 0x03C00),
        ("RXPBSIZE(7)", RXPBSIZE(7), 0x03C1C),
        ("RQSMR(0)", RQSMR(0), 0x02300),
        ("TDBAL(0)", TDBAL(0), 0x06000),
        ("TDBAH(0)", TDBAH(0), 0x06004),
        ("TDLEN(0)", TDLEN(0), 0x06008),
        ("TDH(0)", TDH(0), 0x06010),
        ("TDT(0)", TDT(0), 0x06018),
        ("TXDCTL(0)", TXDCTL(0), 0x06028),
        ("TDT(127)", TDT(127), 0x06018 + 0x40 * 127),
        ("DMATXCTL", DMATXCTL, 0x04A80),
        ("DTXMXSZRQ", DTXMXSZRQ, 0x08100),
        ("RTTDCS", RTTDCS, 0x04900),
        ("TXPBSIZE(0)", TXPBSIZE(0), 0x0CC00),
        ("TXPBSIZE(7)", TXPBSIZE(7), 0x0CC1C),
        ("TQSM(0)", TQSM(0), 0x08600),
    ];
    for &(name, got, want) in table {
        assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
    }
}

#[test]
fn statistics_offsets() {
    let table: &[(&str, usize, usize)] = &[
        ("CRCERRS", CRCERRS, 0x04000),
        ("RLEC", RLEC, 0x04040),
        ("GPRC", GPRC, 0x04074),
        ("GPTC", GPTC, 0x04080),
        ("GORCL", GORCL, 0x04088),
        ("GORCH", GORCH, 0x0408C),
        ("GOTCL", GOTCL, 0x04090),
        ("GOTCH", GOTCH, 0x04094),
        ("RUC", RUC, 0x040A4),
        ("ROC", ROC, 0x040AC),
        ("TPR", TPR, 0x040D0),
        ("TPT", TPT, 0x040D4),
        ("MPC(0)", MPC(0), 0x03FA0),
        ("MPC(7)", MPC(7), 0x03FBC),
        ("QPRC(0)", QPRC(0), 0x01030),
        ("QPRC(15)", QPRC(15), 0x01030 + 0x40 * 15),
        ("QBRC_L(1)", QBRC_L(1), 0x01074),
        ("QBRC_H(1)", QBRC_H(1), 0x01078),
        ("QPRDC(0)", QPRDC(0), 0x01430),
        ("QPTC(0)", QPTC(0), 0x08680),
        ("QPTC(15)", QPTC(15), 0x086BC),
        ("QBTC_L(0)", QBTC_L(0), 0x08700),
        ("QBTC_H(15)", QBTC_H(15), 0x08704 + 8 * 15),
    ];
    for &(name, got, want) in table {
        assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
    }
}

/// Bit values as the Linux / DPDK / ixy headers spell them (hex literals, not shifts).
#[test]
fn bits_match_the_headers() {
    let table: &[(&str, u32, u32)] = &[
        ("CTRL_LNK_RST", CTRL_LRST, 0x0000_0008),
        ("CTRL_RST", CTRL_RST, 0x0400_0000),
        ("CTRL_RST_MASK", CTRL_RST_MASK, 0x0400_0008),
        ("CTRL_GIO_DIS", CTRL_PCIE_MASTER_DISABLE, 0x0000_0004),
        ("STATUS_GIO", STATUS_PCIE_MASTER_ENABLE_STATUS, 0x0008_0000),
        ("CTRL_EXT_NS_DIS", CTRL_EXT_NS_DIS, 0x0001_0000),
        ("CTRL_EXT_DRV_LOAD", CTRL_EXT_DRV_LOAD, 0x1000_0000),
        ("EEC_ARD", EEC_ARD, 0x0000_0200),
        ("GPIE_MSIX_MODE", GPIE_MSIX_MODE, 0x0000_0010),
        ("GPIE_OCD", GPIE_OCD, 0x0000_0020),
        ("GPIE_EIAME", GPIE_EIAME, 0x4000_0000),
        ("GPIE_PBA_SUPPORT", GPIE_PBA_SUPPORT, 0x8000_0000),
        ("EITR_ITR_INT_MASK", EITR_ITR_INTERVAL_MASK, 0x0000_0FF8),
        ("EITR_CNT_WDIS", EITR_CNT_WDIS, 0x8000_0000),
        ("EICR_LSC", EICR_LSC, 0x0010_0000),
        ("HLREG0_TXCRCEN", HLREG0_TXCRCEN, 0x0000_0001),
        ("HLREG0_RXCRCSTRP", HLREG0_RXCRCSTRP, 0x0000_0002),
        ("HLREG0_TXPADEN", HLREG0_TXPADEN, 0x0000_0400),
        ("AUTOC_AN_RESTART", AUTOC_AN_RESTART, 0x0000_1000),
        ("AUTOC_LMS_MASK", AUTOC_LMS_MASK, 0x0000_E000),
        ("AUTOC_LMS_10G_SERIAL", AUTOC_LMS_10G_SERIAL, 0x0000_6000),
        (
            "AUTOC_10G_PMA_PMD_MASK",
            AUTOC_10G_PMA_PMD_MASK,
            0x0000_0180,
        ),
        ("LINKS_UP", LINKS_UP, 0x4000_0000),
        ("LINKS_SPEED_82599", LINKS_SPEED_MASK, 0x3000_0000),
        ("LINKS_SPEED_10G_82599", LINKS_SPEED_10G, 0x3000_0000),
        ("LINKS_SPEED_1G_82599", LINKS_SPEED_1G, 0x2000_0000),
        ("LINKS_SPEED_100_82599", LINKS_SPEED_100M, 0x1000_0000),
        ("FCTRL_MPE", FCTRL_MPE, 0x0000_0100),
        ("FCTRL_UPE", FCTRL_UPE, 0x0000_0200),
        ("FCTRL_BAM", FCTRL_BAM, 0x0000_0400),
        ("RAH_AV", RAH_AV, 0x8000_0000),
        ("MRQC_RSSEN", MRQC_MRQE_RSS, 0x0000_0001),
        (
            "MRQC_RSS_FIELD_IPV4_TCP",
            MRQC_RSS_FIELD_IPV4_TCP,
            0x0001_0000,
        ),
        ("MRQC_RSS_FIELD_IPV4", MRQC_RSS_FIELD_IPV4, 0x0002_0000),
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
        ("RDRXCTL_CRCSTRIP", RDRXCTL_CRCSTRIP, 0x0000_0002),
        ("RDRXCTL_DMAIDONE", RDRXCTL_DMAIDONE, 0x0000_0008),
        ("RDRXCTL_RSCFRSTSIZE", RDRXCTL_RSCFRSTSIZE, 0x003E_0000),
        ("RDRXCTL_RSCACKC", RDRXCTL_RSCACKC, 0x0200_0000),
        ("RDRXCTL_FCOE_WRFIX", RDRXCTL_FCOE_WRFIX, 0x0400_0000),
        ("RXCTRL_RXEN", RXCTRL_RXEN, 0x0000_0001),
        ("RXPBSIZE_128KB", RXPBSIZE_128KB, 0x0002_0000),
        ("TXPBSIZE_40KB", TXPBSIZE_40KB, 0x0000_A000),
        ("TXPBSIZE_MAX (160KB)", TXPBSIZE_160KB, 0x0002_8000),
        (
            "SRRCTL_DESCTYPE_ADV_ONEBUF",
            SRRCTL_DESCTYPE_ADV_ONEBUF,
            0x0200_0000,
        ),
        ("SRRCTL_DESCTYPE_MASK", SRRCTL_DESCTYPE_MASK, 0x0E00_0000),
        ("SRRCTL_DROP_EN", SRRCTL_DROP_EN, 0x1000_0000),
        ("RXDCTL_ENABLE", RXDCTL_ENABLE, 0x0200_0000),
        ("TXDCTL_ENABLE", TXDCTL_ENABLE, 0x0200_0000),
        ("DMATXCTL_TE", DMATXCTL_TE, 0x0000_0001),
        ("RTTDCS_ARBDIS", RTTDCS_ARBDIS, 0x0000_0040),
        ("RXD_STAT_DD", RXD_STAT_DD, 0x01),
        ("RXD_STAT_EOP", RXD_STAT_EOP, 0x02),
        ("RXDADV_ERR_RXE", RXD_ERR_RXE, 0x2000_0000),
        ("RXDADV_ERR_TCPE", RXD_ERR_TCPE, 0x4000_0000),
        ("RXDADV_ERR_IPE", RXD_ERR_IPE, 0x8000_0000),
        ("ADVTXD_DTYP_DATA", TXD_DTYP_DATA, 0x0030_0000),
        ("ADVTXD_DCMD_EOP", TXD_DCMD_EOP, 0x0100_0000),
        ("ADVTXD_DCMD_IFCS", TXD_DCMD_IFCS, 0x0200_0000),
        ("ADVTXD_DCMD_RS", TXD_DCMD_RS, 0x0800_0000),
        ("ADVTXD_DCMD_DEXT", TXD_DCMD_DEXT, 0x2000_0000),
        ("ADVTXD_DCMD_VLE", TXD_DCMD_VLE, 0x4000_0000),
        ("ADVTXD_DCMD_TSE", TXD_DCMD_TSE, 0x8000_0000),
        ("ADVTXD_STAT_DD", TXD_STAT_DD, 0x01),
    ];
    for &(name, got, want) in table {
        assert_eq!(got, want, "{name}: {got:#010x} != {want:#010x}");
    }
    assert_eq!(TXD_PAYLEN_SHIFT, 14, "ADVTXD_PAYLEN_SHIFT");
    assert_eq!(SRRCTL_BSIZEPACKET_SHIFT, 10, "SRRCTL_BSIZEPKT_SHIFT");
}

#[test]
fn field_helpers() {
    assert_eq!(srrctl_bsizepacket(2048), 2);
    assert_eq!(srrctl_bsizepacket(2047), 1, "rounded down");
    assert_eq!(srrctl_bsizepacket(100), 1, "at least 1 KiB");
    assert_eq!(srrctl_bsizepacket(1 << 20), 16, "at most 16 KiB");
    // ixy's TXDCTL: 36 | 8 << 8 | 4 << 16.
    assert_eq!(txdctl_thresholds(36, 8, 4), 0x0004_0824);
    assert_eq!(eitr_interval(0), 0);
    assert_eq!(eitr_interval(40), 20 << 3, "2 µs units in bits 11:3");
    assert_eq!(
        eitr_interval(1_000_000),
        EITR_ITR_INTERVAL_MASK,
        "saturates"
    );
    assert_eq!(ivar_entry(0, false), (0x900, 0));
    assert_eq!(ivar_entry(0, true), (0x900, 8));
    assert_eq!(ivar_entry(1, false), (0x900, 16));
    assert_eq!(ivar_entry(5, true), (0x908, 24));
}

#[test]
fn links_decoding() {
    assert_eq!(links_speed(0), None, "down");
    assert_eq!(links_speed(LINKS_SPEED_10G), None, "speed without LINK_UP");
    assert_eq!(
        links_speed(LINKS_UP | LINKS_SPEED_10G),
        Some(LinkSpeed::Gbps10)
    );
    assert_eq!(
        links_speed(LINKS_UP | LINKS_SPEED_1G),
        Some(LinkSpeed::Gbps1)
    );
    assert_eq!(
        links_speed(LINKS_UP | LINKS_SPEED_100M),
        Some(LinkSpeed::Mbps100)
    );
    assert_eq!(links_speed(LINKS_UP), None, "reserved speed 00b");
    for speed in [LinkSpeed::Mbps100, LinkSpeed::Gbps1, LinkSpeed::Gbps10] {
        assert_eq!(links_speed(LINKS_UP | speed.links_bits()), Some(speed));
    }
}

#[test]
fn mac_round_trips_through_ral_rah() {
    let mac = [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc];
    let (ral, rah) = ral_rah_from_mac(mac, true);
    assert_eq!(ral, 0xaa21_1b00, "byte 0 in bits 7:0");
    assert_eq!(rah, 0x8000_ccbb, "bytes 4, 5 and AV");
    assert_eq!(mac_from_ral_rah(ral, rah), mac);
}

/// An RX write-back as the device writes it, byte by byte (little-endian).
const RX_WB_FIXTURE: [u8; 16] = [
    0x71, 0x02, 0x00, 0x00, // pkt_info: RSS type 1 (TCP/IPv4), packet type 0x027
    0x78, 0x56, 0x34, 0x12, // RSS hash 0x12345678
    0x03, 0x00, 0x00, 0x20, // status DD | EOP, error RXE (bit 29)
    0xea, 0x05, // PKT_LEN 1514
    0x64, 0x00, // VLAN 100
];

#[test]
fn rx_writeback_from_bytes() {
    let desc: AdvRxDesc = bytemuck::cast(RX_WB_FIXTURE);
    let wb = desc.writeback();
    assert!(wb.dd());
    assert!(wb.eop());
    assert_eq!(wb.length, 1514);
    assert_eq!(wb.vlan, 100);
    assert_eq!(wb.rss_hash, 0x1234_5678);
    assert_eq!(wb.rss_type(), rss_type::IPV4_TCP);
    assert_eq!(
        wb.packet_type(),
        packet_type::IPV4 | packet_type::IPV4_EX | packet_type::IPV6 | packet_type::UDP
    );
    assert_eq!(wb.status(), RXD_STAT_DD | RXD_STAT_EOP);
    assert_eq!(wb.errors(), RXD_ERR_RXE);
    let built = AdvRxWriteback::done(1514, 0x1234_5678, 1, 0x027);
    assert_eq!(built.pkt_info, wb.pkt_info);
    assert_eq!(built.status_error, RXD_STAT_DD | RXD_STAT_EOP);
}

#[test]
fn rx_read_format_clears_dd() {
    let desc = AdvRxDesc::new_read(0x1_2345_6000);
    let bytes: [u8; 16] = bytemuck::cast(desc);
    assert_eq!(&bytes[..8], &0x1_2345_6000u64.to_le_bytes());
    assert_eq!(
        &bytes[8..],
        &[0u8; 8],
        "hdr_addr 0: DD (bit 0 of byte 8) clear"
    );
    assert!(!desc.writeback().dd());
    assert_eq!(desc.read().pkt_addr, 0x1_2345_6000);
    assert_eq!(RX_WB_STATUS_OFFSET, 8);
}

#[test]
fn tx_read_format_from_bytes() {
    let desc: AdvTxDesc = AdvTxRead::packet(0xdead_b000, 60).into();
    let bytes: [u8; 16] = bytemuck::cast(desc);
    #[rustfmt::skip]
    let want: [u8; 16] = [
        0x00, 0xb0, 0xad, 0xde, 0x00, 0x00, 0x00, 0x00, // buffer address
        0x3c, 0x00, 0x30, 0x2b, // DTALEN 60, DTYP 0011b, DCMD EOP | IFCS | RS | DEXT
        0x00, 0x00, 0x0f, 0x00, // PAYLEN 60 << 14
    ];
    assert_eq!(bytes, want);
    let read = desc.read();
    assert_eq!(read.dtalen(), 60);
    assert_eq!(read.dtyp(), 0x3);
    assert_eq!(read.paylen(), 60);
    assert_eq!(
        read.dcmd(),
        TXD_DCMD_EOP | TXD_DCMD_IFCS | TXD_DCMD_RS | TXD_DCMD_DEXT
    );
    assert!(!desc.writeback().dd(), "STA of the read format is zero");
}

#[test]
fn tx_writeback_dd() {
    let desc: AdvTxDesc = AdvTxRead::packet(0x1000, 64).into();
    let done = desc.with_dd();
    let bytes: [u8; 16] = bytemuck::cast(done);
    assert_eq!(bytes[12] & 1, 1, "DD is bit 0 of the fourth dword");
    assert!(done.writeback().dd());
    assert_eq!(TX_WB_STATUS_OFFSET, 12);
}

#[test]
fn the_82599_ids_are_linuxs_82599_family_each_named() {
    use super::ids::{device_name, DEVICE_IDS_82599, DEVICE_ID_VALUES_82599};
    // Linux `ixgbe_pci_tbl`, the `board_82599` entries, with `ixgbe_type.h`'s values.
    let linux: &[(u16, &str)] = &[
        (0x10F7, "82599_KX4"),
        (0x10FC, "82599_XAUI_LOM"),
        (0x1517, "82599_KR"),
        (0x10FB, "82599_SFP"),
        (0x1507, "82599_SFP_EM"),
        (0x1514, "82599_KX4_MEZZ"),
        (0x10F9, "82599_CX4"),
        (0x152A, "82599_BACKPLANE_FCOE"),
        (0x1529, "82599_SFP_FCOE"),
        (0x151C, "82599_T3_LOM"),
        (0x10F8, "82599_COMBO_BACKPLANE"),
        (0x154D, "82599_SFP_SF2"),
        (0x154F, "82599_LS"),
        (0x1558, "82599_QSFP_SF_QP"),
        (0x1557, "82599EN_SFP"),
        (0x154A, "82599_SFP_SF_QP"),
    ];
    assert_eq!(DEVICE_IDS_82599.len(), linux.len(), "no more, no fewer");
    for &(id, name) in linux {
        assert_eq!(device_name(id), Some(name), "{id:#06x}");
        assert!(DEVICE_ID_VALUES_82599.contains(&id), "{id:#06x}");
    }
    for (i, d) in DEVICE_IDS_82599.iter().enumerate() {
        assert_eq!(DEVICE_ID_VALUES_82599[i], d.id);
    }
    // VFs, the DPDK-only bypass adapter, the 82598 and the X540 are not 82599 PFs here.
    for other in [0x10ED, 0x152E, 0x155D, 0x10FD, 0x1528] {
        assert_eq!(device_name(other), None, "{other:#06x}");
    }
}
