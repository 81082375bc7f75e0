//! A heterogeneous reset group on real VFIO (issue 9 item 5): slot 3 holds an NVMe controller
//! (03:00.0) and an 82576 (03:00.1), both driven by userpci, one reset group. Write-verify runs
//! on the controller and sequence-numbered frame streams run both ways between 03:00.1 and the
//! second 82576 (04:00.0, outside the group) while the reset coordinator bus-resets the slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::VfioFunction;
use userpci_framework::device::{PciFunction, ResetTarget};
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    CoordinatorConfig, ParticipantConfig, Phase, ResetCause, ResetCoordinator, ResetKind,
    ResetReport, ResetRequest, ResetScope,
};
use userpci_igb::{IgbOptions, IgbParticipant, IgbResetOptions, RxQueue, TxQueue};
use userpci_nvme::{Controller, ControllerOptions, NvmeParticipant};

use super::coordinated::print_report;
use super::igb::{bring_up, build_frame, frame_seq, to_buffer, Flow, Igb, FLOW_A_TO_B};
use super::ledger::{settle, Workload};
use super::support;
use crate::harness::{Ctx, Failure, TestResult, HET_NVME, IGB_A, IGB_B};
use crate::{ensure, fail, note};

type Function = Arc<VfioFunction>;

/// Frames per stream before the reset is requested.
const FRAMES_BEFORE: u32 = 400;
/// Frames per stream sent after the reset finished: every one must arrive.
const FRAMES_AFTER: u32 = 400;
/// Frames built per send call.
const BURST: u32 = 16;
/// At most one burst per stream this often (about 8,000 frames/s each way): a steady stream,
/// so the gap a reset leaves has a size that says something.
const BURST_INTERVAL_NS: u64 = 2_000_000;
/// Ledger writes at most (each its own 32 KiB range of the 128 MiB disk).
const MAX_WRITES: u64 = 1_500;
/// Marks the timeline JSON on the console; tests/vm/run.sh copies it to target/vm/.
const TIMELINE_BEGIN: &str = "USERPCI-TIMELINE-BEGIN";
const TIMELINE_END: &str = "USERPCI-TIMELINE-END";

/// One direction of sequence-numbered frames.
struct Stream {
    label: &'static str,
    dst: [u8; 6],
    src: [u8; 6],
    flow: Flow,
    /// The next sequence number to build.
    next: u32,
    /// Built, not yet accepted by the TX queue (kept while the sender's gate is closed).
    pending: Vec<PoolBuffer>,
    /// When each sequence number was accepted by the TX queue, clock ns.
    accepted_at: Vec<u64>,
    /// Sequence numbers as they arrived.
    received: Vec<u32>,
    /// Frames whose bytes differ from what was sent.
    corrupt: usize,
    /// Frames of other flows or of nobody's (counted, not checked).
    foreign: usize,
    /// When the last burst was built, clock ns.
    last_burst_ns: Option<u64>,
}

impl Stream {
    fn new(label: &'static str, from: &Igb, to: &Igb, flow: Flow) -> Self {
        Stream {
            label,
            dst: to.mac_address(),
            src: from.mac_address(),
            flow,
            next: 0,
            pending: Vec::with_capacity(BURST as usize),
            accepted_at: Vec::new(),
            received: Vec::new(),
            corrupt: 0,
            foreign: 0,
            last_burst_ns: None,
        }
    }

