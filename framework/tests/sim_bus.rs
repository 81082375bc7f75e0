//! The simulated bus as a backend: ownership, config space, MMIO gating, the IOMMU, MSI-X,
//! resets with the kernel's waits and rules, and injected faults. A tiny probe model lets each
//! test drive one device-side action from a register write.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::topology::{Topology, TopologyBuilder};
use userpci_framework::backend::sim::{
    BarInfo, DeviceModel, DmaAccess, FaultReason, ModelContext, ModelInfo, ModelRegistry,
    ResetKind, SimBus, SimFault, BUS_RESET_ASSERT, BUS_RESET_READY_DELAY, FLR_READY_DELAY,
    LINK_TRAIN_LIMIT,
};
use userpci_framework::device::{
    config, Ownership, PciFunction, PciFunctionExt, RegisterIo, ResetMethod,
};
use userpci_framework::dma::DmaDirection;
use userpci_framework::pci::PciAddress;
use userpci_framework::time::Clock;
use userpci_framework::Error;

const SCRATCH: usize = 0x00;
const DMA_ADDRESS: usize = 0x08;
const DMA_LENGTH: usize = 0x10;
const COMMAND: usize = 0x14;
const RESULT: usize = 0x18;

const CMD_DMA_WRITE: u32 = 1;
const CMD_DMA_READ: u32 = 2;
const CMD_INTERRUPT: u32 = 3;
const CMD_TIMER: u32 = 4;

const RESULT_OK: u32 = 0;
const RESULT_IOMMU_FAULT: u32 = 1;
const RESULT_NO_BUS_MASTER: u32 = 2;
const PATTERN: u8 = 0xab;

/// A device whose register writes each trigger one device-side action.
#[derive(Default)]
struct Probe {
    scratch: u32,
    address: u64,
    length: u32,
    result: u32,
    last_read: Vec<u8>,
    resets: Vec<ResetKind>,
}

