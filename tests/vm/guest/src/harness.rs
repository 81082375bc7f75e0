//! The test runner: modes, the test table's entry type, the per-test context, and the output
//! format that `tests/vm/run.sh` parses.
//!
//! Output contract (one line each, parsed by the host; keep it stable):
//!
//! ```text
//! vmtest <name> ... ok
//! vmtest <name> ... FAILED: <reason on one line>
//! vmtest <name> ... ignored (<why>)                 not counted
//! vmtest summary: mode=<mode> <P> passed, <F> failed, <I> ignored
//! ```
//!
//! Anything else a test prints (notes, kernel messages) is free-form and ignored by the parser.

use std::fmt;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use userpci_framework::pci::{PciAddress, PciFunctionInfo, SysfsPci};

/// Which VFIO interface the guest kernel offers and the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The built kernel: `/dev/iommu` + `/dev/vfio/devices/vfioN` (iommufd, cdev).
    Cdev,
    /// Debian's stock kernel: `/dev/vfio/vfio` container + `/dev/vfio/<group>` (legacy).
    Group,
}

impl Mode {
    /// Parses the command-line spelling (`cdev`, `group`).
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "cdev" => Some(Mode::Cdev),
            "group" => Some(Mode::Group),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Cdev => "cdev",
            Mode::Group => "group",
        })
    }
}

/// The modes a test runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modes {
    /// Both kernels.
    Both,
    /// Only the built kernel with iommufd and VFIO cdev.
    CdevOnly,
    /// Only the legacy group/container interface (Debian's stock kernel).
    GroupOnly,
}

impl Modes {
    fn includes(self, mode: Mode) -> bool {
        match self {
            Modes::Both => true,
            Modes::CdevOnly => mode == Mode::Cdev,
            Modes::GroupOnly => mode == Mode::Group,
        }
    }
}

/// A test failure: one line of text saying what was expected and what was found.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any error converts into a failure, so tests can use `?` on I/O, framework and ioctl errors.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// What a test returns.
pub type TestResult = Result<(), Failure>;

/// Fails the test with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::harness::Failure(format!($($arg)*)))
    };
}

/// Fails the test with a formatted message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}

/// A line of detail under the current test (free-form; the host does not parse it).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        println!("    note: {}", format!($($arg)*))
    };
}

/// One entry of the test table.
pub struct Test {
    /// Unique name, `[a-z0-9_]+` (it is a word in the output line).
    pub name: &'static str,
    /// The modes it runs in; in the others it is reported as ignored.
    pub modes: Modes,
    /// The test itself.
    pub run: fn(&Ctx) -> TestResult,
}

/// A helper: a function the test binary runs instead of the tests when started as
/// `userpci-vmtest --helper <name> [args...]`, for tests that need a second process (for
/// example one that must be refused a device the first one holds). Start it with
/// [`spawn_helper`]; its exit status is the function's return value.
pub struct Helper {
    /// Name on the command line.
    pub name: &'static str,
    /// Runs with the arguments after the name; returns the process's exit status.
    pub run: fn(&[String]) -> u8,
}

/// Starts this binary as `--helper <name> <args>`, with stdout and stderr inherited (its lines
/// land on the console; they must not start with `vmtest `).
pub fn spawn_helper(name: &str, args: &[&str]) -> std::io::Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe()?)
        .arg("--helper")
        .arg(name)
        .args(args)
        .spawn()
}

/// Like [`spawn_helper`], with stdin and stdout piped so the test can talk to the helper (it
/// reports on stdout and waits for stdin to close, say); stderr is inherited.
pub fn spawn_helper_piped(name: &str, args: &[&str]) -> std::io::Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe()?)
        .arg("--helper")
        .arg(name)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
}

/// A table entry, so that adding a test is one line: `test("name", Modes::Both, module::function)`.
pub const fn test(name: &'static str, modes: Modes, run: fn(&Ctx) -> TestResult) -> Test {
    Test { name, modes, run }
}

