//! The simulated PCI bus: functions with device models, ownership, resets and faults.
//!
//! A [`SimBus`] instantiates a [`Topology`] with one [`DeviceModel`] per function, one IOMMU
//! domain (like one iommufd IOAS or VFIO container per process) and one [`SimClock`].
//! [`SimBus::open`] hands out [`SimFunction`]s, the simulated backend's [`PciFunction`].
//!
//! Resets follow what the kernel does for a VFIO user: `VFIO_DEVICE_RESET` and
//! `VFIO_DEVICE_PCI_HOT_RESET` save the config space, reset, wait until the function answers
//! again (the mandated 100 ms, longer if it is slow), and restore the saved config space,
//! so COMMAND and MSI-X come back as they were just before the reset. Device registers are
//! back at their power-on values. A hot reset is allowed only when every member of the reset
//! group is owned by this process, directly or through an IOMMU group it holds (the rule of
//! `vfio_pci_dev_set_hot_reset`).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::Serialize;

use super::clock::{SimClock, TimerTarget};
use super::config_space::{ConfigAction, ConfigSpace};
use super::iommu::{SimIommu, DEFAULT_IOVA_RANGES};
use super::model::{DeviceModel, ModelContext, ModelRegistry, MsixVectors, ResetKind};
use super::topology::{ResetScope, Topology};
use crate::device::config::{COMMAND_BUS_MASTER, COMMAND_MEMORY, CONFIG_SPACE_SIZE};
use crate::device::{
    EventFd, InterruptVector, Ownership, PciFunction, RegisterIo, ResetGroupMember, ResetMethod,
};
use crate::dma::DmaSpace;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::time::Clock;

/// Wait after an FLR before the function may be accessed (PCIe Base Specification 6.6.2).
pub const FLR_READY_DELAY: Duration = Duration::from_millis(100);
/// How long Linux holds Secondary Bus Reset asserted (`pci_reset_secondary_bus`: 2 ms).
pub const BUS_RESET_ASSERT: Duration = Duration::from_millis(2);
/// Wait after a bus reset before the functions may be accessed (PCIe 6.6.1, 100 ms).
pub const BUS_RESET_READY_DELAY: Duration = Duration::from_millis(100);
/// How long the kernel waits for a function to answer after a reset before giving up
/// (`PCIE_RESET_READY_POLL_MS`).
pub const RESET_READY_LIMIT: Duration = Duration::from_secs(60);
/// How long Linux waits after a bus reset for a link that does not train (a card that was
/// pulled) before it gives up on the whole wait (`PCI_RESET_WAIT`, 1 s, in
/// `pci_bridge_wait_for_secondary_bus`: "Data Link Layer Link Active not set in 1000 msec").
/// [`RESET_READY_LIMIT`] applies only to a function whose link is up but that is not ready.
pub const LINK_TRAIN_LIMIT: Duration = Duration::from_secs(1);

/// A fault injected into a simulated function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFault {
    /// The device stops reacting: register writes and timers are dropped, reads still answer.
    Hang,
    /// Surprise removal: every read returns all ones, writes vanish, no DMA.
    SurpriseRemoval,
    /// The link went down: like surprise removal, but a bus (or slot) reset of the group
    /// brings the function back. An FLR cannot, since it goes through config space.
    LinkDown,
    /// After each reset the function needs this much longer than the mandated wait to answer.
    SlowReady(Duration),
}

/// Who holds a simulated function.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Holder {
    Free,
    ThisProcess,
    Elsewhere(String),
}

/// Counters of one simulated function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FunctionStats {
    /// MMIO reads that reached the model.
    pub mmio_reads: u64,
    /// MMIO writes that reached the model.
    pub mmio_writes: u64,
    /// Accesses dropped (memory decoding off, not ready, removed, hung).
    pub dropped_accesses: u64,
    /// MMIO while Memory Space Enable was clear: on VFIO the BAR mapping is zapped then, and
    /// such an access kills the process with SIGBUS. Drivers must never do it.
    pub mmio_while_memory_disabled: u64,
    /// MSI-X interrupts signalled.
    pub interrupts: u64,
    /// Function-level resets.
    pub function_resets: u64,
    /// Bus or slot resets.
    pub bus_resets: u64,
}

