//! `pktgen`: one TX queue sending `--size`-byte UDP frames as fast as it can, or at `--rate`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::backend::sim::SimClock;
use crate::framework::dma::PoolBuffer;
use crate::framework::net::{NetPort, NetRx, NetTx};
use crate::framework::pci::PciAddress;
use crate::framework::time::Clock;
use crate::ixgbe::model::{self, IxgbeModel};
use crate::ixgbe::IxgbeDevice;

use super::args::{PktgenArgs, CLOCK_EVERY, MAC_A, MAC_B, SIM_A, SIM_B, WIRE_OVERHEAD};
use super::hw::{self, PortJob};
use super::report::{finish, port_report, Drops, NetReport, Progress};
use super::sim::{addr, sim_bus, sim_options};
use crate::tools::error::{Result, ToolError};
use crate::tools::run::stop_requested;

/// A step of the final drain on the simulated wire, in virtual time.
const FINAL_DRAIN_STEP: Duration = Duration::from_micros(10);
/// The final drain gives up after this much virtual time (a wedged model).
const FINAL_DRAIN_LIMIT: Duration = Duration::from_millis(1);

/// The highest frame rate a link of `mbps` carries for `size`-byte frames (without FCS):
/// each frame costs FCS, preamble, start delimiter and inter-frame gap on the wire.
pub fn line_rate_pps(mbps: u32, size: usize) -> f64 {
    f64::from(mbps) * 1e6 / ((size as u64 + WIRE_OVERHEAD) * 8) as f64
}

/// `--rate` (Mpps) against the link: the rate to send at in packets per second, and a
/// warning when the asked-for rate was above line rate and was clamped to it.
pub fn effective_rate_pps(
    rate_mpps: Option<f64>,
    link_mbps: Option<u32>,
    size: usize,
) -> (Option<f64>, Option<String>) {
    let asked = rate_mpps.map(|r| r * 1e6);
    match (asked, link_mbps.filter(|&m| m > 0)) {
        (Some(pps), Some(mbps)) if pps > line_rate_pps(mbps, size) => {
            let max = line_rate_pps(mbps, size);
            let warning = format!(
                "--rate {} Mpps is above the line rate of a {mbps} Mbit/s link for {size}-byte frames ({:.4} Mpps): sending at line rate",
                pps / 1e6,
                max / 1e6
            );
            (Some(max), Some(warning))
        }
        _ => (asked, None),
    }
}

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

/// Fills `batch` up to `want` packets from `port`'s pool, copies of `frame`.
#[inline]
fn refill<P: NetPort>(port: &P, batch: &mut Vec<PoolBuffer>, want: usize, frame: &[u8]) {
    while batch.len() < want {
        let Some(mut buf) = port.pool().get() else {
            break;
        };
        buf.set_len(frame.len());
        buf.as_mut_slice().copy_from_slice(frame);
        batch.push(buf);
    }
}

/// Runs `pktgen`. Per-second lines go to `progress`.
pub fn run_pktgen(args: &PktgenArgs, progress: &mut dyn FnMut(&str)) -> Result<NetReport> {
    args.validate()?;
    match args.device {
        Some(address) => hw::with_ports(&[address], HardwarePktgen { args, progress }),
        None if args.sink => pktgen_sim_sink(args, progress),
        None => pktgen_sim_wire(args, progress),
    }
}

/// `pktgen --device BDF`: queue 0 of a real port; what it received is read from the port's
/// counters.
struct HardwarePktgen<'a> {
    args: &'a PktgenArgs,
    progress: &'a mut dyn FnMut(&str),
}

impl PortJob for HardwarePktgen<'_> {
    type Output = NetReport;

    fn run<P: NetPort>(self, ports: Vec<P>) -> Result<NetReport>
    where
        ToolError: From<P::Error>,
    {
        let args = self.args;
        let dev = &ports[0];
        let address = dev.address();
        let mut tx = dev.take_tx_queue(0)?;
        let start = Instant::now();
        let sent = pktgen_loop(
            args,
            dev,
            &mut tx,
            [("port TX", address), ("port RX", address)],
            start,
            self.progress,
            &mut |_| {},
            &mut || {
                let hw = dev.counters();
                (hw.rx_packets, hw.rx_bytes)
            },
        );
        let elapsed = start.elapsed();
        tx.reclaim();
        let s = tx.counters();
        let hw = dev.counters();
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
            dev.driver_name(),
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
}

