//! The userpci igb driver on QEMU's 82576 (`-device igb`) through the real VFIO backend: two
//! functions joined by a QEMU hub, so what one sends the other receives. Bring-up and link,
//! sequence-numbered frames checked byte for byte in both directions, RSS spreading flows over
//! RX queues as the Toeplitz hash predicts, MSI-X waking a sleeping queue, the IOMMU stopping
//! descriptors that point at unmapped memory, and FLR followed by a fresh bring-up.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::{VfioContext, VfioFunction};
use userpci_framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::dma::{BufferPool, DmaDirection, PoolBuffer};
use userpci_igb::spec::{queue as qreg, regs};
use userpci_igb::{IgbDevice, IgbOptions, InterruptOptions, MacDisplay, RxPoll, RxQueue, TxQueue};

use super::support;
use crate::harness::{Ctx, Failure, TestResult, IGB_A, IGB_B};
use crate::{ensure, fail, note};

type Function = Arc<VfioFunction>;
pub(super) type Igb = IgbDevice<Function>;

/// QEMU's `-device igb`.
const QEMU_IGB_DEVICE_ID: u16 = 0x10C9;
/// Marks the test's frames (foreign frames on the hub are counted, not checked).
const MAGIC: [u8; 4] = *b"UPCI";
/// The UDP destination port of every test frame.
const DPORT: u16 = 4791;
/// How long a burst may take to arrive (TCG, the hub, two VT-d translations per frame).
const ARRIVAL_LIMIT: Duration = Duration::from_secs(30);

/// Opens both igb functions in one VFIO context (one IOMMU address space, so a buffer of one
/// port's pool is mapped for the other too).
fn open_pair(ctx: &Ctx) -> Result<(VfioContext, Function, Function), Failure> {
    let vfio = support::context(ctx)?;
    let a = Arc::new(support::open(ctx, &vfio, IGB_A)?);
    let b = Arc::new(support::open(ctx, &vfio, IGB_B)?);
    Ok((vfio, a, b))
}

/// Brings `f` up with `options`, the link required (auto-negotiation takes 0.5 s in QEMU).
pub(super) fn bring_up(f: &Function, options: IgbOptions) -> Result<Igb, Failure> {
    let t0 = Instant::now();
    let dev = IgbDevice::new(
        Arc::clone(f),
        IgbOptions {
            require_link: true,
            link_timeout: Duration::from_secs(10),
            ..options
        },
    )
    .map_err(|e| Failure(format!("{}: bring-up: {e}", f.address())))?;
    support::note_time(
        &format!("{}: bring-up with link", f.address()),
        t0.elapsed(),
    );
    Ok(dev)
}

/// A test frame's flow: IPv4 addresses and UDP source port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Flow {
    pub(super) src_ip: [u8; 4],
    pub(super) dst_ip: [u8; 4],
    pub(super) sport: u16,
}

pub(super) const FLOW_A_TO_B: Flow = Flow {
    src_ip: [10, 0, 0, 1],
    dst_ip: [10, 0, 0, 2],
    sport: 1000,
};

/// The frame length of sequence number `seq`: 60..=1514 bytes, varied.
fn frame_len(seq: u32) -> usize {
    60 + (seq as usize * 97) % 1455
}

/// The payload byte at offset `i` of frame `seq`.
fn pattern(seq: u32, i: usize) -> u8 {
    (seq.wrapping_mul(0x9E37_79B9) >> 24) as u8 ^ (i as u8).wrapping_mul(31) ^ (i >> 8) as u8
}

/// The RFC 791 header checksum of `header`.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Frame `seq` of `flow` from `src` to `dst`: Ethernet, IPv4, UDP, then the magic, the
/// sequence number and the pattern, `frame_len(seq)` bytes in all.
pub(super) fn build_frame(dst: [u8; 6], src: [u8; 6], flow: Flow, seq: u32) -> Vec<u8> {
    let len = frame_len(seq);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&flow.src_ip);
    ip[16..20].copy_from_slice(&flow.dst_ip);
    let sum = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&flow.sport.to_be_bytes());
    udp[2..4].copy_from_slice(&DPORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    // UDP checksum 0: none (IPv4).
    f[42..46].copy_from_slice(&MAGIC);
    f[46..50].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in f.iter_mut().enumerate().skip(50) {
        *b = pattern(seq, i);
    }
    f
}

