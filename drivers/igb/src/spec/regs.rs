//! General, EEPROM, PHY access, interrupt, receive / transmit control, filter and RSS
//! registers (82576 datasheet chapter 8: 8.2 general, 8.4 EEPROM/flash, 8.8 interrupts,
//! 8.9 receive, 8.11 transmit, 8.10 receive DMA and RSS).

// ---------------------------------------------------------------------------------------------
// 8.2 General registers
// ---------------------------------------------------------------------------------------------

/// `CTRL`, Device Control Register (8.2.1).
pub const CTRL: usize = 0x00000;
/// `CTRL.FD` (bit 0): full duplex (ignored while the PHY auto-negotiates).
pub const CTRL_FD: u32 = 1 << 0;
/// `CTRL.GIO_MASTER_DISABLE` (bit 2): stop issuing new master requests (5.2.x "master
/// disable"; Linux `E1000_CTRL_GIO_MASTER_DISABLE`).
pub const CTRL_GIO_MASTER_DISABLE: u32 = 1 << 2;
/// `CTRL` bit 3: reserved on the 82576 (write 0); the older e1000 parts' `LRST`, which
/// QEMU's model sets in its reset value (see the module docs of [`crate::spec`]).
pub const CTRL_LRST: u32 = 1 << 3;
/// `CTRL.SLU` (bit 6), Set Link Up: lets the MAC follow the PHY's link indication (copper).
pub const CTRL_SLU: u32 = 1 << 6;
/// `CTRL.FRCSPD` (bit 11): force the speed from `CTRL.SPEED` instead of the PHY's.
pub const CTRL_FRCSPD: u32 = 1 << 11;
/// `CTRL.FRCDPX` (bit 12): force the duplex from `CTRL.FD`.
pub const CTRL_FRCDPX: u32 = 1 << 12;
/// `CTRL.RST` (bit 26), Device Reset: a software global reset; self-clearing.
pub const CTRL_RST: u32 = 1 << 26;
/// `CTRL.VME` (bit 30): strip / insert VLAN tags (not used: VLAN tags are left in frames).
pub const CTRL_VME: u32 = 1 << 30;
/// `CTRL.PHY_RST` (bit 31): PHY reset (not used; the driver restarts auto-negotiation).
pub const CTRL_PHY_RST: u32 = 1 << 31;

/// `STATUS`, Device Status Register (8.2.2, read only).
pub const STATUS: usize = 0x00008;
/// `STATUS.FD` (bit 0): the link is full duplex.
pub const STATUS_FD: u32 = 1 << 0;
/// `STATUS.LU` (bit 1): link up.
pub const STATUS_LU: u32 = 1 << 1;
/// `STATUS.LAN_ID` (bits 3:2): the function's port number.
pub const STATUS_LAN_ID_MASK: u32 = 0b11 << 2;
/// `STATUS.SPEED` (bits 7:6): 00b 10 Mb/s, 01b 100 Mb/s, 10b / 11b 1000 Mb/s.
pub const STATUS_SPEED_MASK: u32 = 0b11 << 6;
/// Shift of `STATUS.SPEED`.
pub const STATUS_SPEED_SHIFT: u32 = 6;
/// `STATUS.GIO_MASTER_ENABLE` (bit 19): master requests may still be pending (cleared once
/// `CTRL.GIO_MASTER_DISABLE` took effect).
pub const STATUS_GIO_MASTER_ENABLE: u32 = 1 << 19;
/// `STATUS.PF_RST_DONE` (bit 21): the PF finished its reset (not set by QEMU's model).
pub const STATUS_PF_RST_DONE: u32 = 1 << 21;

/// Link speed decoded from `STATUS.SPEED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkSpeed {
    /// 10 Mb/s.
    Mbps10,
    /// 100 Mb/s.
    Mbps100,
    /// 1 Gb/s.
    Gbps1,
}

impl LinkSpeed {
    /// Megabits per second.
    pub const fn mbps(self) -> u32 {
        match self {
            LinkSpeed::Mbps10 => 10,
            LinkSpeed::Mbps100 => 100,
            LinkSpeed::Gbps1 => 1_000,
        }
    }
}

