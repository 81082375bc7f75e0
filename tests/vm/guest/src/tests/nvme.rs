//! The userpci NVMe driver on QEMU's NVMe controllers through the real VFIO backend: bring-up
//! and Identify, bulk I/O on three controllers, the IOMMU stopping stray DMA, MSI-X waking a
//! sleeping reactor, and FLR followed by recovery.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::VfioFunction;
use userpci_framework::device::PciFunction;
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::runtime::{IdlePolicy, Reactor, ReactorConfig};
use userpci_nvme::{Controller, ControllerOptions, IoQueuePair, Namespace, QpairOptions};

use super::support::{self, IMAGE_BYTES, SERIALS};
use crate::harness::{Ctx, Failure, TestResult, SLOT1_FN0, SLOT1_FN1, SLOT2_FN0};
use crate::{ensure, fail, note};

/// What QEMU's NVMe controller calls itself.
const QEMU_MODEL: &str = "QEMU NVMe Ctrl";

/// Bring-up through the userpci NVMe driver on each controller; Identify says QEMU, the serial
/// is run.sh's `serial=`, and the namespace is the 128 MiB image.
pub fn nvme_identify(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    for (addr, serial) in SERIALS {
        let f = support::open(ctx, &vfio, addr)?;
        let t0 = Instant::now();
        let ctrl = Controller::new(f, ControllerOptions::default())?;
        support::note_time(&format!("{addr}: bring-up"), t0.elapsed());
        let info = ctrl.info();
        note!(
            "{addr}: model {:?} serial {:?} firmware {:?} version {} MDTS {} (max transfer {} KiB) \
             CNTLID {} NN {} OACS {:#x} ONCS {:#x} VWC {} io queues {} shadow doorbells {} \
             MSI-X vectors {}",
            info.model,
            info.serial,
            info.firmware,
            info.version,
            info.mdts,
            info.max_transfer / 1024,
            info.cntlid,
            info.nn,
            info.oacs,
            info.oncs,
            info.vwc,
            info.io_queues,
            info.shadow_doorbells,
            ctrl.interrupt_vectors().len()
        );
        ensure!(
            info.model == QEMU_MODEL,
            "{addr}: model {:?}, expected {QEMU_MODEL:?}",
            info.model
        );
        ensure!(
            info.serial == serial,
            "{addr}: serial {:?}, expected {serial:?} (run.sh's serial=)",
            info.serial
        );
        let namespaces = ctrl.namespaces();
        ensure!(
            namespaces.len() == 1 && ctrl.unusable_namespaces().is_empty(),
            "{addr}: {} usable namespaces, {} unusable, expected one",
            namespaces.len(),
            ctrl.unusable_namespaces().len()
        );
        let ns = &namespaces[0];
        note!(
            "{addr}: namespace {}: {} blocks of {} bytes = {} MiB, formats {:?}",
            ns.nsid(),
            ns.blocks(),
            ns.block_size(),
            ns.size_bytes() >> 20,
            ns.lba_formats()
        );
        ensure!(ns.nsid() == 1, "{addr}: NSID {}", ns.nsid());
        ensure!(
            ns.block_size() == 512,
            "{addr}: block size {}, expected QEMU's default 512",
            ns.block_size()
        );
        ensure!(
            ns.size_bytes() == IMAGE_BYTES,
            "{addr}: namespace {} bytes, the image is {IMAGE_BYTES}",
            ns.size_bytes()
        );
        support::disable(&ctrl)?;
    }
    Ok(())
}

/// Total data written and read back by `io_64mib_three_controllers`.
const BULK_BYTES: usize = 64 << 20;
/// Size of one I/O.
const BULK_IO: usize = 128 << 10;
/// Commands in flight per queue pair.
const BULK_QD: usize = 16;
/// Queue pairs per controller.
const BULK_QPAIRS: usize = 2;
/// Write generation of the bulk test's patterns.
const BULK_GENERATION: u64 = 0x64;
/// Wall-clock limit per phase.
const BULK_LIMIT: Duration = Duration::from_secs(240);

