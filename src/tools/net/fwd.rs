//! `fwd`: two ports forwarding to each other, both ways, zero copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::dma::PoolBuffer;
use crate::framework::net::{NetPort, NetRx, NetTx};
use crate::framework::pci::PciAddress;
use crate::framework::time::Clock;
use crate::ixgbe::model::IxgbeModel;

use super::args::{FwdArgs, CLOCK_EVERY, SIM_A, SIM_B, SIM_LINK_MBPS};
use super::hw::{self, PortJob};
use super::pktgen::line_rate_pps;
use super::report::{finish, port_report, Drops, NetReport, Progress};
use super::sim::{addr, fwd_sim};
use crate::tools::error::{Result, ToolError};
use crate::tools::run::stop_requested;

/// Two ports' queues and buffers, forwarding both ways.
pub struct Forwarder<P: NetPort> {
    pub rx: [P::Rx; 2],
    pub tx: [P::Tx; 2],
    bufs: Vec<PoolBuffer>,
    /// Packets received but freed because the other port's TX ring was full.
    pub tx_ring_full: u64,
    /// Packets forwarded.
    pub forwarded: u64,
}

impl<P: NetPort> Forwarder<P> {
    /// Takes queue 0 of both ports.
    pub fn new(a: &P, b: &P, batch: usize) -> Result<Self>
    where
        ToolError: From<P::Error>,
    {
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
            let (r, t) = (self.rx[i].counters(), self.tx[i].counters());
            (r.packets, r.bytes, t.packets, t.bytes)
        })
    }

    fn rx_dropped(&self) -> u64 {
        self.rx[0].counters().dropped + self.rx[1].counters().dropped
    }

    fn tx_invalid(&self) -> u64 {
        self.tx[0].counters().invalid_length + self.tx[1].counters().invalid_length
    }
}

/// Runs `fwd`. Per-second lines go to `progress`.
pub fn run_fwd(args: &FwdArgs, progress: &mut dyn FnMut(&str)) -> Result<NetReport> {
    args.validate()?;
    if !args.devices.is_empty() {
        return hw::with_ports(&args.devices, HardwareFwd { args, progress });
    }
    let (bus, a, b) = fwd_sim(args.size)?;
    let mut fwd = Forwarder::new(&a, &b, args.batch)?;
    let clock = Arc::clone(bus.clock());
    let step = Duration::from_nanos(args.batch as u64);
    // The virtual clock follows the wall clock (from v0 at the start): the generators send
    // at line rate in virtual time, so the offered load is the link's. A round moves it by
    // at most `batch` frame times: a loop slower than line rate would otherwise have the
    // model generate (and drop) ever more frames per round, each round slower than the last.
    let frame_time = Duration::from_secs_f64(1.0 / line_rate_pps(SIM_LINK_MBPS, args.size));
    let max_advance = frame_time * args.batch as u32;
    let start = Instant::now();
    let v0 = clock.now();
    let addresses = [addr(SIM_A), addr(SIM_B)];
    fwd_loop(args, &mut fwd, addresses, start, progress, &mut || {
        let now = clock.now();
        clock.advance_to((v0 + start.elapsed()).min(now + max_advance))
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
        rx_queue: fwd.rx_dropped(),
        tx_invalid: fwd.tx_invalid(),
        ..Drops::default()
    };
    for address in addresses {
        let (g, s) = bus.with_model(address, |m: &mut IxgbeModel| {
            (m.generator().sent, m.stats())
        })?;
        generated += g;
        drops.rx_missed += s.rx_missed + s.rx_queue_drops;
    }
    let accounted = fwd.forwarded + drops.total();
    drops.other = generated.saturating_sub(accounted);
    Ok(fwd_report(
        "sim", "ixgbe", args, counters, addresses, elapsed, generated, drops,
    ))
}

/// `fwd --devices A B`: queue 0 of two real ports of one driver.
struct HardwareFwd<'a> {
    args: &'a FwdArgs,
    progress: &'a mut dyn FnMut(&str),
}

impl PortJob for HardwareFwd<'_> {
    type Output = NetReport;

    fn run<P: NetPort>(self, ports: Vec<P>) -> Result<NetReport>
    where
        ToolError: From<P::Error>,
    {
        let (a, b) = (&ports[0], &ports[1]);
        let addresses = [a.address(), b.address()];
        let mut fwd = Forwarder::new(a, b, self.args.batch)?;
        let start = Instant::now();
        fwd_loop(
            self.args,
            &mut fwd,
            addresses,
            start,
            self.progress,
            &mut || {},
        );
        let elapsed = start.elapsed();
        let (ha, hb) = (a.counters(), b.counters());
        let received = fwd.rx[0].counters().packets + fwd.rx[1].counters().packets;
        let drops = Drops {
            rx_missed: ha.rx_missed + hb.rx_missed,
            rx_queue: fwd.rx_dropped(),
            tx_ring_full: fwd.tx_ring_full,
            tx_invalid: fwd.tx_invalid(),
            ..Drops::default()
        };
        let counters = fwd.counters();
        Ok(fwd_report(
            "vfio",
            a.driver_name(),
            self.args,
            counters,
            addresses,
            elapsed,
            received,
            drops,
        ))
    }
}

fn fwd_loop<P: NetPort>(
    args: &FwdArgs,
    fwd: &mut Forwarder<P>,
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
            if now.duration_since(start) >= deadline || stop_requested() {
                break;
            }
            prog.tick(now, &names, &fwd.counters(), progress);
        }
        model();
        fwd.round(args.batch);
    }
}

/// `c`: the ports' counters when the clock stopped (the final drain is not timed).
#[allow(clippy::too_many_arguments)]
fn fwd_report(
    backend: &'static str,
    driver: &'static str,
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
        "fwd", backend, driver, elapsed, args.batch, args.size, packets, bytes, offered, drops,
        ports,
    )
}
