//! The model's parameters: [`IxgbeModelConfig`], [`GeneratorConfig`], their checks, and the
//! topology-file factory.
//!
//! ```toml
//! [[function]]
//! address = "01:00.0"
//! model = "ixgbe"
//! params = { mac = "02:00:00:00:00:01", link_delay_us = 10000, wire = "lan0",
//!            generator = { frame_len = 128, count = 1000, rate_pps = 1000000, flows = 16 } }
//! ```

use std::time::Duration;

use userpci_framework::{Error, Result};

use super::frame::{MAX_FRAME, MIN_UDP_FRAME};
// The factory lives in the module root, above the model it builds; reached here as before.
pub use super::{factory, register};
use crate::spec::ids::device_name;
use crate::spec::queue::MAX_QUEUES;

/// The name the model is registered under in topology files (`model = "ixgbe"`).
pub const MODEL_NAME: &str = "ixgbe";

/// The PCI device ID the model presents unless told otherwise: 82599ES SFP+ (Linux
/// `IXGBE_DEV_ID_82599_SFP`, the X520's).
pub const DEFAULT_DEVICE_ID: u16 = 0x10FB;

/// Frames the transmit sink keeps at most.
pub const MAX_SINK_KEEP: usize = 256;

/// Where generated frames are addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneratorDst {
    /// The port's own MAC address (from the configuration, as `RAL(0)`/`RAH(0)` hold it after
    /// reset).
    Port,
    /// The broadcast address.
    Broadcast,
    /// A given address.
    Mac([u8; 6]),
}

/// A traffic source feeding the port's receive side: IPv4/UDP frames on a fixed schedule
/// of virtual time, cycling through `flows` 5-tuples so that RSS has something to spread.
///
/// Frame `k` (from 0) belongs to flow `f = k % flows`, which has source address
/// `10.0.0.1 + f` (as a 32-bit number), destination `10.255.0.1`, source port
/// `1024 + f % 64512`, destination port 4791. Its payload starts with `k` (see
/// [`super::frame::write_udp_frame`]); [`GeneratorConfig::frame`] builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Frame length without FCS, [`MIN_UDP_FRAME`]..=[`MAX_FRAME`].
    pub frame_len: usize,
    /// Frames to send; 0 for no end.
    pub count: u64,
    /// Frames per second of virtual time, 1..=1e9 (one frame every `1e9 / rate_pps` ns).
    pub rate_pps: u64,
    /// Distinct 5-tuples, 1..=65536.
    pub flows: u32,
    /// Destination MAC.
    pub dst: GeneratorDst,
    /// Source MAC.
    pub src_mac: [u8; 6],
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            frame_len: 64 - 4,
            count: 0,
            rate_pps: 1_000_000,
            flows: 1,
            dst: GeneratorDst::Port,
            src_mac: [0x02, 0x00, 0x00, 0xff, 0xff, 0x01],
        }
    }
}

impl GeneratorConfig {
    /// The interval between frames.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos((1_000_000_000 / self.rate_pps.max(1)).max(1))
    }

    /// The addresses of flow `flow` (`< flows`), for a port whose MAC is `port_mac`.
    pub fn flow(&self, flow: u32, port_mac: [u8; 6]) -> super::frame::UdpFlow {
        let src = 0x0A00_0001u32.wrapping_add(flow);
        super::frame::UdpFlow {
            dst_mac: match self.dst {
                GeneratorDst::Port => port_mac,
                GeneratorDst::Broadcast => [0xFF; 6],
                GeneratorDst::Mac(mac) => mac,
            },
            src_mac: self.src_mac,
            src_ip: src.to_be_bytes(),
            dst_ip: [10, 255, 0, 1],
            src_port: 1024 + (flow % 64512) as u16,
            dst_port: 4791,
        }
    }

    /// Writes frame `k` (without FCS) into `out`, as the generator of a port with MAC
    /// `port_mac` sends it.
    pub fn frame(&self, k: u64, port_mac: [u8; 6], out: &mut Vec<u8>) {
        let flow = (k % u64::from(self.flows.max(1))) as u32;
        super::frame::write_udp_frame(out, self.frame_len, &self.flow(flow, port_mac), k);
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_UDP_FRAME..=MAX_FRAME).contains(&self.frame_len) {
            return Err(invalid(
                "generator.frame_len",
                self.frame_len,
                &format!("{MIN_UDP_FRAME}..={MAX_FRAME} (bytes without FCS)"),
            ));
        }
        if !(1..=1_000_000_000).contains(&self.rate_pps) {
            return Err(invalid(
                "generator.rate_pps",
                self.rate_pps,
                "1..=1000000000",
            ));
        }
        if !(1..=65536).contains(&self.flows) {
            return Err(invalid("generator.flows", self.flows, "1..=65536"));
        }
        Ok(())
    }
}

