//! PCI function addresses (`domain:bus:device.function`): the type and how it prints. Building
//! and parsing one, which can fail with the crate's [`Error`](crate::Error) (which names
//! addresses), is in `parse.rs`, above both.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The address of one PCI function, as sysfs names it (`0000:01:00.0`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    /// True if both addresses are functions of one slot (same domain, bus and device).
    pub fn same_slot(&self, other: &PciAddress) -> bool {
        (self.domain, self.bus, self.device) == (other.domain, other.bus, other.device)
    }
}

impl From<PciAddress> for String {
    fn from(addr: PciAddress) -> String {
        addr.to_string()
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl fmt::Debug for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