#[derive(Debug, Default)]
struct Faults {
    hang: bool,
    removed: bool,
    link_down: bool,
    slow_ready: Duration,
}

struct FunctionState {
    model: Box<dyn DeviceModel>,
    config: ConfigSpace,
    bar_sizes: [u64; 6],
    msix: MsixVectors,
    holder: Holder,
    faults: Faults,
    stats: FunctionStats,
    /// Until this time (after a reset of a slow function) the function does not answer.
    ready_at: Duration,
}

impl FunctionState {
    /// Removed, or still coming back from a reset: reads return all ones, writes vanish.
    fn unresponsive(&self, now: Duration) -> bool {
        self.faults.removed || self.faults.link_down || now < self.ready_at
    }
}

struct FunctionCell {
    address: PciAddress,
    iommu_group: u32,
    reset_methods: Vec<ResetMethod>,
    state: Mutex<FunctionState>,
}

/// An emulated PCI bus.
pub struct SimBus {
    topology: Topology,
    clock: Arc<SimClock>,
    iommu: Arc<SimIommu>,
    space: Arc<DmaSpace>,
    cells: Vec<FunctionCell>,
}

impl fmt::Debug for SimBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBus")
            .field(
                "functions",
                &self.cells.iter().map(|c| c.address).collect::<Vec<_>>(),
            )
            .field("clock", &self.clock)
            .finish()
    }
}

impl SimBus {
    /// Instantiates `topology`, building each function's model from `registry`.
    pub fn new(topology: Topology, registry: &ModelRegistry) -> Result<Arc<Self>> {
        let clock = SimClock::new();
        let iommu = Arc::new(SimIommu::new(DEFAULT_IOVA_RANGES.to_vec())?);
        let space = DmaSpace::new(iommu.clone())?;
        let mut cells = Vec::with_capacity(topology.functions().len());
        for node in topology.functions() {
            let spec = &node.spec;
            let model = registry.build(node.address, &spec.model, &spec.params)?;
            let info = model.info();
            let mut bar_sizes = [0u64; 6];
            for bar in &info.bars {
                let slot = bar_sizes.get_mut(usize::from(bar.index)).ok_or_else(|| {
                    Error::Topology(format!(
                        "{}: model {:?} declares BAR {}, expected 0 to 5",
                        node.address, spec.model, bar.index
                    ))
                })?;
                *slot = bar.size;
            }
            let multifunction = !topology.siblings(node.address).is_empty();
            let flr = spec.reset_methods.contains(&ResetMethod::Flr);
            let holder = match &spec.owner {
                Some(owner) => Holder::Elsewhere(owner.clone()),
                None => Holder::Free,
            };
            cells.push(FunctionCell {
                address: node.address,
                iommu_group: node.iommu_group,
                reset_methods: spec.reset_methods.clone(),
                state: Mutex::new(FunctionState {
                    config: ConfigSpace::new(&info, multifunction, flr),
                    model,
                    bar_sizes,
                    msix: MsixVectors::default(),
                    holder,
                    faults: Faults::default(),
                    stats: FunctionStats::default(),
                    ready_at: Duration::ZERO,
                }),
            });
        }
        let bus = Arc::new(SimBus {
            topology,
            clock,
            iommu,
            space,
            cells,
        });
        let target: Weak<dyn TimerTarget> = Arc::downgrade(&(bus.clone() as Arc<dyn TimerTarget>));
        bus.clock.set_target(target);
        Ok(bus)
    }

    /// The topology the bus was built from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The bus's controlled clock.
    pub fn clock(&self) -> &Arc<SimClock> {
        &self.clock
    }

    /// The bus's IOMMU (faults are read here).
    pub fn iommu(&self) -> &Arc<SimIommu> {
        &self.iommu
    }

    /// The DMA address space every function opened on this bus uses.
    pub fn dma_space(&self) -> &Arc<DmaSpace> {
        &self.space
    }