impl DeviceModel for Probe {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            vendor_id: 0x1234,
            device_id: 0x5678,
            class_code: 0xff0000,
            revision: 1,
            bars: vec![BarInfo {
                index: 0,
                size: 4096,
            }],
            msix_vectors: 2,
        }
    }

    fn mmio_read(&mut self, _: &mut ModelContext<'_>, _bar: u8, offset: u64, _: u8) -> u64 {
        match offset as usize {
            SCRATCH => u64::from(self.scratch),
            RESULT => u64::from(self.result),
            _ => 0,
        }
    }

    fn mmio_write(&mut self, ctx: &mut ModelContext<'_>, _: u8, offset: u64, _: u8, value: u64) {
        match offset as usize {
            SCRATCH => self.scratch = value as u32,
            DMA_ADDRESS => self.address = value,
            DMA_LENGTH => self.length = value as u32,
            COMMAND => {
                let len = self.length as usize;
                let outcome = match value as u32 {
                    CMD_DMA_WRITE => ctx.dma_write(self.address, &vec![PATTERN; len]),
                    CMD_DMA_READ => {
                        let mut buf = vec![0; len];
                        let r = ctx.dma_read(self.address, &mut buf);
                        self.last_read = buf;
                        r
                    }
                    CMD_INTERRUPT => {
                        ctx.raise_interrupt(0);
                        Ok(())
                    }
                    CMD_TIMER => {
                        ctx.schedule(Duration::from_millis(1), 0x77);
                        Ok(())
                    }
                    _ => Ok(()),
                };
                self.result = match outcome {
                    Ok(()) => RESULT_OK,
                    Err(f) if f.reason == FaultReason::BusMasterDisabled => RESULT_NO_BUS_MASTER,
                    Err(_) => RESULT_IOMMU_FAULT,
                };
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, _: &mut ModelContext<'_>, token: u64) {
        self.scratch = token as u32;
    }

    fn reset(&mut self, kind: ResetKind) {
        let resets = std::mem::take(&mut self.resets);
        *self = Probe::default();
        self.resets = resets;
        self.resets.push(kind);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn registry() -> ModelRegistry {
    let mut registry = ModelRegistry::new();
    registry.register("probe", |_| Ok(Box::new(Probe::default())));
    registry
}

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

/// 00:02.0 -> a two-function slot 01:00.0 (flr bus) + 01:00.1 (flr); 00:03.0 -> 02:00.0.
fn machine(acs_on_function_1: bool) -> Topology {
    TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "probe")
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .function("01:00.1", "probe")
        .acs(acs_on_function_1)
        .root_port("00:03.0", 2)
        .function("02:00.0", "probe")
        .reset_methods(&[ResetMethod::Bus])
        .build()
        .unwrap()
}

fn bus() -> Arc<SimBus> {
    SimBus::new(machine(false), &registry()).unwrap()
}

fn scratch(bus: &SimBus, at: &str) -> u32 {
    bus.with_model(addr(at), |p: &mut Probe| p.scratch).unwrap()
}

#[test]
fn a_function_is_opened_once_and_released_on_drop() {
    let bus = bus();
    let first = bus.open(addr("01:00.0")).unwrap();
    let err = bus.open(addr("01:00.0")).unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
    drop(first);
    bus.open(addr("01:00.0")).unwrap();

    bus.hold_elsewhere(addr("01:00.1"), "pid 4242").unwrap();
    let err = bus.open(addr("01:00.1")).unwrap_err();
    assert_eq!(err.to_string(), "0000:01:00.1 is owned by pid 4242");

    let err = bus.open(addr("05:00.0")).unwrap_err();
    assert!(matches!(err, Error::NoSuchDevice { device, .. } if device == addr("05:00.0")));
    assert_eq!(
        err.to_string(),
        "no PCI function 0000:05:00.0 in the simulated bus; `userpci list` shows the functions there"
    );
}

#[test]
fn config_space_shows_identity_capabilities_and_flr_per_reset_methods() {
    let bus = bus();
    let f0 = bus.open(addr("01:00.0")).unwrap();
    let f2 = bus.open(addr("02:00.0")).unwrap();
    assert_eq!(f0.ids().unwrap(), (0x1234, 0x5678));
    assert_eq!(f0.msix_vector_count().unwrap(), 2);
    assert!(f0.has_flr().unwrap());
    assert!(!f2.has_flr().unwrap(), "02:00.0 lists only `bus`");
    let header = f0.read_config_u16(config::HEADER_TYPE).unwrap() as u8;
    assert_eq!(header & 0x80, 0x80, "01:00.x is multifunction");

    let err = f0.read_config_u32(4094).unwrap_err();
    assert!(err.to_string().contains("0xffe+4"), "{err}");
    let err = f0.map_bar(1).unwrap_err();
    assert!(err.to_string().contains("BAR 1"), "{err}");
}

#[test]
fn mmio_is_dropped_until_memory_decoding_is_enabled() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    let regs = f.map_bar(0).unwrap();
    regs.write32(SCRATCH, 5);
    assert_eq!(
        regs.read32(SCRATCH),
        u32::MAX,
        "master abort reads all ones"
    );
    assert_eq!(
        scratch(&bus, "01:00.0"),
        0,
        "the write never reached the device"
    );
    f.set_bus_master(true).unwrap();
    regs.write32(SCRATCH, 5);
    assert_eq!(regs.read32(SCRATCH), 5);
    let stats = bus.stats(addr("01:00.0")).unwrap();
    assert_eq!(
        (stats.dropped_accesses, stats.mmio_writes, stats.mmio_reads),
        (2, 1, 1)
    );
}

/// Programs the probe to DMA `len` bytes at `iova` and returns its result register.
fn device_dma(regs: &impl RegisterIo, iova: u64, len: u32, command: u32) -> u32 {
    regs.write64(DMA_ADDRESS, iova);
    regs.write32(DMA_LENGTH, len);
    regs.write32(COMMAND, command);
    regs.read32(RESULT)
}

#[test]
fn the_iommu_blocks_unmapped_and_read_only_targets_and_memory_is_unchanged() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    let regs = f.map_bar(0).unwrap();
    let space = f.dma_space().clone();

    let mut writable = space
        .allocate_buffer(4096, DmaDirection::FromDevice)
        .unwrap();
    assert_eq!(
        device_dma(&regs, writable.iova(), 64, CMD_DMA_WRITE),
        RESULT_OK
    );
    assert!(writable.as_slice()[..64].iter().all(|&b| b == PATTERN));
    assert_eq!(writable.as_slice()[64], 0);

    // A buffer the device may only read: the write is blocked whole.
    let mut read_only = space.allocate_buffer(4096, DmaDirection::ToDevice).unwrap();
    read_only.as_mut_slice().fill(0x11);
    assert_eq!(
        device_dma(&regs, read_only.iova(), 64, CMD_DMA_WRITE),
        RESULT_IOMMU_FAULT
    );
    assert!(read_only.as_slice().iter().all(|&b| b == 0x11));

    // An IOVA whose mapping is gone: dropping a buffer unmaps it.
    let stale = space
        .allocate_buffer(4096, DmaDirection::FromDevice)
        .unwrap();
    let stale_iova = stale.iova();
    drop(stale);
    assert_eq!(
        device_dma(&regs, stale_iova, 8, CMD_DMA_WRITE),
        RESULT_IOMMU_FAULT
    );

    // A write that runs past the end of a mapping into the next one (the read-only buffer,
    // allocated right after it) is blocked whole, not truncated.
    writable.as_mut_slice().fill(0);
    let tail = writable.iova() + 4096 - 8;
    assert_eq!(
        read_only.iova(),
        writable.iova() + 4096,
        "adjacent mappings"
    );
    assert_eq!(
        device_dma(&regs, tail, 16, CMD_DMA_WRITE),
        RESULT_IOMMU_FAULT
    );
    assert!(writable.as_slice().iter().all(|&b| b == 0));

    let faults = bus.iommu().take_faults();
    let summary: Vec<_> = faults
        .iter()
        .map(|f| (f.device, f.iova, f.access, f.reason))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                addr("01:00.0"),
                read_only.iova(),
                DmaAccess::Write,
                FaultReason::ReadOnly
            ),
            (
                addr("01:00.0"),
                stale_iova,
                DmaAccess::Write,
                FaultReason::Unmapped
            ),
            (
                addr("01:00.0"),
                tail,
                DmaAccess::Write,
                FaultReason::ReadOnly
            ),
        ]
    );

    // Reading a device-read-only buffer is fine; reading a write-only one is not.
    assert_eq!(
        device_dma(&regs, read_only.iova(), 4, CMD_DMA_READ),
        RESULT_OK
    );
    assert_eq!(
        bus.with_model(addr("01:00.0"), |p: &mut Probe| p.last_read.clone())
            .unwrap(),
        vec![0x11; 4]
    );
    let write_only = space.allocate_buffer(64, DmaDirection::FromDevice).unwrap();
    assert_eq!(
        device_dma(&regs, write_only.iova(), 4, CMD_DMA_READ),
        RESULT_IOMMU_FAULT
    );
    assert_eq!(bus.iommu().faults()[0].reason, FaultReason::WriteOnly);
}