/// How the model is built. `Default` is what the factory uses for an empty table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IxgbeModelConfig {
    /// The PCI device ID presented: one of [`crate::spec::ids::DEVICE_IDS_82599`] (the model is
    /// the same for all of them; only the ID changes).
    pub device_id: u16,
    /// The MAC address in the (modelled) EEPROM: `RAL(0)`/`RAH(0)` after every reset.
    pub mac: [u8; 6],
    /// From `AUTOC.RESTART_AN` (or `AUTOC.FLU`, or the end of a link reset) to `LINKS.LINK_UP`.
    pub link_delay: Duration,
    /// How long `CTRL.RST` / `CTRL.LRST` stay set before they self-clear.
    pub reset_delay: Duration,
    /// After `CTRL.RST` clears, until `EEC.ARD` (EEPROM auto-read done) and
    /// `RDRXCTL.DMAIDONE` are set.
    pub auto_read_delay: Duration,
    /// RX queues that can be enabled (1..=128); `RXDCTL.ENABLE` of the others never reads 1.
    pub rx_queues: u16,
    /// TX queues that can be enabled (1..=128).
    pub tx_queues: u16,
    /// A traffic generator that starts once the receiver is enabled and the link is up.
    pub generator: Option<GeneratorConfig>,
    /// Name of a wire to join: two ports with the same name are linked (see
    /// [`super::Wire::join`]).
    pub wire: Option<String>,
    /// How soon a port on a wire looks for frames after its last look, while its receiver is
    /// enabled, its link is up, its peer can send and nothing is on the way (then it looks at
    /// the next frame's time); doubled after each look that found nothing, up to
    /// [`super::wire::WIRE_IDLE_POLL`]. So the latency of the first frame after a quiet spell.
    pub wire_poll: Duration,
    /// Transmitted frames the sink keeps for inspection (0..=256).
    pub sink_keep: usize,
}

