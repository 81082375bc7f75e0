//! Building and parsing [`PciAddress`]es, with the range checks: on top of the address type
//! and the crate's error type.

use std::str::FromStr;

use super::address::PciAddress;
use crate::error::{Error, Result};

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
}

fn parse_hex<T: TryFrom<u32>>(part: &str, max_digits: usize) -> Option<T> {
    if part.is_empty() || part.len() > max_digits || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(part, 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
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
        let domain: u16 =
            parse_hex(domain, 4).ok_or_else(|| bad("domain must be 1 to 4 hex digits"))?;
        let bus: u8 = parse_hex(bus, 2).ok_or_else(|| bad("bus must be 1 or 2 hex digits"))?;
        let device: u8 =
            parse_hex(device, 2).ok_or_else(|| bad("device must be 1 or 2 hex digits"))?;
        let function: u8 =
            parse_hex(function, 1).ok_or_else(|| bad("function must be one digit 0-7"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(domain: u16, bus: u8, device: u8, function: u8) -> PciAddress {
        PciAddress {
            domain,
            bus,
            device,
            function,
        }
    }

    /// The reason and quoted text of a parse failure.
    fn parse_err(text: &str) -> (String, &'static str) {
        match text.parse::<PciAddress>() {
            Err(Error::InvalidPciAddress { text, reason }) => (text, reason),
            other => panic!("{text:?}: expected InvalidPciAddress, got {other:?}"),
        }
    }

    #[test]
    fn parses_full_and_short_forms() {
        assert_eq!(
            "0000:01:00.0".parse::<PciAddress>().unwrap(),
            addr(0, 1, 0, 0)
        );
        assert_eq!("01:00.1".parse::<PciAddress>().unwrap(), addr(0, 1, 0, 1));
        assert_eq!(
            "abcd:ff:1f.7".parse::<PciAddress>().unwrap(),
            addr(0xabcd, 0xff, 0x1f, 7)
        );
        assert_eq!("1:2:3.4".parse::<PciAddress>().unwrap(), addr(1, 2, 3, 4));
    }

    #[test]
    fn parses_upper_case_hex_and_displays_lower_case() {
        let a: PciAddress = "ABCD:0A:1F.7".parse().unwrap();
        assert_eq!(a, addr(0xabcd, 0x0a, 0x1f, 7));
        assert_eq!(a.to_string(), "abcd:0a:1f.7");
        assert_eq!(format!("{a:?}"), "abcd:0a:1f.7");
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "0000:00:00.0",
            "0000:00:1f.3",
            "ffff:ff:1f.7",
            "0001:3a:00.1",
        ] {
            let a: PciAddress = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn device_number_must_be_below_0x20() {
        let (_, reason) = parse_err("0000:00:20.0");
        assert_eq!(reason, "device number must be below 0x20");
        assert!("0000:00:1f.0".parse::<PciAddress>().is_ok());
        assert!(PciAddress::new(0, 0, 0x20, 0).is_err());
    }

    #[test]
    fn function_number_must_be_below_8() {
        for text in ["00:00.8", "00:00.f"] {
            let (_, reason) = parse_err(text);
            assert_eq!(reason, "function number must be below 8", "{text}");
        }
        let (_, reason) = parse_err("00:00.10");
        assert_eq!(reason, "function must be one digit 0-7");
        assert!(PciAddress::new(0, 0, 0, 8).is_err());
        assert!(PciAddress::new(0, 0, 0, 7).is_ok());
    }

    #[test]
    fn empty_parts_are_rejected() {
        for text in [
            "",
            ".",
            "00:00.",
            ":00.0",
            "00:.0",
            "0000::00.0",
            ":01:00.0",
            "0000:01:00",
        ] {
            parse_err(text);
        }
    }

    #[test]
    fn malformed_parts_are_rejected() {
        for text in [
            "00000:01:00.0",
            "0000:001:00.0",
            "0000:01:000.0",
            "0000:01:00.00",
            "0000:0g:00.0",
            "+000:01:00.0",
            "0000:01:00.0.1",
            "0000:01:00:00.0",
            " 0000:01:00.0",
            "0000:01:00.0\n",
        ] {
            parse_err(text);
        }
    }

    #[test]
    fn error_message_quotes_the_bad_text() {
        let err = "0000:zz:00.0".parse::<PciAddress>().unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"0000:zz:00.0\""), "{message}");
        assert!(message.contains("bus"), "{message}");
    }

    #[test]
    fn orders_by_domain_bus_device_function() {
        let mut addrs: Vec<PciAddress> = [
            "0001:00:00.0",
            "0000:01:00.1",
            "0000:00:1f.0",
            "0000:01:00.0",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        addrs.sort();
        let sorted: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            [
                "0000:00:1f.0",
                "0000:01:00.0",
                "0000:01:00.1",
                "0001:00:00.0"
            ]
        );
    }

    #[test]
    fn same_slot_and_with_function() {
        let a = addr(0, 1, 0, 0);
        let b = a.with_function(1).unwrap();
        assert_eq!(b, addr(0, 1, 0, 1));
        assert!(a.same_slot(&b));
        assert!(!a.same_slot(&addr(0, 1, 1, 0)));
        assert!(!a.same_slot(&addr(1, 1, 0, 0)));
        assert!(a.with_function(8).is_err());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let a = addr(0, 1, 0, 1);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"0000:01:00.1\"");
        let back: PciAddress = serde_json::from_str("\"01:00.1\"").unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<PciAddress>("\"01:20.1\"").is_err());
        assert!(serde_json::from_str::<PciAddress>("42").is_err());
    }
}
