//! What the backend, NVMe and reset tests share: opening functions through the framework's
//! VFIO backend in the run's mode, block patterns, polling with a wall-clock limit, the guest
//! kernel's log, and sysfs binding.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout};
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::{
    ModeChoice, VfioContext, VfioFunction, VfioMode, VfioOptions,
};
use userpci_framework::device::PciFunction;
use userpci_framework::pci::PciAddress;
use userpci_nvme::{Controller, IoBuffer, IoCompletion, IoQueuePair};

use crate::harness::{Ctx, Failure, Mode};

/// The size of every namespace: run.sh's `truncate -s 128M` images.
pub const IMAGE_BYTES: u64 = 128 << 20;

/// The QEMU `serial=` of each controller (run.sh's `qemu_args`), by address.
pub const SERIALS: [(PciAddress, &str); 3] = [
    (crate::harness::SLOT1_FN0, "A"),
    (crate::harness::SLOT1_FN1, "B"),
    (crate::harness::SLOT2_FN0, "C"),
];

/// The framework's mode for this run: iommufd + cdev in `cdev` mode, the group container in
/// `group` mode. Forced rather than `Auto`, so a broken iommufd cannot silently fall back.
pub fn mode_choice(ctx: &Ctx) -> ModeChoice {
    match ctx.mode {
        Mode::Cdev => ModeChoice::Iommufd,
        Mode::Group => ModeChoice::Group,
    }
}

/// A fresh VFIO context in this run's mode.
pub fn context(ctx: &Ctx) -> Result<VfioContext, Failure> {
    VfioContext::new(VfioOptions::new().mode(mode_choice(ctx)))
        .map_err(|e| Failure(format!("VfioContext::new: {e}")))
}

/// Opens `addr` through `vfio` and checks the mode the context ended up in.
pub fn open(ctx: &Ctx, vfio: &VfioContext, addr: PciAddress) -> Result<VfioFunction, Failure> {
    let t0 = Instant::now();
    let function = vfio
        .open(addr)
        .map_err(|e| Failure(format!("open {addr}: {e}")))?;
    let expected = match ctx.mode {
        Mode::Cdev => VfioMode::Iommufd,
        Mode::Group => VfioMode::Group,
    };
    if function.mode() != expected {
        return Err(Failure(format!(
            "{addr} opened in {} mode, expected {expected}",
            function.mode()
        )));
    }
    note_time(&format!("open {addr}"), t0.elapsed());
    Ok(function)
}

/// Prints how long something took (free-form note).
pub fn note_time(what: &str, took: Duration) {
    crate::note!("{what}: {:.1} ms", took.as_secs_f64() * 1e3);
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The 64-bit word `index` of block `lba` written with (`tag`, `generation`): every block of
/// every controller and every write generation differs, so a block landing at the wrong LBA,
/// on the wrong controller or from an older write is caught.
fn block_seed(tag: u64, generation: u64, lba: u64) -> u64 {
    mix(tag << 56 ^ generation << 40 ^ lba)
}

/// Fills `buf` (whole blocks of `block` bytes, starting at `first_lba`) with the pattern.
pub fn fill_blocks(buf: &mut [u8], block: usize, first_lba: u64, tag: u64, generation: u64) {
    for (b, chunk) in buf.chunks_exact_mut(block).enumerate() {
        let seed = block_seed(tag, generation, first_lba + b as u64);
        for (i, word) in chunk.chunks_exact_mut(8).enumerate() {
            let value = seed ^ (i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93);
            word.copy_from_slice(&value.to_le_bytes());
        }
    }
}

/// The first block of `buf` that does not hold the pattern, as (LBA, byte offset in buffer).
pub fn check_blocks(
    buf: &[u8],
    block: usize,
    first_lba: u64,
    tag: u64,
    generation: u64,
) -> Option<(u64, usize)> {
    for (b, chunk) in buf.chunks_exact(block).enumerate() {
        let lba = first_lba + b as u64;
        let seed = block_seed(tag, generation, lba);
        for (i, word) in chunk.chunks_exact(8).enumerate() {
            let value = seed ^ (i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93);
            if word != value.to_le_bytes() {
                return Some((lba, b * block + i * 8));
            }
        }
    }
    None
}

/// Polls `qp` until `count` requests completed or `limit` of wall-clock time passed.
pub fn drain<F: PciFunction, T, B: IoBuffer>(
    qp: &mut IoQueuePair<F, T, B>,
    count: usize,
    limit: Duration,
) -> Result<Vec<IoCompletion<T, B>>, Failure> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        qp.process_completions(0, &mut |c| out.push(c));
        if out.len() < count && start.elapsed() > limit {
            return Err(Failure(format!(
                "{} of {count} requests on {} queue {} completed within {limit:?} ({} in flight)",
                out.len(),
                qp.device(),
                qp.qid(),
                qp.in_flight()
            )));
        }
    }
    Ok(out)
}