    /// Builds a burst when the last one is gone, [`BURST_INTERVAL_NS`] passed and `limit` is
    /// not reached, then offers what is pending to `tx` (which keeps it all while its device
    /// is being reset).
    fn send(
        &mut self,
        tx: &mut TxQueue<Function>,
        pool: &Arc<BufferPool>,
        limit: u32,
        now_ns: u64,
    ) -> Result<(), Failure> {
        let due = self
            .last_burst_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= BURST_INTERVAL_NS);
        if self.pending.is_empty() && due && self.next < limit {
            self.last_burst_ns = Some(now_ns);
            let end = limit.min(self.next + BURST);
            for seq in self.next..end {
                let frame = build_frame(self.dst, self.src, self.flow, seq);
                self.pending.push(to_buffer(pool, &frame)?);
            }
            self.next = self.next.max(end);
        }
        if self.pending.is_empty() {
            tx.reclaim();
            return Ok(());
        }
        let accepted = tx.tx_batch(&mut self.pending);
        self.accepted_at
            .extend(std::iter::repeat_n(now_ns, accepted));
        Ok(())
    }

    /// Takes what `rx` holds and checks each test frame of this flow byte for byte.
    fn receive(&mut self, rx: &mut RxQueue<Function>, batch: &mut Vec<PoolBuffer>) {
        rx.rx_batch(batch, 64);
        for buf in batch.drain(..) {
            let bytes = buf.as_slice();
            match frame_seq(bytes) {
                Some(seq) if bytes[26..30] == self.flow.src_ip => {
                    if bytes != build_frame(self.dst, self.src, self.flow, seq).as_slice() {
                        self.corrupt += 1;
                    }
                    self.received.push(seq);
                }
                _ => self.foreign += 1,
            }
        }
    }

    /// Every frame built was accepted by the TX queue.
    fn all_accepted(&self) -> bool {
        self.pending.is_empty() && self.accepted_at.len() == self.next as usize
    }

    fn last_received(&self) -> Option<u32> {
        self.received.last().copied()
    }

    /// Sequence numbers accepted by the sender in `[from_ns, to_ns]`.
    fn accepted_between(&self, from_ns: u64, to_ns: u64) -> usize {
        self.accepted_at
            .iter()
            .filter(|t| (from_ns..=to_ns).contains(t))
            .count()
    }

    /// Strictly increasing (no frame twice, none reordered), intact.
    fn check_order(&self) -> TestResult {
        if let Some(w) = self.received.windows(2).find(|w| w[1] <= w[0]) {
            fail!(
                "{}: frame {} arrived after frame {} (duplicated or reordered)",
                self.label,
                w[1],
                w[0]
            );
        }
        ensure!(
            self.corrupt == 0,
            "{}: {} frames arrived corrupted",
            self.label,
            self.corrupt
        );
        Ok(())
    }

    /// Sent and not received.
    fn missing(&self) -> usize {
        self.next as usize - self.received.len()
    }

    /// The missing sequence numbers as ranges, for the notes.
    fn gaps(&self) -> Vec<(u32, u32)> {
        let mut gaps = Vec::new();
        let mut expect = 0u32;
        for &seq in self.received.iter().chain(std::iter::once(&self.next)) {
            if seq > expect {
                gaps.push((expect, seq - 1));
            }
            expect = seq + 1;
        }
        gaps
    }
}

/// Both igb ports' queues and streams, driven from one thread.
struct Traffic {
    a_tx: TxQueue<Function>,
    a_rx: RxQueue<Function>,
    b_tx: TxQueue<Function>,
    b_rx: RxQueue<Function>,
    a_to_b: Stream,
    b_to_a: Stream,
    batch: Vec<PoolBuffer>,
}

impl Traffic {
    /// One round: receive on both ports, then send on both, each stream up to its limit.
    fn step(&mut self, a: &Igb, b: &Igb, limits: (u32, u32), now_ns: u64) -> TestResult {
        // Receive first: after a reset the first call restarts A's RX ring, and what the
        // device wrote into it before that is dropped, so nothing may be sent to A between the
        // end of the reset and that call.
        self.a_to_b.receive(&mut self.b_rx, &mut self.batch);
        self.b_to_a.receive(&mut self.a_rx, &mut self.batch);
        self.a_to_b
            .send(&mut self.a_tx, a.pool(), limits.0, now_ns)?;
        self.b_to_a
            .send(&mut self.b_tx, b.pool(), limits.1, now_ns)?;
        Ok(())
    }
}

/// The phase record of `member`, `phase`.
fn phase_span(report: &ResetReport, member: &str, phase: Phase) -> Result<(u64, u64), Failure> {
    report
        .timeline
        .phases
        .iter()
        .find(|p| p.member == member && p.phase == phase)
        .map(|p| (p.start_ns, p.end_ns))
        .ok_or_else(|| Failure(format!("the timeline has no {phase} phase of {member}")))
}

