//! What `pktgen` and `fwd` share, kept out of their `main`s so that `tests/ixgbe_examples.rs`
//! and `benches/ixgbe.rs` run the same code (they include this file by `#[path]`).
//!
//! # Where the ports come from
//! By default a simulated PCI bus with 82599 model ports (`userpci_ixgbe::model`):
//!
//! - `pktgen`: port A (`01:00.0`) transmits; its frames cross a model wire to port B
//!   (`01:00.1`), whose RX queue counts and frees them (`--sink`: port A alone, its frames
//!   counted by the model's transmit sink);
//! - `fwd`: ports A and B, each fed by the model's traffic generator; what arrives on A goes
//!   out of B and the other way round, zero copy; what the ports transmit ends in their sinks.
//!
//! The model runs on virtual time, advanced by the loop itself (`pktgen`: one wire poll per
//! round; `fwd`: `batch` frames per port per round, the generators sending one frame per
//! virtual nanosecond), so every figure is wall time of the whole loop, **the model's work
//! included** (`benches/ixgbe.rs` measures the model's share apart). With `--device BDF`
//! (`--devices BDF BDF`) real 82599 ports bound to vfio-pci are opened through
//! [`VfioContext`].
//!
//! # Cycles
//! `cycles_per_packet` is `ns_per_packet` × the "cpu MHz" of `/proc/cpuinfo` (an estimate:
//! reading the TSC needs `unsafe` in Rust 1.95, and the TSC rate is not the core clock
//! anyway); `null` where `/proc/cpuinfo` has no such line.

#![allow(dead_code)]

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use userpci::framework::backend::sim::topology::TopologyBuilder;
use userpci::framework::backend::sim::{ModelRegistry, SimBus, SimClock};
use userpci::framework::backend::vfio::{VfioContext, VfioFunction, VfioOptions};
use userpci::framework::device::PciFunction;
use userpci::framework::dma::PoolBuffer;
use userpci::framework::pci::PciAddress;
use userpci::ixgbe::model::{self, GeneratorConfig, GeneratorDst, IxgbeModel};
use userpci::ixgbe::{IxgbeDevice, IxgbeOptions, RxQueue, TxQueue};

/// The simulated ports.
pub const SIM_A: &str = "01:00.0";
pub const SIM_B: &str = "01:00.1";
/// Their MACs.
pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
/// Preamble, start delimiter, inter-frame gap and FCS: what a frame costs on the wire
/// beyond the bytes the driver sees.
pub const WIRE_OVERHEAD: u64 = 8 + 12 + 4;
/// Frame sizes without FCS, as ixy-pktgen takes them.
pub const SIZES: std::ops::RangeInclusive<usize> = 60..=1514;
/// Batch sizes.
pub const BATCHES: std::ops::RangeInclusive<usize> = 1..=512;
/// Longest run.
pub const MAX_SECONDS: f64 = 86_400.0;
/// Rounds between two looks at the wall clock (when no rate is set).
const CLOCK_EVERY: u32 = 64;