/// One queue pair of the bulk test with its share of the I/Os.
struct Lane {
    tag: u64,
    qp: IoQueuePair<Arc<VfioFunction>, usize, DmaBuffer>,
    ns: Namespace,
    /// First LBA of each I/O of this lane.
    jobs: Vec<u64>,
    next: usize,
    free: Vec<DmaBuffer>,
    done: usize,
}

#[derive(Default)]
struct PhaseStats {
    /// Time spent filling or checking patterns (guest CPU under TCG, not the device).
    pattern: Duration,
    mismatches: Vec<String>,
}

impl Lane {
    fn submit(&mut self, write: bool, stats: &mut PhaseStats) -> Result<(), Failure> {
        let bs = self.ns.block_size() as usize;
        while self.next < self.jobs.len() && !self.free.is_empty() {
            let lba = self.jobs[self.next];
            let mut buf = self.free.pop().expect("checked non-empty");
            let result = if write {
                let t = Instant::now();
                support::fill_blocks(buf.as_mut_slice(), bs, lba, self.tag, BULK_GENERATION);
                stats.pattern += t.elapsed();
                self.qp.submit_write(&self.ns, lba, buf, self.next)
            } else {
                self.qp.submit_read(&self.ns, lba, buf, self.next)
            };
            if let Err(rejected) = result {
                fail!(
                    "{} queue {}: submit refused: {}",
                    self.qp.device(),
                    self.qp.qid(),
                    rejected.error
                );
            }
            self.next += 1;
        }
        self.qp.commit()?;
        Ok(())
    }

    fn reap(&mut self, write: bool, stats: &mut PhaseStats) -> Result<usize, Failure> {
        let bs = self.ns.block_size() as usize;
        let mut finished = Vec::new();
        self.qp.process_completions(0, &mut |c| finished.push(c));
        let n = finished.len();
        for c in finished {
            if let Err(err) = c.result {
                fail!(
                    "{} queue {}: I/O {} failed: {err}",
                    self.qp.device(),
                    self.qp.qid(),
                    c.token
                );
            }
            let buf = c.buffer.expect("data requests return their buffer");
            if !write {
                let lba = self.jobs[c.token];
                let t = Instant::now();
                if let Some((bad, at)) =
                    support::check_blocks(buf.as_slice(), bs, lba, self.tag, BULK_GENERATION)
                {
                    stats.mismatches.push(format!(
                        "{}: LBA {bad} (byte {at} of the I/O at LBA {lba})",
                        self.qp.device()
                    ));
                }
                stats.pattern += t.elapsed();
            }
            self.free.push(buf);
        }
        self.done += n;
        Ok(n)
    }
}

/// Runs one phase (all writes or all reads) over every lane; returns its wall time.
fn bulk_phase(
    lanes: &mut [Lane],
    write: bool,
    stats: &mut PhaseStats,
) -> Result<Duration, Failure> {
    for lane in lanes.iter_mut() {
        lane.next = 0;
        lane.done = 0;
    }
    let start = Instant::now();
    loop {
        let mut pending = false;
        for lane in lanes.iter_mut() {
            lane.submit(write, stats)?;
            lane.reap(write, stats)?;
            pending |= lane.done < lane.jobs.len();
        }
        if !pending {
            return Ok(start.elapsed());
        }
        if start.elapsed() > BULK_LIMIT {
            let progress: Vec<String> = lanes
                .iter()
                .map(|l| format!("{}/{}", l.done, l.jobs.len()))
                .collect();
            fail!("phase still running after {BULK_LIMIT:?}: lanes {progress:?}");
        }
    }
}

