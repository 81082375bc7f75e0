//! General, interrupt, EEPROM, link, filter and RSS registers (datasheet 8.2.3.1 General
//! Control, 8.2.3.2 EEPROM/Flash, 8.2.3.5 Interrupt, 8.2.3.7 Receive Filter, 8.2.3.22 MAC).

// ---------------------------------------------------------------------------------------------
// 8.2.3.1 General control
// ---------------------------------------------------------------------------------------------

/// `CTRL`, Device Control Register (8.2.3.1.1).
pub const CTRL: usize = 0x00000;
/// `CTRL.PCIE_MASTER_DISABLE` (bit 2): stop issuing new master requests (GIO master disable).
pub const CTRL_PCIE_MASTER_DISABLE: u32 = 1 << 2;
/// `CTRL.LRST` (bit 3), Link Reset: self-clearing.
pub const CTRL_LRST: u32 = 1 << 3;
/// `CTRL.RST` (bit 26), Device Reset: a software global reset; self-clearing (4.6.3.2).
pub const CTRL_RST: u32 = 1 << 26;
/// The bits a global reset writes (ixy's `IXGBE_CTRL_RST_MASK`): `LRST | RST`.
pub const CTRL_RST_MASK: u32 = CTRL_LRST | CTRL_RST;

/// `STATUS`, Device Status Register (8.2.3.1.2, read only).
pub const STATUS: usize = 0x00008;
/// `STATUS.LAN_ID` (bits 3:2): 0 for LAN 0, 1 for LAN 1.
pub const STATUS_LAN_ID_MASK: u32 = 0b11 << 2;
/// Shift of `STATUS.LAN_ID`.
pub const STATUS_LAN_ID_SHIFT: u32 = 2;
/// `STATUS.LINK_UP` (bit 7), "Linkup Status Indication" (datasheet only, see the module docs;
/// [`LINKS`] is the authoritative link status).
pub const STATUS_LINK_UP: u32 = 1 << 7;
/// `STATUS.PCIE_MASTER_ENABLE_STATUS` (bit 19): the function still has master requests
/// pending (Linux `IXGBE_STATUS_GIO`).
pub const STATUS_PCIE_MASTER_ENABLE_STATUS: u32 = 1 << 19;

/// `CTRL_EXT`, Extended Device Control Register (8.2.3.1.3).
pub const CTRL_EXT: usize = 0x00018;
/// `CTRL_EXT.PFRSTD` (bit 14): PF reset done (for the VFs' mailbox).
pub const CTRL_EXT_PFRSTD: u32 = 1 << 14;
/// `CTRL_EXT.NS_DIS` (bit 16): no-snoop disable (the last step of 4.6.7).
pub const CTRL_EXT_NS_DIS: u32 = 1 << 16;
/// `CTRL_EXT.DRV_LOAD` (bit 28): a driver has taken the device (tells the firmware).
pub const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;

// ---------------------------------------------------------------------------------------------
// 8.2.3.2 EEPROM / Flash
// ---------------------------------------------------------------------------------------------

/// `EEC`, EEPROM/Flash Control Register (8.2.3.2.1).
pub const EEC: usize = 0x10010;
/// `EEC.PRES` (bit 8): an EEPROM is present and its signature is valid.
pub const EEC_PRES: u32 = 1 << 8;
/// `EEC.ARD` (bit 9): EEPROM auto-read done (waited for in 4.6.3).
pub const EEC_ARD: u32 = 1 << 9;

// ---------------------------------------------------------------------------------------------
// 8.2.3.5 Interrupt registers
// ---------------------------------------------------------------------------------------------