/// Decodes `STATUS`: `None` while `STATUS.LU` is clear.
pub const fn status_speed(status: u32) -> Option<LinkSpeed> {
    if status & STATUS_LU == 0 {
        return None;
    }
    Some(match (status & STATUS_SPEED_MASK) >> STATUS_SPEED_SHIFT {
        0b00 => LinkSpeed::Mbps10,
        0b01 => LinkSpeed::Mbps100,
        _ => LinkSpeed::Gbps1,
    })
}

/// `EECD`, EEPROM/Flash Control Register (8.4.1).
pub const EECD: usize = 0x00010;
/// `EECD.PRES` (bit 8): an EEPROM is present.
pub const EECD_PRES: u32 = 1 << 8;
/// `EECD.AUTO_RD` (bit 9): the EEPROM auto-read after reset is done.
pub const EECD_AUTO_RD: u32 = 1 << 9;

/// `CTRL_EXT`, Extended Device Control Register (8.2.3).
pub const CTRL_EXT: usize = 0x00018;
/// `CTRL_EXT.PFRSTD` (bit 14): PF reset done, for the VFs' mailboxes.
pub const CTRL_EXT_PFRSTD: u32 = 1 << 14;
/// `CTRL_EXT.DRV_LOAD` (bit 28): a driver has taken the device (tells the firmware).
pub const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;

// ---------------------------------------------------------------------------------------------
// 8.2.4 MDI control: the PHY's registers
// ---------------------------------------------------------------------------------------------

/// `MDIC`, MDI Control Register (8.2.4): one PHY register read or write at a time.
pub const MDIC: usize = 0x00020;
/// `MDIC.DATA` (bits 15:0).
pub const MDIC_DATA_MASK: u32 = 0xFFFF;
/// `MDIC.REGADD` (bits 20:16): the PHY register.
pub const MDIC_REG_SHIFT: u32 = 16;
/// `MDIC.PHYADD` (bits 25:21): the PHY's address.
pub const MDIC_PHY_SHIFT: u32 = 21;
/// `MDIC.OP` (bits 27:26) = 01b: write.
pub const MDIC_OP_WRITE: u32 = 0b01 << 26;
/// `MDIC.OP` (bits 27:26) = 10b: read.
pub const MDIC_OP_READ: u32 = 0b10 << 26;
/// `MDIC.R` (bit 28): ready, the operation is complete.
pub const MDIC_READY: u32 = 1 << 28;
/// `MDIC.I` (bit 29): interrupt at the end of the operation (not used).
pub const MDIC_INT_EN: u32 = 1 << 29;
/// `MDIC.E` (bit 30): error (no PHY answered at that address or register).
pub const MDIC_ERROR: u32 = 1 << 30;
/// The MDI address of the 82576's internal copper PHY (Linux `igb_get_phy_id_82575`).
pub const PHY_ADDRESS: u32 = 1;

/// The `MDIC` value that starts a read of PHY register `reg` at `phy`.
pub const fn mdic_read(phy: u32, reg: u32) -> u32 {
    ((reg & 0x1F) << MDIC_REG_SHIFT) | ((phy & 0x1F) << MDIC_PHY_SHIFT) | MDIC_OP_READ
}

/// The `MDIC` value that starts writing `data` to PHY register `reg` at `phy`.
pub const fn mdic_write(phy: u32, reg: u32, data: u16) -> u32 {
    data as u32
        | ((reg & 0x1F) << MDIC_REG_SHIFT)
        | ((phy & 0x1F) << MDIC_PHY_SHIFT)
        | MDIC_OP_WRITE
}

// ---------------------------------------------------------------------------------------------
// 8.8 Interrupt registers
// ---------------------------------------------------------------------------------------------

/// `ICR`, Interrupt Cause Read (legacy causes; read to clear).
pub const ICR: usize = 0x000C0;
/// `IMC`, Interrupt Mask Clear (legacy causes).
pub const IMC: usize = 0x000D8;
/// `IAM`, Interrupt Acknowledge Auto Mask (legacy causes).
pub const IAM: usize = 0x000E0;
/// `ICR.LSC` (bit 2): link status change.
pub const ICR_LSC: u32 = 1 << 2;