/// 64 MiB written, read back and compared across the three controllers, two queue pairs each,
/// 128 KiB I/Os at queue depth 16, a pattern per LBA.
pub fn io_64mib_three_controllers(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let mut ctrls = Vec::new();
    for (addr, _) in SERIALS {
        let f = Arc::new(support::open(ctx, &vfio, addr)?);
        ctrls.push(Controller::new(f, ControllerOptions::default())?);
    }
    let ios = BULK_BYTES / BULK_IO;
    let mut lanes: Vec<Lane> = Vec::new();
    for (c, ctrl) in ctrls.iter().enumerate() {
        let ns = ctrl.namespaces()[0].clone();
        let blocks_per_io = (BULK_IO / ns.block_size() as usize) as u64;
        // I/O i goes to controller i % 3; on it, the k-th I/O is at k * blocks_per_io and on
        // queue pair k % 2.
        let mine: Vec<u64> = (0..ios)
            .filter(|i| i % ctrls.len() == c)
            .enumerate()
            .map(|(k, _)| k as u64 * blocks_per_io)
            .collect();
        for q in 0..BULK_QPAIRS {
            let qp = ctrl.create_io_qpair(QpairOptions {
                entries: (BULK_QD + 1) as u16,
                ..QpairOptions::default()
            })?;
            let space = ctrl.function().dma_space();
            let free = (0..BULK_QD)
                .map(|_| space.allocate_buffer(BULK_IO, DmaDirection::Bidirectional))
                .collect::<Result<Vec<_>, _>>()?;
            lanes.push(Lane {
                tag: c as u64 + 1,
                qp,
                ns: ns.clone(),
                jobs: mine.iter().copied().skip(q).step_by(BULK_QPAIRS).collect(),
                next: 0,
                free,
                done: 0,
            });
        }
    }
    let total: usize = lanes.iter().map(|l| l.jobs.len()).sum();
    ensure!(total * BULK_IO == BULK_BYTES, "{total} I/Os planned");

    let mut wstats = PhaseStats::default();
    let write_time = bulk_phase(&mut lanes, true, &mut wstats)?;
    let mut rstats = PhaseStats::default();
    let read_time = bulk_phase(&mut lanes, false, &mut rstats)?;
    let mib = (BULK_BYTES >> 20) as f64;
    let rate = |t: Duration| mib * 1.048_576 / t.as_secs_f64();
    note!(
        "{} MiB on {} queue pairs ({} controllers x {BULK_QPAIRS}), {} KiB I/Os, QD {BULK_QD}: \
         write {:.2} s = {:.1} MB/s ({:.1} MB/s without {:.2} s of pattern filling), \
         read+compare {:.2} s = {:.1} MB/s ({:.1} MB/s without {:.2} s of checking)",
        BULK_BYTES >> 20,
        lanes.len(),
        ctrls.len(),
        BULK_IO >> 10,
        write_time.as_secs_f64(),
        rate(write_time),
        rate(write_time.saturating_sub(wstats.pattern)),
        wstats.pattern.as_secs_f64(),
        read_time.as_secs_f64(),
        rate(read_time),
        rate(read_time.saturating_sub(rstats.pattern)),
        rstats.pattern.as_secs_f64(),
    );
    for lane in &lanes {
        let s = lane.qp.stats();
        ensure!(
            s.errors == 0 && s.bogus.total() == 0 && s.timeouts == 0,
            "{} queue {}: {s:?}",
            lane.qp.device(),
            lane.qp.qid()
        );
    }
    if !rstats.mismatches.is_empty() {
        fail!(
            "{} I/Os read back wrong data, first: {}",
            rstats.mismatches.len(),
            rstats.mismatches[..rstats.mismatches.len().min(3)].join("; ")
        );
    }
    drop(lanes);
    for ctrl in &ctrls {
        support::disable(ctrl)?;
    }
    Ok(())
}