/// `EICR`, Extended Interrupt Cause Register (8.2.3.5.1): read to clear (unless `GPIE.OCD`).
pub const EICR: usize = 0x00800;
/// `EICS`, Extended Interrupt Cause Set Register (8.2.3.5.3): software-raised causes.
pub const EICS: usize = 0x00808;
/// `EIAC`, Extended Interrupt Auto Clear Register (8.2.3.5.5): causes cleared on MSI-X send.
pub const EIAC: usize = 0x00810;
/// `EIMS`, Extended Interrupt Mask Set/Read Register (8.2.3.5.6).
pub const EIMS: usize = 0x00880;
/// `EIMC`, Extended Interrupt Mask Clear Register (8.2.3.5.8).
pub const EIMC: usize = 0x00888;
/// `EIAM`, Extended Interrupt Auto Mask Enable Register (8.2.3.5.9).
pub const EIAM: usize = 0x00890;
/// `EIAM_EX(n)`, Extended Interrupt Auto Mask Enable of MSI-X vectors `32n..32n+32`
/// (8.2.3.5.10), `n < 2`: in MSI-X mode the 82599 auto-masks through these (Linux writes
/// them for the 82599; `EIAM` is the 82598's).
pub const fn EIAM_EX(n: usize) -> usize {
    assert!(n < 2, "EIAM_EX index out of range");
    0x00AD0 + 4 * n
}
/// `GPIE`, General Purpose Interrupt Enable (8.2.3.5.11).
pub const GPIE: usize = 0x00898;
/// `IVAR_MISC`, Interrupt Vector Allocation for the "other causes" (8.2.3.5.14).
pub const IVAR_MISC: usize = 0x00A00;

/// In MSI-X mode, bits 15:0 of `EICR` / `EIMS` / `EIMC` / `EIAC` are the causes of MSI-X
/// vectors 0..16 (the `RTxQ` field); vectors 16..64 are in the `_EX` registers, not used here.
pub const EICR_RTXQ_MASK: u32 = 0x0000_FFFF;
/// `EICR.LSC` (bit 20): link status change.
pub const EICR_LSC: u32 = 1 << 20;
/// `EICR.OTHER` (bit 31): "other" cause summary (MSI-X mode).
pub const EICR_OTHER: u32 = 1 << 31;
/// The value written to [`EIMC`] to mask every interrupt (4.6.3.1; ixy writes it too).
pub const EIMC_ALL: u32 = 0x7FFF_FFFF;

/// `GPIE.MSIX_MODE` (bit 4): MSI-X mode (the `EICR` bits follow the vectors).
pub const GPIE_MSIX_MODE: u32 = 1 << 4;
/// `GPIE.OCD` (bit 5): other clear disable (`EICR` bits 29:16 not cleared on read).
pub const GPIE_OCD: u32 = 1 << 5;
/// `GPIE.EIMEN` (bit 6): EICS immediate interrupt enable.
pub const GPIE_EIMEN: u32 = 1 << 6;
/// `GPIE.EIAME` (bit 30): extended interrupt auto-mask enable.
pub const GPIE_EIAME: u32 = 1 << 30;
/// `GPIE.PBA_SUPPORT` (bit 31): PBA support, set in MSI-X mode.
pub const GPIE_PBA_SUPPORT: u32 = 1 << 31;

/// `EITR(n)`, Extended Interrupt Throttle Register of MSI-X vector `n` (8.2.3.5.12):
/// `0x00820 + 4n` for `n < 24`, `0x12300 + 4(n - 24)` for `24 <= n < 128`.
pub const fn EITR(n: usize) -> usize {
    assert!(n < 128, "EITR index out of range");
    if n < 24 {
        0x00820 + 4 * n
    } else {
        0x12300 + 4 * (n - 24)
    }
}
/// `EITR.ITR_INTERVAL` (bits 11:3): minimum inter-interrupt interval in 2 µs units (at 1 and
/// 10 Gb/s); zero means no throttling.
pub const EITR_ITR_INTERVAL_MASK: u32 = 0x0000_0FF8;
/// Shift of `EITR.ITR_INTERVAL`.
pub const EITR_ITR_INTERVAL_SHIFT: u32 = 3;
/// `EITR.CNT_WDIS` (bit 31): write the interval without touching the running counter.
pub const EITR_CNT_WDIS: u32 = 1 << 31;