/// `GPIE`, General Purpose Interrupt Enable (8.8.x).
pub const GPIE: usize = 0x01514;
/// `GPIE.NSICR` (bit 0): non-selective interrupt clear on read of `ICR`.
pub const GPIE_NSICR: u32 = 1 << 0;
/// `GPIE.MULTIPLE_MSIX` (bit 4): MSI-X mode, `EICR` bits follow the vectors.
pub const GPIE_MSIX_MODE: u32 = 1 << 4;
/// `GPIE.EIAME` (bit 30): extended interrupt auto-mask enable (with `EIAM`).
pub const GPIE_EIAME: u32 = 1 << 30;
/// `GPIE.PBA_SUPPORT` (bit 31): PBA support, set in MSI-X mode.
pub const GPIE_PBA: u32 = 1 << 31;

/// `EICS`, Extended Interrupt Cause Set.
pub const EICS: usize = 0x01520;
/// `EIMS`, Extended Interrupt Mask Set / Read.
pub const EIMS: usize = 0x01524;
/// `EIMC`, Extended Interrupt Mask Clear.
pub const EIMC: usize = 0x01528;
/// `EIAC`, Extended Interrupt Auto Clear.
pub const EIAC: usize = 0x0152C;
/// `EIAM`, Extended Interrupt Auto Mask.
pub const EIAM: usize = 0x01530;
/// `EICR`, Extended Interrupt Cause Read (read to clear).
pub const EICR: usize = 0x01580;
/// In MSI-X mode `EICR` / `EIMS` / `EIMC` / `EIAC` / `EIAM` bit `n` is MSI-X vector `n`; the
/// 82576's PF has 25 (bits 24:0, the VFs' vectors included).
pub const EICR_MSIX_MASK: u32 = 0x01FF_FFFF;
/// Written to `EIMC` to mask every extended cause.
pub const EIMC_ALL: u32 = 0xFFFF_FFFF;
/// Written to `IMC` to mask every legacy cause.
pub const IMC_ALL: u32 = 0xFFFF_FFFF;

/// MSI-X vectors of the 82576's PF (the MSI-X table size; QEMU's `IGB_MSIX_VEC_NUM`).
pub const MSIX_VECTORS: u16 = 10;

/// `EITR(n)`, Extended Interrupt Throttle of MSI-X vector `n`, `n < 25`.
pub const fn EITR(n: usize) -> usize {
    assert!(n < 25, "EITR index out of range");
    0x01680 + 4 * n
}
/// `EITR.INTERVAL` (bits 14:2): minimum interval between interrupts, in 1 µs units (the
/// register value is 4 × µs; 0 = no throttling).
pub const EITR_INTERVAL_MASK: u32 = 0x7FFC;
/// Shift of `EITR.INTERVAL`.
pub const EITR_INTERVAL_SHIFT: u32 = 2;
/// `EITR.CNT_IGNR` (bit 31): write the interval without resetting the running counter.
pub const EITR_CNT_IGNR: u32 = 1 << 31;

/// `EITR` for a minimum interval of `micros` µs (saturated at the field's 8191 µs).
pub const fn eitr_interval(micros: u32) -> u32 {
    let units = if micros > 0x1FFF { 0x1FFF } else { micros };
    units << EITR_INTERVAL_SHIFT
}

/// `IVAR(n)`, Interrupt Vector Allocation `n`, `n < 8`: four 8-bit entries, RX queue `n`
/// (bits 7:0), TX queue `n` (15:8), RX queue `n + 8` (23:16), TX queue `n + 8` (31:24).
/// (The 82599 packs queues `2n` and `2n+1` into `IVAR(n)` instead.)
pub const fn IVAR(n: usize) -> usize {
    assert!(n < 8, "IVAR index out of range");
    0x01700 + 4 * n
}
/// `IVAR_MISC`: the vectors of the TCP timer (bits 7:0) and of the other causes (15:8).
pub const IVAR_MISC: usize = 0x01740;
/// `IVAR` entry bit 7: the entry is valid.
pub const IVAR_VALID: u32 = 0x80;
/// `IVAR` entry bits 4:0: the MSI-X vector.
pub const IVAR_VECTOR_MASK: u32 = 0x1F;