    fn index(&self, address: PciAddress) -> Result<usize> {
        self.topology
            .index_of(address)
            .ok_or_else(|| Error::NoSuchDevice {
                device: address,
                place: "the simulated bus".into(),
            })
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, FunctionState> {
        self.cells[index]
            .state
            .lock()
            .expect("sim function lock poisoned")
    }

    /// Opens a function for this process, as binding and opening a VFIO device would.
    pub fn open(self: &Arc<Self>, address: PciAddress) -> Result<SimFunction> {
        let index = self.index(address)?;
        let mut state = self.lock(index);
        match &state.holder {
            Holder::Free => state.holder = Holder::ThisProcess,
            Holder::ThisProcess => return Err(Error::AlreadyOpen { device: address }),
            Holder::Elsewhere(owner) => {
                return Err(Error::Busy {
                    device: address,
                    owner: owner.clone(),
                })
            }
        }
        drop(state);
        tracing::debug!(device = %address, "sim: opened");
        Ok(SimFunction {
            bus: Arc::clone(self),
            index,
            clock: self.clock.clone(),
        })
    }

    /// Marks a function as held by another owner (a second process), as a test of ownership.
    pub fn hold_elsewhere(&self, address: PciAddress, owner: &str) -> Result<()> {
        let index = self.index(address)?;
        let mut state = self.lock(index);
        if state.holder == Holder::ThisProcess {
            return Err(Error::Busy {
                device: address,
                owner: "this process".to_string(),
            });
        }
        state.holder = Holder::Elsewhere(owner.to_string());
        Ok(())
    }

    /// Lets go of a function held by another owner.
    pub fn release_elsewhere(&self, address: PciAddress) -> Result<()> {
        let index = self.index(address)?;
        let mut state = self.lock(index);
        if matches!(state.holder, Holder::Elsewhere(_)) {
            state.holder = Holder::Free;
        }
        Ok(())
    }

    /// Injects a fault into a function.
    pub fn inject(&self, address: PciAddress, fault: SimFault) -> Result<()> {
        let index = self.index(address)?;
        let mut state = self.lock(index);
        match fault {
            SimFault::Hang => state.faults.hang = true,
            SimFault::SurpriseRemoval => state.faults.removed = true,
            SimFault::LinkDown => state.faults.link_down = true,
            SimFault::SlowReady(extra) => state.faults.slow_ready = extra,
        }
        tracing::info!(device = %address, ?fault, "sim: fault injected");
        Ok(())
    }

    /// Clears every injected fault of a function.
    pub fn clear_faults(&self, address: PciAddress) -> Result<()> {
        let index = self.index(address)?;
        self.lock(index).faults = Faults::default();
        Ok(())
    }

    /// The function's counters.
    pub fn stats(&self, address: PciAddress) -> Result<FunctionStats> {
        let index = self.index(address)?;
        Ok(self.lock(index).stats)
    }

    /// Runs `f` on the function's model, downcast to `M` (for tests and fault injection).
    pub fn with_model<M: DeviceModel, R>(
        &self,
        address: PciAddress,
        f: impl FnOnce(&mut M) -> R,
    ) -> Result<R> {
        self.with_model_ctx(address, |model: &mut M, _| f(model))
    }

    /// Runs `f` on the function's model with a [`ModelContext`], so the model can DMA or
    /// raise interrupts (a test feeding a NIC model with traffic, say).
    pub fn with_model_ctx<M: DeviceModel, R>(
        &self,
        address: PciAddress,
        f: impl FnOnce(&mut M, &mut ModelContext<'_>) -> R,
    ) -> Result<R> {
        let index = self.index(address)?;
        let mut state = self.lock(index);
        let FunctionState {
            model,
            config,
            msix,
            stats,
            ..
        } = &mut *state;
        let Some(model) = model.as_any_mut().downcast_mut::<M>() else {
            return Err(Error::Topology(format!(
                "{address}: its model is not a {}",
                std::any::type_name::<M>()
            )));
        };
        let mut ctx = ModelContext {
            address,
            index,
            bus_master: config.command() & COMMAND_BUS_MASTER != 0,
            iommu: &self.iommu,
            clock: &self.clock,
            msix,
            interrupts_raised: &mut stats.interrupts,
        };
        Ok(f(model, &mut ctx))
    }

    #[inline]
    fn mmio(&self, index: usize, bar: u8, offset: u64, width: u8, write: Option<u64>) -> u64 {
        let all_ones = if width == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let mut state = self.lock(index);
        let command = state.config.command();
        let blocked = state.unresponsive(self.clock.now())
            || command & COMMAND_MEMORY == 0
            || (write.is_some() && state.faults.hang);
        if blocked {
            state.stats.dropped_accesses += 1;
            if command & COMMAND_MEMORY == 0 && !state.unresponsive(self.clock.now()) {
                state.stats.mmio_while_memory_disabled += 1;
            }
            return all_ones;
        }
        let FunctionState {
            model, msix, stats, ..
        } = &mut *state;
        let mut ctx = ModelContext {
            address: self.cells[index].address,
            index,
            bus_master: command & COMMAND_BUS_MASTER != 0,
            iommu: &self.iommu,
            clock: &self.clock,
            msix,
            interrupts_raised: &mut stats.interrupts,
        };
        match write {
            Some(value) => {
                stats.mmio_writes += 1;
                model.mmio_write(&mut ctx, bar, offset, width, value);
                0
            }
            None => {
                stats.mmio_reads += 1;
                model.mmio_read(&mut ctx, bar, offset, width)
            }
        }
    }

    fn ownership(&self, index: usize) -> Ownership {
        let cell = &self.cells[index];
        let holder = self.lock(index).holder.clone();
        match holder {
            Holder::ThisProcess => Ownership::Owned,
            Holder::Elsewhere(owner) => Ownership::OwnedElsewhere { owner },
            Holder::Free => {
                // The kernel counts an unopened function as ours when we hold its IOMMU group.
                let group_held = self.cells.iter().enumerate().any(|(i, other)| {
                    i != index
                        && other.iommu_group == cell.iommu_group
                        && self.lock(i).holder == Holder::ThisProcess
                });
                if group_held {
                    Ownership::Owned
                } else {
                    Ownership::Unopened
                }
            }
        }
    }

    fn reset_group_members(&self, index: usize) -> Vec<ResetGroupMember> {
        let address = self.cells[index].address;
        let members = self
            .topology
            .reset_group_of(address)
            .map(|g| g.members.clone())
            .unwrap_or_else(|| vec![address]);
        members
            .into_iter()
            .filter_map(|member| {
                let i = self.topology.index_of(member)?;
                Some(ResetGroupMember {
                    address: member,
                    iommu_group: Some(self.cells[i].iommu_group),
                    reset_methods: self.cells[i].reset_methods.clone(),
                    ownership: self.ownership(i),
                })
            })
            .collect()
    }

    /// Resets the model and config space of `indices`, waits as the kernel would, restores
    /// the saved config spaces. Returns the members that never answered again.
    fn reset_functions(&self, indices: &[usize], kind: ResetKind) -> Vec<PciAddress> {
        let start = self.clock.now();
        let mut saved = Vec::with_capacity(indices.len());
        let mut slowest = Duration::ZERO;
        let mandated = match kind {
            ResetKind::FunctionLevel => FLR_READY_DELAY,
            ResetKind::Bus => BUS_RESET_ASSERT + BUS_RESET_READY_DELAY,
        };
        for &index in indices {
            let mut state = self.lock(index);
            saved.push(state.config.clone());
            state.model.reset(kind);
            state.config.reset();
            match kind {
                ResetKind::FunctionLevel => state.stats.function_resets += 1,
                ResetKind::Bus => {
                    state.stats.bus_resets += 1;
                    // Retraining the link is what a secondary bus reset does.
                    state.faults.link_down = false;
                }
            }
            let extra = if state.faults.removed {
                // Only a bus reset gets here (an FLR of a removed function fails at once).
                LINK_TRAIN_LIMIT
            } else {
                state.faults.slow_ready
            };
            slowest = slowest.max(extra);
            state.ready_at = start + mandated + state.faults.slow_ready;
            drop(state);
            self.clock.cancel_function(index);
        }
        self.clock.sleep(mandated + slowest.min(RESET_READY_LIMIT));
        let mut gone = Vec::new();
        for (&index, config) in indices.iter().zip(saved) {
            let mut state = self.lock(index);
            let never_ready = state.faults.removed || state.faults.slow_ready >= RESET_READY_LIMIT;
            if never_ready {
                gone.push(self.cells[index].address);
            } else {
                state.config = config;
            }
        }
        tracing::debug!(
            ?kind,
            members = indices.len(),
            took_ms = (self.clock.now() - start).as_millis() as u64,
            "sim: reset done"
        );
        gone
    }
}

impl TimerTarget for SimBus {
    fn fire(&self, index: usize, token: u64) {
        let Some(cell) = self.cells.get(index) else {
            return;
        };
        let mut state = self.lock(index);
        if state.faults.hang || state.unresponsive(self.clock.now()) {
            return;
        }
        let command = state.config.command();
        let FunctionState {
            model, msix, stats, ..
        } = &mut *state;
        let mut ctx = ModelContext {
            address: cell.address,
            index,
            bus_master: command & COMMAND_BUS_MASTER != 0,
            iommu: &self.iommu,
            clock: &self.clock,
            msix,
            interrupts_raised: &mut stats.interrupts,
        };
        model.on_timer(&mut ctx, token);
    }
}

/// A function of a [`SimBus`] opened by this process; closes on drop.
pub struct SimFunction {
    bus: Arc<SimBus>,
    index: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SimFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFunction")
            .field("address", &self.address())
            .finish()
    }
}

impl SimFunction {
    /// The bus the function is on.
    pub fn bus(&self) -> &Arc<SimBus> {
        &self.bus
    }

