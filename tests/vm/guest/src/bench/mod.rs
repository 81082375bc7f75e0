//! `userpci-vmtest --bench <group> [seconds]`: userpci against the kernel's own drivers on the
//! same QEMU devices in one boot (issue 9 item 6; tests/vm/bench.sh boots it, tests/vm/BENCH.md
//! explains it).
//!
//! 1. NVMe 02:00.0 (serial C, alone behind its root port): userpci 4 KiB random reads at QD1
//!    and QD32, raw polled API and async API; then the same controller is handed to the
//!    kernel's `nvme` driver (loaded with `poll_queues=1`) and fio with io_uring runs the same
//!    workload with and without `--hipri`.
//! 2. 82576 04:00.0 (IGB_B) sends 60-byte UDP frames to 03:00.1 (IGB_A) over the QEMU hub:
//!    first userpci's igb driver, then the kernel's `igb` driver with the pktgen module. The
//!    receiving port is userpci's in both runs, counted the same way.
//!
//! Prints one line `USERPCI-BENCH-RESULT <JSON object>`; exit 0 when every measurement ran.

mod kernel;
mod net;
mod nvme;
mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use userpci_framework::pci::{PciAddress, SysfsPci};
use userpci_nvme::Controller;

use crate::harness::{Ctx, Failure, Mode, IGB_A, IGB_B, SLOT2_FN0};
use crate::tests::support;

use shared::BLOCK_BYTES;

/// The NVMe controller compared: alone in its reset group and its IOMMU group.
const NVME_DEVICE: PciAddress = SLOT2_FN0;
/// Queue depths compared.
const QUEUE_DEPTHS: [usize; 2] = [1, 32];
/// Frame size of both senders, without FCS (64 bytes on the wire).
const FRAME_BYTES: usize = 60;
/// Sending starts this long before the receiving window opens.
const NET_WARMUP: Duration = Duration::from_millis(500);
/// After a sender stopped, what it sent has arrived by then.
const RX_SETTLE: Duration = Duration::from_millis(300);
/// The kernel's pktgen: frames per burst (xmit_more: one tail write per burst, as userpci's
/// batches), in the burst run.
const PKTGEN_BURST: u32 = 32;
/// CPUs: the measured loop on 0 (fio's `--cpus_allowed=0`, pktgen's kpktgend_0), the
/// receiver on 1.
const MEASURE_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;
/// Seconds per measurement when the command line gives none.
const DEFAULT_SECONDS: f64 = 4.0;

/// Runs the bench; the process's exit status.
pub fn main(args: &[String]) -> u8 {
    let mode = match args.first().map(|m| Mode::parse(m)) {
        Some(Some(mode)) => mode,
        _ => {
            eprintln!("usage: userpci-vmtest --bench <group|cdev> [seconds]");
            return 2;
        }
    };
    let seconds = args
        .get(1)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 60.0)
        .unwrap_or(DEFAULT_SECONDS);
    let ctx = Ctx {
        mode,
        sysfs: SysfsPci::system(),
    };
    let duration = Duration::from_secs_f64(seconds);
    let mut result = Map::new();
    result.insert("mode".into(), json!(mode.to_string()));
    result.insert("seconds_per_measurement".into(), json!(seconds));
    result.insert("kernel".into(), json!(kernel_release()));
    let mut ok = true;
    let t0 = Instant::now();
    match bench_nvme(&ctx, duration) {
        Ok(v) => {
            result.insert("nvme".into(), v);
        }
        Err(e) => {
            ok = false;
            println!("bench: nvme: FAILED: {e}");
            result.insert("nvme_error".into(), json!(e.to_string()));
        }
    }
    println!("bench: nvme done after {:.1} s", t0.elapsed().as_secs_f64());
    match bench_net(&ctx, duration) {
        Ok(v) => {
            result.insert("net".into(), v);
        }
        Err(e) => {
            ok = false;
            println!("bench: net: FAILED: {e}");
            result.insert("net_error".into(), json!(e.to_string()));
        }
    }
    println!("bench: all done after {:.1} s", t0.elapsed().as_secs_f64());
    println!("USERPCI-BENCH-RESULT {}", Value::Object(result));
    if ok {
        0
    } else {
        1
    }
}