/// The `IVAR` register of queue `queue` (`< 16`) and the shift of its 8-bit entry, for the RX
/// queue (`tx == false`) or the TX queue (`tx == true`) of that index.
pub const fn ivar_entry(queue: usize, tx: bool) -> (usize, u32) {
    assert!(queue < 16, "IVAR queue out of range");
    let shift = if queue < 8 { 0 } else { 16 } + if tx { 8 } else { 0 };
    (IVAR(queue % 8), shift)
}

// ---------------------------------------------------------------------------------------------
// 8.9 Receive and 8.11 transmit control
// ---------------------------------------------------------------------------------------------

/// `RCTL`, Receive Control Register (8.9.1).
pub const RCTL: usize = 0x00100;
/// `RCTL.RXEN` (bit 1): receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// `RCTL.SBP` (bit 2): store bad packets.
pub const RCTL_SBP: u32 = 1 << 2;
/// `RCTL.UPE` (bit 3): unicast promiscuous.
pub const RCTL_UPE: u32 = 1 << 3;
/// `RCTL.MPE` (bit 4): multicast promiscuous.
pub const RCTL_MPE: u32 = 1 << 4;
/// `RCTL.LPE` (bit 5): long packets (above 1522 bytes) accepted, up to `RLPML`.
pub const RCTL_LPE: u32 = 1 << 5;
/// `RCTL.LBM` (bits 7:6): loopback mode; 00b normal.
pub const RCTL_LBM_MASK: u32 = 0b11 << 6;
/// `RCTL.MO` (bits 13:12): which destination bits index the multicast table.
pub const RCTL_MO_MASK: u32 = 0b11 << 12;
/// `RCTL.BAM` (bit 15): accept broadcast frames.
pub const RCTL_BAM: u32 = 1 << 15;
/// `RCTL.BSIZE` (bits 17:16): legacy buffer size, overridden by `SRRCTL.BSIZEPACKET`.
pub const RCTL_BSIZE_MASK: u32 = 0b11 << 16;
/// `RCTL.VFE` (bit 18): VLAN filter enable.
pub const RCTL_VFE: u32 = 1 << 18;
/// `RCTL.SECRC` (bit 26): strip the Ethernet CRC from received frames.
pub const RCTL_SECRC: u32 = 1 << 26;

/// `TCTL`, Transmit Control Register (8.11.1).
pub const TCTL: usize = 0x00400;
/// `TCTL.EN` (bit 1): transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// `TCTL.PSP` (bit 3): pad short packets to 64 bytes.
pub const TCTL_PSP: u32 = 1 << 3;
/// `TCTL.CT` (bits 11:4): collision threshold.
pub const TCTL_CT_MASK: u32 = 0xFF << 4;
/// `TCTL.COLD` (bits 21:12): collision distance.
pub const TCTL_COLD_MASK: u32 = 0x3FF << 12;
/// `TCTL.RTLC` (bit 24): re-transmit on late collision.
pub const TCTL_RTLC: u32 = 1 << 24;
/// `TCTL` as the driver writes it: enabled, short packets padded, re-transmit on late
/// collision, collision threshold 15 and distance 63 (the IEEE values Linux writes).
pub const TCTL_VALUE: u32 = TCTL_EN | TCTL_PSP | TCTL_RTLC | (15 << 4) | (63 << 12);

// ---------------------------------------------------------------------------------------------
// 8.10 Receive filtering and RSS
// ---------------------------------------------------------------------------------------------