/// What the examples fail with: every message names the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The command line did not parse (clap's message, or help / version output).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// A value that parsed but is out of range.
    #[error("invalid argument {name} = {value}: expected {expected}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// Opening the device, DMA memory.
    #[error(transparent)]
    Framework(#[from] userpci::framework::Error),
    /// Bring-up or queue errors.
    #[error(transparent)]
    Ixgbe(#[from] userpci::ixgbe::Error),
    /// The simulated topology was refused.
    #[error("simulated ports: {0}")]
    Model(String),
}

/// Shorthand for the examples' results.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

fn invalid(name: &'static str, value: impl fmt::Display, expected: &str) -> NetError {
    NetError::InvalidArgument {
        name,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Parses a PCI address for clap, naming the text on failure.
pub fn parse_bdf(text: &str) -> std::result::Result<PciAddress, String> {
    text.parse::<PciAddress>()
        .map_err(|err| format!("{err} (expected DDDD:BB:DD.F or BB:DD.F, e.g. 0000:01:00.0)"))
}

fn check_common(size: usize, batch: usize, seconds: f64) -> Result<()> {
    if !SIZES.contains(&size) {
        return Err(invalid("--size", size, "60..=1514 (bytes without FCS)"));
    }
    if !BATCHES.contains(&batch) {
        return Err(invalid("--batch", batch, "1..=512"));
    }
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(invalid("--seconds", seconds, "a number in (0, 86400]"));
    }
    Ok(())
}

/// `pktgen`'s command line.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "pktgen",
    about = "ixy-pktgen for userpci: transmit at full speed or a rate"
)]
pub struct PktgenArgs {
    /// Transmit rate in million packets per second [default: as fast as possible].
    #[arg(long, value_name = "MPPS")]
    pub rate: Option<f64>,
    /// Frame size without FCS, 60..=1514.
    #[arg(long, default_value_t = 60)]
    pub size: usize,
    /// How long to run, in seconds of wall time (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Packets per `tx_batch`, 1..=512.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Model: one port whose frames end in the model's transmit sink, instead of two ports
    /// linked by a wire.
    #[arg(long, conflicts_with = "device")]
    pub sink: bool,
    /// A real 82599 port bound to vfio-pci. Default: the simulated ports.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
    pub device: Option<PciAddress>,
}

impl PktgenArgs {
    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_common(self.size, self.batch, self.seconds)?;
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) {
                return Err(invalid("--rate", rate, "Mpps in (0, 1000]"));
            }
        }
        Ok(())
    }
}

/// `fwd`'s command line.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "fwd",
    about = "ixy-fwd for userpci: forward between two ports, both ways"
)]
pub struct FwdArgs {
    /// How long to run, in seconds of wall time (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Packets per `rx_batch` / `tx_batch`, 1..=512.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Model: frame size the generators send, without FCS, 60..=1514.
    #[arg(long, default_value_t = 60, conflicts_with = "devices")]
    pub size: usize,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Two real 82599 ports bound to vfio-pci. Default: two simulated ports.
    #[arg(long, value_name = "BDF", num_args = 2, value_parser = parse_bdf)]
    pub devices: Vec<PciAddress>,
}