/// The sequence number of a test frame, `None` for a foreign one.
pub(super) fn frame_seq(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 50 || bytes[42..46] != MAGIC {
        return None;
    }
    Some(u32::from_le_bytes([
        bytes[46], bytes[47], bytes[48], bytes[49],
    ]))
}

/// The UDP source port of a test frame.
fn frame_sport(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[34], bytes[35]])
}

/// Copies `frame` into a buffer of `pool`.
pub(super) fn to_buffer(pool: &Arc<BufferPool>, frame: &[u8]) -> Result<PoolBuffer, Failure> {
    let mut buf = pool
        .get()
        .ok_or_else(|| Failure(format!("pool {} is empty", pool.name())))?;
    buf.set_len(frame.len());
    buf.as_mut_slice().copy_from_slice(frame);
    Ok(buf)
}

/// Frames received, by queue, as copies.
type Received = Vec<(u16, Vec<u8>)>;

/// Sends `frames` through `tx` (in batches of up to 32) while receiving on every queue of
/// `rxs`, until `expect` test frames have arrived or [`ARRIVAL_LIMIT`] passed. Returns the
/// test frames received (queue, bytes) and the count of foreign frames.
fn exchange(
    tx: &mut TxQueue<Function>,
    pool: &Arc<BufferPool>,
    rxs: &mut [RxQueue<Function>],
    frames: &[Vec<u8>],
    expect: usize,
) -> Result<(Received, usize), Failure> {
    let start = Instant::now();
    let mut next = 0;
    let mut batch: Vec<PoolBuffer> = Vec::with_capacity(32);
    let mut got: Received = Vec::new();
    let mut foreign = 0usize;
    let mut rx_batch: Vec<PoolBuffer> = Vec::with_capacity(64);
    while got.len() < expect {
        if start.elapsed() > ARRIVAL_LIMIT {
            fail!(
                "{} of {expect} frames arrived in {ARRIVAL_LIMIT:?} ({next} of {} sent, {} in \
                 the sender's ring)",
                got.len(),
                frames.len(),
                tx.in_flight()
            );
        }
        while batch.len() < 32 && next < frames.len() {
            batch.push(to_buffer(pool, &frames[next])?);
            next += 1;
        }
        if !batch.is_empty() {
            tx.tx_batch(&mut batch);
        } else {
            tx.reclaim();
        }
        for rx in rxs.iter_mut() {
            rx.rx_batch(&mut rx_batch, 64);
            for buf in rx_batch.drain(..) {
                match frame_seq(buf.as_slice()) {
                    Some(_) => got.push((rx.index(), buf.as_slice().to_vec())),
                    None => foreign += 1,
                }
            }
        }
    }
    tx.reclaim();
    Ok((got, foreign))
}

/// Checks that `got` holds exactly frames `0..frames.len()` of `frames`, in order, byte for
/// byte.
fn check_in_order(label: &str, frames: &[Vec<u8>], got: &Received) -> TestResult {
    ensure!(
        got.len() == frames.len(),
        "{label}: {} frames received, {} sent",
        got.len(),
        frames.len()
    );
    for (i, ((_, bytes), want)) in got.iter().zip(frames).enumerate() {
        let seq = frame_seq(bytes).unwrap_or(u32::MAX);
        ensure!(
            seq == i as u32,
            "{label}: frame {i} has sequence number {seq} (lost, duplicated or reordered)"
        );
        if bytes != want {
            let at = bytes
                .iter()
                .zip(want.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(want.len()));
            fail!(
                "{label}: frame {i}: {} bytes received, {} sent, first difference at byte {at}",
                bytes.len(),
                want.len()
            );
        }
    }
    Ok(())
}