/// The QEMU topology that `tests/vm/run.sh` builds (see its `qemu_args`): root port rp1 with a
/// two-function NVMe slot (serials A and B), root port rp2 with one NVMe (serial C), root port
/// rp3 with a heterogeneous slot (igb + NVMe serial D), root port rp4 with a second igb; both
/// igbs on one QEMU hub.
pub const SLOT1_FN0: PciAddress = PciAddress {
    domain: 0,
    bus: 1,
    device: 0,
    function: 0,
};
/// Function 1 of the two-function slot (serial B).
pub const SLOT1_FN1: PciAddress = PciAddress {
    domain: 0,
    bus: 1,
    device: 0,
    function: 1,
};
/// The NVMe behind the second root port (serial C).
pub const SLOT2_FN0: PciAddress = PciAddress {
    domain: 0,
    bus: 2,
    device: 0,
    function: 0,
};
/// Function 0 of the heterogeneous slot behind root port rp3: an NVMe controller (serial D).
/// NVMe at function 0, not the igb: QEMU's igb has an ARI capability whose next-function
/// number is 0, and with ARI forwarding on the root port the kernel follows that pointer from
/// function 0, so a function 1 behind an igb at function 0 is never enumerated.
pub const HET_NVME: PciAddress = PciAddress {
    domain: 0,
    bus: 3,
    device: 0,
    function: 0,
};
/// Function 1 of the heterogeneous slot: an 82576 (QEMU's `igb`), in HET_NVME's reset group.
pub const IGB_A: PciAddress = PciAddress {
    domain: 0,
    bus: 3,
    device: 0,
    function: 1,
};
/// The second 82576, alone behind root port rp4, on the same QEMU hub as IGB_A.
pub const IGB_B: PciAddress = PciAddress {
    domain: 0,
    bus: 4,
    device: 0,
    function: 0,
};
/// Every NVMe function of the topology, in address order.
pub const NVME_FUNCTIONS: [PciAddress; 4] = [SLOT1_FN0, SLOT1_FN1, SLOT2_FN0, HET_NVME];
/// Every 82576 function of the topology, in address order.
pub const IGB_FUNCTIONS: [PciAddress; 2] = [IGB_A, IGB_B];

/// What every test gets.
pub struct Ctx {
    /// The mode this run is in.
    pub mode: Mode,
    /// The guest's `/sys`.
    pub sysfs: SysfsPci,
}

impl Ctx {
    /// The sysfs view of one function of the topology.
    pub fn function(&self, addr: PciAddress) -> Result<PciFunctionInfo, Failure> {
        self.sysfs
            .function(addr)
            .map_err(|e| Failure(format!("{addr}: {e}")))
    }

    /// The IOMMU group of a function (it must have one: the guest runs with `intel_iommu=on`).
    pub fn iommu_group(&self, addr: PciAddress) -> Result<u32, Failure> {
        self.function(addr)?
            .iommu_group
            .ok_or_else(|| Failure(format!("{addr} has no IOMMU group (is the IOMMU on?)")))
    }

    /// The VFIO cdev name (`vfio0`) of a function bound to vfio-pci, in cdev mode.
    pub fn vfio_dev(&self, addr: PciAddress) -> Result<String, Failure> {
        self.function(addr)?.vfio_dev.ok_or_else(|| {
            Failure(format!(
                "{addr} has no vfio-dev/ entry (not bound to vfio-pci, or no VFIO_DEVICE_CDEV)"
            ))
        })
    }
}

/// Counts of one run.
#[derive(Default, Debug)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
}

/// Runs every test of `tests` whose name contains one of `filters` (all when empty), prints
/// one line per test and the summary line, and returns the counts.
pub fn run_all(ctx: &Ctx, tests: &[Test], filters: &[String]) -> Summary {
    let mut summary = Summary::default();
    for test in tests {
        if !filters.is_empty() && !filters.iter().any(|f| test.name.contains(f.as_str())) {
            continue;
        }
        if !test.modes.includes(ctx.mode) {
            emit(&format!(
                "vmtest {} ... ignored (not in {} mode)",
                test.name, ctx.mode
            ));
            summary.ignored += 1;
            continue;
        }
        let start = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (test.run)(ctx)));
        let elapsed = start.elapsed();
        let line = match outcome {
            Ok(Ok(())) => {
                summary.passed += 1;
                format!("vmtest {} ... ok", test.name)
            }
            Ok(Err(failure)) => {
                summary.failed += 1;
                format!("vmtest {} ... FAILED: {}", test.name, one_line(&failure.0))
            }
            Err(payload) => {
                summary.failed += 1;
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".to_string());
                format!(
                    "vmtest {} ... FAILED: panicked: {}",
                    test.name,
                    one_line(&msg)
                )
            }
        };
        println!("    time: {} ms", elapsed.as_millis());
        emit(&line);
    }
    emit(&format!(
        "vmtest summary: mode={} {} passed, {} failed, {} ignored",
        ctx.mode, summary.passed, summary.failed, summary.ignored
    ));
    summary
}

/// Writes a result line with one `write` call, so that kernel messages on the same serial
/// console are less likely to land inside it (the guest's /init also lowers the console log
/// level while tests run).
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    // A console that cannot be written leaves nothing to report to; ignore the error.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// The message on one line (newlines would break the host's parser).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " | ")
}