/// Writes `blocks` blocks of the pattern at `lba` (when `write`) and reads them back.
pub(super) fn write_then_check<F: PciFunction>(
    ctrl: &Controller<F>,
    qp: &mut IoQueuePair<F, u64>,
    lba: u64,
    blocks: usize,
    tag: u64,
    generation: u64,
    write: bool,
) -> TestResult {
    let ns = ctrl.namespaces()[0].clone();
    let bs = ns.block_size() as usize;
    let space = ctrl.function().dma_space();
    if write {
        let mut buf = space.allocate_buffer(blocks * bs, DmaDirection::ToDevice)?;
        support::fill_blocks(buf.as_mut_slice(), bs, lba, tag, generation);
        qp.submit_write(&ns, lba, buf, 1)
            .map_err(|r| Failure(format!("{}: write refused: {r}", ctrl.device())))?;
        let c = support::drain(qp, 1, Duration::from_secs(20))?
            .pop()
            .expect("one completion");
        c.result?;
    }
    let buf = space.allocate_buffer(blocks * bs, DmaDirection::FromDevice)?;
    qp.submit_read(&ns, lba, buf, 2)
        .map_err(|r| Failure(format!("{}: read refused: {r}", ctrl.device())))?;
    let c = support::drain(qp, 1, Duration::from_secs(20))?
        .pop()
        .expect("one completion");
    c.result?;
    let buf = c.buffer.expect("the read's buffer comes back");
    if let Some((bad, at)) = support::check_blocks(buf.as_slice(), bs, lba, tag, generation) {
        fail!(
            "{}: block {bad} (byte {at} of the read at LBA {lba}) does not hold what was written \
             (tag {tag:#x}, generation {generation})",
            ctrl.device()
        );
    }
    Ok(())
}

/// A canary byte the device must never overwrite.
const CANARY: u8 = 0xc3;
/// The byte of the mapped guard buffer.
const GUARD: u8 = 0x3c;