/// Bring-up of both functions: QEMU's device ID, a unicast MAC each, link up at 1 Gb/s full
/// duplex through auto-negotiation, and the registers holding what the driver wrote.
pub fn igb_init_link_up(ctx: &Ctx) -> TestResult {
    let (_vfio, a, b) = open_pair(ctx)?;
    let mut macs = Vec::new();
    for f in [&a, &b] {
        let (vendor, device_id) = f.ids()?;
        ensure!(
            (vendor, device_id) == (0x8086, QEMU_IGB_DEVICE_ID),
            "{}: ids {vendor:#06x}:{device_id:#06x}, expected 8086:10c9",
            f.address()
        );
        note!(
            "{}: MSI-X vectors {}, FLR {}",
            f.address(),
            f.msix_vector_count()?,
            f.has_flr()?
        );
        let dev = bring_up(f, IgbOptions::default())?;
        let link = dev.link();
        let mac = dev.mac_address();
        note!(
            "{}: MAC {}, link {link}, STATUS {:#010x}, CTRL {:#010x}, RCTL {:#010x}, TCTL \
             {:#010x}, SRRCTL(0) {:#010x}, RXDCTL(0) {:#010x}, TXDCTL(0) {:#010x}, EECD {:#010x}",
            f.address(),
            MacDisplay(mac),
            dev.read_register(regs::STATUS),
            dev.read_register(regs::CTRL),
            dev.read_register(regs::RCTL),
            dev.read_register(regs::TCTL),
            dev.read_register(qreg::SRRCTL(0)),
            dev.read_register(qreg::RXDCTL(0)),
            dev.read_register(qreg::TXDCTL(0)),
            dev.read_register(regs::EECD),
        );
        ensure!(link.up, "{}: link down", f.address());
        ensure!(
            link.mbps() == 1000 && link.full_duplex,
            "{}: link {link}, expected 1000 Mbit/s full duplex",
            f.address()
        );
        ensure!(
            mac[0] & 1 == 0 && mac != [0; 6],
            "{}: MAC {} is not a unicast address",
            f.address(),
            MacDisplay(mac)
        );
        let rctl = dev.read_register(regs::RCTL);
        let want = regs::RCTL_EN | regs::RCTL_SECRC | regs::RCTL_BAM | regs::RCTL_UPE;
        ensure!(
            rctl & want == want,
            "{}: RCTL {rctl:#010x} lacks {want:#010x}",
            f.address()
        );
        let srrctl = dev.read_register(qreg::SRRCTL(0));
        ensure!(
            srrctl & qreg::SRRCTL_DESCTYPE_MASK == qreg::SRRCTL_DESCTYPE_ADV_ONEBUF
                && srrctl & qreg::SRRCTL_BSIZEPACKET_MASK == 2,
            "{}: SRRCTL(0) {srrctl:#010x}, expected advanced one-buffer 2 KiB",
            f.address()
        );
        let rdt = dev.read_register(qreg::RDT(0));
        ensure!(
            rdt as usize == dev.options().rx_ring_size - 1,
            "{}: RDT(0) {rdt}, expected the filled ring's {}",
            f.address(),
            dev.options().rx_ring_size - 1
        );
        macs.push(mac);
    }
    ensure!(
        macs[0] != macs[1],
        "both functions have MAC {}",
        MacDisplay(macs[0])
    );
    Ok(())
}

