//! Link state from `STATUS` (datasheet 8.2.2) and the copper link setup of 4.5.7: the MAC
//! follows the PHY (`CTRL.SLU`, speed and duplex not forced), the PHY auto-negotiates
//! (`BMCR.AN_ENABLE | BMCR.AN_RESTART` through `MDIC`).

use std::fmt;
use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::time::poll_until;

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::spec::phy;
use crate::spec::regs::{self, LinkSpeed};

/// Link state as `STATUS` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkStatus {
    /// `STATUS.LU`.
    pub up: bool,
    /// `STATUS.SPEED` while the link is up.
    pub speed: Option<LinkSpeed>,
    /// `STATUS.FD` while the link is up.
    pub full_duplex: bool,
}

impl LinkStatus {
    /// Decodes a `STATUS` value.
    pub const fn from_status(status: u32) -> Self {
        let up = status & regs::STATUS_LU != 0;
        LinkStatus {
            up,
            speed: regs::status_speed(status),
            full_duplex: up && status & regs::STATUS_FD != 0,
        }
    }

    /// Megabits per second; 0 when the link is down.
    pub fn mbps(&self) -> u32 {
        self.speed.map_or(0, LinkSpeed::mbps)
    }
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.speed {
            None => f.write_str("down"),
            Some(speed) => write!(
                f,
                "up at {} Mbit/s {} duplex",
                speed.mbps(),
                if self.full_duplex { "full" } else { "half" }
            ),
        }
    }
}

/// A MAC address printed as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacDisplay(pub [u8; 6]);

impl fmt::Display for MacDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// `CTRL` for a copper link that follows the PHY: `SLU` set; forced speed / duplex, PHY
/// reset and the reserved bit 3 (QEMU's reset value has it set) cleared.
pub(crate) const fn ctrl_for_copper_link(ctrl: u32) -> u32 {
    (ctrl | regs::CTRL_SLU)
        & !(regs::CTRL_FRCSPD | regs::CTRL_FRCDPX | regs::CTRL_PHY_RST | regs::CTRL_LRST)
}

pub(crate) fn read<F: PciFunction>(s: &Shared<F>) -> LinkStatus {
    LinkStatus::from_status(s.read(regs::STATUS))
}

/// 4.5.7: `CTRL` for copper, then auto-negotiation (re)started in the PHY. The datasheet
/// waits for the link here; the driver waits at the end of initialisation instead, so the
/// queue setup overlaps the negotiation. (QEMU's model brings the link up only through this
/// restart: after a reset `STATUS.LU` stays clear until 500 ms after `BMCR.AN_RESTART`.)
pub(crate) fn setup<F: PciFunction>(s: &Shared<F>) -> Result<()> {
    let ctrl = s.read(regs::CTRL);
    s.write(regs::CTRL, ctrl_for_copper_link(ctrl));
    let bmcr = crate::phy::read(s, phy::BMCR)?;
    crate::phy::write(s, phy::BMCR, phy::bmcr_restart_autoneg(bmcr))?;
    Ok(())
}

/// Polls `STATUS.LU` on the function's clock until it is set or `timeout` has passed.
pub(crate) fn wait<F: PciFunction>(s: &Shared<F>, timeout: Duration) -> Result<LinkStatus> {
    let start = s.clock().now();
    let polled = poll_until(s.clock(), s.device, "STATUS.LU=1 (4.5.7)", timeout, || {
        let status = s.read(regs::STATUS);
        if status == u32::MAX {
            return Err(userpci_framework::Error::DeviceGone { device: s.device });
        }
        let link = LinkStatus::from_status(status);
        Ok(link.up.then_some(link))
    });
    match polled {
        Ok(link) => Ok(link),
        Err(userpci_framework::Error::Timeout { .. }) => Err(Error::LinkDown {
            device: s.device,
            waited_ms: u64::try_from(s.clock().now().saturating_sub(start).as_millis())
                .unwrap_or(u64::MAX),
            status: s.read(regs::STATUS),
        }),
        Err(userpci_framework::Error::DeviceGone { .. }) => Err(Error::DeviceGone {
            device: s.device,
            register: "STATUS",
        }),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decodes_link_speed_and_duplex() {
        let down = LinkStatus::from_status(regs::STATUS_FD | (0b10 << 6));
        assert!(!down.up);
        assert_eq!(down.speed, None);
        assert_eq!(down.to_string(), "down");
        // QEMU's STATUS once auto-negotiation is done: LU | FD | SPEED_1000 | GIO master.
        let up = LinkStatus::from_status(0x0008_0083);
        assert_eq!(up.speed, Some(LinkSpeed::Gbps1));
        assert!(up.full_duplex);
        assert_eq!(up.mbps(), 1000);
        assert_eq!(up.to_string(), "up at 1000 Mbit/s full duplex");
        let slow = LinkStatus::from_status(regs::STATUS_LU | (0b01 << 6));
        assert_eq!(slow.speed, Some(LinkSpeed::Mbps100));
        assert_eq!(slow.to_string(), "up at 100 Mbit/s half duplex");
        assert_eq!(
            LinkStatus::from_status(regs::STATUS_LU).speed,
            Some(LinkSpeed::Mbps10)
        );
    }

    #[test]
    fn copper_ctrl_sets_slu_and_clears_forcing() {
        // QEMU's reset value: FD | LRST | SPEED_1000 | ADVD3WUC.
        let reset = 0x0010_0209;
        let ctrl = ctrl_for_copper_link(reset | regs::CTRL_FRCSPD | regs::CTRL_PHY_RST);
        assert_eq!(ctrl & regs::CTRL_SLU, regs::CTRL_SLU);
        assert_eq!(
            ctrl & (regs::CTRL_FRCSPD | regs::CTRL_FRCDPX | regs::CTRL_PHY_RST),
            0
        );
        assert_eq!(ctrl & regs::CTRL_LRST, 0);
        assert_eq!(ctrl & 0x0010_0201, 0x0010_0201, "the other bits are kept");
    }

    #[test]
    fn mac_display() {
        assert_eq!(
            MacDisplay([0x52, 0x54, 0, 0x12, 0x34, 0xab]).to_string(),
            "52:54:00:12:34:ab"
        );
    }
}