/// DMA to an IOVA that is not mapped is stopped by the IOMMU: an NVMe Read into, and a Write
/// from, a buffer whose IOVA was unmapped behind the driver's back. Host memory behind that
/// IOVA and a mapped neighbour keep their canaries, the disk does not get the host's bytes,
/// and the controller keeps working. The completion status QEMU gives is reported, not
/// required (see the notes printed), and so are the guest kernel's DMAR fault lines.
pub fn iommu_blocks_stray_dma(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, SLOT2_FN0)?;
    let ctrl = Controller::new(f, ControllerOptions::default())?;
    let ns = ctrl.namespaces()[0].clone();
    let bs = ns.block_size() as usize;
    let mut qp: IoQueuePair<VfioFunction, u64> = ctrl.create_io_qpair(QpairOptions {
        entries: 8,
        timeout: Duration::from_secs(5),
        ..QpairOptions::default()
    })?;
    // Known data on the disk where the stray read comes from.
    let (src_lba, dst_lba) = (20_000u64, 30_000u64);
    write_then_check(&ctrl, &mut qp, src_lba, 8, 0x44, 1, true)?;
    write_then_check(&ctrl, &mut qp, dst_lba, 8, 0x45, 1, true)?;

    let space = Arc::clone(ctrl.function().dma_space());
    let mut victim = space.allocate_buffer(8 * bs, DmaDirection::Bidirectional)?;
    let mut guard = space.allocate_buffer(8 * bs, DmaDirection::Bidirectional)?;
    victim.as_mut_slice().fill(CANARY);
    guard.as_mut_slice().fill(GUARD);
    let iova = victim.iova();
    let mapped = victim.region().mapped_len();
    note!(
        "victim IOVA {iova:#x}+{mapped:#x} (unmapped next), guard IOVA {:#x}, space {}",
        guard.iova(),
        space.name()
    );
    space.mapper().unmap(iova, mapped)?;
    let log_before = support::kernel_log();

    // (a) The device writes (NVMe Read) into the unmapped IOVA.
    qp.submit_read(&ns, src_lba, victim, 10)
        .map_err(|r| Failure(format!("stray read refused by the driver: {r}")))?;
    let t = Instant::now();
    let c = support::drain(&mut qp, 1, Duration::from_secs(30))?
        .pop()
        .expect("one completion");
    let read_status = match &c.result {
        Ok(()) => "success".to_string(),
        Err(e) => e.to_string(),
    };
    note!(
        "NVMe Read into the unmapped IOVA completed after {:.1} ms: {read_status}",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut victim = c.buffer.expect("the buffer comes back");
    let overwritten = victim.as_slice().iter().filter(|&&b| b != CANARY).count();
    ensure!(
        overwritten == 0,
        "{overwritten} bytes of host memory behind the unmapped IOVA changed: the IOMMU let the \
         device write"
    );
    ensure!(
        guard.as_slice().iter().all(|&b| b == GUARD),
        "the mapped guard buffer changed"
    );

    // (b) The device reads (NVMe Write) from the unmapped IOVA: the host's bytes must not
    // reach the disk.
    support::fill_blocks(victim.as_mut_slice(), bs, dst_lba, 0x55, 7);
    qp.submit_write(&ns, dst_lba, victim, 11)
        .map_err(|r| Failure(format!("stray write refused by the driver: {r}")))?;
    let c = support::drain(&mut qp, 1, Duration::from_secs(30))?
        .pop()
        .expect("one completion");
    let write_status = match &c.result {
        Ok(()) => "success".to_string(),
        Err(e) => e.to_string(),
    };
    note!("NVMe Write from the unmapped IOVA: {write_status}");
    let mut victim = c.buffer.expect("the buffer comes back");
    let back = space.allocate_buffer(8 * bs, DmaDirection::FromDevice)?;
    qp.submit_read(&ns, dst_lba, back, 12)
        .map_err(|r| Failure(format!("read-back refused: {r}")))?;
    let c = support::drain(&mut qp, 1, Duration::from_secs(20))?
        .pop()
        .expect("one completion");
    c.result?;
    let back = c.buffer.expect("the buffer comes back");
    ensure!(
        support::check_blocks(back.as_slice(), bs, dst_lba, 0x55, 7).is_some(),
        "the disk holds the bytes of the unmapped host memory: the IOMMU let the device read"
    );
    let old_intact = support::check_blocks(back.as_slice(), bs, dst_lba, 0x45, 1).is_none();
    let zeros = back.as_slice().iter().all(|&b| b == 0);
    note!(
        "LBA {dst_lba} after the stray write: {}",
        if old_intact {
            "unchanged (the write did not happen)"
        } else if zeros {
            "zeros (the device read nothing through the IOMMU and wrote what it got)"
        } else {
            "neither the old data, zeros, nor the host's bytes"
        }
    );

    let faults: Vec<String> = support::kernel_log_since(&log_before)
        .into_iter()
        .filter(|l| l.contains("DMAR") || l.contains("fault"))
        .collect();
    note!("{} guest kernel lines about DMAR faults", faults.len());
    for line in faults.iter().take(6) {
        note!("kernel: {line}");
    }

    // Map the victim again, so that its drop unmaps a mapped range and frees the IOVA.
    let host = NonNull::new(victim.as_mut_slice().as_mut_ptr())
        .ok_or_else(|| Failure("null DMA buffer".into()))?;
    // SAFETY: `host` is the start of `victim`'s page-aligned host memory, `mapped` bytes long
    // (its mapped length), owned by `victim` and kept until its drop, which unmaps exactly
    // this IOVA range before freeing the memory.
    unsafe {
        space
            .mapper()
            .map(iova, host, mapped, DmaDirection::Bidirectional)
    }?;
    drop(victim);

    // The controller is still healthy and serves I/O.
    ctrl.check_health()?;
    write_then_check(&ctrl, &mut qp, 40_000, 8, 0x46, 1, true)?;
    write_then_check(&ctrl, &mut qp, src_lba, 8, 0x44, 1, false)?;
    let s = qp.stats();
    note!("queue stats: {s:?}");
    drop(qp);
    support::disable(&ctrl)?;
    Ok(())
}