/// Frames sent from one igb arrive intact on the other, in both directions: 1000
/// sequence-numbered frames of 60..1514 bytes each way, checked byte for byte, in order; the
/// devices' counters agree.
pub fn igb_frames_both_directions(ctx: &Ctx) -> TestResult {
    const COUNT: u32 = 1000;
    let (_vfio, fa, fb) = open_pair(ctx)?;
    let a = bring_up(&fa, IgbOptions::default())?;
    let b = bring_up(&fb, IgbOptions::default())?;
    for (label, from, to) in [("A -> B", &a, &b), ("B -> A", &b, &a)] {
        let mut tx = from.take_tx_queue(0)?;
        let mut rx = [to.take_rx_queue(0)?];
        let flow = if std::ptr::eq(from, &a) {
            FLOW_A_TO_B
        } else {
            Flow {
                src_ip: FLOW_A_TO_B.dst_ip,
                dst_ip: FLOW_A_TO_B.src_ip,
                sport: 2000,
            }
        };
        let frames: Vec<Vec<u8>> = (0..COUNT)
            .map(|seq| build_frame(to.mac_address(), from.mac_address(), flow, seq))
            .collect();
        let bytes: usize = frames.iter().map(Vec::len).sum();
        let t = Instant::now();
        let (got, foreign) = exchange(&mut tx, from.pool(), &mut rx, &frames, frames.len())?;
        let took = t.elapsed();
        check_in_order(label, &frames, &got)?;
        let (txs, rxs) = (tx.stats(), rx[0].stats());
        note!(
            "{label}: {COUNT} frames, {bytes} bytes in {:.1} ms ({:.0} frames/s), foreign {foreign}; \
             TX {txs:?}; RX {rxs:?}",
            took.as_secs_f64() * 1e3,
            f64::from(COUNT) / took.as_secs_f64()
        );
        ensure!(
            rxs.dropped() == 0,
            "{label}: the receiver dropped write-backs: {rxs:?}"
        );
        drop(tx);
        drop(rx);
    }
    let (sa, sb) = (a.stats(), b.stats());
    note!(
        "A: TX {} packets {} bytes, RX {} packets {} bytes, missed {}, no buffer {}",
        sa.tx_packets,
        sa.tx_bytes,
        sa.rx_packets,
        sa.rx_bytes,
        sa.rx_missed,
        sa.rx_no_buffer
    );
    note!(
        "B: TX {} packets {} bytes, RX {} packets {} bytes, missed {}, no buffer {}",
        sb.tx_packets,
        sb.tx_bytes,
        sb.rx_packets,
        sb.rx_bytes,
        sb.rx_missed,
        sb.rx_no_buffer
    );
    ensure!(
        sa.tx_packets == u64::from(COUNT) && sb.tx_packets == u64::from(COUNT),
        "GPTC: A {} B {}, expected {COUNT} each",
        sa.tx_packets,
        sb.tx_packets
    );
    ensure!(
        sb.rx_packets >= u64::from(COUNT) && sa.rx_packets >= u64::from(COUNT),
        "GPRC: A {} B {}, expected at least {COUNT} each",
        sa.rx_packets,
        sb.rx_packets
    );
    // A second read adds nothing: the counters cleared on the first.
    let again = a.stats();
    ensure!(
        again.tx_packets == sa.tx_packets,
        "GPTC totals moved without traffic: {} then {}",
        sa.tx_packets,
        again.tx_packets
    );
    Ok(())
}

/// RSS: B with four RX queues; A sends 16 UDP flows of 8 frames. Every flow stays on one
/// queue, the one the Toeplitz hash of its addresses and ports picks through the redirection
/// table, and the flows use more than one queue.
pub fn igb_rss_spreads_flows(ctx: &Ctx) -> TestResult {
    const QUEUES: u16 = 4;
    const FLOWS: u16 = 16;
    const PER_FLOW: u32 = 8;
    let (_vfio, fa, fb) = open_pair(ctx)?;
    let a = bring_up(&fa, IgbOptions::default())?;
    let b = bring_up(
        &fb,
        IgbOptions {
            rx_queues: QUEUES,
            ..IgbOptions::default()
        },
    )?;
    note!(
        "B: MRQC {:#010x}, RXCSUM {:#010x}, RETA(0) {:#010x}, RSSRK(0) {:#010x}",
        b.read_register(regs::MRQC),
        b.read_register(regs::RXCSUM),
        b.read_register(regs::RETA(0)),
        b.read_register(regs::RSSRK(0))
    );
    let mut tx = a.take_tx_queue(0)?;
    let mut rxs = (0..QUEUES)
        .map(|q| b.take_rx_queue(q))
        .collect::<Result<Vec<_>, _>>()?;
    let mut frames = Vec::new();
    let mut seq = 0;
    for _round in 0..PER_FLOW {
        for flow in 0..FLOWS {
            let f = Flow {
                sport: 5000 + flow * 7,
                ..FLOW_A_TO_B
            };
            frames.push(build_frame(b.mac_address(), a.mac_address(), f, seq));
            seq += 1;
        }
    }
    let (got, foreign) = exchange(&mut tx, a.pool(), &mut rxs, &frames, frames.len())?;
    let mut per_queue = [0usize; QUEUES as usize];
    let mut wrong = Vec::new();
    for (queue, bytes) in &got {
        per_queue[usize::from(*queue)] += 1;
        let sport = frame_sport(bytes);
        let mut input = Vec::with_capacity(12);
        input.extend_from_slice(&FLOW_A_TO_B.src_ip);
        input.extend_from_slice(&FLOW_A_TO_B.dst_ip);
        input.extend_from_slice(&sport.to_be_bytes());
        input.extend_from_slice(&DPORT.to_be_bytes());
        let hash = userpci_igb::rss::toeplitz_hash(&userpci_igb::rss::RSS_KEY, &input);
        let predicted = userpci_igb::rss::queue_for_hash(hash, QUEUES);
        if u16::from(predicted) != *queue && wrong.len() < 4 {
            wrong.push(format!(
                "sport {sport}: queue {queue}, the hash {hash:#010x} picks {predicted}"
            ));
        }
    }
    note!(
        "{} frames of {FLOWS} flows over {QUEUES} queues: {per_queue:?}, foreign {foreign}",
        got.len()
    );
    ensure!(
        wrong.is_empty(),
        "flows on the wrong queue: {}",
        wrong.join("; ")
    );
    let used = per_queue.iter().filter(|&&n| n > 0).count();
    ensure!(used > 1, "every flow landed on one queue: {per_queue:?}");
    for (q, rx) in rxs.iter().enumerate() {
        ensure!(
            rx.stats().dropped() == 0,
            "queue {q} dropped write-backs: {:?}",
            rx.stats()
        );
    }
    Ok(())
}

