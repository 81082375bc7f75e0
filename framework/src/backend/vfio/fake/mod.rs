//! [`FakeVfio`]: a [`VfioSys`](super::VfioSys) that plays the kernel's part, for tests.
//!
//! It models what the VFIO uAPI documents and what `drivers/vfio` does, closely enough that the
//! backends' safe code can be tested without a device: containers, groups and their
//! viability, cdev devices bound to an iommufd, IOAS and type1 mappings with their valid
//! ranges, region and IRQ info, config space through `pread`/`pwrite`, BARs that `mmap` to
//! memory the test can inspect, and the hot-reset info and hot reset with the kernel's
//! ownership rules (group ids, or dev ids with `VFIO_PCI_DEVID_OWNED`/`NOT_OWNED`).
//!
//! Every call is recorded as a [`FakeCall`]; [`FakeVfio::fail_next`] makes the next call of an
//! ioctl fail with an errno, and [`FakeVfio::fail_open`] makes opening a path fail.
//! [`FakeVfio::set_hostile`] lets a test rewrite the device replies the backend decodes.
//!
//! The fds it hands out are real (the write end of a pipe, whose inode is unique), so the
//! backends can own and close them; the fake tells a closed fd from a reused number by the
//! inode, which is how it knows that dropping a function closed its device.

mod call;
mod device;
mod hostile;
mod iommu;
mod kernel;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::io::PipeReader;
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vfio_bindings::bindings::vfio;

use crate::dma::IovaRange;
use crate::pci::PciAddress;

pub use call::FakeCall;
pub use hostile::{FakeHostileHook, FakeReply};

/// The offset of region `index` in a vfio-pci device fd (`VFIO_PCI_INDEX_TO_OFFSET`).
pub const fn region_offset(index: u32) -> u64 {
    (index as u64) << 40
}

/// One BAR of a fake function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeBar {
    /// Size in bytes (0: not implemented).
    pub size: u64,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
}

/// A PCI function as the fake kernel knows it.
#[derive(Clone, Debug)]
pub struct FakeFunction {
    /// The function's address.
    pub address: PciAddress,
    /// Its IOMMU group.
    pub group: u32,
    /// Its bound driver: `vfio-pci`, a kernel driver, or none.
    pub driver: Option<String>,
    /// Its VFIO cdev name (`vfio0`), when the kernel offers cdevs.
    pub cdev: Option<String>,
    /// `VFIO_DEVICE_FLAGS_*`.
    pub device_flags: u32,
    /// Config space; its length is the config region's size.
    pub config: Vec<u8>,
    /// BARs 0 to 5.
    pub bars: [FakeBar; 6],
    /// Vector count per IRQ index (INTx, MSI, MSI-X, ERR, REQ); ERR 0 means "not PCIe":
    /// `VFIO_DEVICE_GET_IRQ_INFO` answers EINVAL.
    pub irq_counts: [u32; 5],
    /// The functions a bus or slot reset of this one hits (itself included), in the order the
    /// kernel walks the bus; `None`: no slot or bus reset (ENODEV).
    pub reset_set: Option<Vec<PciAddress>>,
}

/// The first 64 bytes and capabilities of QEMU's NVMe controller: IDs 1b36:0010, class 010802,
/// a 64-bit memory BAR0, MSI-X (65 vectors) at 0x40, PCIe with FLR at 0x80, PM at 0x60.
fn nvme_config() -> Vec<u8> {
    let mut c = vec![0u8; 4096];
    let mut put = |at: usize, bytes: &[u8]| c[at..at + bytes.len()].copy_from_slice(bytes);
    put(0x00, &0x1b36u16.to_le_bytes());
    put(0x02, &0x0010u16.to_le_bytes());
    put(0x06, &0x0010u16.to_le_bytes()); // STATUS: capability list
    put(0x08, &[0x02, 0x02, 0x08, 0x01]); // revision, class 01 08 02
    put(0x10, &0xfe80_0004u32.to_le_bytes()); // BAR0: memory, 64-bit
    put(0x2c, &0x1af4u16.to_le_bytes());
    put(0x2e, &0x1100u16.to_le_bytes());
    put(0x34, &[0x40]);
    put(0x40, &[0x11, 0x80]);
    put(0x42, &64u16.to_le_bytes()); // MSI-X table size - 1
    put(0x44, &0x2000u32.to_le_bytes());
    put(0x48, &0x3000u32.to_le_bytes());
    put(0x60, &[0x01, 0x00]);
    put(0x80, &[0x10, 0x60, 0x02, 0x00]);
    put(0x84, &(1u32 << 28).to_le_bytes()); // DEVCAP: FLR
    c
}