/// `MTA(n)`, Multicast Table Array, `n < 128`: 4096 bits.
pub const fn MTA(n: usize) -> usize {
    assert!(n < 128, "MTA index out of range");
    0x05200 + 4 * n
}
/// Entries of the receive address table (`RAL` / `RAH`).
pub const RAR_ENTRIES: usize = 24;
/// `RAL(n)`, Receive Address Low, `n < 24`: MAC bytes 0..4 (byte 0 in bits 7:0). Entries
/// 0..16 at `0x05400 + 8n`, 16..24 at `0x054E0 + 8(n-16)`.
pub const fn RAL(n: usize) -> usize {
    assert!(n < RAR_ENTRIES, "RAL index out of range");
    if n < 16 {
        0x05400 + 8 * n
    } else {
        0x054E0 + 8 * (n - 16)
    }
}
/// `RAH(n)`, Receive Address High, `n < 24`: MAC bytes 4..6 in bits 15:0, `POOLSEL`
/// (25:18, VMDq only), `AV` (31).
pub const fn RAH(n: usize) -> usize {
    RAL(n) + 4
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

/// `RXCSUM`, Receive Checksum Control.
pub const RXCSUM: usize = 0x05000;
/// `RXCSUM.IPOFLD` (bit 8): IPv4 header checksum offload.
pub const RXCSUM_IPOFLD: u32 = 1 << 8;
/// `RXCSUM.TUOFLD` (bit 9): TCP / UDP checksum offload.
pub const RXCSUM_TUOFLD: u32 = 1 << 9;
/// `RXCSUM.PCSD` (bit 13), Packet Checksum Disable: the write-back's second dword carries
/// the RSS hash instead of the IP id and checksum. RSS needs it.
pub const RXCSUM_PCSD: u32 = 1 << 13;

/// `MRQC`, Multiple Receive Queues Command.
pub const MRQC: usize = 0x05818;
/// `MRQC.MRQE` (bits 2:0).
pub const MRQC_MRQE_MASK: u32 = 0b111;
/// `MRQC.MRQE` = 010b: RSS (no VMDq). (Linux calls it `E1000_MRQC_ENABLE_RSS_4Q`, a name
/// from the 82575, which had four queues.)
pub const MRQC_MRQE_RSS: u32 = 0b010;
/// `MRQC` hash field: TCP over IPv4 (bit 16).
pub const MRQC_RSS_FIELD_IPV4_TCP: u32 = 1 << 16;
/// `MRQC` hash field: IPv4 addresses (bit 17).
pub const MRQC_RSS_FIELD_IPV4: u32 = 1 << 17;
/// `MRQC` hash field: TCP over IPv6 with extension headers (bit 18).
pub const MRQC_RSS_FIELD_IPV6_TCP_EX: u32 = 1 << 18;
/// `MRQC` hash field: IPv6 with extension headers (bit 19).
pub const MRQC_RSS_FIELD_IPV6_EX: u32 = 1 << 19;
/// `MRQC` hash field: IPv6 addresses (bit 20).
pub const MRQC_RSS_FIELD_IPV6: u32 = 1 << 20;
/// `MRQC` hash field: TCP over IPv6 (bit 21).
pub const MRQC_RSS_FIELD_IPV6_TCP: u32 = 1 << 21;
/// `MRQC` hash field: UDP over IPv4 (bit 22).
pub const MRQC_RSS_FIELD_IPV4_UDP: u32 = 1 << 22;
/// `MRQC` hash field: UDP over IPv6 (bit 23).
pub const MRQC_RSS_FIELD_IPV6_UDP: u32 = 1 << 23;

/// Entries in the RSS redirection table (32 registers of four bytes).
pub const RETA_ENTRIES: usize = 128;
/// `RETA(n)`, Redirection Table, `n < 32`: entry `4n + i` in bits `8i+7:8i`, the queue in
/// the entry's low bits (bits 2:0 for the 82576's eight RSS queues).
pub const fn RETA(n: usize) -> usize {
    assert!(n < 32, "RETA index out of range");
    0x05C00 + 4 * n
}
/// Bytes in the RSS hash key.
pub const RSS_KEY_LEN: usize = 40;
/// `RSSRK(n)`, RSS Random Key, `n < 10`: key bytes `4n..4n+4`, byte `4n` in bits 7:0.
pub const fn RSSRK(n: usize) -> usize {
    assert!(n < 10, "RSSRK index out of range");
    0x05C80 + 4 * n
}