/// MSI-X: B's RX queue 0 with an interrupt; the queue finds its ring empty and arms its
/// vector; a frame from A makes the vector fire, and the frame is there.
pub fn igb_msix_wakes_receiver(ctx: &Ctx) -> TestResult {
    let (_vfio, fa, fb) = open_pair(ctx)?;
    let a = bring_up(&fa, IgbOptions::default())?;
    let b = bring_up(
        &fb,
        IgbOptions {
            interrupts: Some(InterruptOptions { itr_us: 0 }),
            ..IgbOptions::default()
        },
    )?;
    note!(
        "B: GPIE {:#010x}, IVAR(0) {:#010x}, EIAC {:#010x}, EIMS {:#010x}",
        b.read_register(regs::GPIE),
        b.read_register(regs::IVAR(0)),
        b.read_register(regs::EIAC),
        b.read_register(regs::EIMS)
    );
    let mut tx = a.take_tx_queue(0)?;
    let mut rx = b.take_rx_queue(0)?;
    let vector = rx
        .interrupt_vector()
        .cloned()
        .ok_or_else(|| Failure("RX queue 0 has no vector".into()))?;
    let mut out = Vec::with_capacity(32);
    for round in 0..3u32 {
        let _ = vector.take(); // nothing stale
        match rx.rx_batch_or_arm(&mut out, 32) {
            RxPoll::Armed => {}
            RxPoll::Received(n) => fail!("round {round}: {n} frames before any was sent"),
        }
        let frame = build_frame(b.mac_address(), a.mac_address(), FLOW_A_TO_B, round);
        let t = Instant::now();
        let mut batch = vec![to_buffer(a.pool(), &frame)?];
        ensure!(
            tx.tx_batch(&mut batch) == 1,
            "round {round}: frame not sent"
        );
        let fired = vector.event().wait(Duration::from_secs(10))?;
        let latency = t.elapsed();
        ensure!(fired > 0, "round {round}: the vector did not fire in 10 s");
        let n = rx.rx_batch(&mut out, 32);
        ensure!(n == 1, "round {round}: {n} frames after the interrupt");
        ensure!(
            out.pop().map(|b| b.as_slice().to_vec()) == Some(frame),
            "round {round}: the frame differs"
        );
        note!(
            "round {round}: vector {} fired {fired} time(s), {:.0} us after TDT",
            vector.vector(),
            latency.as_secs_f64() * 1e6
        );
        tx.reclaim();
    }
    ensure!(
        rx.stats().interrupts_armed >= 3,
        "armed {} times",
        rx.stats().interrupts_armed
    );
    Ok(())
}

/// Buffers per pool of the stray test: 1024 × 2 KiB = 2 MiB, a whole number of pages of any
/// size the DMA allocator uses, so the pool's region is exactly one mapping of this length.
const STRAY_POOL_BUFFERS: usize = 1024;
const STRAY_POOL_BYTES: usize = STRAY_POOL_BUFFERS * 2048;
const CANARY: u8 = 0xC5;

/// A 2 MiB pool whose every buffer holds [`CANARY`], and its region's IOVA and host address
/// (those of buffer 0).
fn canary_pool(
    space_of: &Function,
    name: &str,
) -> Result<(Arc<BufferPool>, u64, NonNull<u8>), Failure> {
    let pool = BufferPool::new(space_of.dma_space(), name, 2048, STRAY_POOL_BUFFERS, 0)?;
    let mut all: Vec<Option<PoolBuffer>> = (0..STRAY_POOL_BUFFERS).map(|_| None).collect();
    ensure!(
        pool.get_batch(&mut all) == STRAY_POOL_BUFFERS,
        "could not take every buffer of {name}"
    );
    let mut base = None;
    for buf in all.iter_mut().flatten() {
        buf.as_mut_slice().fill(CANARY);
        if buf.index() == 0 {
            base = Some((buf.iova(), NonNull::new(buf.as_mut_slice().as_mut_ptr())));
        }
    }
    drop(all);
    match base {
        Some((iova, Some(host))) => Ok((pool, iova, host)),
        _ => fail!("{name}: no buffer 0"),
    }
}