impl Default for IxgbeModelConfig {
    fn default() -> Self {
        IxgbeModelConfig {
            device_id: DEFAULT_DEVICE_ID,
            mac: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
            link_delay: Duration::from_millis(10),
            reset_delay: Duration::from_micros(10),
            auto_read_delay: Duration::from_millis(1),
            rx_queues: MAX_QUEUES as u16,
            tx_queues: MAX_QUEUES as u16,
            generator: None,
            wire: None,
            wire_poll: Duration::from_micros(10),
            sink_keep: 16,
        }
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Error {
    Error::Topology(format!(
        "{MODEL_NAME}: parameter {key} = {value}: expected {expected}"
    ))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn int(key: &str, value: &toml::Value, min: u64, max: u64) -> Result<u64> {
    match value.as_integer() {
        Some(n) if n >= 0 && (n as u64) >= min && (n as u64) <= max => Ok(n as u64),
        _ => Err(invalid(key, value, &format!("an integer in {min}..={max}"))),
    }
}

fn mac_value(key: &str, value: &toml::Value) -> Result<[u8; 6]> {
    value
        .as_str()
        .and_then(parse_mac)
        .ok_or_else(|| invalid(key, value, "a MAC address \"aa:bb:cc:dd:ee:ff\""))
}

impl GeneratorConfig {
    /// Reads a `generator = { ... }` table over the defaults; every key is checked.
    pub fn from_params(table: &toml::Value) -> Result<Self> {
        let Some(table) = table.as_table() else {
            return Err(invalid(
                "generator",
                table,
                "a table { frame_len, count, rate_pps, flows, dst, src_mac }",
            ));
        };
        let mut config = GeneratorConfig::default();
        for (key, value) in table {
            let name = format!("generator.{key}");
            match key.as_str() {
                "frame_len" => config.frame_len = int(&name, value, 0, MAX_FRAME as u64)? as usize,
                "count" => config.count = int(&name, value, 0, i64::MAX as u64)?,
                "rate_pps" => config.rate_pps = int(&name, value, 1, 1_000_000_000)?,
                "flows" => config.flows = int(&name, value, 1, 65536)? as u32,
                "dst" => {
                    config.dst = match value.as_str() {
                        Some("port") => GeneratorDst::Port,
                        Some("broadcast") => GeneratorDst::Broadcast,
                        Some(text) => GeneratorDst::Mac(parse_mac(text).ok_or_else(|| {
                            invalid(&name, value, "\"port\", \"broadcast\" or a MAC address")
                        })?),
                        None => {
                            return Err(invalid(
                                &name,
                                value,
                                "\"port\", \"broadcast\" or a MAC address",
                            ))
                        }
                    }
                }
                "src_mac" => config.src_mac = mac_value(&name, value)?,
                _ => {
                    return Err(Error::Topology(format!(
                        "{MODEL_NAME}: unknown parameter {name} = {value} (known: frame_len, \
                         count, rate_pps, flows, dst, src_mac)"
                    )))
                }
            }
        }
        config.validate()?;
        Ok(config)
    }
}

impl IxgbeModelConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if device_name(self.device_id).is_none() {
            return Err(invalid(
                "device_id",
                format!("{:#06x}", self.device_id),
                "an 82599 device ID (spec::ids::DEVICE_IDS_82599, e.g. 0x10fb)",
            ));
        }
        if self.mac[0] & 1 != 0 {
            return Err(invalid(
                "mac",
                format_mac(self.mac),
                "a unicast address (bit 0 of the first byte clear)",
            ));
        }
        let queues = 1..=MAX_QUEUES as u16;
        if !queues.contains(&self.rx_queues) {
            return Err(invalid("rx_queues", self.rx_queues, "1..=128"));
        }
        if !queues.contains(&self.tx_queues) {
            return Err(invalid("tx_queues", self.tx_queues, "1..=128"));
        }
        if self.wire_poll.is_zero() {
            return Err(invalid("wire_poll_ns", 0, "at least 1"));
        }
        if self.sink_keep > MAX_SINK_KEEP {
            return Err(invalid("sink_keep", self.sink_keep, "0..=256"));
        }
        if let Some(wire) = &self.wire {
            if wire.is_empty() {
                return Err(invalid("wire", "\"\"", "a non-empty name"));
            }
        }
        if let Some(generator) = &self.generator {
            generator.validate()?;
        }
        Ok(())
    }

    /// Reads the topology-file parameters over the defaults; every key is checked.
    pub fn from_params(params: &toml::Table) -> Result<Self> {
        let mut config = IxgbeModelConfig::default();
        let max = i64::MAX as u64;
        for (key, value) in params {
            match key.as_str() {
                "mac" => config.mac = mac_value(key, value)?,
                "device_id" => config.device_id = int(key, value, 0, 0xFFFF)? as u16,
                "link_delay_us" => {
                    config.link_delay = Duration::from_micros(int(key, value, 0, max)?)
                }
                "reset_delay_us" => {
                    config.reset_delay = Duration::from_micros(int(key, value, 0, max)?)
                }
                "auto_read_delay_us" => {
                    config.auto_read_delay = Duration::from_micros(int(key, value, 0, max)?)
                }
                "rx_queues" => config.rx_queues = int(key, value, 1, MAX_QUEUES as u64)? as u16,
                "tx_queues" => config.tx_queues = int(key, value, 1, MAX_QUEUES as u64)? as u16,
                "generator" => config.generator = Some(GeneratorConfig::from_params(value)?),
                "wire" => {
                    config.wire = Some(
                        value
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .ok_or_else(|| invalid(key, value, "a non-empty string"))?
                            .to_string(),
                    )
                }
                "wire_poll_ns" => config.wire_poll = Duration::from_nanos(int(key, value, 1, max)?),
                "sink_keep" => {
                    config.sink_keep = int(key, value, 0, MAX_SINK_KEEP as u64)? as usize
                }
                _ => {
                    return Err(Error::Topology(format!(
                        "{MODEL_NAME}: unknown parameter {key} = {value} (known: device_id, \
                         mac, link_delay_us, reset_delay_us, auto_read_delay_us, rx_queues, \
                         tx_queues, generator, wire, wire_poll_ns, sink_keep)"
                    )))
                }
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(
            parse_mac("02:1b:21:0a:ff:00"),
            Some([2, 0x1b, 0x21, 0x0a, 0xff, 0])
        );
        assert_eq!(parse_mac("02:1b:21:0a:ff"), None);
        assert_eq!(parse_mac("02:1b:21:0a:ff:00:11"), None);
        assert_eq!(parse_mac("2:1b:21:0a:ff:00"), None);
        assert_eq!(
            format_mac([2, 0x1b, 0x21, 0x0a, 0xff, 0]),
            "02:1b:21:0a:ff:00"
        );
    }

    #[test]
    fn generator_frames_cycle_through_flows() {
        let config = GeneratorConfig {
            flows: 3,
            frame_len: 100,
            ..GeneratorConfig::default()
        };
        let mut out = Vec::new();
        config.frame(4, [2, 0, 0, 0, 0, 9], &mut out);
        assert_eq!(out.len(), 100);
        assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&out[26..30], &[10, 0, 0, 2], "frame 4 is flow 1");
        assert_eq!(config.interval(), Duration::from_micros(1));
    }
}