    fn cell(&self) -> &FunctionCell {
        &self.bus.cells[self.index]
    }

    fn check_config_range(&self, offset: u16, len: usize) -> Result<usize> {
        let start = usize::from(offset);
        if start.saturating_add(len) > CONFIG_SPACE_SIZE {
            return Err(Error::ConfigOutOfRange {
                device: self.address(),
                offset,
                len,
                size: CONFIG_SPACE_SIZE,
            });
        }
        Ok(start)
    }
}

impl Drop for SimFunction {
    fn drop(&mut self) {
        let mut state = self.bus.lock(self.index);
        state.msix = MsixVectors::default();
        state.config.set_msix_enabled(false);
        if state.holder == Holder::ThisProcess {
            state.holder = Holder::Free;
        }
    }
}

impl PciFunction for SimFunction {
    type Registers = SimBar;

    fn address(&self) -> PciAddress {
        self.cell().address
    }

    fn read_config(&self, offset: u16, buf: &mut [u8]) -> Result<()> {
        let start = self.check_config_range(offset, buf.len())?;
        let state = self.bus.lock(self.index);
        if state.unresponsive(self.bus.clock.now()) {
            buf.fill(0xff);
        } else {
            state.config.read(start, buf);
        }
        Ok(())
    }

    fn write_config(&self, offset: u16, data: &[u8]) -> Result<()> {
        let start = self.check_config_range(offset, data.len())?;
        let action = {
            let mut state = self.bus.lock(self.index);
            if state.unresponsive(self.bus.clock.now()) {
                return Ok(());
            }
            state.config.write(start, data)
        };
        if action == ConfigAction::FunctionLevelReset {
            self.reset_function()?;
        }
        Ok(())
    }