/// Marks the start of a phase on the console; bench.sh's sampler attributes QEMU's per-thread
/// CPU time to the phase in effect (`between`: setup, rebinding, idle).
fn phase(name: &str) {
    println!("bench: phase {name}");
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// userpci's NVMe runs, on a thread of their own pinned to [`MEASURE_CPU`] (the raw loop and
/// the reactor pin the thread they run on; the main thread, and the receiver and fio it starts
/// later, must keep every CPU). Returns the figures and whether shadow doorbells were on.
fn userpci_nvme(ctx: &Ctx, duration: Duration) -> Result<(Map<String, Value>, bool), Failure> {
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, NVME_DEVICE)?;
    let ctrl = Controller::new(f, nvme::controller_options())?;
    let shadow_doorbells = ctrl.info().shadow_doorbells;
    let ns = ctrl.namespaces()[0].clone();
    let mut userpci = Map::new();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), Failure> {
            nvme::pin(MEASURE_CPU)?;
            for qd in QUEUE_DEPTHS {
                phase(&format!("userpci_raw_qd{qd}"));
                let m = nvme::raw(&ctrl, &ns, qd, duration, 1 + qd as u64)?;
                phase("between");
                println!("bench: userpci raw QD{qd}: {:.0} IOPS", m.iops());
                userpci.insert(format!("raw_qd{qd}"), m.to_json());
            }
            for qd in QUEUE_DEPTHS {
                phase(&format!("userpci_async_qd{qd}"));
                let m = nvme::async_api(&ctrl, &ns, qd, duration, 100 + qd as u64, MEASURE_CPU)?;
                phase("between");
                println!("bench: userpci async QD{qd}: {:.0} IOPS", m.iops());
                userpci.insert(format!("async_qd{qd}"), m.to_json());
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(Failure("the userpci NVMe thread panicked".into())))
    })?;
    support::disable(&ctrl)?;
    // ctrl, the function and the context close here: vfio-pci's unbind waits for that.
    Ok((userpci, shadow_doorbells))
}

fn bench_nvme(ctx: &Ctx, duration: Duration) -> Result<Value, Failure> {
    let (userpci, shadow_doorbells) = userpci_nvme(ctx, duration)?;
    kernel::no_kernel_nvme()?;
    kernel::bind_kernel_driver(NVME_DEVICE, "nvme")?;
    let dev = kernel::nvme_block_device(NVME_DEVICE)?;
    let queue = kernel::queue_facts(&dev, NVME_DEVICE);
    println!("bench: kernel nvme: {dev}, queue {queue}");
    let mut kernel_runs = Map::new();
    for hipri in [false, true] {
        for qd in QUEUE_DEPTHS {
            let name = format!("io_uring{}_qd{qd}", if hipri { "_hipri" } else { "" });
            phase(&format!("kernel_{name}"));
            let v = kernel::fio_randread(&dev, qd, duration.as_secs_f64(), hipri)?;
            phase("between");
            println!("bench: kernel {name}: {} IOPS", v["iops"]);
            kernel_runs.insert(name, v);
        }
    }
    Ok(json!({
        "device": NVME_DEVICE.to_string(),
        "bs": BLOCK_BYTES,
        "rw": "randread",
        "userpci_shadow_doorbells": shadow_doorbells,
        "userpci": userpci,
        "kernel_block_device": dev,
        "kernel_queue": queue,
        "kernel": kernel_runs,
    }))
}

fn bench_net(ctx: &Ctx, duration: Duration) -> Result<Value, Failure> {
    // The receiving port, userpci's for the whole section.
    let rx_vfio = support::context(ctx)?;
    let rx_fn = Arc::new(support::open(ctx, &rx_vfio, IGB_A)?);
    let rx_dev = net::bring_up(&rx_fn, userpci_igb::MAX_RING_SIZE)?;
    let rx_mac = rx_dev.mac_address();
    let receiver = net::Receiver::default();
    let (outcome, received) = std::thread::scope(|s| {
        let polling = s.spawn(|| receiver.run(&rx_dev, RECEIVER_CPU));
        let outcome = net_runs(ctx, duration, &receiver, rx_mac);
        receiver.stop();
        let received = polling
            .join()
            .unwrap_or_else(|_| Err(Failure("the receiver thread panicked".into())));
        (outcome, received)
    });
    received?;
    let rx_stats = rx_dev.stats();
    let mut v = outcome?;
    v["receiver_device_counters"] = json!({
        "rx_packets": rx_stats.rx_packets,
        "rx_missed": rx_stats.rx_missed,
        "rx_no_buffer": rx_stats.rx_no_buffer,
    });
    Ok(v)
}