#[test]
fn without_bus_mastering_the_device_cannot_dma_at_all() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    f.update_command(0, config::COMMAND_BUS_MASTER).unwrap();
    let regs = f.map_bar(0).unwrap();
    let buffer = f
        .dma_space()
        .allocate_buffer(64, DmaDirection::FromDevice)
        .unwrap();
    assert_eq!(
        device_dma(&regs, buffer.iova(), 64, CMD_DMA_WRITE),
        RESULT_NO_BUS_MASTER
    );
    assert!(buffer.as_slice().iter().all(|&b| b == 0));
    assert!(bus.iommu().faults().is_empty(), "nothing reached the IOMMU");
}

#[test]
fn msix_vectors_signal_their_eventfd_only_when_enabled() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    let regs = f.map_bar(0).unwrap();
    regs.write32(COMMAND, CMD_INTERRUPT);
    assert_eq!(
        bus.stats(addr("01:00.0")).unwrap().interrupts,
        0,
        "MSI-X off"
    );

    let err = f.enable_msix(3).unwrap_err();
    assert!(
        err.to_string()
            .contains("asked for 3 MSI-X vectors, the function has 2"),
        "{err}"
    );
    let vectors = f.enable_msix(2).unwrap();
    regs.write32(COMMAND, CMD_INTERRUPT);
    regs.write32(COMMAND, CMD_INTERRUPT);
    assert_eq!(vectors[0].take().unwrap(), 2);
    assert_eq!(vectors[1].take().unwrap(), 0);
    f.disable_msix().unwrap();
    regs.write32(COMMAND, CMD_INTERRUPT);
    assert_eq!(vectors[0].take().unwrap(), 0);

    // Enabled again (as a driver does after a reset): the old handles fire again.
    let again = f.enable_msix(1).unwrap();
    regs.write32(COMMAND, CMD_INTERRUPT);
    assert_eq!(vectors[0].take().unwrap(), 1, "same eventfd as before");
    assert_eq!(
        again[0].take().unwrap(),
        0,
        "and the new handle is the same eventfd"
    );
}