    fn map_bar(&self, index: u8) -> Result<SimBar> {
        let size = self
            .bus
            .lock(self.index)
            .bar_sizes
            .get(usize::from(index))
            .copied()
            .unwrap_or(0);
        if size == 0 {
            return Err(Error::InvalidBar {
                device: self.address(),
                bar: index,
                reason: "is not a memory BAR of this function",
            });
        }
        Ok(SimBar {
            bus: Arc::clone(&self.bus),
            index: self.index,
            bar: index,
            len: size as usize,
        })
    }

    fn dma_space(&self) -> &Arc<DmaSpace> {
        &self.bus.space
    }

    fn enable_msix(&self, count: u16) -> Result<Vec<InterruptVector>> {
        let mut state = self.bus.lock(self.index);
        let available = state.config.msix_vectors();
        if count == 0 || count > available {
            return Err(Error::MsixVectors {
                device: self.address(),
                requested: count,
                available,
            });
        }
        // Vectors keep their eventfds across disable and enable, so handles a driver took
        // before a reset still fire after it.
        while state.msix.vectors.len() < usize::from(count) {
            state.msix.vectors.push(Arc::new(EventFd::new()?));
        }
        state.msix.enabled = usize::from(count);
        state.config.set_msix_enabled(true);
        Ok(state.msix.vectors[..usize::from(count)]
            .iter()
            .enumerate()
            .map(|(i, e)| InterruptVector::new(i as u16, Arc::clone(e)))
            .collect())
    }

