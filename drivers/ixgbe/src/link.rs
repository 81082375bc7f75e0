//! Link state from `LINKS` (datasheet 8.2.3.22.20), the link setup of 4.6.4, and link
//! changes learned from the link-status-change interrupt cause (`EICR.LSC`, 7.3) or, without
//! interrupts, by polling `LINKS`.

use std::fmt;
use std::sync::atomic::Ordering;
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

/// Reads `LINKS` into the status the driver remembers (end of bring-up).
pub(crate) fn remember<F: PciFunction>(shared: &Shared<F>) {
    shared
        .link_seen
        .store(shared.read(regs::LINKS), Ordering::Relaxed);
}

/// The status last remembered.
pub(crate) fn seen<F: PciFunction>(shared: &Shared<F>) -> LinkStatus {
    LinkStatus::from_links(shared.link_seen.load(Ordering::Relaxed))
}

/// What the link did since the last look (see `IxgbeDevice::poll_link_change`): with `lsc`,
/// from `EICR.LSC` (read through `EICS`, cleared by writing it to `EICR`, before `LINKS` is
/// read so that a change after the read sets it again); otherwise by comparing `LINKS` with
/// the status last seen. A register reading all ones (the device is gone) is no news.
pub(crate) fn poll_change<F: PciFunction>(shared: &Shared<F>, lsc: bool) -> Option<LinkStatus> {
    if lsc {
        let causes = shared.read(regs::EICS);
        if causes == u32::MAX || causes & regs::EICR_LSC == 0 {
            return None;
        }
        shared.write(regs::EICR, regs::EICR_LSC);
    }
    let links = shared.read(regs::LINKS);
    if links == u32::MAX {
        return None;
    }
    let status = LinkStatus::from_links(links);
    let before = LinkStatus::from_links(shared.link_seen.swap(links, Ordering::Relaxed));
    if !lsc && before == status {
        return None;
    }
    shared.link_changes.fetch_add(1, Ordering::Relaxed);
    tracing::info!(device = %shared.device, %status, from_interrupt = lsc, "link change");
    Some(status)
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