/// MSI-X: a completion signals the queue's vector (the eventfd, waited on directly), and an
/// interrupt-driven reactor (`AfterIterations(0)`, no timed wake-ups) that sleeps while each
/// I/O is in flight is woken by it.
pub fn msix_interrupt_mode(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, SLOT1_FN1)?;
    let ctrl = Controller::new(f, ControllerOptions::default())?;
    let ns = ctrl.namespaces()[0].clone();
    let bs = ns.block_size() as usize;
    let vectors = ctrl.interrupt_vectors().len();
    note!("{vectors} MSI-X vectors enabled");
    ensure!(
        vectors >= 2,
        "{vectors} MSI-X vectors: expected admin + I/O"
    );
    let space = Arc::clone(ctrl.function().dma_space());
    let len = 16 * bs;
    // The reactor's I/Os are large (4 MiB, eight commands of 512 KiB: milliseconds of emulated
    // DMA through VT-d) so that each is still in flight when the reactor runs out of work and
    // goes to sleep. Under TCG the vCPU often waits for QEMU's big lock while QEMU moves the
    // data, so small I/Os look complete by the next loop iteration and the reactor never
    // needs to sleep (seen with 8 KiB and 512 KiB I/Os).
    let big = 8192 * bs;

    // 1. The eventfd of the queue's vector fires on completion.
    {
        let mut qp: IoQueuePair<VfioFunction, u64> = ctrl.create_io_qpair(QpairOptions {
            entries: 16,
            ..QpairOptions::default()
        })?;
        let vector = qp
            .interrupt()
            .cloned()
            .ok_or_else(|| Failure("the queue pair has no interrupt vector".into()))?;
        vector.take()?;
        let mut latencies = Vec::new();
        for i in 0..8u64 {
            let lba = 60_000 + i * 16;
            let mut buf = space.allocate_buffer(len, DmaDirection::Bidirectional)?;
            support::fill_blocks(buf.as_mut_slice(), bs, lba, 0x77, 1);
            qp.submit_write(&ns, lba, buf, i)
                .map_err(|r| Failure(r.to_string()))?;
            qp.commit()?;
            let t = Instant::now();
            let fired = vector.event().wait(Duration::from_secs(10))?;
            latencies.push(t.elapsed());
            ensure!(
                fired >= 1,
                "vector {} did not fire within 10 s of the write",
                vector.vector()
            );
            let c = support::drain(&mut qp, 1, Duration::from_secs(10))?
                .pop()
                .expect("one");
            c.result?;
        }
        latencies.sort();
        note!(
            "vector {}: doorbell to eventfd, median {:.0} us, max {:.0} us",
            vector.vector(),
            latencies[latencies.len() / 2].as_secs_f64() * 1e6,
            latencies[latencies.len() - 1].as_secs_f64() * 1e6
        );
    }

    // 2. A reactor that sleeps whenever it has nothing to do, and only an interrupt (or the
    //    watchdog's kick, counted as a failure) can wake.
    let reactor = Reactor::new(ReactorConfig {
        idle: IdlePolicy::AfterIterations(0),
        max_sleep: None,
        ..ReactorConfig::default()
    })?;
    let handle = reactor.handle();
    let kicks = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = mpsc::channel::<()>();
    let watchdog = {
        let kicks = Arc::clone(&kicks);
        std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(2))
            {
                kicks.fetch_add(1, Ordering::Relaxed);
                handle.wake();
            }
        })
    };
    const ROUNDS: u64 = 16;
    let t0 = Instant::now();
    let outcome = reactor.block_on(async {
        let qp = ctrl.create_async_qpair(QpairOptions {
            entries: 16,
            ..QpairOptions::default()
        })?;
        let mut buf = space.allocate_buffer(big, DmaDirection::Bidirectional)?;
        for i in 0..ROUNDS {
            let lba = 70_000 + i * 8192;
            support::fill_blocks(buf.as_mut_slice(), bs, lba, 0x78, 1);
            qp.write(&ns, lba, &buf).await?;
            buf.as_mut_slice().fill(0);
            qp.read(&ns, lba, &mut buf).await?;
            if let Some((bad, _)) = support::check_blocks(buf.as_slice(), bs, lba, 0x78, 1) {
                return Err(Failure(format!("round {i}: block {bad} read back wrong")));
            }
        }
        let stats = qp.stats();
        drop(qp);
        Ok::<_, Failure>(stats)
    });
    let took = t0.elapsed();
    let _ = stop.send(());
    let _ = watchdog.join();
    let qstats = outcome??;
    let stats = reactor.stats();
    let kicks = kicks.load(Ordering::Relaxed);
    note!(
        "{} I/Os in {:.1} ms on the {:?} backend: {stats:?}, watchdog kicks {kicks}, queue {qstats:?}",
        ROUNDS * 2,
        took.as_secs_f64() * 1e3,
        reactor.backend()
    );
    ensure!(
        stats.sleeps > 0,
        "the reactor never slept (AfterIterations(0)): {stats:?}"
    );
    ensure!(
        kicks == 0,
        "the watchdog had to wake the reactor {kicks} times: the MSI-X interrupt did not"
    );
    drop(reactor);
    support::disable(&ctrl)
}