/// The receiver's count once the frames still on their way arrived.
fn settled_count(receiver: &net::Receiver) -> u64 {
    std::thread::sleep(RX_SETTLE);
    receiver.count()
}

fn net_runs(
    ctx: &Ctx,
    duration: Duration,
    receiver: &net::Receiver,
    rx_mac: [u8; 6],
) -> Result<Value, Failure> {
    // userpci's sender.
    let userpci = {
        let vfio = support::context(ctx)?;
        let f = Arc::new(support::open(ctx, &vfio, IGB_B)?);
        let dev = net::bring_up(&f, 256)?;
        let frame = net::frame(FRAME_BYTES, rx_mac, dev.mac_address());
        let stop = AtomicBool::new(false);
        let before = dev.stats();
        let rx_before = receiver.count();
        let (sent, (window_frames, rx_pps)) = std::thread::scope(|s| {
            let sender = s.spawn(|| net::send_until(&dev, MEASURE_CPU, &frame, &stop));
            phase("userpci_igb_tx");
            let rate = net::rx_rate(receiver, NET_WARMUP, duration);
            stop.store(true, Ordering::Relaxed);
            phase("between");
            let sent = sender
                .join()
                .unwrap_or_else(|_| Err(Failure("the sender thread panicked".into())));
            (sent, rate)
        });
        let (sent, send_secs, tail_writes) = sent?;
        let received = settled_count(receiver) - rx_before;
        let after = dev.stats();
        println!("bench: userpci igb sender: {rx_pps:.0} frames/s received");
        drop(dev);
        json!({
            "sent": sent,
            "tx_pps": sent as f64 / send_secs,
            "device_tx_packets": after.tx_packets.saturating_sub(before.tx_packets),
            "rx_window_frames": window_frames,
            "rx_pps": rx_pps,
            "received": received,
            "not_received": sent.saturating_sub(received),
            "tx_tail_writes_per_frame": tail_writes as f64 / sent.max(1) as f64,
        })
    };
    // The kernel's sender: igb + pktgen, on the same function.
    kernel::bind_kernel_driver(IGB_B, "igb")?;
    let ifname = kernel::bring_up_interface(IGB_B)?;
    let mut kernel_runs = Map::new();
    for (name, burst) in [("pktgen_burst1", 1), ("pktgen_burst32", PKTGEN_BURST)] {
        let pg = kernel::Pktgen::configure(&ifname, FRAME_BYTES, rx_mac, burst, 0)?;
        let rx_before = receiver.count();
        let irqs_before = kernel::interrupts_named(&ifname);
        phase(&format!("kernel_{name}"));
        let running = pg.start();
        let (window_frames, rx_pps) = net::rx_rate(receiver, NET_WARMUP, duration);
        let (sent, usec) = pg.stop(running)?;
        phase("between");
        let interrupts = kernel::interrupts_named(&ifname).saturating_sub(irqs_before);
        let received = settled_count(receiver) - rx_before;
        println!("bench: kernel igb {name}: {rx_pps:.0} frames/s received");
        kernel_runs.insert(
            name.to_string(),
            json!({
                "burst": burst,
                "sent": sent,
                "tx_pps": sent as f64 / (usec.max(1) as f64 / 1e6),
                "rx_window_frames": window_frames,
                "rx_pps": rx_pps,
                "received": received,
                "not_received": sent.saturating_sub(received),
                "interrupts_per_frame": interrupts as f64 / sent.max(1) as f64,
            }),
        );
    }
    Ok(json!({
        "sender": IGB_B.to_string(),
        "receiver": IGB_A.to_string(),
        "frame_bytes": FRAME_BYTES,
        "kernel_interface": ifname,
        "userpci": userpci,
        "kernel": kernel_runs,
    }))
}