    fn disable_msix(&self) -> Result<()> {
        let mut state = self.bus.lock(self.index);
        state.msix.enabled = 0;
        state.config.set_msix_enabled(false);
        Ok(())
    }

    fn reset_methods(&self) -> Vec<ResetMethod> {
        self.cell().reset_methods.clone()
    }

    fn reset_function(&self) -> Result<()> {
        let methods = &self.cell().reset_methods;
        if !methods.iter().any(|m| m.is_function_local()) {
            return Err(Error::NoFunctionReset {
                device: self.address(),
                methods: methods
                    .iter()
                    .map(|m| m.sysfs_name())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        let unreachable = {
            let state = self.bus.lock(self.index);
            state.faults.removed || state.faults.link_down
        };
        if unreachable {
            return Err(Error::DeviceGone {
                device: self.address(),
            });
        }
        let gone = self
            .bus
            .reset_functions(&[self.index], ResetKind::FunctionLevel);
        if !gone.is_empty() {
            return Err(Error::DeviceGone {
                device: self.address(),
            });
        }
        Ok(())
    }

    fn reset_group(&self) -> Result<Vec<ResetGroupMember>> {
        Ok(self.bus.reset_group_members(self.index))
    }

    fn reset_group_hot(&self) -> Result<()> {
        let address = self.address();
        let scope = self.bus.topology.reset_group_of(address).map(|g| g.scope);
        if !matches!(scope, Some(ResetScope::Bus | ResetScope::Slot)) {
            return Err(Error::HotResetRefused {
                device: address,
                blockers: "no slot or bus reset can reach this function (root bus, or bus reset \
                           disabled on its bridge)"
                    .to_string(),
            });
        }
        let members = self.bus.reset_group_members(self.index);
        let blockers: Vec<String> = members
            .iter()
            .filter_map(|m| match &m.ownership {
                Ownership::Owned => None,
                Ownership::OwnedElsewhere { owner } => {
                    Some(format!("{} is owned by {owner}", m.address))
                }
                Ownership::Unopened => Some(format!(
                    "{} is not opened by this process (IOMMU group {})",
                    m.address,
                    m.iommu_group.unwrap_or_default()
                )),
            })
            .collect();
        if !blockers.is_empty() {
            return Err(Error::HotResetRefused {
                device: address,
                blockers: blockers.join("; "),
            });
        }
        let indices: Vec<usize> = members
            .iter()
            .filter_map(|m| self.bus.topology.index_of(m.address))
            .collect();
        let gone = self.bus.reset_functions(&indices, ResetKind::Bus);
        if let Some(&first) = gone.first() {
            return Err(Error::DeviceGone { device: first });
        }
        Ok(())
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// Register access to a BAR of a simulated function: each access is forwarded to the model.
#[derive(Clone)]
pub struct SimBar {
    bus: Arc<SimBus>,
    index: usize,
    bar: u8,
    len: usize,
}

impl fmt::Debug for SimBar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBar")
            .field("device", &self.bus.cells[self.index].address)
            .field("bar", &self.bar)
            .field("len", &self.len)
            .finish()
    }
}

impl RegisterIo for SimBar {
    fn len(&self) -> usize {
        self.len
    }

    fn read32(&self, offset: usize) -> u32 {
        crate::device::mmio::check_access(offset, 4, self.len);
        self.bus.mmio(self.index, self.bar, offset as u64, 4, None) as u32
    }

    fn write32(&self, offset: usize, value: u32) {
        crate::device::mmio::check_access(offset, 4, self.len);
        self.bus.mmio(
            self.index,
            self.bar,
            offset as u64,
            4,
            Some(u64::from(value)),
        );
    }

    fn read64(&self, offset: usize) -> u64 {
        crate::device::mmio::check_access(offset, 8, self.len);
        self.bus.mmio(self.index, self.bar, offset as u64, 8, None)
    }

    fn write64(&self, offset: usize, value: u64) {
        crate::device::mmio::check_access(offset, 8, self.len);
        self.bus
            .mmio(self.index, self.bar, offset as u64, 8, Some(value));
    }
}

impl crate::reset::FunctionOpener for Arc<SimBus> {
    type Function = SimFunction;

    fn open_function(&self, address: PciAddress) -> Result<SimFunction> {
        self.open(address)
    }
}