#[test]
fn a_link_down_function_answers_nothing_until_a_bus_reset() {
    let bus = bus();
    let f0 = bus.open(addr("01:00.0")).unwrap();
    let _f1 = bus.open(addr("01:00.1")).unwrap();
    f0.set_bus_master(true).unwrap();
    bus.inject(addr("01:00.0"), SimFault::LinkDown).unwrap();
    assert!(matches!(f0.ids().unwrap_err(), Error::DeviceGone { .. }));
    assert!(
        matches!(f0.reset_function().unwrap_err(), Error::DeviceGone { .. }),
        "an FLR goes through config space, which is unreachable"
    );
    f0.reset_group_hot().unwrap();
    assert_eq!(
        f0.ids().unwrap(),
        (0x1234, 0x5678),
        "the bus reset retrained the link"
    );
}

#[test]
fn mmio_with_memory_decoding_off_is_counted_as_what_would_be_sigbus_on_vfio() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    let regs = f.map_bar(0).unwrap();
    regs.read32(SCRATCH);
    assert_eq!(
        bus.stats(addr("01:00.0"))
            .unwrap()
            .mmio_while_memory_disabled,
        1
    );
    f.set_bus_master(true).unwrap();
    regs.read32(SCRATCH);
    assert_eq!(
        bus.stats(addr("01:00.0"))
            .unwrap()
            .mmio_while_memory_disabled,
        1
    );
}

#[test]
fn model_timers_fire_on_virtual_time_only() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    f.map_bar(0).unwrap().write32(COMMAND, CMD_TIMER);
    bus.clock().advance(Duration::from_micros(999));
    assert_eq!(scratch(&bus, "01:00.0"), 0);
    bus.clock().advance(Duration::from_micros(1));
    assert_eq!(scratch(&bus, "01:00.0"), 0x77);
}

#[test]
fn flr_resets_the_device_waits_100ms_and_restores_config_like_vfio() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    let vectors = f.enable_msix(1).unwrap();
    let regs = f.map_bar(0).unwrap();
    regs.write32(SCRATCH, 9);
    regs.write32(COMMAND, CMD_TIMER); // pending: must not fire after the reset
    let before = bus.clock().now();
    f.reset_function().unwrap();
    assert_eq!(bus.clock().now() - before, FLR_READY_DELAY);
    assert_eq!(regs.read32(SCRATCH), 0, "registers at power-on values");
    let command = f.read_config_u16(config::COMMAND).unwrap();
    assert_eq!(
        command & config::COMMAND_BUS_MASTER,
        config::COMMAND_BUS_MASTER,
        "restored"
    );
    regs.write32(COMMAND, CMD_INTERRUPT);
    assert_eq!(vectors[0].take().unwrap(), 1, "MSI-X restored too");
    bus.clock().advance(Duration::from_millis(5));
    assert_eq!(
        scratch(&bus, "01:00.0"),
        0,
        "the reset cancelled the device's timer"
    );
    assert_eq!(
        bus.with_model(addr("01:00.0"), |p: &mut Probe| p.resets.clone())
            .unwrap(),
        vec![ResetKind::FunctionLevel]
    );

    // 02:00.0 offers only `bus`: no function-level reset.
    let f2 = bus.open(addr("02:00.0")).unwrap();
    let err = f2.reset_function().unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:02:00.0: no function-level reset (reset methods: bus)"
    );
}

