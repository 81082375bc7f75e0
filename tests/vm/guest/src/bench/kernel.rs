//! The kernel's side of the comparison, on the same QEMU device userpci just measured: hand
//! the function from vfio-pci to the kernel's own driver (`nvme`, `igb`), then measure with
//! the kernel's own tools: fio with io_uring on the namespace's block device, the pktgen module
//! on the network interface.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use userpci_framework::pci::PciAddress;

use crate::harness::Failure;

fn sysfs_device(addr: PciAddress) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/devices/{addr}"))
}

/// One write(2) to a sysfs or procfs attribute.
fn write_attr(path: &Path, value: &str) -> Result<(), Failure> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| Failure(format!("writing {value:?} to {}: {e}", path.display())))
}

/// The driver `addr` is bound to now.
fn driver_of(addr: PciAddress) -> Option<String> {
    fs::read_link(sysfs_device(addr).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Moves `addr` from vfio-pci to the kernel driver `driver` (clears `driver_override`,
/// unbinds, binds through the driver's own `bind` file rather than `drivers_probe`, which
/// Debian's 6.12 answers with EINVAL in this topology; tests/vm/README.md). The userpci side
/// must have closed the function: vfio-pci's unbind waits for that.
pub fn bind_kernel_driver(addr: PciAddress, driver: &str) -> Result<(), Failure> {
    let dir = sysfs_device(addr);
    write_attr(&dir.join("driver_override"), "\n")?;
    if driver_of(addr).is_some() {
        write_attr(&dir.join("driver/unbind"), &addr.to_string())?;
    }
    write_attr(
        &PathBuf::from(format!("/sys/bus/pci/drivers/{driver}/bind")),
        &addr.to_string(),
    )?;
    match driver_of(addr) {
        Some(now) if now == driver => Ok(()),
        now => Err(Failure(format!(
            "{addr}: bound to {now:?} after binding it to {driver}"
        ))),
    }
}

/// Waits up to `limit` for `find` to return something.
fn wait_for<T>(limit: Duration, mut find: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(found) = find() {
            return Some(found);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first entry of `dir` whose name satisfies `pred`.
fn entry_named(dir: &Path, pred: impl Fn(&str) -> bool) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| pred(n))
}

/// The kernel's NVMe block devices (`nvme0n1`; not the hidden multipath paths `nvme0c0n1`).
fn nvme_block_devices() -> Vec<String> {
    let Ok(dir) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("nvme")
                .and_then(|rest| rest.split_once('n'))
                .is_some_and(|(c, ns)| {
                    !c.is_empty()
                        && c.bytes().all(|b| b.is_ascii_digit())
                        && !ns.is_empty()
                        && ns.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .collect();
    found.sort();
    found
}

/// The block device of the namespace the kernel found on `addr`, the only NVMe controller
/// the kernel drives (every other one is on vfio-pci; checked before the bind).
pub fn nvme_block_device(addr: PciAddress) -> Result<String, Failure> {
    wait_for(Duration::from_secs(30), || {
        let devs = nvme_block_devices();
        match devs.as_slice() {
            [one] if Path::new(&format!("/dev/{one}")).exists() => Some(one.clone()),
            _ => None,
        }
    })
    .ok_or_else(|| {
        Failure(format!(
            "{addr}: not exactly one nvme block device within 30 s (have {:?})",
            nvme_block_devices()
        ))
    })
}

/// Fails when the kernel already drives an NVMe namespace (the bench must know which one is
/// the controller it hands over).
pub fn no_kernel_nvme() -> Result<(), Failure> {
    let devs = nvme_block_devices();
    if devs.is_empty() {
        Ok(())
    } else {
        Err(Failure(format!(
            "the kernel drives NVMe namespaces {devs:?} before the bench hands it one"
        )))
    }
}

/// Queue facts of the block device that bear on polling (`io_poll` 1: the driver has poll
/// queues, which `--hipri` needs), and the IOMMU domain type of the function `addr`.
pub fn queue_facts(dev: &str, addr: PciAddress) -> Value {
    let read = |attr: &str| {
        fs::read_to_string(format!("/sys/block/{dev}/queue/{attr}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unreadable: {e}"))
    };
    json!({
        "io_poll": read("io_poll"),
        // DMA-FQ: per-I/O IOMMU mappings with batched (lazy) IOTLB invalidation.
        "iommu_domain": fs::read_to_string(sysfs_device(addr).join("iommu_group/type"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unreadable: {e}")),
        "poll_queues_param": module_param("nvme", "poll_queues"),
        // Y: nvme0n1 is the native-multipath head (bio-based) over the controller's path.
        "multipath_param": module_param("nvme_core", "multipath"),
    })
}

fn module_param(module: &str, param: &str) -> String {
    fs::read_to_string(format!("/sys/module/{module}/parameters/{param}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// A pktgen command, as `echo` writes it: pktgen drops the last byte of a write, which must
/// be the newline (`pgctrl` answers EINVAL to `stop` without one).
fn pktgen_write(path: &Path, command: &str) -> Result<(), Failure> {
    write_attr(path, &format!("{command}\n"))
}

/// fio on `/dev/<dev>`: 4 KiB random reads, io_uring, O_DIRECT, `qd` deep, `seconds` long,
/// with `--hipri` (completion polling on the driver's poll queue) when `hipri`.
pub fn fio_randread(dev: &str, qd: usize, seconds: f64, hipri: bool) -> Result<Value, Failure> {
    let mut cmd = Command::new("/usr/bin/fio");
    cmd.args([
        "--name=randread",
        &format!("--filename=/dev/{dev}"),
        "--ioengine=io_uring",
        "--direct=1",
        "--rw=randread",
        "--bs=4k",
        &format!("--iodepth={qd}"),
        "--numjobs=1",
        "--cpus_allowed=0",
        "--time_based",
        &format!("--runtime={seconds}s"),
        "--randrepeat=0",
        "--norandommap",
        "--fixedbufs",
        "--registerfiles",
        "--output-format=json",
    ]);
    if hipri {
        cmd.arg("--hipri");
    }
    let irqs_before = interrupts_of(dev);
    let out = cmd
        .output()
        .map_err(|e| Failure(format!("running fio: {e}")))?;
    let interrupts = interrupts_of(dev).saturating_sub(irqs_before);
    if !out.status.success() {
        return Err(Failure(format!(
            "fio (qd {qd}, hipri {hipri}) exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before the JSON object.
    let json_start = text.find('{').unwrap_or(0);
    let report: Value = serde_json::from_str(&text[json_start..])
        .map_err(|e| Failure(format!("fio's JSON: {e}")))?;
    let read = &report["jobs"][0]["read"];
    let iops = read["iops"].as_f64().ok_or_else(|| {
        Failure(format!(
            "fio's JSON has no jobs[0].read.iops: {}",
            text.trim()
        ))
    })?;
    Ok(json!({
        "iops": iops,
        "ios": read["total_ios"],
        "errors": report["jobs"][0]["error"],
        "seconds": read["runtime"].as_f64().unwrap_or(0.0) / 1e3,
        "lat_mean_us": read["lat_ns"]["mean"].as_f64().unwrap_or(0.0) / 1e3,
        "interrupts_per_io": interrupts as f64 / read["total_ios"].as_f64().unwrap_or(1.0).max(1.0),
        "usr_cpu": report["jobs"][0]["usr_cpu"],
        "sys_cpu": report["jobs"][0]["sys_cpu"],
    }))
}

/// Interrupts taken so far by the queues of the controller behind `/dev/<dev>` (the lines of
/// `/proc/interrupts` named `nvme<N>q<Q>`).
fn interrupts_of(dev: &str) -> u64 {
    let ctrl = dev.rsplit_once('n').map_or(dev, |(ctrl, _)| ctrl);
    interrupts_named(&format!("{ctrl}q"))
}

/// Interrupts taken so far, every CPU's column, by the lines of `/proc/interrupts` whose name
/// starts with `prefix`.
pub fn interrupts_named(prefix: &str) -> u64 {
    let Ok(text) = fs::read_to_string("/proc/interrupts") else {
        return 0;
    };
    text.lines()
        .filter(|l| {
            l.split_whitespace()
                .last()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map_while(|w| w.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// The network interface the kernel's driver made for `addr`, up with its link.
pub fn bring_up_interface(addr: PciAddress) -> Result<String, Failure> {
    let net_dir = sysfs_device(addr).join("net");
    let ifname = wait_for(Duration::from_secs(20), || entry_named(&net_dir, |_| true))
        .ok_or_else(|| Failure(format!("{addr}: no network interface within 20 s")))?;
    let status = Command::new("ip")
        .args(["link", "set", "dev", &ifname, "up"])
        .status()
        .map_err(|e| Failure(format!("ip link set {ifname} up: {e}")))?;
    if !status.success() {
        return Err(Failure(format!("ip link set {ifname} up: {status}")));
    }
    let carrier = format!("/sys/class/net/{ifname}/carrier");
    wait_for(Duration::from_secs(20), || {
        (fs::read_to_string(&carrier).ok()?.trim() == "1").then_some(())
    })
    .ok_or_else(|| Failure(format!("{ifname}: no carrier within 20 s")))?;
    Ok(ifname)
}

/// The kernel's pktgen on `ifname`: `size`-byte frames (without FCS) to `dst_mac`, from
/// kernel thread 0 (CPU 0), in bursts of `burst` (xmit_more) with each skb sent `clone` times.
pub struct Pktgen {
    ifname: String,
}

const PGCTRL: &str = "/proc/net/pktgen/pgctrl";

impl Pktgen {
    pub fn configure(
        ifname: &str,
        size: usize,
        dst_mac: [u8; 6],
        burst: u32,
        clone: u32,
    ) -> Result<Pktgen, Failure> {
        let thread = Path::new("/proc/net/pktgen/kpktgend_0");
        if !thread.exists() {
            return Err(Failure(
                "no /proc/net/pktgen/kpktgend_0: is the pktgen module loaded?".into(),
            ));
        }
        pktgen_write(thread, "rem_device_all")?;
        pktgen_write(thread, &format!("add_device {ifname}"))?;
        let dev = PathBuf::from(format!("/proc/net/pktgen/{ifname}"));
        let mac = dst_mac.map(|b| format!("{b:02x}")).join(":");
        for setting in [
            "count 0".to_string(),
            format!("pkt_size {size}"),
            format!("min_pkt_size {size}"),
            format!("max_pkt_size {size}"),
            format!("dst_mac {mac}"),
            "dst 10.0.0.2".to_string(),
            "src_min 10.0.0.1".to_string(),
            "src_max 10.0.0.1".to_string(),
            "udp_src_min 42".to_string(),
            "udp_src_max 42".to_string(),
            "udp_dst_min 1337".to_string(),
            "udp_dst_max 1337".to_string(),
            "delay 0".to_string(),
            format!("burst {burst}"),
            format!("clone_skb {clone}"),
        ] {
            pktgen_write(&dev, &setting)?;
        }
        Ok(Pktgen {
            ifname: ifname.to_string(),
        })
    }

    /// Starts sending on a thread of its own (the `start` write blocks until `stop`).
    pub fn start(&self) -> std::thread::JoinHandle<Result<(), Failure>> {
        std::thread::spawn(|| pktgen_write(Path::new(PGCTRL), "start"))
    }

    /// Stops every pktgen thread; returns (packets sent, microseconds) from its result line.
    pub fn stop(
        &self,
        running: std::thread::JoinHandle<Result<(), Failure>>,
    ) -> Result<(u64, u64), Failure> {
        pktgen_write(Path::new(PGCTRL), "stop")?;
        running
            .join()
            .map_err(|_| Failure("the pktgen start thread panicked".into()))??;
        let text = fs::read_to_string(format!("/proc/net/pktgen/{}", self.ifname))
            .map_err(|e| Failure(format!("reading pktgen's result: {e}")))?;
        parse_result(&text)
            .ok_or_else(|| Failure(format!("no 'Result: OK:' in pktgen's report: {text}")))
    }
}

/// From pktgen's `Result: OK: 4001234(c3999000+d2234) usec, 123456 (60byte,0frags)`: the
/// packets and the microseconds.
fn parse_result(text: &str) -> Option<(u64, u64)> {
    let rest = text.split("Result: OK:").nth(1)?.trim_start();
    let usec: u64 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let after = rest.split("usec,").nth(1)?.trim_start();
    let packets: u64 = after.split_whitespace().next()?.parse().ok()?;
    Some((packets, usec))
}