/// Write data, FLR (`VFIO_DEVICE_RESET`) with the driver quiesced around it, recover, and the
/// data reads back equal through the same queue pair; then again from a fresh context and a
/// fresh driver.
pub fn flr_then_reinit(ctx: &Ctx) -> TestResult {
    let (lba, blocks, tag) = (80_000u64, 2048usize, 0x66u64);
    {
        let vfio = support::context(ctx)?;
        let f = support::open(ctx, &vfio, SLOT1_FN0)?;
        let ctrl = Controller::new(f, ControllerOptions::default())?;
        let mut qp: IoQueuePair<VfioFunction, u64> = ctrl.create_io_qpair(QpairOptions {
            entries: 16,
            ..QpairOptions::default()
        })?;
        write_then_check(&ctrl, &mut qp, lba, blocks, tag, 1, true)?;
        let ns = ctrl.namespaces()[0].clone();
        qp.submit_flush(&ns, 3)
            .map_err(|r| Failure(r.to_string()))?;
        support::drain(&mut qp, 1, Duration::from_secs(10))?
            .pop()
            .expect("one")
            .result?;

        ctrl.quiesce_for_reset();
        let t0 = Instant::now();
        ctrl.function().reset_function()?;
        let took = t0.elapsed();
        support::note_time("VFIO_DEVICE_RESET (FLR)", took);
        ensure!(
            took >= Duration::from_millis(100),
            "the FLR returned after {took:?}: too fast for a Function Level Reset"
        );
        ensure!(took < Duration::from_secs(2), "the FLR took {took:?}");
        let t1 = Instant::now();
        ctrl.recover()?;
        support::note_time("driver recovery after the FLR", t1.elapsed());
        ensure!(ctrl.resets() == 1, "{} resets", ctrl.resets());
        write_then_check(&ctrl, &mut qp, lba, blocks, tag, 1, false)?;
        write_then_check(&ctrl, &mut qp, lba + blocks as u64, 64, tag, 2, true)?;
        note!("queue stats after recovery: {:?}", qp.stats());
        drop(qp);
        support::disable(&ctrl)?;
    }
    // A fresh driver on a freshly opened function (the open resets it again).
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, SLOT1_FN0)?;
    let t = Instant::now();
    let ctrl = Controller::new(f, ControllerOptions::default())?;
    support::note_time("fresh bring-up", t.elapsed());
    let mut qp: IoQueuePair<VfioFunction, u64> = ctrl.create_io_qpair(QpairOptions::default())?;
    write_then_check(&ctrl, &mut qp, lba, blocks, tag, 1, false)?;
    write_then_check(&ctrl, &mut qp, lba + blocks as u64, 64, tag, 2, false)?;
    drop(qp);
    support::disable(&ctrl)
}