/// Leaves a controller as the next test wants it: queue pairs deleted (drop them first) and
/// `CC.EN` = 0 (`Controller::quiesce` waits for `CSTS.RDY` = 0).
pub fn disable<F: PciFunction>(ctrl: &Controller<F>) -> Result<(), Failure> {
    ctrl.quiesce()
        .map_err(|e| Failure(format!("{}: disabling the controller: {e}", ctrl.device())))
}

/// The guest kernel's log (`dmesg`), one entry per line.
pub fn kernel_log() -> Vec<String> {
    match std::process::Command::new("dmesg").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The lines the kernel logged since `before` (a [`kernel_log`] snapshot).
pub fn kernel_log_since(before: &[String]) -> Vec<String> {
    let now = kernel_log();
    // The ring buffer is far from full in these short runs, so the old lines are a prefix.
    now.into_iter().skip(before.len()).collect()
}

/// The driver `addr` is bound to now (`None`: no driver).
pub fn driver_of(ctx: &Ctx, addr: PciAddress) -> Result<Option<String>, Failure> {
    Ok(ctx.function(addr)?.driver)
}

/// Unbinds `addr` from vfio-pci leaving it with no driver (`driver_override` still says
/// vfio-pci, so no other driver claims it).
pub fn unbind_to_no_driver(ctx: &Ctx, addr: PciAddress) -> Result<(), Failure> {
    std::fs::write("/sys/bus/pci/drivers/vfio-pci/unbind", addr.to_string())
        .map_err(|e| Failure(format!("unbind {addr} from vfio-pci: {e}")))?;
    let now = driver_of(ctx, addr)?;
    if now.is_some() {
        return Err(Failure(format!(
            "{addr} still bound to {now:?} after unbind"
        )));
    }
    Ok(())
}

/// Binds `addr` back to vfio-pci through the framework's binder, checking it worked.
pub fn rebind_vfio(ctx: &Ctx, addr: PciAddress) -> Result<(), Failure> {
    userpci_framework::backend::vfio::bind_vfio(addr)
        .map_err(|e| Failure(format!("rebinding {addr} to vfio-pci: {e}")))?;
    let now = driver_of(ctx, addr)?;
    if now.as_deref() != Some("vfio-pci") {
        return Err(Failure(format!("{addr} bound to {now:?} after rebinding")));
    }
    Ok(())
}

/// A second process holding a function (the `hold_function` helper): it opened it and waits
/// until its stdin closes.
pub struct HeldElsewhere {
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl HeldElsewhere {
    /// Starts the helper and waits until it says it holds `addr`.
    pub fn start(ctx: &Ctx, addr: PciAddress) -> Result<Self, Failure> {
        let mode = ctx.mode.to_string();
        let bdf = addr.to_string();
        let mut child = crate::harness::spawn_helper_piped("hold_function", &[&mode, &bdf])
            .map_err(|e| Failure(format!("starting the hold_function helper: {e}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| Failure(format!("reading the helper's answer: {e}")))?;
        if line.trim() != "held" {
            let status = child.wait().ok();
            return Err(Failure(format!(
                "the helper could not hold {addr}: said {:?}, exit {status:?}",
                line.trim()
            )));
        }
        Ok(HeldElsewhere {
            child,
            _stdout: reader,
        })
    }

    /// Tells the helper to let go and waits for it.
    pub fn release(mut self) -> Result<(), Failure> {
        drop(self.child.stdin.take());
        let status = self
            .child
            .wait()
            .map_err(|e| Failure(format!("waiting for the helper: {e}")))?;
        if !status.success() {
            return Err(Failure(format!(
                "the hold_function helper exited with {status}"
            )));
        }
        Ok(())
    }
}

impl Drop for HeldElsewhere {
    fn drop(&mut self) {
        // On an early return: let go, and do not leave a zombie holding the device.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Helper `hold_function <cdev|group> <bdf>`: opens the function through the framework's
/// backend in that mode, prints `held`, and keeps it open until stdin reaches EOF. Exit 0 after
/// a hold, 2 if it could not open the function (the reason on stderr and stdout).
pub fn helper_hold_function(args: &[String]) -> u8 {
    let (Some(mode), Some(bdf)) = (args.first(), args.get(1)) else {
        eprintln!("hold_function: usage: hold_function <cdev|group> <bdf>");
        return 2;
    };
    let choice = match mode.as_str() {
        "cdev" => ModeChoice::Iommufd,
        _ => ModeChoice::Group,
    };
    let held = bdf
        .parse::<PciAddress>()
        .map_err(|e| e.to_string())
        .and_then(|addr| {
            let vfio =
                VfioContext::new(VfioOptions::new().mode(choice)).map_err(|e| e.to_string())?;
            let function = vfio.open(addr).map_err(|e| e.to_string())?;
            Ok((vfio, function))
        });
    let mut out = std::io::stdout().lock();
    match held {
        Ok(held) => {
            let _ = writeln!(out, "held");
            let _ = out.flush();
            drop(out);
            // Block until the test closes our stdin.
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            drop(held);
            0
        }
        Err(err) => {
            eprintln!("hold_function: {bdf}: {err}");
            let _ = writeln!(out, "error: {err}");
            2
        }
    }
}