impl FakeFunction {
    /// QEMU's NVMe controller bound to vfio-pci, as measured in the guest: flags PCI|RESET,
    /// 9 regions, 5 IRQ indexes, a 16 KiB mmappable BAR0, 4 KiB config space, 65 MSI-X
    /// vectors, the error and request IRQs; alone in its reset set.
    pub fn nvme(address: PciAddress, group: u32) -> Self {
        let mut bars = [FakeBar::default(); 6];
        bars[0] = FakeBar {
            size: 16 << 10,
            flags: vfio::VFIO_REGION_INFO_FLAG_READ
                | vfio::VFIO_REGION_INFO_FLAG_WRITE
                | vfio::VFIO_REGION_INFO_FLAG_MMAP,
        };
        FakeFunction {
            address,
            group,
            driver: Some("vfio-pci".to_string()),
            cdev: None,
            device_flags: vfio::VFIO_DEVICE_FLAGS_PCI | vfio::VFIO_DEVICE_FLAGS_RESET,
            config: nvme_config(),
            bars,
            irq_counts: [1, 1, 65, 1, 1],
            reset_set: Some(vec![address]),
        }
    }

    /// With a VFIO cdev (`vfio0`).
    pub fn with_cdev(mut self, name: &str) -> Self {
        self.cdev = Some(name.to_string());
        self
    }

    /// Bound to `driver` instead (`None`: no driver).
    pub fn with_driver(mut self, driver: Option<&str>) -> Self {
        self.driver = driver.map(str::to_string);
        self
    }

    /// With this reset set (itself included).
    pub fn with_reset_set(mut self, members: &[PciAddress]) -> Self {
        self.reset_set = Some(members.to_vec());
        self
    }

    fn vfio_bound(&self) -> bool {
        self.driver.as_deref() == Some("vfio-pci")
    }

    fn blocks_viability(&self) -> bool {
        !matches!(
            self.driver.as_deref(),
            None | Some("vfio-pci" | "pci-stub" | "pcieport")
        )
    }
}

/// How a device fd was opened.
#[derive(Clone, Debug)]
enum DeviceVia {
    Group,
    Cdev {
        /// (iommufd, devid) once bound.
        bound: Option<(RawFd, u32)>,
    },
}

#[derive(Clone, Debug)]
enum FdKind {
    Container { groups: Vec<RawFd>, iommu_set: bool },
    Group { id: u32, container: Option<RawFd> },
    Iommufd { ioas: Vec<u32> },
    Device { address: PciAddress, via: DeviceVia },
}

#[derive(Debug)]
struct FdEntry {
    ino: u64,
    kind: FdKind,
}

/// Counters of one fake function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// `VFIO_DEVICE_RESET` calls that reset it.
    pub function_resets: u32,
    /// Hot resets that hit it.
    pub bus_resets: u32,
}