/// `EITR` value for a minimum interval of `micros` µs (rounded down to the 2 µs unit,
/// saturated at the field's maximum, 1022 µs), with `CNT_WDIS` clear.
pub const fn eitr_interval(micros: u32) -> u32 {
    let units = micros / 2;
    let units = if units > 0x1FF { 0x1FF } else { units };
    units << EITR_ITR_INTERVAL_SHIFT
}

/// `IVAR(n)`, Interrupt Vector Allocation Register `n` (8.2.3.5.13), `n < 64`: four 8-bit
/// entries, for RX queue `2n` (bits 7:0), TX queue `2n` (15:8), RX queue `2n+1` (23:16) and TX
/// queue `2n+1` (31:24). An entry is `INT_ALLOC` (the MSI-X vector, bits 5:0) plus
/// `INT_ALLOC_VAL` (bit 7).
pub const fn IVAR(n: usize) -> usize {
    assert!(n < 64, "IVAR index out of range");
    0x00900 + 4 * n
}
/// `IVAR.INT_ALLOC_VAL`: the entry is valid.
pub const IVAR_ALLOC_VAL: u32 = 0x80;
/// `IVAR.INT_ALLOC`: the MSI-X vector of an entry.
pub const IVAR_INT_ALLOC_MASK: u32 = 0x3F;

/// The `IVAR` register of queue `queue` and the bit shift of its 8-bit entry, for the RX queue
/// (`tx == false`) or the TX queue (`tx == true`) of that index.
pub const fn ivar_entry(queue: usize, tx: bool) -> (usize, u32) {
    let shift = 16 * (queue as u32 & 1) + if tx { 8 } else { 0 };
    (IVAR(queue / 2), shift)
}

// ---------------------------------------------------------------------------------------------
// 8.2.3.22 MAC registers
// ---------------------------------------------------------------------------------------------

/// `HLREG0`, MAC Core Control 0 Register (8.2.3.22.8).
pub const HLREG0: usize = 0x04240;
/// `HLREG0.TXCRCEN` (bit 0): append the Ethernet CRC to transmitted frames.
pub const HLREG0_TXCRCEN: u32 = 1 << 0;
/// `HLREG0.RXCRCSTRP` (bit 1): strip the CRC from received frames.
pub const HLREG0_RXCRCSTRP: u32 = 1 << 1;
/// `HLREG0.JUMBOEN` (bit 2): accept jumbo frames (up to `MAXFRS`).
pub const HLREG0_JUMBOEN: u32 = 1 << 2;
/// `HLREG0.TXPADEN` (bit 10): pad short transmitted frames to 64 bytes.
pub const HLREG0_TXPADEN: u32 = 1 << 10;
/// `HLREG0.LPBK` (bit 15): MAC loopback.
pub const HLREG0_LPBK: u32 = 1 << 15;

/// `AUTOC`, Auto-Negotiation Control Register (8.2.3.22.19).
pub const AUTOC: usize = 0x042A0;
/// `AUTOC.FLU` (bit 0): force link up.
pub const AUTOC_FLU: u32 = 1 << 0;
/// `AUTOC.10G_PMA_PMD_PARALLEL` (bits 8:7).
pub const AUTOC_10G_PMA_PMD_MASK: u32 = 0b11 << 7;
/// `AUTOC.10G_PMA_PMD_PARALLEL` = 00b: XAUI.
pub const AUTOC_10G_XAUI: u32 = 0b00 << 7;
/// `AUTOC.RESTART_AN` (bit 12): restart auto-negotiation (self-clearing).
pub const AUTOC_AN_RESTART: u32 = 1 << 12;
/// `AUTOC.LMS` (bits 15:13), Link Mode Select.
pub const AUTOC_LMS_MASK: u32 = 0b111 << 13;
/// Shift of `AUTOC.LMS`.
pub const AUTOC_LMS_SHIFT: u32 = 13;
/// `AUTOC.LMS` = 011b: 10 GbE serial link (SFI), no auto-negotiation.
pub const AUTOC_LMS_10G_SERIAL: u32 = 0b011 << 13;
/// `AUTOC.LMS` = 100b: KX4 / KX / KR auto-negotiation.
pub const AUTOC_LMS_KX4_KX_KR: u32 = 0b100 << 13;