/// The transmit loop; `between` runs after every `tx_batch` (the model's receiver),
/// `rx_counters` gives the receiving side's (packets, bytes) for the progress lines.
#[allow(clippy::too_many_arguments)]
fn pktgen_loop<P: NetPort>(
    args: &PktgenArgs,
    dev: &P,
    tx: &mut P::Tx,
    names: [(&str, PciAddress); 2],
    start: Instant,
    progress: &mut dyn FnMut(&str),
    between: &mut dyn FnMut(&mut P::Tx),
    rx_counters: &mut dyn FnMut() -> (u64, u64),
) -> u64 {
    let frame = pktgen_frame(args.size);
    let deadline = Duration::from_secs_f64(args.seconds);

    let mut prog = Progress::new(start, 2);
    let mut batch = Vec::with_capacity(args.batch);
    let (rate_pps, clamped) = effective_rate_pps(args.rate, dev.link_speed_mbps(), args.size);
    if let Some(warning) = clamped {
        // The CLI logs errors only by default: the clamp is said on stderr whatever RUST_LOG.
        crate::errln!("warning: {warning}");
    }
    let mut sent = 0u64;
    let mut round = 0u32;
    loop {
        round = round.wrapping_add(1);
        let now = (rate_pps.is_some() || round.is_multiple_of(CLOCK_EVERY)).then(Instant::now);
        if let Some(now) = now {
            let elapsed = now.duration_since(start);
            if elapsed >= deadline || stop_requested() {
                break;
            }
            let s = tx.counters();
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
    // The model's wire paces frames at line rate in virtual time; the virtual clock follows
    // the wall clock (from v0 at the start), so the figures are the link's, not the loop's.
    let start = Instant::now();
    let v0 = clock.now();
    let drain = |rx: &mut crate::ixgbe::RxQueue<_>,
                 bufs: &mut Vec<PoolBuffer>,
                 clock: &SimClock,
                 to: Duration| {
        clock.advance_to(to);
        while rx.rx_batch(bufs, usize::MAX) > 0 {
            bufs.clear();
        }
    };
    let sent = {
        let rx_cell = std::cell::RefCell::new(&mut rx);
        let mut between = |_: &mut crate::ixgbe::TxQueue<_>| {
            let to = v0 + start.elapsed();
            drain(&mut rx_cell.borrow_mut(), &mut bufs, &clock, to)
        };
        let mut counters = || {
            let s = rx_cell.borrow().counters();
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
    // Let everything in flight arrive, so that the drop count is exact: small virtual steps
    // until neither the TX ring nor the wire holds a frame, at most FINAL_DRAIN_LIMIT.
    let drain_end = clock.now() + FINAL_DRAIN_LIMIT;
    loop {
        tx.reclaim();
        let to = clock.now() + FINAL_DRAIN_STEP;
        drain(&mut rx, &mut bufs, &clock, to);
        let idle = tx.in_flight() == 0 && wire.stats().in_flight[0] == 0;
        if idle || clock.now() >= drain_end {
            break;
        }
    }
    tx.reclaim();
    let t = tx.counters();
    let r = rx.counters();
    let mb = bus
        .with_model(addr(SIM_B), |m: &mut IxgbeModel| m.stats())
        .map_err(ToolError::Framework)?;
    let w = wire.stats();
    let drops = Drops {
        rx_missed: mb.rx_missed + mb.rx_queue_drops,
        rx_queue: r.dropped,
        tx_invalid: t.invalid_length,
        wire: w.dropped[0],
        other: sent.saturating_sub(
            r.packets + mb.rx_missed + mb.rx_queue_drops + r.dropped + w.dropped[0],
        ),
        ..Drops::default()
    };
    let secs = elapsed.as_secs_f64();
    let ports = vec![
        port_report("A", addr(SIM_A), (0, 0), (t.packets, t.bytes), secs),
        port_report("B", addr(SIM_B), (r.packets, r.bytes), (0, 0), secs),
    ];
    Ok(finish(
        "pktgen", "sim", "ixgbe", elapsed, args.batch, args.size, sent, t.bytes, r.packets, drops,
        ports,
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
    let t = tx.counters();
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
        "pktgen", "sim", "ixgbe", elapsed, args.batch, args.size, sent, t.bytes, frames, drops,
        ports,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rate_counts_fcs_preamble_and_gap() {
        // 10 Gbit/s, 60-byte frames: 14.88 Mpps; 1514-byte: 0.8127 Mpps.
        assert!((line_rate_pps(10_000, 60) - 14_880_952.4).abs() < 1.0);
        assert!((line_rate_pps(10_000, 1514) - 812_743.8).abs() < 1.0);
    }

    #[test]
    fn a_rate_above_line_rate_is_clamped_with_a_warning() {
        let (pps, warning) = effective_rate_pps(Some(5.0), Some(10_000), 1514);
        assert_eq!(pps, Some(line_rate_pps(10_000, 1514)));
        assert!(warning.unwrap().contains("above the line rate"));
        let (pps, warning) = effective_rate_pps(Some(0.5), Some(10_000), 1514);
        assert_eq!((pps, warning), (Some(500_000.0), None));
        // Link speed unknown (down, or 0): the rate stands.
        assert_eq!(effective_rate_pps(Some(5.0), None, 1514).0, Some(5e6));
    }
}
