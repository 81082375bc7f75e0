//! The PHY's IEEE 802.3 clause 22 registers, reached through [`super::regs::MDIC`]
//! (82576 datasheet 8.2.4 for `MDIC`; the PHY's register set is the standard MII one).

/// `PCTRL` / MII `BMCR`, PHY Control (register 0).
pub const BMCR: u32 = 0;
/// `BMCR` bit 6: speed selection, most significant bit (1000 Mb/s with bit 13 clear).
pub const BMCR_SPEED_MSB: u32 = 1 << 6;
/// `BMCR` bit 8: full duplex.
pub const BMCR_FULL_DUPLEX: u32 = 1 << 8;
/// `BMCR` bit 9: restart auto-negotiation (self-clearing).
pub const BMCR_AN_RESTART: u32 = 1 << 9;
/// `BMCR` bit 10: isolate the PHY from the MII.
pub const BMCR_ISOLATE: u32 = 1 << 10;
/// `BMCR` bit 11: power down.
pub const BMCR_POWER_DOWN: u32 = 1 << 11;
/// `BMCR` bit 12: auto-negotiation enable.
pub const BMCR_AN_ENABLE: u32 = 1 << 12;
/// `BMCR` bit 14: PHY loopback.
pub const BMCR_LOOPBACK: u32 = 1 << 14;
/// `BMCR` bit 15: PHY reset (self-clearing).
pub const BMCR_RESET: u32 = 1 << 15;

/// `PSTATUS` / MII `BMSR`, PHY Status (register 1).
pub const BMSR: u32 = 1;
/// `BMSR` bit 2: link status (latched low).
pub const BMSR_LINK_STATUS: u32 = 1 << 2;
/// `BMSR` bit 5: auto-negotiation complete.
pub const BMSR_AN_COMPLETE: u32 = 1 << 5;

/// PHY identifier, high half (register 2).
pub const PHYID1: u32 = 2;
/// PHY identifier, low half (register 3).
pub const PHYID2: u32 = 3;

/// The `BMCR` value that (re)starts auto-negotiation from `current`: auto-negotiation
/// enabled and restarted, power-down, isolate and loopback cleared, the rest kept.
pub const fn bmcr_restart_autoneg(current: u16) -> u16 {
    let v = current as u32;
    let v = (v & !(BMCR_POWER_DOWN | BMCR_ISOLATE | BMCR_LOOPBACK | BMCR_RESET))
        | BMCR_AN_ENABLE
        | BMCR_AN_RESTART;
    v as u16
}
