//! What a `pktgen` or `fwd` run reports: per-port totals, drops by cause, rates, and the
//! once-a-second progress lines.

use std::time::{Duration, Instant};

use crate::framework::pci::PciAddress;
use serde::Serialize;

use super::args::WIRE_OVERHEAD;

/// One port's totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PortReport {
    pub name: String,
    pub address: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_mpps: f64,
    pub tx_mpps: f64,
    #[serde(rename = "rx_gbits_per_s")]
    pub rx_gbps: f64,
    #[serde(rename = "tx_gbits_per_s")]
    pub tx_gbps: f64,
}

/// What a run did. `packets` are the packets transmitted (`pktgen`) or forwarded (`fwd`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetReport {
    /// [`crate::tools::run::SCHEMA_VERSION`].
    pub schema: u32,
    /// Ctrl-C ended the run early: the figures cover the part that ran.
    pub interrupted: bool,
    pub tool: &'static str,
    /// `sim` (the models) or `vfio` (real functions).
    pub backend: &'static str,
    /// The NIC driver that ran the ports (`ixgbe`, `igb`).
    pub driver: &'static str,
    pub seconds: f64,
    pub batch: usize,
    pub size: usize,
    pub packets: u64,
    pub bytes: u64,
    /// Packets that did not make it, accounted in `drops`.
    pub dropped: u64,
    pub mpps: f64,
    /// Wire rate: (frame + FCS + preamble + IFG) × 8.
    #[serde(rename = "gbits_per_s")]
    pub gbps: f64,
    /// Wall time of the loop per packet (model included in the simulated case).
    pub ns_per_packet: f64,
    /// `ns_per_packet` × `cpu_mhz` / 1000.
    pub cycles_per_packet: Option<f64>,
    pub cpu_mhz: Option<f64>,
    pub cycles_source: &'static str,
    /// `pktgen`: packets the receiver saw (port B, or the sink). `fwd`: frames the model's
    /// generators sent (simulated) or packets received (hardware).
    pub offered: u64,
    pub drops: Drops,
    pub ports: Vec<PortReport>,
}

/// Where dropped packets went.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Drops {
    /// The RX packet buffer was full or had no descriptor (`MPC`, `QPRDC`).
    pub rx_missed: u64,
    /// Dropped by the RX queue (bad length, MAC errors, skipped descriptors).
    pub rx_queue: u64,
    /// `fwd`: received but the TX ring was full, freed (as ixy-fwd does).
    pub tx_ring_full: u64,
    /// Rejected by `tx_batch` (invalid length).
    pub tx_invalid: u64,
    /// Lost on the model wire (its direction full).
    pub wire: u64,
    /// Still inside a device at the end, or not accounted otherwise.
    pub other: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.rx_missed
            + self.rx_queue
            + self.tx_ring_full
            + self.tx_invalid
            + self.wire
            + self.other
    }
}

impl NetReport {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// The closing summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for p in &self.ports {
            out.push_str(&format!(
                "[{}] {}: RX {:.3} Mpps {:.3} Gbit/s ({} packets) | TX {:.3} Mpps {:.3} Gbit/s ({} packets)\n",
                p.name, p.address, p.rx_mpps, p.rx_gbps, p.rx_packets, p.tx_mpps, p.tx_gbps, p.tx_packets
            ));
        }
        let cycles = self
            .cycles_per_packet
            .map_or_else(|| "n/a".to_string(), |c| format!("{c:.1}"));
        out.push_str(&format!(
            "{} ({}, {}): {} packets in {:.3} s, {:.3} Mpps, {:.3} Gbit/s, {:.1} ns/packet, ~{} cycles/packet ({}), batch {}, {} bytes\n",
            self.tool, self.backend, self.driver, self.packets, self.seconds, self.mpps, self.gbps,
            self.ns_per_packet, cycles, self.cycles_source, self.batch, self.size
        ));
        out.push_str(&format!(
            "dropped {} of {} offered: rx_missed {}, rx_queue {}, tx_ring_full {}, tx_invalid {}, wire {}, other {}\n",
            self.dropped, self.offered, self.drops.rx_missed, self.drops.rx_queue,
            self.drops.tx_ring_full, self.drops.tx_invalid, self.drops.wire, self.drops.other
        ));
        out
    }
}