#[derive(Debug)]
struct State {
    functions: BTreeMap<PciAddress, FakeFunction>,
    stats: BTreeMap<PciAddress, FakeStats>,
    /// Registered eventfd count per (function, IRQ index).
    irqs: BTreeMap<(PciAddress, u32), u32>,
    bar_memory: HashMap<(PciAddress, u8), Arc<[AtomicU64]>>,
    mmaps: HashMap<usize, (PciAddress, u8)>,
    fds: HashMap<RawFd, FdEntry>,
    pipes: Vec<PipeReader>,
    next_object: u32,
    calls: Vec<FakeCall>,
    failures: Vec<(&'static str, i32)>,
    open_failures: Vec<(String, i32)>,
    api_version: i32,
    type1v2: bool,
    type1_iova_cap: bool,
    iova_ranges: Vec<IovaRange>,
    memlock: Option<u64>,
    /// Type1 mappings: iova -> (size, flags).
    dma: BTreeMap<u64, (u64, u32)>,
    /// IOAS mappings: (ioas, iova) -> (length, flags).
    ioas_maps: BTreeMap<(u32, u64), (u64, u32)>,
    /// Replaces answers (fuzzing); see `hostile.rs`.
    hostile: hostile::HostileSlot,
}

/// A scripted VFIO kernel. See the [module docs](self).
#[derive(Debug)]
pub struct FakeVfio {
    state: Mutex<State>,
}

impl FakeVfio {
    /// A kernel with no functions, VFIO API 0, type1 v2, and the IOVA ranges of an x86 VT-d
    /// domain (everything below 48 bits except the MSI window).
    pub fn new() -> Arc<Self> {
        Arc::new(FakeVfio {
            state: Mutex::new(State {
                functions: BTreeMap::new(),
                stats: BTreeMap::new(),
                irqs: BTreeMap::new(),
                bar_memory: HashMap::new(),
                mmaps: HashMap::new(),
                fds: HashMap::new(),
                pipes: Vec::new(),
                next_object: 1,
                calls: Vec::new(),
                failures: Vec::new(),
                open_failures: Vec::new(),
                api_version: vfio::VFIO_API_VERSION as i32,
                type1v2: true,
                type1_iova_cap: true,
                iova_ranges: vec![
                    IovaRange::new(0, 0xfedf_ffff),
                    IovaRange::new(0xfef0_0000, 0xffff_ffff_ffff),
                ],
                memlock: Some(8 << 20),
                dma: BTreeMap::new(),
                ioas_maps: BTreeMap::new(),
                hostile: hostile::HostileSlot::default(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake VFIO lock poisoned")
    }

    /// Sets (or with `None` removes) the hostile hook, which may replace the fake's answers
    /// (see `hostile.rs`).
    pub fn set_hostile(&self, hook: Option<FakeHostileHook>) {
        self.lock().hostile = hostile::HostileSlot::new(hook);
    }

    /// Adds (or replaces) a function.
    pub fn add_function(&self, function: FakeFunction) {
        let mut state = self.lock();
        state.stats.entry(function.address).or_default();
        state.functions.insert(function.address, function);
    }

    /// Changes a function in place.
    pub fn update_function(&self, address: PciAddress, f: impl FnOnce(&mut FakeFunction)) {
        if let Some(function) = self.lock().functions.get_mut(&address) {
            f(function);
        }
    }

    /// The answer of `VFIO_GET_API_VERSION`.
    pub fn set_api_version(&self, version: i32) {
        self.lock().api_version = version;
    }

    /// Whether `VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)` says yes.
    pub fn set_type1v2(&self, supported: bool) {
        self.lock().type1v2 = supported;
    }

    /// Whether type1's info carries the IOVA range capability (kernels from 5.4 do).
    pub fn set_type1_iova_cap(&self, present: bool) {
        self.lock().type1_iova_cap = present;
    }

    /// The valid IOVA ranges, for both the IOAS and the type1 container.
    pub fn set_iova_ranges(&self, ranges: Vec<IovaRange>) {
        self.lock().iova_ranges = ranges;
    }

    /// The soft RLIMIT_MEMLOCK reported (`None`: unlimited).
    pub fn set_memlock_limit(&self, limit: Option<u64>) {
        self.lock().memlock = limit;
    }

    /// Makes the next call of `name` (as [`FakeCall::name`] spells it) fail with `errno`.
    pub fn fail_next(&self, name: &'static str, errno: i32) {
        self.lock().failures.push((name, errno));
    }

    /// Makes every open of a path ending in `suffix` fail with `errno`.
    pub fn fail_open(&self, suffix: &str, errno: i32) {
        self.lock().open_failures.push((suffix.to_string(), errno));
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// The calls named `name`.
    pub fn calls_named(&self, name: &str) -> Vec<FakeCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.name() == name)
            .cloned()
            .collect()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// A function's counters.
    pub fn stats(&self, address: PciAddress) -> FakeStats {
        self.lock().stats.get(&address).copied().unwrap_or_default()
    }

    /// How many eventfds are registered on a function's IRQ index (0: disabled).
    pub fn irq_eventfds(&self, address: PciAddress, index: u32) -> u32 {
        self.lock()
            .irqs
            .get(&(address, index))
            .copied()
            .unwrap_or(0)
    }

    /// A function's config space as the device holds it.
    pub fn config(&self, address: PciAddress) -> Vec<u8> {
        self.lock()
            .functions
            .get(&address)
            .map(|f| f.config.clone())
            .unwrap_or_default()
    }

    /// Reads the 32-bit register at `offset` of an mmapped BAR.
    pub fn bar_read32(&self, address: PciAddress, bar: u8, offset: usize) -> Option<u32> {
        let memory = self.lock().bar_memory.get(&(address, bar))?.clone();
        let word = memory.get(offset / 8)?.load(Ordering::Relaxed);
        Some((word >> ((offset % 8) * 8)) as u32)
    }

    /// Writes a 64-bit word of an mmapped BAR, as the device would change a register.
    pub fn bar_write64(&self, address: PciAddress, bar: u8, offset: usize, value: u64) {
        let memory = self.lock().bar_memory.get(&(address, bar)).cloned();
        if let Some(word) = memory.as_ref().and_then(|m| m.get(offset / 8)) {
            word.store(value, Ordering::Relaxed);
        }
    }

    /// The number of BAR mappings still mapped.
    pub fn live_mmaps(&self) -> usize {
        self.lock().mmaps.len()
    }

    /// The addresses of functions whose device fd is still open.
    pub fn open_devices(&self) -> Vec<PciAddress> {
        let state = self.lock();
        let mut open: Vec<PciAddress> = state
            .fds
            .iter()
            .filter(|(fd, entry)| alive(**fd, entry))
            .filter_map(|(_, entry)| match &entry.kind {
                FdKind::Device { address, .. } => Some(*address),
                _ => None,
            })
            .collect();
        open.sort();
        open
    }

    /// Type1 mappings still mapped: (iova, size).
    pub fn dma_mappings(&self) -> Vec<(u64, u64)> {
        self.lock().dma.iter().map(|(i, (s, _))| (*i, *s)).collect()
    }

    /// IOAS mappings still mapped: (iova, length).
    pub fn ioas_mappings(&self) -> Vec<(u64, u64)> {
        self.lock()
            .ioas_maps
            .iter()
            .map(|((_, i), (l, _))| (*i, *l))
            .collect()
    }
}

/// True if `fd` is still the file the fake handed out (same inode), not closed or reused.
fn alive(fd: RawFd, entry: &FdEntry) -> bool {
    std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.ino() == entry.ino)
}