#[test]
fn reset_group_reports_members_and_ownership() {
    let bus = SimBus::new(machine(true), &registry()).unwrap();
    let f0 = bus.open(addr("01:00.0")).unwrap();
    let members = f0.reset_group().unwrap();
    let view: Vec<_> = members
        .iter()
        .map(|m| (m.address, m.ownership.clone()))
        .collect();
    assert_eq!(
        view,
        vec![
            (addr("01:00.0"), Ownership::Owned),
            (addr("01:00.1"), Ownership::Unopened)
        ]
    );
    assert_ne!(
        members[0].iommu_group, members[1].iommu_group,
        "ACS on function 1 splits the group"
    );

    bus.hold_elsewhere(addr("01:00.1"), "qemu (pid 77)")
        .unwrap();
    assert_eq!(
        f0.reset_group().unwrap()[1].ownership,
        Ownership::OwnedElsewhere {
            owner: "qemu (pid 77)".to_string()
        }
    );
}

#[test]
fn hot_reset_is_refused_naming_each_blocker() {
    let bus = SimBus::new(machine(true), &registry()).unwrap();
    let f0 = bus.open(addr("01:00.0")).unwrap();
    let err = f0.reset_group_hot().unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: hot reset of its reset group refused: 0000:01:00.1 is not opened by this \
         process (IOMMU group 3)"
    );
    bus.hold_elsewhere(addr("01:00.1"), "pid 4242").unwrap();
    let err = f0.reset_group_hot().unwrap_err();
    assert!(
        err.to_string()
            .ends_with("0000:01:00.1 is owned by pid 4242"),
        "{err}"
    );
    assert_eq!(
        bus.stats(addr("01:00.0")).unwrap().bus_resets,
        0,
        "nothing was reset"
    );

    // A function alone on the root bus has no bus reset at all.
    let single = SimBus::new(
        TopologyBuilder::new()
            .function("00:05.0", "probe")
            .build()
            .unwrap(),
        &registry(),
    )
    .unwrap();
    let err = single
        .open(addr("00:05.0"))
        .unwrap()
        .reset_group_hot()
        .unwrap_err();
    assert!(err.to_string().contains("no slot or bus reset"), "{err}");
}

#[test]
fn hot_reset_with_the_group_owned_resets_every_member_once() {
    let bus = bus();
    // Without ACS both functions share an IOMMU group: owning one owns the other (kernel rule).
    let f0 = bus.open(addr("01:00.0")).unwrap();
    assert!(f0
        .reset_group()
        .unwrap()
        .iter()
        .all(|m| m.ownership == Ownership::Owned));
    let f1 = bus.open(addr("01:00.1")).unwrap();
    for f in [&f0, &f1] {
        f.set_bus_master(true).unwrap();
        f.map_bar(0).unwrap().write32(SCRATCH, 3);
    }
    let before = bus.clock().now();
    f1.reset_group_hot().unwrap();
    assert_eq!(
        bus.clock().now() - before,
        BUS_RESET_ASSERT + BUS_RESET_READY_DELAY
    );
    for at in ["01:00.0", "01:00.1"] {
        assert_eq!(scratch(&bus, at), 0);
        assert_eq!(bus.stats(addr(at)).unwrap().bus_resets, 1);
        assert_eq!(
            bus.with_model(addr(at), |p: &mut Probe| p.resets.clone())
                .unwrap(),
            vec![ResetKind::Bus]
        );
    }
    assert_eq!(
        bus.stats(addr("02:00.0")).unwrap().bus_resets,
        0,
        "other bus untouched"
    );
}

