//! PCI function addresses (`domain:bus:device.function`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// Builds an address, checking device (0..32) and function (0..8).
    pub fn new(domain: u16, bus: u8, device: u8, function: u8) -> Result<Self> {
        let addr = PciAddress {
            domain,
            bus,
            device,
            function,
        };
        if device >= 32 {
            return Err(Error::InvalidPciAddress {
                text: format!("{domain:04x}:{bus:02x}:{device:02x}.{function}"),
                reason: "device number must be below 0x20",
            });
        }
        if function >= 8 {
            return Err(Error::InvalidPciAddress {
                text: format!("{domain:04x}:{bus:02x}:{device:02x}.{function}"),
                reason: "function number must be below 8",
            });
        }
        Ok(addr)
    }

    /// The same slot's function `function`.
    pub fn with_function(self, function: u8) -> Result<Self> {
        Self::new(self.domain, self.bus, self.device, function)
    }

    /// True if both addresses are functions of one slot (same domain, bus and device).
    pub fn same_slot(&self, other: &PciAddress) -> bool {
        (self.domain, self.bus, self.device) == (other.domain, other.bus, other.device)
    }
}

fn parse_hex<T: TryFrom<u32>>(text: &str, part: &str, max_digits: usize) -> Option<T> {
    if part.is_empty() || part.len() > max_digits || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
        let _ = text;
        return None;
    }
    u32::from_str_radix(part, 16).ok().and_then(|v| T::try_from(v).ok())
}

impl FromStr for PciAddress {
    type Err = Error;

    /// Parses `DDDD:BB:DD.F` or the short `BB:DD.F` (domain 0), in upper or lower case hex.
    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidPciAddress {
            text: text.to_string(),
            reason,
        };
        let (head, function) = text
            .rsplit_once('.')
            .ok_or_else(|| bad("expected DDDD:BB:DD.F or BB:DD.F (no '.' before the function)"))?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [domain, bus, device] => (*domain, *bus, *device),
            [bus, device] => ("0", *bus, *device),
            _ => return Err(bad("expected DDDD:BB:DD.F or BB:DD.F")),
        };
        let domain: u16 = parse_hex(text, domain, 4).ok_or_else(|| bad("domain must be 1 to 4 hex digits"))?;
        let bus: u8 = parse_hex(text, bus, 2).ok_or_else(|| bad("bus must be 1 or 2 hex digits"))?;
        let device: u8 = parse_hex(text, device, 2).ok_or_else(|| bad("device must be 1 or 2 hex digits"))?;
        let function: u8 = parse_hex(text, function, 1).ok_or_else(|| bad("function must be one digit 0-7"))?;
        if device >= 32 {
            return Err(bad("device number must be below 0x20"));
        }
        if function >= 8 {
            return Err(bad("function number must be below 8"));
        }
        Ok(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl TryFrom<String> for PciAddress {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        text.parse()
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
