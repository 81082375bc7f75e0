//! The packet-rate comparison's userpci parts: the receiving port (IGB_A, driven by userpci
//! in both runs, so what arrives is counted the same way whoever sends) and userpci's sender
//! (the pktgen loop of `examples/common/net/pktgen.rs`: one TX queue, batches of copies of one
//! frame). The kernel's sender is its pktgen module (`kernel.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::VfioFunction;
use userpci_framework::dma::PoolBuffer;
use userpci_framework::runtime::affinity;
use userpci_igb::{IgbDevice, IgbOptions};

use crate::harness::Failure;

pub type Function = Arc<VfioFunction>;

/// Frames per `tx_batch`, as pktgen's default batch.
pub const TX_BATCH: usize = 32;
/// How long the receiver sleeps when its ring is empty: short against the 4096-descriptor
/// ring at TCG's rates, long enough that its vCPU halts instead of taking emulation time from
/// the sender's.
const RX_IDLE_SLEEP: Duration = Duration::from_micros(200);

/// Brings an 82576 up, one queue each way, the link required.
pub fn bring_up(f: &Function, rx_ring: usize) -> Result<IgbDevice<Function>, Failure> {
    IgbDevice::new(
        Arc::clone(f),
        IgbOptions {
            rx_ring_size: rx_ring,
            require_link: true,
            link_timeout: Duration::from_secs(10),
            rss: false,
            ..IgbOptions::default()
        },
    )
    .map_err(Failure::from)
}

/// The UDP frame both senders send, `size` bytes without FCS: pktgen's addresses (10.0.0.1:42
/// to 10.0.0.2:1337), IPv4 checksum set, UDP checksum 0.
pub fn frame(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; size.max(60)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (f.len() - 14) as u16;
    {
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let mut sum = 0u32;
        for pair in ip.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    f[34..36].copy_from_slice(&42u16.to_be_bytes());
    f[36..38].copy_from_slice(&1337u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// The receiving side's counters: [`Receiver::run`] polls the port's queue 0 on a thread of
/// its own (queues are core-local: taken on the thread that uses them) until stopped.
#[derive(Default)]
pub struct Receiver {
    received: AtomicU64,
    stop: AtomicBool,
}

impl Receiver {
    /// Polls queue 0 of `dev` on the calling thread, pinned to `core`, until [`Receiver::stop`].
    pub fn run(&self, dev: &IgbDevice<Function>, core: usize) -> Result<(), Failure> {
        affinity::pin_current_thread(core)?;
        let mut rx = dev.take_rx_queue(0)?;
        let mut bufs: Vec<PoolBuffer> = Vec::with_capacity(256);
        while !self.stop.load(Ordering::Relaxed) {
            let n = rx.rx_batch(&mut bufs, 256);
            bufs.clear();
            if n == 0 {
                std::thread::sleep(RX_IDLE_SLEEP);
            } else {
                self.received.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Frames received so far.
    pub fn count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Ends [`Receiver::run`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// userpci's sender: copies of `frame` in batches of [`TX_BATCH`] on queue 0 of `dev`, pinned
/// to `core`, until `stop` is set. Returns the frames the ring took, the seconds it sent for,
/// and the tail writes it took (`tx_batch` calls that placed frames: one `TDT` write each).
pub fn send_until(
    dev: &IgbDevice<Function>,
    core: usize,
    frame: &[u8],
    stop: &AtomicBool,
) -> Result<(u64, f64, u64), Failure> {
    affinity::pin_current_thread(core)?;
    let mut tx = dev.take_tx_queue(0)?;
    let pool = dev.pool();
    let start = Instant::now();
    let mut batch: Vec<PoolBuffer> = Vec::with_capacity(TX_BATCH);
    let (mut sent, mut tail_writes) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        while batch.len() < TX_BATCH {
            let Some(mut buf) = pool.get() else {
                break;
            };
            buf.set_len(frame.len());
            buf.as_mut_slice().copy_from_slice(frame);
            batch.push(buf);
        }
        let placed = tx.tx_batch(&mut batch) as u64;
        sent += placed;
        tail_writes += u64::from(placed > 0);
    }
    let seconds = start.elapsed().as_secs_f64();
    batch.clear();
    tx.reclaim();
    Ok((sent, seconds, tail_writes))
}

/// The receiving rate over a window of `window` after `warmup`, while something sends.
pub fn rx_rate(receiver: &Receiver, warmup: Duration, window: Duration) -> (u64, f64) {
    std::thread::sleep(warmup);
    let (c0, t0) = (receiver.count(), Instant::now());
    std::thread::sleep(window);
    let (c1, t1) = (receiver.count(), Instant::now());
    let frames = c1 - c0;
    (frames, frames as f64 / (t1 - t0).as_secs_f64())
}