/// `LINKS`, Link Status Register (8.2.3.22.20, read only).
pub const LINKS: usize = 0x042A4;
/// `LINKS.LINK_SPEED` (bits 29:28).
pub const LINKS_SPEED_MASK: u32 = 0b11 << 28;
/// `LINKS.LINK_SPEED` = 01b: 100 Mb/s.
pub const LINKS_SPEED_100M: u32 = 0b01 << 28;
/// `LINKS.LINK_SPEED` = 10b: 1 Gb/s.
pub const LINKS_SPEED_1G: u32 = 0b10 << 28;
/// `LINKS.LINK_SPEED` = 11b: 10 Gb/s.
pub const LINKS_SPEED_10G: u32 = 0b11 << 28;
/// `LINKS.LINK_UP` (bit 30).
pub const LINKS_UP: u32 = 1 << 30;

/// Link speed decoded from `LINKS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkSpeed {
    /// 100 Mb/s.
    Mbps100,
    /// 1 Gb/s.
    Gbps1,
    /// 10 Gb/s.
    Gbps10,
}

impl LinkSpeed {
    /// Megabits per second.
    pub const fn mbps(self) -> u32 {
        match self {
            LinkSpeed::Mbps100 => 100,
            LinkSpeed::Gbps1 => 1_000,
            LinkSpeed::Gbps10 => 10_000,
        }
    }

    /// The `LINKS.LINK_SPEED` encoding (for the model).
    pub const fn links_bits(self) -> u32 {
        match self {
            LinkSpeed::Mbps100 => LINKS_SPEED_100M,
            LinkSpeed::Gbps1 => LINKS_SPEED_1G,
            LinkSpeed::Gbps10 => LINKS_SPEED_10G,
        }
    }
}