/// The IOMMU stops descriptors that point at unmapped memory, and both devices keep working:
/// (1) B's RX ring is filled from a pool whose mapping is then removed behind the driver's
/// back; frames from A make B write into unmapped IOVAs: host memory keeps its canary, no
/// frame content reaches it. (2) A sends a frame from a buffer whose mapping was removed: it
/// never arrives at B. The mappings are restored and traffic flows intact both ways.
pub fn igb_iommu_blocks_stray_descriptor(ctx: &Ctx) -> TestResult {
    let (_vfio, fa, fb) = open_pair(ctx)?;
    let (rx_pool, rx_iova, rx_host) = canary_pool(&fb, "igb stray rx")?;
    let a = bring_up(&fa, IgbOptions::default())?;
    let b = bring_up(
        &fb,
        IgbOptions {
            rx_ring_size: 64,
            pool: Some(Arc::clone(&rx_pool)),
            ..IgbOptions::default()
        },
    )?;
    let space = Arc::clone(fb.dma_space());
    let mut tx = a.take_tx_queue(0)?;
    let mut rx = b.take_rx_queue(0)?;
    note!(
        "B's RX pool IOVA {rx_iova:#x}+{STRAY_POOL_BYTES:#x}, unmapping it (space {})",
        space.name()
    );
    space.mapper().unmap(rx_iova, STRAY_POOL_BYTES)?;
    let log_before = support::kernel_log();

    // (1) Frames into unmapped RX buffers.
    let frames: Vec<Vec<u8>> = (0..8)
        .map(|seq| build_frame(b.mac_address(), a.mac_address(), FLOW_A_TO_B, seq))
        .collect();
    let mut batch = frames
        .iter()
        .map(|f| to_buffer(a.pool(), f))
        .collect::<Result<Vec<_>, _>>()?;
    ensure!(
        tx.tx_batch(&mut batch) == frames.len(),
        "A did not take the frames"
    );
    let start = Instant::now();
    let mut delivered: Vec<PoolBuffer> = Vec::with_capacity(64);
    while start.elapsed() < Duration::from_secs(5) && delivered.len() < frames.len() {
        rx.rx_batch(&mut delivered, 64);
    }
    let mut changed = 0usize;
    let mut leaked_frames = 0usize;
    for buf in &delivered {
        let bytes = buf.as_slice();
        changed += bytes.iter().filter(|&&x| x != CANARY).count();
        if frame_seq(bytes).is_some() {
            leaked_frames += 1;
        }
    }
    note!(
        "{} write-backs for frames into unmapped buffers after {:.1} ms (lengths {:?}); RX {:?}",
        delivered.len(),
        start.elapsed().as_secs_f64() * 1e3,
        delivered.iter().map(PoolBuffer::len).collect::<Vec<_>>(),
        rx.stats()
    );
    ensure!(
        leaked_frames == 0 && changed == 0,
        "{changed} bytes of unmapped host memory changed ({leaked_frames} frames landed): the \
         IOMMU let the device write"
    );
    drop(delivered);

    // (2) A frame from an unmapped TX buffer.
    let (tx_pool, tx_iova, tx_host) = canary_pool(&fa, "igb stray tx")?;
    let secret = build_frame(b.mac_address(), a.mac_address(), FLOW_A_TO_B, 0xDEAD);
    let stray = to_buffer(&tx_pool, &secret)?;
    fa.dma_space().mapper().unmap(tx_iova, STRAY_POOL_BYTES)?;
    let mut batch = vec![stray];
    ensure!(
        tx.tx_batch(&mut batch) == 1,
        "A did not take the stray frame"
    );
    let start = Instant::now();
    while tx.in_flight() > 0 && start.elapsed() < Duration::from_secs(5) {
        tx.reclaim();
    }
    ensure!(
        tx.in_flight() == 0,
        "the stray TX descriptor never completed ({} in flight)",
        tx.in_flight()
    );

    let faults: Vec<String> = support::kernel_log_since(&log_before)
        .into_iter()
        .filter(|l| l.contains("DMAR") || l.contains("fault"))
        .collect();
    note!("{} guest kernel lines about DMAR faults", faults.len());
    for line in faults.iter().take(4) {
        note!("kernel: {line}");
    }

    // Mappings back; both rings keep working.
    for (space, iova, host) in [
        (&space, rx_iova, rx_host),
        (fa.dma_space(), tx_iova, tx_host),
    ] {
        // SAFETY: `host` is the start of the pool's page-aligned region (buffer 0 at offset
        // 0), `STRAY_POOL_BYTES` long and owned by the pool, which is alive and unmaps exactly
        // this range when it is dropped; this restores the mapping the test removed.
        unsafe {
            space
                .mapper()
                .map(iova, host, STRAY_POOL_BYTES, DmaDirection::Bidirectional)
        }?;
    }
    drop(tx_pool);
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|seq| build_frame(b.mac_address(), a.mac_address(), FLOW_A_TO_B, seq))
        .collect();
    let mut rxs = [rx];
    let (got, _) = exchange(&mut tx, a.pool(), &mut rxs, &frames, frames.len())?;
    // The stray frame must not be among them (nor anything A did not send now).
    check_in_order("after the stray descriptors", &frames, &got)?;
    note!("after restoring the mappings: 200 frames A -> B intact, in order");
    Ok(())
}

