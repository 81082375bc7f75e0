//! Link state from `LINKS` (datasheet 8.2.3.22.20) and the link setup of 4.6.4.

use std::fmt;
use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::time::poll_until;

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::spec::regs::{self, LinkSpeed};

/// Link state as `LINKS` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkStatus {
    /// `LINKS.LINK_UP`.
    pub up: bool,
    /// `LINKS.LINK_SPEED`, when the link is up and the field holds a defined speed.
    pub speed: Option<LinkSpeed>,
}

impl LinkStatus {
    /// Decodes a `LINKS` value.
    pub const fn from_links(links: u32) -> Self {
        LinkStatus {
            up: links & regs::LINKS_UP != 0,
            speed: regs::links_speed(links),
        }
    }

    /// Megabits per second; 0 when the link is down.
    pub fn mbps(&self) -> u32 {
        self.speed.map_or(0, LinkSpeed::mbps)
    }
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.up, self.speed) {
            (false, _) => f.write_str("down"),
            (true, Some(speed)) => write!(f, "up at {} Mbit/s", speed.mbps()),
            (true, None) => f.write_str("up (speed unknown)"),
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

pub(crate) fn read<F: PciFunction>(shared: &Shared<F>) -> LinkStatus {
    LinkStatus::from_links(shared.read(regs::LINKS))
}

/// 4.6.4: 10 Gb/s serial link mode (`AUTOC.LMS` = 10G serial, `10G_PMA_PMD` = XAUI), then
/// restart auto-negotiation. The datasheet waits for the link here; the driver waits at the
/// end of initialisation instead, so the queue setup overlaps the link training (as ixy does).
pub(crate) fn setup<F: PciFunction>(shared: &Shared<F>) {
    let autoc = shared.read(regs::AUTOC);
    let autoc = (autoc & !regs::AUTOC_LMS_MASK) | regs::AUTOC_LMS_10G_SERIAL;
    let autoc = (autoc & !regs::AUTOC_10G_PMA_PMD_MASK) | regs::AUTOC_10G_XAUI;
    shared.write(regs::AUTOC, autoc);
    shared.write(regs::AUTOC, autoc | regs::AUTOC_AN_RESTART);
}

/// Polls `LINKS.LINK_UP` on the function's clock until it is set or `timeout` has passed.
pub(crate) fn wait<F: PciFunction>(shared: &Shared<F>, timeout: Duration) -> Result<LinkStatus> {
    let start = shared.clock().now();
    let polled = poll_until(
        shared.clock(),
        shared.device,
        "LINKS.LINK_UP=1 (4.6.4)",
        timeout,
        || {
            let links = shared.read(regs::LINKS);
            if links == u32::MAX {
                return Err(userpci_framework::Error::DeviceGone {
                    device: shared.device,
                });
            }
            let status = LinkStatus::from_links(links);
            Ok(status.up.then_some(status))
        },
    );
    match polled {
        Ok(status) => Ok(status),
        Err(userpci_framework::Error::Timeout { .. }) => Err(Error::LinkDown {
            device: shared.device,
            waited_ms: u64::try_from((shared.clock().now().saturating_sub(start)).as_millis())
                .unwrap_or(u64::MAX),
            links: shared.read(regs::LINKS),
        }),
        Err(userpci_framework::Error::DeviceGone { .. }) => Err(Error::DeviceGone {
            device: shared.device,
            register: "LINKS",
        }),
        Err(other) => Err(other.into()),
    }
}