#[test]
fn surprise_removal_reads_all_ones_and_fails_resets() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    let regs = f.map_bar(0).unwrap();
    bus.inject(addr("01:00.0"), SimFault::SurpriseRemoval)
        .unwrap();
    assert_eq!(f.read_config_u32(0).unwrap(), u32::MAX);
    assert!(matches!(f.ids().unwrap_err(), Error::DeviceGone { .. }));
    assert_eq!(regs.read64(0), u64::MAX);
    assert!(matches!(
        f.reset_function().unwrap_err(),
        Error::DeviceGone { .. }
    ));
    bus.clear_faults(addr("01:00.0")).unwrap();
    assert_eq!(f.ids().unwrap(), (0x1234, 0x5678));
}

#[test]
fn a_bus_reset_gives_up_on_a_removed_member_after_the_link_training_limit() {
    // Linux waits 1 s for a link that does not train, not the 60 s it gives a function that
    // is there but not ready; every member of the group waits with it.
    let bus = bus();
    let f0 = bus.open(addr("01:00.0")).unwrap();
    let _f1 = bus.open(addr("01:00.1")).unwrap();
    bus.inject(addr("01:00.1"), SimFault::SurpriseRemoval)
        .unwrap();
    let start = bus.clock().now();
    let err = f0.reset_group_hot().unwrap_err();
    assert!(
        matches!(err, Error::DeviceGone { device } if device == addr("01:00.1")),
        "{err}"
    );
    assert_eq!(
        bus.clock().now() - start,
        BUS_RESET_ASSERT + BUS_RESET_READY_DELAY + LINK_TRAIN_LIMIT
    );
    assert_eq!(
        f0.ids().unwrap(),
        (0x1234, 0x5678),
        "the present member is back"
    );
}

#[test]
fn a_hung_device_ignores_writes_and_timers() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    f.set_bus_master(true).unwrap();
    let regs = f.map_bar(0).unwrap();
    regs.write32(COMMAND, CMD_TIMER);
    bus.inject(addr("01:00.0"), SimFault::Hang).unwrap();
    regs.write32(SCRATCH, 1);
    bus.clock().advance(Duration::from_millis(2));
    assert_eq!(
        regs.read32(SCRATCH),
        0,
        "reads still answer, nothing changed"
    );
}

#[test]
fn slow_readiness_lengthens_the_reset_and_a_device_that_never_answers_fails_it() {
    let bus = bus();
    let f = bus.open(addr("01:00.0")).unwrap();
    bus.inject(
        addr("01:00.0"),
        SimFault::SlowReady(Duration::from_millis(300)),
    )
    .unwrap();
    let before = bus.clock().now();
    f.reset_function().unwrap();
    assert_eq!(
        bus.clock().now() - before,
        FLR_READY_DELAY + Duration::from_millis(300)
    );

    bus.inject(
        addr("01:00.0"),
        SimFault::SlowReady(Duration::from_secs(120)),
    )
    .unwrap();
    let err = f.reset_function().unwrap_err();
    assert!(
        matches!(err, Error::DeviceGone { device } if device == addr("01:00.0")),
        "{err}"
    );
}

#[test]
fn unknown_models_are_named_with_the_known_ones() {
    let topology = TopologyBuilder::new()
        .function("00:05.0", "nvme")
        .build()
        .unwrap();
    let err = SimBus::new(topology, &registry()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown device model \"nvme\" for 0000:00:05.0 (known: probe)"
    );
}

#[test]
fn the_sim_iommu_refuses_bad_valid_ranges_naming_them() {
    use userpci_framework::backend::sim::SimIommu;
    use userpci_framework::dma::IovaRange;
    let err = SimIommu::new(vec![IovaRange::new(0x5000, 0x1000)]).unwrap_err();
    assert!(err.to_string().contains("0x5000..0x1000"), "{err}");
    let err = SimIommu::new(vec![]).unwrap_err();
    assert!(err.to_string().contains("no usable IOVA range"), "{err}");
}