/// Traffic, then FLR of A (`VFIO_DEVICE_RESET`): the reset clears the device (receiver off,
/// link down); a fresh bring-up on the same function brings the link back and frames flow
/// intact both ways.
pub fn igb_flr_then_reinit(ctx: &Ctx) -> TestResult {
    let (_vfio, fa, fb) = open_pair(ctx)?;
    ensure!(fa.has_flr()?, "{}: no FLR capability", fa.address());
    let b = bring_up(&fb, IgbOptions::default())?;
    let a = bring_up(&fa, IgbOptions::default())?;
    // Queues are taken once per bring-up: a dropped handle stops its queue for good.
    let send = |tx: &mut TxQueue<Function>,
                from: &Igb,
                rx: &mut RxQueue<Function>,
                to: &Igb,
                n: u32,
                label: &str|
     -> TestResult {
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|seq| build_frame(to.mac_address(), from.mac_address(), FLOW_A_TO_B, seq))
            .collect();
        let (got, _) = exchange(
            tx,
            from.pool(),
            std::slice::from_mut(rx),
            &frames,
            frames.len(),
        )?;
        check_in_order(label, &frames, &got)
    };
    let mut b_tx = b.take_tx_queue(0)?;
    let mut b_rx = b.take_rx_queue(0)?;
    let mut a_tx = a.take_tx_queue(0)?;
    send(&mut a_tx, &a, &mut b_rx, &b, 100, "before the FLR")?;
    drop(a_tx);
    drop(a);
    let t = Instant::now();
    fa.reset_function()?;
    support::note_time("VFIO_DEVICE_RESET (FLR) of A", t.elapsed());
    // Read the registers raw: the reset cleared what the driver programmed.
    let regs_a = fa.map_bar(0)?;
    let (status, rctl, rdlen) = (
        regs_a.read32(regs::STATUS),
        regs_a.read32(regs::RCTL),
        regs_a.read32(qreg::RDLEN(0)),
    );
    note!("after the FLR: STATUS {status:#010x} RCTL {rctl:#010x} RDLEN(0) {rdlen:#x}");
    ensure!(
        rctl & regs::RCTL_EN == 0 && rdlen == 0,
        "the FLR left the receiver configured (RCTL {rctl:#010x}, RDLEN(0) {rdlen:#x})"
    );
    drop(regs_a);
    let a = bring_up(&fa, IgbOptions::default())?;
    let mut a_tx = a.take_tx_queue(0)?;
    let mut a_rx = a.take_rx_queue(0)?;
    send(&mut a_tx, &a, &mut b_rx, &b, 100, "after the FLR, A -> B")?;
    send(&mut b_tx, &b, &mut a_rx, &a, 100, "after the FLR, B -> A")?;
    note!("after FLR and re-init: 100 frames each way intact");
    Ok(())
}