/// The first "cpu MHz" of `/proc/cpuinfo`.
pub fn cpu_mhz() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs / 1e6
    } else {
        0.0
    }
}

pub fn gbps(packets: u64, bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (bytes + packets * WIRE_OVERHEAD) as f64 * 8.0 / secs / 1e9
    } else {
        0.0
    }
}

pub fn port_report(
    name: &str,
    address: PciAddress,
    rx: (u64, u64),
    tx: (u64, u64),
    secs: f64,
) -> PortReport {
    PortReport {
        name: name.to_string(),
        address: address.to_string(),
        rx_packets: rx.0,
        tx_packets: tx.0,
        rx_mpps: rate(rx.0, secs),
        tx_mpps: rate(tx.0, secs),
        rx_gbps: gbps(rx.0, rx.1, secs),
        tx_gbps: gbps(tx.0, tx.1, secs),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn finish(
    tool: &'static str,
    backend: &'static str,
    driver: &'static str,
    elapsed: Duration,
    batch: usize,
    size: usize,
    packets: u64,
    bytes: u64,
    offered: u64,
    drops: Drops,
    ports: Vec<PortReport>,
) -> NetReport {
    let secs = elapsed.as_secs_f64();
    let ns_per_packet = if packets > 0 {
        elapsed.as_nanos() as f64 / packets as f64
    } else {
        0.0
    };
    let mhz = cpu_mhz();
    NetReport {
        schema: crate::tools::run::SCHEMA_VERSION,
        interrupted: crate::tools::run::stop_requested(),
        tool,
        backend,
        driver,
        seconds: secs,
        batch,
        size,
        packets,
        bytes,
        dropped: drops.total(),
        mpps: rate(packets, secs),
        gbps: gbps(packets, bytes, secs),
        ns_per_packet,
        cycles_per_packet: mhz
            .filter(|_| packets > 0)
            .map(|m| ns_per_packet * m / 1000.0),
        cpu_mhz: mhz,
        cycles_source: "estimate: ns_per_packet x cpu MHz of /proc/cpuinfo",
        offered,
        drops,
        ports,
    }
}

/// Per-second progress: counters of each port at the last line.
pub struct Progress {
    start: Instant,
    last: Instant,
    next: Duration,
    prev: Vec<(u64, u64, u64, u64)>,
}

impl Progress {
    pub fn new(start: Instant, ports: usize) -> Self {
        Progress {
            start,
            last: start,
            next: Duration::from_secs(1),
            prev: vec![(0, 0, 0, 0); ports],
        }
    }

    /// Prints a line per port once a second has passed; `now` is a fresh clock reading.
    pub fn tick(
        &mut self,
        now: Instant,
        names: &[(&str, PciAddress)],
        counters: &[(u64, u64, u64, u64)],
        out: &mut dyn FnMut(&str),
    ) {
        if now.duration_since(self.start) < self.next {
            return;
        }
        let secs = now.duration_since(self.last).as_secs_f64();
        for ((i, (name, address)), c) in names.iter().enumerate().zip(counters) {
            let p = self.prev[i];
            let (rxp, rxb, txp, txb) = (c.0 - p.0, c.1 - p.1, c.2 - p.2, c.3 - p.3);
            out(&format!(
                "[{name}] {address}: RX {:.3} Mpps {:.3} Gbit/s | TX {:.3} Mpps {:.3} Gbit/s",
                rate(rxp, secs),
                gbps(rxp, rxb, secs),
                rate(txp, secs),
                gbps(txp, txb, secs)
            ));
            self.prev[i] = *c;
        }
        self.last = now;
        self.next += Duration::from_secs(1);
    }
}

impl crate::tools::run::ToolReport for NetReport {
    fn to_text(&self) -> String {
        NetReport::to_text(self)
    }
    fn to_json(&self) -> String {
        NetReport::to_json(self)
    }
}