impl FwdArgs {
    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_common(self.size, self.batch, self.seconds)?;
        if !self.devices.is_empty() {
            if self.devices.len() != 2 {
                return Err(invalid(
                    "--devices",
                    format!("{:?}", self.devices),
                    "two addresses",
                ));
            }
            if self.devices[0] == self.devices[1] {
                return Err(invalid(
                    "--devices",
                    format!("{} {}", self.devices[0], self.devices[1]),
                    "two different ports",
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// One port's totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PortReport {
    pub name: String,
    pub address: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_mpps: f64,
    pub tx_mpps: f64,
    pub rx_gbps: f64,
    pub tx_gbps: f64,
}

/// What a run did. `packets` are the packets transmitted (`pktgen`) or forwarded (`fwd`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetReport {
    pub tool: &'static str,
    pub backend: &'static str,
    pub seconds: f64,
    pub batch: usize,
    pub size: usize,
    pub packets: u64,
    pub bytes: u64,
    /// Packets that did not make it, accounted in `drops`.
    pub dropped: u64,
    pub mpps: f64,
    /// Wire rate: (frame + FCS + preamble + IFG) × 8.
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
    fn total(&self) -> u64 {
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
            "{} ({}): {} packets in {:.3} s, {:.3} Mpps, {:.3} Gbit/s, {:.1} ns/packet, ~{} cycles/packet ({}), batch {}, {} bytes\n",
            self.tool, self.backend, self.packets, self.seconds, self.mpps, self.gbps,
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

fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs / 1e6
    } else {
        0.0
    }
}

fn gbps(packets: u64, bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (bytes + packets * WIRE_OVERHEAD) as f64 * 8.0 / secs / 1e9
    } else {
        0.0
    }
}

fn port_report(
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
fn finish(
    tool: &'static str,
    backend: &'static str,
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
        tool,
        backend,
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
struct Progress {
    start: Instant,
    last: Instant,
    next: Duration,
    prev: Vec<(u64, u64, u64, u64)>,
}

impl Progress {
    fn new(start: Instant, ports: usize) -> Self {
        Progress {
            start,
            last: start,
            next: Duration::from_secs(1),
            prev: vec![(0, 0, 0, 0); ports],
        }
    }

    /// Prints a line per port once a second has passed; `now` is a fresh clock reading.
    fn tick(
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

// ---------------------------------------------------------------------------------------------
// Simulated ports
// ---------------------------------------------------------------------------------------------

fn mac_text(mac: [u8; 6]) -> String {
    model::config::format_mac(mac)
}

/// A simulated bus with the given ports (address, MAC), each with `extra` model parameters
/// (TOML key = value lines).
pub fn sim_bus(ports: &[(&str, [u8; 6])], extra: &str) -> Result<Arc<SimBus>> {
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    let mut builder = TopologyBuilder::new().root_port("00:02.0", 1);
    for (address, mac) in ports {
        let params: toml::Table = format!("mac = \"{}\"\n{extra}", mac_text(*mac))
            .parse()
            .map_err(|err| NetError::Model(format!("model parameters: {err}")))?;
        builder = builder.function(address, model::MODEL_NAME).params(params);
    }
    let topology = builder
        .build()
        .map_err(|e| NetError::Model(e.to_string()))?;
    SimBus::new(topology, &registry).map_err(|e| NetError::Model(e.to_string()))
}

/// Driver options on the model: the link must come up (it does, in virtual time).
pub fn sim_options() -> IxgbeOptions {
    IxgbeOptions {
        require_link: true,
        link_timeout: Duration::from_secs(1),
        ..IxgbeOptions::default()
    }
}

pub fn addr(text: &str) -> PciAddress {
    text.parse().expect("a valid address")
}

fn open_vfio(address: PciAddress) -> Result<VfioFunction> {
    let context = VfioContext::new(VfioOptions::new())?;
    Ok(context.open(address)?)
}

// ---------------------------------------------------------------------------------------------
// pktgen
// ---------------------------------------------------------------------------------------------

/// The frame `pktgen` sends: IPv4/UDP from A's MAC to B's, `size` bytes without FCS.
pub fn pktgen_frame(size: usize) -> Vec<u8> {
    let flow = model::frame::UdpFlow {
        dst_mac: MAC_B,
        src_mac: MAC_A,
        src_ip: [10, 0, 0, 1],
        dst_ip: [10, 0, 0, 2],
        src_port: 42,
        dst_port: 1337,
    };
    let mut out = Vec::with_capacity(size);
    model::frame::write_udp_frame(&mut out, size, &flow, 0);
    out
}

/// Fills `batch` up to `want` packets from `dev`'s pool, copies of `frame`.
#[inline]
fn refill<F: PciFunction>(
    dev: &IxgbeDevice<F>,
    batch: &mut Vec<PoolBuffer>,
    want: usize,
    frame: &[u8],
) {
    while batch.len() < want {
        let Some(mut buf) = dev.pool().get() else {
            break;
        };
        buf.set_len(frame.len());
        buf.as_mut_slice().copy_from_slice(frame);
        batch.push(buf);
    }
}

/// The whole `main` of the `pktgen` and `fwd` examples: logging to stderr, the run with its
/// per-second lines (suppressed with `--json`), then the report, or the error prefixed with
/// the example's `name`.
pub fn example_main(
    name: &str,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&str)) -> Result<NetReport>,
) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&mut |line| {
        if !json {
            println!("{line}");
        }
    }) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{name}: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `pktgen`. Per-second lines go to `progress`.
pub fn run_pktgen(args: &PktgenArgs, progress: &mut dyn FnMut(&str)) -> Result<NetReport> {
    args.validate()?;
    match args.device {
        Some(address) => {
            let dev = IxgbeDevice::new(open_vfio(address)?, IxgbeOptions::default())?;
            let mut tx = dev.take_tx_queue(0)?;
            let start = Instant::now();
            let sent = pktgen_loop(
                args,
                &dev,
                &mut tx,
                [("port TX", address), ("port RX", address)],
                start,
                progress,
                &mut |_| {},
                &mut || {
                    let hw = dev.stats();
                    (hw.rx_packets, hw.rx_bytes)
                },
            );
            let elapsed = start.elapsed();
            tx.reclaim();
            let s = tx.stats();
            let hw = dev.stats();
            let drops = Drops {
                tx_invalid: s.invalid_length,
                other: s.packets.saturating_sub(hw.tx_packets),
                ..Drops::default()
            };
            let ports = vec![port_report(
                "tx",
                address,
                (hw.rx_packets, hw.rx_bytes),
                (s.packets, s.bytes),
                elapsed.as_secs_f64(),
            )];
            Ok(finish(
                "pktgen",
                "vfio",
                elapsed,
                args.batch,
                args.size,
                sent,
                s.bytes,
                hw.tx_packets,
                drops,
                ports,
            ))
        }
        None if args.sink => pktgen_sim_sink(args, progress),
        None => pktgen_sim_wire(args, progress),
    }
}

/// The transmit loop; `between` runs after every `tx_batch` (the model's receiver),
/// `rx_counters` gives the receiving side's (packets, bytes) for the progress lines.
#[allow(clippy::too_many_arguments)]
fn pktgen_loop<F: PciFunction>(
    args: &PktgenArgs,
    dev: &IxgbeDevice<F>,
    tx: &mut TxQueue<F>,
    names: [(&str, PciAddress); 2],
    start: Instant,
    progress: &mut dyn FnMut(&str),
    between: &mut dyn FnMut(&mut TxQueue<F>),
    rx_counters: &mut dyn FnMut() -> (u64, u64),
) -> u64 {
    let frame = pktgen_frame(args.size);
    let deadline = Duration::from_secs_f64(args.seconds);

    let mut prog = Progress::new(start, 2);
    let mut batch = Vec::with_capacity(args.batch);
    let rate_pps = args.rate.map(|r| r * 1e6);
    let mut sent = 0u64;
    let mut round = 0u32;
    loop {
        round = round.wrapping_add(1);
        let now = (rate_pps.is_some() || round.is_multiple_of(CLOCK_EVERY)).then(Instant::now);
        if let Some(now) = now {
            let elapsed = now.duration_since(start);
            if elapsed >= deadline {
                break;
            }
            let s = tx.stats();
            let (rxp, rxb) = rx_counters();
            prog.tick(
                now,
                &names,
                &[(0, 0, s.packets, s.bytes), (rxp, rxb, 0, 0)],
                progress,
            );
        }
        let allowed = match (rate_pps, now) {
            (Some(pps), Some(now)) => {
                let due = (now.duration_since(start).as_secs_f64() * pps) as u64;
                due.saturating_sub(sent).min(args.batch as u64) as usize
            }
            _ => args.batch,
        };
        if allowed > 0 {
            refill(dev, &mut batch, allowed, &frame);
            sent += tx.tx_batch(&mut batch) as u64;
        }
        between(tx);
    }
    // Whatever did not fit goes back to the pool, never counted as sent.
    batch.clear();
    sent
}

fn pktgen_sim_wire(args: &PktgenArgs, progress: &mut dyn FnMut(&str)) -> Result<NetReport> {
    let bus = sim_bus(
        &[(SIM_A, MAC_A), (SIM_B, MAC_B)],
        "sink_keep = 0\nwire_poll_ns = 1\n",
    )?;
    let wire = model::connect(&bus, addr(SIM_A), addr(SIM_B))?;
    let a = IxgbeDevice::new(bus.open(addr(SIM_A))?, sim_options())?;
    let b = IxgbeDevice::new(bus.open(addr(SIM_B))?, sim_options())?;
    let mut tx = a.take_tx_queue(0)?;
    let mut rx = b.take_rx_queue(0)?;
    let clock = Arc::clone(bus.clock());
    let mut bufs = Vec::with_capacity(args.batch.max(64));
    let step = Duration::from_nanos(1);
    let drain = |rx: &mut RxQueue<_>, bufs: &mut Vec<PoolBuffer>, clock: &SimClock| {
        clock.advance(step);
        while rx.rx_batch(bufs, usize::MAX) > 0 {
            bufs.clear();
        }
    };
    let start = Instant::now();
    let sent = {
        let rx_cell = std::cell::RefCell::new(&mut rx);
        let mut between = |_: &mut TxQueue<_>| drain(&mut rx_cell.borrow_mut(), &mut bufs, &clock);
        let mut counters = || {
            let s = rx_cell.borrow().stats();
            (s.packets, s.bytes)
        };
        pktgen_loop(
            args,
            &a,
            &mut tx,
            [("A", addr(SIM_A)), ("B", addr(SIM_B))],
            start,
            progress,
            &mut between,
            &mut counters,
        )
    };
    let elapsed = start.elapsed();
    // Let everything in flight arrive, so that the drop count is exact.
    for _ in 0..64 {
        tx.reclaim();
        drain(&mut rx, &mut bufs, &clock);
    }
    let t = tx.stats();
    let r = rx.stats();
    let mb = bus
        .with_model(addr(SIM_B), |m: &mut IxgbeModel| m.stats())
        .map_err(NetError::Framework)?;
    let w = wire.stats();
    let drops = Drops {
        rx_missed: mb.rx_missed + mb.rx_queue_drops,
        rx_queue: r.dropped(),
        tx_invalid: t.invalid_length,
        wire: w.dropped[0],
        other: sent.saturating_sub(
            r.packets + mb.rx_missed + mb.rx_queue_drops + r.dropped() + w.dropped[0],
        ),
        ..Drops::default()
    };
    let secs = elapsed.as_secs_f64();
    let ports = vec![
        port_report("A", addr(SIM_A), (0, 0), (t.packets, t.bytes), secs),
        port_report("B", addr(SIM_B), (r.packets, r.bytes), (0, 0), secs),
    ];
    Ok(finish(
        "pktgen", "sim", elapsed, args.batch, args.size, sent, t.bytes, r.packets, drops, ports,
    ))
}

fn pktgen_sim_sink(args: &PktgenArgs, progress: &mut dyn FnMut(&str)) -> Result<NetReport> {
    let bus = sim_bus(&[(SIM_A, MAC_A)], "sink_keep = 0\n")?;
    let a = IxgbeDevice::new(bus.open(addr(SIM_A))?, sim_options())?;
    let mut tx = a.take_tx_queue(0)?;
    let sink = || {
        bus.with_model(addr(SIM_A), |m: &mut IxgbeModel| {
            (m.sink().frames_sent(), m.sink().bytes_sent())
        })
        .unwrap_or((0, 0))
    };
    let start = Instant::now();
    let sent = pktgen_loop(
        args,
        &a,
        &mut tx,
        [("A", addr(SIM_A)), ("sink", addr(SIM_A))],
        start,
        progress,
        &mut |_| {},
        &mut { sink },
    );
    let elapsed = start.elapsed();
    tx.reclaim();
    let t = tx.stats();
    let (frames, bytes) = sink();
    let drops = Drops {
        tx_invalid: t.invalid_length,
        other: sent.saturating_sub(frames),
        ..Drops::default()
    };
    let secs = elapsed.as_secs_f64();
    let ports = vec![
        port_report("A", addr(SIM_A), (0, 0), (t.packets, t.bytes), secs),
        port_report("sink", addr(SIM_A), (frames, bytes), (0, 0), secs),
    ];
    Ok(finish(
        "pktgen", "sim", elapsed, args.batch, args.size, sent, t.bytes, frames, drops, ports,
    ))
}

// ---------------------------------------------------------------------------------------------
// fwd
// ---------------------------------------------------------------------------------------------

/// Two ports' queues and buffers, forwarding both ways.
pub struct Forwarder<F: PciFunction> {
    pub rx: [RxQueue<F>; 2],
    pub tx: [TxQueue<F>; 2],
    bufs: Vec<PoolBuffer>,
    /// Packets received but freed because the other port's TX ring was full.
    pub tx_ring_full: u64,
    /// Packets forwarded.
    pub forwarded: u64,
}

impl<F: PciFunction> Forwarder<F> {
    /// Takes queue 0 of both ports.
    pub fn new(a: &IxgbeDevice<F>, b: &IxgbeDevice<F>, batch: usize) -> Result<Self> {
        Ok(Forwarder {
            rx: [a.take_rx_queue(0)?, b.take_rx_queue(0)?],
            tx: [a.take_tx_queue(0)?, b.take_tx_queue(0)?],
            bufs: Vec::with_capacity(batch),
            tx_ring_full: 0,
            forwarded: 0,
        })
    }

    /// One round: port 0 → port 1, then port 1 → port 0, up to `batch` packets each way.
    /// Returns the packets forwarded.
    #[inline]
    pub fn round(&mut self, batch: usize) -> usize {
        let mut done = 0;
        for from in 0..2 {
            if self.rx[from].rx_batch(&mut self.bufs, batch) > 0 {
                let sent = self.tx[1 - from].tx_batch(&mut self.bufs);
                done += sent;
                // As ixy-fwd: what the TX ring had no room for is freed.
                self.tx_ring_full += self.bufs.len() as u64;
                self.bufs.clear();
            }
        }
        self.forwarded += done as u64;
        done
    }

    /// (RX packets, RX bytes, TX packets, TX bytes) of each port.
    pub fn counters(&self) -> [(u64, u64, u64, u64); 2] {
        [0, 1].map(|i| {
            let (r, t) = (self.rx[i].stats(), self.tx[i].stats());
            (r.packets, r.bytes, t.packets, t.bytes)
        })
    }
}

/// A simulated pair for `fwd`: ports A and B, no wire, each with a generator sending
/// `size`-byte frames to it, one per virtual nanosecond (start it with [`start_generators`]).
pub fn fwd_sim(
    size: usize,
) -> Result<(
    Arc<SimBus>,
    IxgbeDevice<userpci::framework::backend::sim::SimFunction>,
    IxgbeDevice<userpci::framework::backend::sim::SimFunction>,
)> {
    let bus = sim_bus(&[(SIM_A, MAC_A), (SIM_B, MAC_B)], "sink_keep = 0\n")?;
    let a = IxgbeDevice::new(bus.open(addr(SIM_A))?, sim_options())?;
    let b = IxgbeDevice::new(bus.open(addr(SIM_B))?, sim_options())?;
    start_generators(&bus, size)?;
    Ok((bus, a, b))
}

/// Starts both ports' generators: `size`-byte frames, one per virtual nanosecond, for ever.
pub fn start_generators(bus: &SimBus, size: usize) -> Result<()> {
    for (address, src) in [(SIM_A, MAC_B), (SIM_B, MAC_A)] {
        let config = GeneratorConfig {
            frame_len: size,
            count: 0,
            rate_pps: 1_000_000_000,
            flows: 1,
            dst: GeneratorDst::Port,
            src_mac: src,
        };
        bus.with_model_ctx(addr(address), |m: &mut IxgbeModel, ctx| {
            m.start_generator(ctx, config)
        })??;
    }
    Ok(())
}

/// Runs `fwd`. Per-second lines go to `progress`.
pub fn run_fwd(args: &FwdArgs, progress: &mut dyn FnMut(&str)) -> Result<NetReport> {
    args.validate()?;
    if let [da, db] = args.devices[..] {
        let a = IxgbeDevice::new(open_vfio(da)?, IxgbeOptions::default())?;
        let b = IxgbeDevice::new(open_vfio(db)?, IxgbeOptions::default())?;
        let mut fwd = Forwarder::new(&a, &b, args.batch)?;
        let start = Instant::now();
        fwd_loop(args, &mut fwd, [da, db], start, progress, &mut || {});
        let elapsed = start.elapsed();
        let (ha, hb) = (a.stats(), b.stats());
        let received = fwd.rx[0].stats().packets + fwd.rx[1].stats().packets;
        let drops = Drops {
            rx_missed: ha.rx_missed + hb.rx_missed,
            rx_queue: fwd.rx[0].stats().dropped() + fwd.rx[1].stats().dropped(),
            tx_ring_full: fwd.tx_ring_full,
            tx_invalid: fwd.tx[0].stats().invalid_length + fwd.tx[1].stats().invalid_length,
            ..Drops::default()
        };
        let counters = fwd.counters();
        return Ok(fwd_report(
            "vfio",
            args,
            counters,
            [da, db],
            elapsed,
            received,
            drops,
        ));
    }
    let (bus, a, b) = fwd_sim(args.size)?;
    let mut fwd = Forwarder::new(&a, &b, args.batch)?;
    let clock = Arc::clone(bus.clock());
    let step = Duration::from_nanos(args.batch as u64);
    let start = Instant::now();
    let addresses = [addr(SIM_A), addr(SIM_B)];
    fwd_loop(args, &mut fwd, addresses, start, progress, &mut || {
        clock.advance(step)
    });
    let elapsed = start.elapsed();
    let counters = fwd.counters();
    // Stop the generators, then forward what is left in the rings and packet buffers.
    for address in addresses {
        bus.with_model(address, |m: &mut IxgbeModel| m.stop_generator())?;
    }
    for _ in 0..64 {
        clock.advance(step);
        fwd.round(args.batch);
    }
    let mut generated = 0;
    let mut drops = Drops {
        tx_ring_full: fwd.tx_ring_full,
        ..Drops::default()
    };
    for (i, address) in addresses.into_iter().enumerate() {
        let (g, s) = bus.with_model(address, |m: &mut IxgbeModel| {
            (m.generator().sent, m.stats())
        })?;
        generated += g;
        drops.rx_missed += s.rx_missed + s.rx_queue_drops;
        drops.rx_queue += fwd.rx[i].stats().dropped();
        drops.tx_invalid += fwd.tx[i].stats().invalid_length;
    }
    let accounted = fwd.forwarded + drops.total();
    drops.other = generated.saturating_sub(accounted);
    Ok(fwd_report(
        "sim", args, counters, addresses, elapsed, generated, drops,
    ))
}

fn fwd_loop<F: PciFunction>(
    args: &FwdArgs,
    fwd: &mut Forwarder<F>,
    addresses: [PciAddress; 2],
    start: Instant,
    progress: &mut dyn FnMut(&str),
    model: &mut dyn FnMut(),
) {
    let deadline = Duration::from_secs_f64(args.seconds);
    let names = [("A", addresses[0]), ("B", addresses[1])];
    let mut prog = Progress::new(start, 2);
    let mut round = 0u32;
    loop {
        round = round.wrapping_add(1);
        if round.is_multiple_of(CLOCK_EVERY) {
            let now = Instant::now();
            if now.duration_since(start) >= deadline {
                break;
            }
            prog.tick(now, &names, &fwd.counters(), progress);
        }
        model();
        fwd.round(args.batch);
    }
}

/// `c`: the ports' counters when the clock stopped (the final drain is not timed).
fn fwd_report(
    backend: &'static str,
    args: &FwdArgs,
    c: [(u64, u64, u64, u64); 2],
    addresses: [PciAddress; 2],
    elapsed: Duration,
    offered: u64,
    drops: Drops,
) -> NetReport {
    let secs = elapsed.as_secs_f64();
    let ports = vec![
        port_report("A", addresses[0], (c[0].0, c[0].1), (c[0].2, c[0].3), secs),
        port_report("B", addresses[1], (c[1].0, c[1].1), (c[1].2, c[1].3), secs),
    ];
    let bytes = c[0].3 + c[1].3;
    let packets = c[0].2 + c[1].2;
    finish(
        "fwd", backend, elapsed, args.batch, args.size, packets, bytes, offered, drops, ports,
    )
}