/// Decodes `LINKS`: `None` when the link is down or the speed field is the reserved 00b.
pub const fn links_speed(links: u32) -> Option<LinkSpeed> {
    if links & LINKS_UP == 0 {
        return None;
    }
    match links & LINKS_SPEED_MASK {
        LINKS_SPEED_100M => Some(LinkSpeed::Mbps100),
        LINKS_SPEED_1G => Some(LinkSpeed::Gbps1),
        LINKS_SPEED_10G => Some(LinkSpeed::Gbps10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// 8.2.3.7 Receive filtering and RSS
// ---------------------------------------------------------------------------------------------

/// `FCTRL`, Filter Control Register (8.2.3.7.1).
pub const FCTRL: usize = 0x05080;
/// `FCTRL.SBP` (bit 1): store bad packets.
pub const FCTRL_SBP: u32 = 1 << 1;
/// `FCTRL.MPE` (bit 8): multicast promiscuous enable.
pub const FCTRL_MPE: u32 = 1 << 8;
/// `FCTRL.UPE` (bit 9): unicast promiscuous enable.
pub const FCTRL_UPE: u32 = 1 << 9;
/// `FCTRL.BAM` (bit 10): broadcast accept mode.
pub const FCTRL_BAM: u32 = 1 << 10;

/// `MTA(n)`, Multicast Table Array (8.2.3.7.7), `n < 128`: 4096 bits.
pub const fn MTA(n: usize) -> usize {
    assert!(n < 128, "MTA index out of range");
    0x05200 + 4 * n
}

/// `RAL(n)`, Receive Address Low (8.2.3.7.9), `n < 128`: MAC address bytes 0..4, byte 0 in
/// bits 7:0.
pub const fn RAL(n: usize) -> usize {
    assert!(n < 128, "RAL index out of range");
    0x0A200 + 8 * n
}
/// `RAH(n)`, Receive Address High (8.2.3.7.10), `n < 128`: MAC address bytes 4..6 in bits
/// 15:0, `AV` in bit 31.
pub const fn RAH(n: usize) -> usize {
    assert!(n < 128, "RAH index out of range");
    0x0A204 + 8 * n
}
/// `RAH.AV` (bit 31): address valid.
pub const RAH_AV: u32 = 1 << 31;

/// The MAC address held by a (`RAL`, `RAH`) pair.
pub const fn mac_from_ral_rah(ral: u32, rah: u32) -> [u8; 6] {
    let l = ral.to_le_bytes();
    let h = rah.to_le_bytes();
    [l[0], l[1], l[2], l[3], h[0], h[1]]
}

/// The (`RAL`, `RAH`) values for `mac`, with `RAH.AV` set when `valid`.
pub const fn ral_rah_from_mac(mac: [u8; 6], valid: bool) -> (u32, u32) {
    let ral = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let rah = u32::from_le_bytes([mac[4], mac[5], 0, 0]) | if valid { RAH_AV } else { 0 };
    (ral, rah)
}

/// `RXCSUM`, Receive Checksum Control (8.2.3.7.5).
pub const RXCSUM: usize = 0x05000;
/// `RXCSUM.PCSD` (bit 13), Packet Checksum Disable: the RX write-back's dword 0 carries the
/// RSS hash instead of the fragment checksum (Linux sets it in `ixgbe_setup_mrqc`).
pub const RXCSUM_PCSD: u32 = 1 << 13;

/// `MRQC`, Multiple Receive Queues Command Register (8.2.3.7.12), at its 82599 address. (ixy,
/// DPDK and Linux write the 82598 alias `0x05818`; see the [alias table](super#register-addresses-the-82599s-own-never-the-82598-aliases).)
pub const MRQC: usize = 0x0EC80;
/// `MRQC.MRQE` (bits 3:0), Multiple Receive Queues Enable.
pub const MRQC_MRQE_MASK: u32 = 0xF;
/// `MRQC.MRQE` = 0001b: RSS only (no DCB, no virtualisation).
pub const MRQC_MRQE_RSS: u32 = 0x1;
/// `MRQC` field enable: hash TCP over IPv4 (bit 16).
pub const MRQC_RSS_FIELD_IPV4_TCP: u32 = 1 << 16;
/// `MRQC` field enable: hash IPv4 addresses (bit 17).
pub const MRQC_RSS_FIELD_IPV4: u32 = 1 << 17;
/// `MRQC` field enable: hash IPv6 addresses (bit 20).
pub const MRQC_RSS_FIELD_IPV6: u32 = 1 << 20;
/// `MRQC` field enable: hash TCP over IPv6 (bit 21).
pub const MRQC_RSS_FIELD_IPV6_TCP: u32 = 1 << 21;
/// `MRQC` field enable: hash UDP over IPv4 (bit 22).
pub const MRQC_RSS_FIELD_IPV4_UDP: u32 = 1 << 22;
/// `MRQC` field enable: hash UDP over IPv6 (bit 23).
pub const MRQC_RSS_FIELD_IPV6_UDP: u32 = 1 << 23;

/// Entries in the RSS redirection table (32 registers of four).
pub const RETA_ENTRIES: usize = 128;
/// `RETA(n)`, Redirection Table (8.2.3.7.13), `n < 32`: entry `4n + i` in bits `8i+7:8i`; the
/// 82599 uses the low 4 bits of an entry (RSS queue 0..16).
pub const fn RETA(n: usize) -> usize {
    assert!(n < 32, "RETA index out of range");
    0x0EB00 + 4 * n
}
/// Bytes in the RSS hash key.
pub const RSS_KEY_LEN: usize = 40;
/// `RSSRK(n)`, RSS Random Key Register (8.2.3.7.14), `n < 10`: key bytes `4n..4n+4`, byte
/// `4n` in bits 7:0.
pub const fn RSSRK(n: usize) -> usize {
    assert!(n < 10, "RSSRK index out of range");
    0x0EB80 + 4 * n
}