/// Slot 3 under write-verify and frame streams in both directions; a coordinated bus reset
/// of the slot, requested from another thread, with the NVMe participant at priority 0 and
/// the igb one at priority 1.
///
/// Afterwards: the reset was a bus reset of exactly 03:00.0 and 03:00.1 and both recovered,
/// the NVMe one first; no acknowledged write lost or doubled, one driver recovery; each
/// stream arrived strictly in order and intact, its gap within what the drivers account for
/// (A->B: packets the recovery returned unsent, `TxQueue::reset_dropped`, plus what B counted
/// as missed; B->A: frames B sent while A was down, plus A's RX ring), and every frame sent
/// after the reset arrived; A's hardware counters were accumulated across the reset. The
/// report is printed as JSON between markers for tests/vm/run.sh to keep.
///
/// Doorbells are rung right up to the request: QEMU 10 needs no pause before CC.EN is cleared
/// (QEMU 7.2 did; tests/vm/README.md).
pub fn heterogeneous_hot_reset_under_traffic(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f_nvme = Arc::new(support::open(ctx, &vfio, HET_NVME)?);
    let f_a = Arc::new(support::open(ctx, &vfio, IGB_A)?);
    let f_b = Arc::new(support::open(ctx, &vfio, IGB_B)?);
    let clock = Arc::clone(f_nvme.clock());
    let now_ns = || clock.now().as_nanos() as u64;

    let ctrl = Controller::new(Arc::clone(&f_nvme), ControllerOptions::default())?;
    let mut loads = vec![Workload::new(ctrl.clone(), 0x41)?];
    let a = Arc::new(bring_up(&f_a, IgbOptions::default())?);
    let b = bring_up(&f_b, IgbOptions::default())?;

    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(&clock),
        CoordinatorConfig::default(),
    ));
    let nvme_name = format!("nvme {HET_NVME}");
    let igb_name = format!("igb {IGB_A}");
    coordinator.register(
        Arc::clone(&f_nvme) as Arc<dyn ResetTarget>,
        Box::new(NvmeParticipant::new(ctrl.clone(), nvme_name.clone())),
        ParticipantConfig {
            priority: 0,
            quiesce_budget: Duration::from_secs(1),
            recover_budget: Duration::from_secs(10),
        },
    )?;
    coordinator.register(
        Arc::clone(&f_a) as Arc<dyn ResetTarget>,
        Box::new(IgbParticipant::new(
            Arc::clone(&a),
            igb_name.clone(),
            IgbResetOptions {
                // Auto-negotiation takes 0.5 s in QEMU; TCG makes it longer.
                link_budget: Duration::from_secs(5),
                queue_stop_timeout: Duration::from_millis(200),
                tx_drain_timeout: Duration::from_millis(20),
            },
        )),
        ParticipantConfig {
            priority: 1,
            quiesce_budget: Duration::from_secs(1),
            recover_budget: Duration::from_secs(10),
        },
    )?;

    let reverse = Flow {
        src_ip: FLOW_A_TO_B.dst_ip,
        dst_ip: FLOW_A_TO_B.src_ip,
        sport: 2000,
    };
    let mut t = Traffic {
        a_tx: a.take_tx_queue(0)?,
        a_rx: a.take_rx_queue(0)?,
        b_tx: b.take_tx_queue(0)?,
        b_rx: b.take_rx_queue(0)?,
        a_to_b: Stream::new("A -> B", &a, &b, FLOW_A_TO_B),
        b_to_a: Stream::new("B -> A", &b, &a, reverse),
        batch: Vec::with_capacity(64),
    };
    let w = &mut loads[0];

    // Before: both streams and the writes running.
    let start = Instant::now();
    while t.a_to_b.next < FRAMES_BEFORE || t.b_to_a.next < FRAMES_BEFORE {
        if w.next < MAX_WRITES {
            w.write(8)?;
        }
        w.poll();
        t.step(&a, &b, (FRAMES_BEFORE, FRAMES_BEFORE), now_ns())?;
        if start.elapsed() > Duration::from_secs(60) {
            fail!("the first {FRAMES_BEFORE} frames were not sent within 60 s");
        }
    }

    // The reset, from another thread, while this one keeps sending, receiving, writing and
    // polling: nothing here pauses for it.
    let request = ResetRequest::new(HET_NVME, ResetCause::Api).with_scope(ResetScope::Group);
    let requester = {
        let coordinator = Arc::clone(&coordinator);
        let clock = Arc::clone(&clock);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let origin = clock.now().as_nanos() as u64;
            (origin, coordinator.request(request))
        })
    };
    let start = Instant::now();
    while !requester.is_finished() {
        if w.next < MAX_WRITES {
            w.write(8)?;
        }
        w.poll();
        // Unbounded streams while the reset runs: every burst offered, kept by a closed gate.
        let limits = (t.a_to_b.next + BURST, t.b_to_a.next + BURST);
        t.step(&a, &b, limits, now_ns())?;
        if start.elapsed() > Duration::from_secs(60) {
            fail!("the coordinated reset did not finish within 60 s");
        }
    }
    let (origin, outcome) = requester
        .join()
        .map_err(|_| Failure("the requesting thread panicked".into()))?;
    let report = Arc::clone(&outcome?.report);
    print_report("slot 3", &report);
    let during = (t.a_to_b.next, t.b_to_a.next);

    // After: more frames each way, then drain; the writes settle.
    let totals = (during.0 + FRAMES_AFTER, during.1 + FRAMES_AFTER);
    let start = Instant::now();
    loop {
        if w.next < MAX_WRITES {
            w.write(8)?;
        }
        w.poll();
        t.step(&a, &b, totals, now_ns())?;
        let done = |s: &Stream, total: u32| {
            s.next == total && s.all_accepted() && s.last_received() == Some(total - 1)
        };
        if done(&t.a_to_b, totals.0) && done(&t.b_to_a, totals.1) {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            fail!(
                "after the reset the streams did not finish in 60 s: A -> B {} of {} received, B \
                 -> A {} of {}",
                t.a_to_b.received.len(),
                t.a_to_b.next,
                t.b_to_a.received.len(),
                t.b_to_a.next
            );
        }
    }
    settle(&mut loads, Duration::from_secs(30))?;

    // The reset itself.
    ensure!(
        report.kind == ResetKind::Bus,
        "{:?} reset, expected bus",
        report.kind
    );
    let members: Vec<PciAddress> = report.members.iter().map(|m| m.address).collect();
    ensure!(
        members == [HET_NVME, IGB_A],
        "reset hit {members:?}, expected {HET_NVME} and {IGB_A}"
    );
    ensure!(
        report.all_recovered(),
        "not every member recovered: {:?}",
        report.members
    );
    let nvme_recover = phase_span(&report, &nvme_name, Phase::Recover)?;
    let igb_recover = phase_span(&report, &igb_name, Phase::Recover)?;
    ensure!(
        nvme_recover.1 <= igb_recover.0,
        "recovery out of priority order: NVMe {nvme_recover:?} ns, igb {igb_recover:?} ns"
    );
    let igb_quiesce = phase_span(&report, &igb_name, Phase::Quiesce)?;

    // The writes.
    let w = &mut loads[0];
    let verdict = w.verify()?;
    note!(
        "{HET_NVME}: {} writes: {verdict:?}; driver resets {}, queue {:?}",
        w.ledger.len(),
        w.ctrl.resets(),
        w.qp.stats()
    );
    ensure!(
        verdict.lost == 0 && verdict.duplicated == 0,
        "{HET_NVME}: {} acknowledged writes lost, {} duplicated",
        verdict.lost,
        verdict.duplicated
    );
    ensure!(
        verdict.acknowledged + verdict.failed == w.ledger.len(),
        "{HET_NVME}: writes neither acknowledged nor failed"
    );
    ensure!(
        w.ctrl.resets() == 1,
        "{HET_NVME}: {} driver recoveries, expected 1",
        w.ctrl.resets()
    );

    // The streams.
    let (sa, sb) = (a.stats(), b.stats());
    let window = (origin + igb_quiesce.0, origin + igb_recover.1);
    for s in [&t.a_to_b, &t.b_to_a] {
        note!(
            "{}: {} sent ({} by the time the reset ended), {} received, {} missing in {:?}, {} \
             foreign",
            s.label,
            s.next,
            if s.label == t.a_to_b.label {
                during.0
            } else {
                during.1
            },
            s.received.len(),
            s.missing(),
            s.gaps(),
            s.foreign
        );
        s.check_order()?;
        // Frames go missing only around the reset: one run of them at most.
        ensure!(
            s.gaps().len() <= 1,
            "{}: frames missing in {} places: {:?}",
            s.label,
            s.gaps().len(),
            s.gaps()
        );
    }
    let a_to_b_budget = t.a_tx.reset_dropped() + sb.rx_missed + sb.rx_no_buffer;
    note!(
        "A -> B: {} returned unsent by A's recovery, B missed {} / no buffer {}",
        t.a_tx.reset_dropped(),
        sb.rx_missed,
        sb.rx_no_buffer
    );
    ensure!(
        t.a_to_b.missing() as u64 <= a_to_b_budget,
        "A -> B: {} frames missing, but only {a_to_b_budget} accounted for",
        t.a_to_b.missing()
    );
    let b_to_a_sent_while_down = t.b_to_a.accepted_between(window.0, window.1);
    let b_to_a_budget = b_to_a_sent_while_down + t.a_rx.ring_size();
    note!(
        "B -> A: {b_to_a_sent_while_down} frames sent while A was quiesced, reset or recovering \
         ({:.1} ms), A's RX ring {} slots, A's RX restarts {}",
        (window.1 - window.0) as f64 / 1e6,
        t.a_rx.ring_size(),
        t.a_rx.resets()
    );
    ensure!(
        t.b_to_a.missing() <= b_to_a_budget,
        "B -> A: {} frames missing, more than the {b_to_a_budget} sent while A was down plus \
         its ring",
        t.b_to_a.missing()
    );
    ensure!(
        t.a_rx.resets() == 1,
        "A's RX queue restarted {} times, expected 1",
        t.a_rx.resets()
    );
    // Resumption: every frame sent after the reset arrived (the loop above waited for the
    // last; in order and strictly increasing, so all after the gap).
    for (s, from) in [(&t.a_to_b, during.0), (&t.b_to_a, during.1)] {
        let after = s.received.iter().filter(|&&q| q >= from).count();
        ensure!(
            after == (s.next - from) as usize,
            "{}: {after} of the {} frames sent after the reset arrived",
            s.label,
            s.next - from
        );
    }
    // A's counters: accumulated at quiesce before the reset cleared them, so they cover the
    // frames of both sides of the reset.
    note!(
        "A counters: TX {} packets, RX {} packets, missed {}; B counters: TX {}, RX {}",
        sa.tx_packets,
        sa.rx_packets,
        sa.rx_missed,
        sb.tx_packets,
        sb.rx_packets
    );
    ensure!(
        sa.tx_packets >= t.a_to_b.received.len() as u64,
        "A's GPTC total {} is below the {} frames B received from it: counts lost in the reset",
        sa.tx_packets,
        t.a_to_b.received.len()
    );
    ensure!(
        sa.rx_packets >= t.b_to_a.received.len() as u64,
        "A's GPRC total {} is below the {} frames it delivered",
        sa.rx_packets,
        t.b_to_a.received.len()
    );

    let json = serde_json::to_string_pretty(report.as_ref())
        .map_err(|e| Failure(format!("the report as JSON: {e}")))?;
    println!("{TIMELINE_BEGIN}\n{json}\n{TIMELINE_END}");

    drop(coordinator.unregister(HET_NVME));
    drop(coordinator.unregister(IGB_A));
    drop(coordinator);
    drop(t);
    drop(loads);
    support::disable(&ctrl)?;
    Ok(())
}
