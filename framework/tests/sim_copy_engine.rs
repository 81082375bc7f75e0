//! The whole simulated path with the copy engine: driver register writes, model DMA through the
//! checking IOMMU, phase-tagged completions, MSI-X eventfds, faults, virtual time and FLR.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{
    BarInfo, DeviceModel, DmaAccess, DmaFault, FaultReason, ModelContext, ModelInfo, ModelRegistry,
    ResetKind, SimBus, SimFunction,
};
use userpci_framework::device::config::COMMAND_BUS_MASTER;
use userpci_framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_framework::testdev::spec::{self, CompletionStatus};
use userpci_framework::testdev::{model, Completion, CopyEngine, CopyEngineDriver};
use userpci_framework::Error;

const ADDR: &str = "01:00.0";

fn addr() -> PciAddress {
    ADDR.parse().unwrap()
}

fn bus_with(params: Option<&str>) -> Arc<SimBus> {
    let mut builder = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(ADDR, "copy-engine");
    if let Some(text) = params {
        builder = builder.params(text.parse().unwrap());
    }
    let mut registry = ModelRegistry::new();
    registry.register("copy-engine", model::factory);
    SimBus::new(builder.build().unwrap(), &registry).unwrap()
}

fn driver(bus: &Arc<SimBus>, ring_size: u32) -> CopyEngineDriver<SimFunction> {
    CopyEngineDriver::new(bus.open(addr()).unwrap(), ring_size).unwrap()
}

fn buffer(bus: &SimBus, len: usize, dir: DmaDirection, fill: impl Fn(usize) -> u8) -> DmaBuffer {
    let mut buf = bus.dma_space().allocate_buffer(len, dir).unwrap();
    for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
        *b = fill(i);
    }
    buf
}

fn poll(driver: &mut CopyEngineDriver<SimFunction>) -> Vec<Completion> {
    let mut out = Vec::new();
    driver.poll_completions(&mut |c| out.push(c));
    out
}

/// The `cause` the driver reports when the engine halts with `ERROR_CAUSE` = `code`.
fn halt_cause(code: u32) -> String {
    format!("{} (ERROR_CAUSE {code})", spec::cause_name(code))
}

fn stats(bus: &SimBus) -> model::CopyEngineStats {
    bus.with_model(addr(), |m: &mut CopyEngine| m.stats())
        .unwrap()
}

#[test]
fn copies_through_the_iommu_with_one_interrupt_per_completion() {
    let bus = bus_with(None);
    let mut driver = driver(&bus, 8);
    let vector = driver.interrupt().clone();
    // 40,000 bytes: more than two of the model's 16 KiB chunks, not a multiple of one.
    let len = 40_000;
    let src = buffer(&bus, len, DmaDirection::ToDevice, |i| (i * 7 + 3) as u8);
    let dst = buffer(&bus, len, DmaDirection::FromDevice, |_| 0);

    // Lengths outside 1..=MAX_COPY_LEN are refused before anything is queued.
    for bad in [0, spec::MAX_COPY_LEN + 1] {
        let err = driver.submit(src.iova(), dst.iova(), bad, 5).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument { device, what: "copy length", value, .. }
                    if device == addr() && value == u64::from(bad)
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("expected 1..=1048576 (copy tag 5)"),
            "{err}"
        );
    }
    assert_eq!(driver.in_flight(), 0);

    driver
        .submit(src.iova(), dst.iova(), len as u32, 0xabc)
        .unwrap();
    assert!(
        poll(&mut driver).is_empty(),
        "nothing reaches the engine before the doorbell"
    );
    assert_eq!(vector.take().unwrap(), 0);
    driver.flush();
    let done = poll(&mut driver);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].tag, 0xabc);
    assert!(done[0].is_ok(), "{:?}", done[0]);
    assert_eq!(done[0].bytes, len as u32);
    let raw = driver.raw_completion(0);
    assert_eq!(
        (raw.tag, raw.phase),
        (0xabc, spec::PHASE),
        "first lap carries phase 1"
    );
    assert_eq!(vector.take().unwrap(), 1);
    assert_eq!(dst.as_slice(), src.as_slice());

    // A batch of three: one doorbell, three completions, three interrupts.
    let writes_before = bus.stats(addr()).unwrap().mmio_writes;
    let requests: Vec<_> = (0..3u32)
        .map(|i| userpci_framework::testdev::CopyRequest {
            src: src.iova() + u64::from(i) * 100,
            dst: dst.iova() + 20_000 + u64::from(i) * 100,
            len: 100,
            tag: i,
        })
        .collect();
    driver.submit_batch(&requests).unwrap();
    assert_eq!(
        bus.stats(addr()).unwrap().mmio_writes - writes_before,
        1,
        "one doorbell"
    );
    let tags: Vec<u32> = poll(&mut driver).iter().map(|c| c.tag).collect();
    assert_eq!(tags, [0, 1, 2]);
    assert_eq!(vector.take().unwrap(), 3);

    // Masked: the completion is written, no interrupt.
    driver
        .registers()
        .write32(spec::IRQ_MASK, spec::IRQ_MASK_COMPLETION);
    driver.submit(src.iova(), dst.iova(), 16, 9).unwrap();
    driver.flush();
    assert_eq!(poll(&mut driver).len(), 1);
    assert_eq!(vector.take().unwrap(), 0);

    let s = stats(&bus);
    assert_eq!((s.copies, s.interrupts, s.faults), (5, 4, 0));
    assert_eq!(bus.stats(addr()).unwrap().interrupts, 4);
    assert!(bus.iommu().faults().is_empty());
}

#[test]
fn a_write_that_reaches_unmapped_iova_faults_and_changes_nothing() {
    let bus = bus_with(None);
    let mut driver = driver(&bus, 8);
    let src = buffer(&bus, 4096, DmaDirection::ToDevice, |i| i as u8);
    let canary = buffer(&bus, 4096, DmaDirection::FromDevice, |_| 0xaa);
    let hole = bus
        .dma_space()
        .allocate_buffer(4096, DmaDirection::FromDevice)
        .unwrap();
    let hole_iova = hole.iova();
    drop(hole);
    assert_eq!(
        hole_iova,
        canary.iova() + 4096,
        "first-fit IOVA: the hole follows the canary"
    );

    // 64 bytes straddling the canary's last 32 bytes and the unmapped page after it.
    let dst = canary.iova() + 4096 - 32;
    driver.submit(src.iova(), dst, 64, 77).unwrap();
    driver.flush();
    let done = poll(&mut driver);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].tag, done[0].status, done[0].bytes),
        (77, CompletionStatus::WRITE_FAULT, 0)
    );
    assert!(!done[0].corrupt);
    assert_eq!(
        bus.iommu().take_faults(),
        [DmaFault {
            device: addr(),
            iova: dst,
            len: 64,
            access: DmaAccess::Write,
            reason: FaultReason::Unmapped,
        }]
    );
    assert!(
        canary.as_slice().iter().all(|&b| b == 0xaa),
        "the IOMMU blocked the whole write"
    );
    assert_eq!(
        driver.interrupt().take().unwrap(),
        1,
        "a failed copy still completes"
    );

    // Wholly inside the hole.
    driver.submit(src.iova(), hole_iova, 4096, 78).unwrap();
    driver.flush();
    assert_eq!(poll(&mut driver)[0].status, CompletionStatus::WRITE_FAULT);
    let faults = bus.iommu().take_faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(
        (faults[0].iova, faults[0].reason),
        (hole_iova, FaultReason::Unmapped)
    );
    assert_eq!(stats(&bus).faults, 2);
    driver.check_health().unwrap();
}

#[test]
fn the_iommu_enforces_direction_on_both_sides_of_a_copy() {
    let bus = bus_with(None);
    let mut driver = driver(&bus, 8);
    let src = buffer(&bus, 256, DmaDirection::ToDevice, |i| i as u8);
    let read_only = buffer(&bus, 256, DmaDirection::ToDevice, |_| 0x55);
    let write_only = buffer(&bus, 256, DmaDirection::FromDevice, |_| 0x66);

    driver.submit(src.iova(), read_only.iova(), 256, 1).unwrap();
    driver
        .submit(write_only.iova(), read_only.iova(), 256, 2)
        .unwrap();
    driver.flush();
    let done = poll(&mut driver);
    assert_eq!(done[0].status, CompletionStatus::WRITE_FAULT);
    assert_eq!(
        done[1].status,
        CompletionStatus::READ_FAULT,
        "the source is device write-only"
    );
    let faults = bus.iommu().take_faults();
    let seen: Vec<_> = faults
        .iter()
        .map(|f| (f.device, f.iova, f.access, f.reason))
        .collect();
    assert_eq!(
        seen,
        [
            (
                addr(),
                read_only.iova(),
                DmaAccess::Write,
                FaultReason::ReadOnly
            ),
            (
                addr(),
                write_only.iova(),
                DmaAccess::Read,
                FaultReason::WriteOnly
            ),
        ]
    );
    assert!(read_only.as_slice().iter().all(|&b| b == 0x55));
    assert!(write_only.as_slice().iter().all(|&b| b == 0x66));
}

#[test]
fn the_ring_wraps_for_several_laps_flipping_the_phase() {
    let bus = bus_with(None);
    let mut driver = driver(&bus, 4);
    assert_eq!(driver.capacity(), 3);
    let src = buffer(&bus, 4096, DmaDirection::ToDevice, |i| (i / 16) as u8);
    let dst = buffer(&bus, 4096, DmaDirection::FromDevice, |_| 0);

    // Ring full is backpressure, not a panic; it leaves the queue as it was.
    for tag in 0..3u32 {
        let off = u64::from(tag) * 16;
        driver
            .submit(src.iova() + off, dst.iova() + off, 16, tag)
            .unwrap();
    }
    let err = driver.submit(src.iova(), dst.iova(), 16, 3).unwrap_err();
    assert!(
        matches!(err, Error::QueueFull { device, capacity: 3, .. } if device == addr()),
        "{err}"
    );
    assert!(
        err.to_string().contains("poll completions, then retry"),
        "{err}"
    );
    let err = driver
        .submit_batch(&[userpci_framework::testdev::CopyRequest {
            src: src.iova(),
            dst: dst.iova(),
            len: 16,
            tag: 3,
        }])
        .unwrap_err();
    assert!(matches!(err, Error::QueueFull { capacity: 3, .. }), "{err}");
    assert_eq!(driver.in_flight(), 3);
    driver.flush();
    assert_eq!(poll(&mut driver).len(), 3);

    // Then 6 laps of varying batch sizes; completion n sits in slot n % 4 with phase
    // 1 on even laps and 0 on odd ones.
    let mut n = 3usize;
    let mut next_tag = 3u32;
    for batch in [1usize, 3, 2, 3, 1, 2, 3, 3, 2, 1, 3] {
        for _ in 0..batch {
            let off = u64::from(next_tag) * 16;
            driver
                .submit(src.iova() + off, dst.iova() + off, 16, next_tag)
                .unwrap();
            next_tag += 1;
        }
        driver.flush();
        for c in poll(&mut driver) {
            assert!(c.is_ok(), "{c:?}");
            assert_eq!(c.tag as usize, n);
            let raw = driver.raw_completion(n % 4);
            let lap = n / 4;
            assert_eq!(
                raw.phase,
                u32::from(lap.is_multiple_of(2)),
                "completion {n} on lap {lap}"
            );
            n += 1;
        }
        assert_eq!(driver.in_flight(), 0);
    }
    assert!(n / 4 >= 6, "{n} completions");
    let head = driver.registers().read32(spec::HEAD);
    assert_eq!(head as usize, n % 4);
    assert_eq!(&dst.as_slice()[..n * 16], &src.as_slice()[..n * 16]);
}

#[test]
fn with_latency_completions_wait_for_virtual_time() {
    let bus = bus_with(Some("latency_ns = 1_000_000"));
    let mut driver = driver(&bus, 8);
    let src = buffer(&bus, 64, DmaDirection::ToDevice, |i| i as u8 ^ 0x5a);
    let dst = buffer(&bus, 64, DmaDirection::FromDevice, |_| 0);
    driver.submit(src.iova(), dst.iova(), 32, 1).unwrap();
    driver
        .submit(src.iova() + 32, dst.iova() + 32, 32, 2)
        .unwrap();
    driver.flush();
    assert!(poll(&mut driver).is_empty());
    assert!(dst.as_slice().iter().all(|&b| b == 0));

    bus.clock().advance(Duration::from_micros(999));
    assert!(poll(&mut driver).is_empty());
    bus.clock().advance(Duration::from_micros(1));
    assert_eq!(
        poll(&mut driver).iter().map(|c| c.tag).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(driver.interrupt().take().unwrap(), 1);
    bus.clock().advance(Duration::from_millis(1));
    assert_eq!(
        poll(&mut driver).iter().map(|c| c.tag).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        driver.interrupt().take().unwrap(),
        1,
        "the same vector handle fires after the reset"
    );
    assert_eq!(dst.as_slice(), src.as_slice());
    assert_eq!(
        bus.clock().next_timer(),
        None,
        "no timer left once the ring is empty"
    );
}

#[test]
fn without_bus_mastering_the_engine_cannot_dma() {
    let bus = bus_with(None);
    let mut driver = driver(&bus, 8);
    let src = buffer(&bus, 64, DmaDirection::ToDevice, |_| 0x11);
    let dst = buffer(&bus, 64, DmaDirection::FromDevice, |_| 0x22);
    driver
        .function()
        .update_command(0, COMMAND_BUS_MASTER)
        .unwrap();

    driver.submit(src.iova(), dst.iova(), 64, 5).unwrap();
    driver.flush();
    assert!(poll(&mut driver).is_empty(), "no completion can be written");
    assert!(dst.as_slice().iter().all(|&b| b == 0x22));
    assert_eq!(driver.interrupt().take().unwrap(), 0);
    let err = driver.check_health().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::DeviceHalted { device, status, cause }
                if *device == addr()
                    && *status == spec::STATUS_ERR
                    && *cause == halt_cause(spec::CAUSE_RING_FAULT)
        ),
        "{err}"
    );
    assert!(err.to_string().contains("DMA fault on a ring"), "{err}");
    assert!(
        bus.iommu().faults().is_empty(),
        "BME faults never reach the IOMMU"
    );
    assert_eq!(stats(&bus).faults, 1);

    // Recovery: bus mastering back on, the engine reset; the lost copy is handed back.
    driver.function().set_bus_master(true).unwrap();
    assert_eq!(driver.reinitialize().unwrap(), [5]);
    driver.submit(src.iova(), dst.iova(), 64, 6).unwrap();
    driver.flush();
    assert!(poll(&mut driver)[0].is_ok());
    assert_eq!(dst.as_slice(), src.as_slice());
}

#[test]
fn the_model_rejects_bad_programming_with_status_error() {
    let bus = bus_with(None);
    let err = CopyEngineDriver::new(bus.open(addr()).unwrap(), 3).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                what: "ring size",
                value: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("ring size 3, expected a power of two in 2..=4096"),
        "{err}"
    );

    // Straight at the registers: RING_SIZE 3 is refused and halts the engine.
    let function = bus.open(addr()).unwrap();
    function.set_bus_master(true).unwrap();
    let regs = function.map_bar(spec::BAR).unwrap();
    regs.write32(spec::RING_SIZE, 3);
    assert_eq!(regs.read32(spec::STATUS), spec::STATUS_ERR);
    assert_eq!(regs.read32(spec::ERROR_CAUSE), spec::CAUSE_BAD_RING_SIZE);
    assert_eq!(regs.read32(spec::RING_SIZE), 0, "the write was ignored");
    regs.write32(spec::CTRL, spec::CTRL_EN);
    assert_eq!(
        regs.read32(spec::STATUS) & spec::STATUS_RDY,
        0,
        "ERR is sticky"
    );
    regs.write32(spec::CTRL, spec::CTRL_RST);
    assert_eq!(regs.read32(spec::STATUS), 0);
    regs.write32(spec::CTRL, spec::CTRL_EN);
    assert_eq!(
        regs.read32(spec::ERROR_CAUSE),
        spec::CAUSE_BAD_CONFIG,
        "no rings programmed"
    );
    drop(regs);
    drop(function);

    // A doorbell beyond the ring under a running driver.
    let mut driver = driver(&bus, 8);
    driver.registers().write32(spec::DOORBELL, 8);
    let err = driver.check_health().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::DeviceHalted { cause, .. } if *cause == halt_cause(spec::CAUSE_BAD_DOORBELL)
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("DOORBELL beyond RING_SIZE"),
        "{err}"
    );
    assert_eq!(driver.registers().read32(spec::HEAD), 0);
    assert!(driver.reinitialize().unwrap().is_empty());
    driver.check_health().unwrap();
}

/// A function with the copy engine's PCI IDs whose BAR0 is something else.
struct Impostor;

impl DeviceModel for Impostor {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            vendor_id: spec::VENDOR_ID,
            device_id: spec::DEVICE_ID,
            class_code: spec::CLASS_CODE,
            revision: 0,
            bars: vec![BarInfo {
                index: 0,
                size: 4096,
            }],
            msix_vectors: 1,
        }
    }
    fn mmio_read(&mut self, _: &mut ModelContext<'_>, _: u8, _: u64, _: u8) -> u64 {
        0xdead_beef
    }
    fn mmio_write(&mut self, _: &mut ModelContext<'_>, _: u8, _: u64, _: u8, _: u64) {}
    fn reset(&mut self, _: ResetKind) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[test]
fn a_wrong_id_register_is_refused_naming_device_and_value() {
    let mut registry = ModelRegistry::new();
    registry.register("impostor", |_| Ok(Box::new(Impostor)));
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(ADDR, "impostor")
        .build()
        .unwrap();
    let bus = SimBus::new(topology, &registry).unwrap();
    let err = CopyEngineDriver::new(bus.open(addr()).unwrap(), 8).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedDevice {
                found: 0xdead_beef,
                expected,
                ..
            } if expected == u64::from(spec::ID_VALUE)
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("0000:01:00.0") && text.contains("0xdeadbeef"),
        "{text}"
    );
}

#[test]
fn after_an_flr_the_driver_reinitialises_and_copies_again() {
    let bus = bus_with(Some("latency_ns = 1_000_000"));
    let mut driver = driver(&bus, 8);
    let src = buffer(&bus, 128, DmaDirection::ToDevice, |i| i as u8);
    let dst = buffer(&bus, 128, DmaDirection::FromDevice, |_| 0);

    driver.submit(src.iova(), dst.iova(), 64, 40).unwrap();
    driver.flush();
    bus.clock().advance(Duration::from_millis(1));
    assert!(poll(&mut driver)[0].is_ok());
    assert_eq!(driver.interrupt().take().unwrap(), 1);

    // One copy in flight in the engine when the function is reset.
    driver
        .submit(src.iova() + 64, dst.iova() + 64, 64, 41)
        .unwrap();
    driver.flush();
    driver.function().reset_function().unwrap();
    assert_eq!(bus.stats(addr()).unwrap().function_resets, 1);
    assert_eq!(stats(&bus).resets, 2, "CTRL.RST at init, then the FLR");
    let err = driver.check_health().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::DeviceHalted { status: 0, cause, .. } if cause.contains("not running")
        ),
        "{err}"
    );
    assert!(err.to_string().contains("reinitialize"), "{err}");
    assert!(poll(&mut driver).is_empty());
    assert!(
        dst.as_slice()[64..].iter().all(|&b| b == 0),
        "the reset dropped the copy"
    );

    assert_eq!(driver.reinitialize().unwrap(), [41]);
    driver
        .submit(src.iova() + 64, dst.iova() + 64, 64, 42)
        .unwrap();
    driver.flush();
    bus.clock().advance(Duration::from_millis(1));
    let done = poll(&mut driver);
    assert_eq!((done.len(), done[0].tag, done[0].is_ok()), (1, 42, true));
    assert_eq!(
        driver.raw_completion(0).phase,
        spec::PHASE,
        "the phase starts over"
    );
    assert_eq!(
        driver.interrupt().take().unwrap(),
        1,
        "the same vector handle fires after the reset"
    );
    assert_eq!(dst.as_slice(), src.as_slice());
}

#[test]
fn surprise_removal_reads_as_device_gone_and_a_hang_completes_nothing() {
    use userpci_framework::backend::sim::SimFault;
    let bus = bus_with(None);
    let mut driver = driver(&bus, 8);
    let src = buffer(&bus, 64, DmaDirection::ToDevice, |_| 1);
    let dst = buffer(&bus, 64, DmaDirection::FromDevice, |_| 0);

    bus.inject(addr(), SimFault::Hang).unwrap();
    driver.submit(src.iova(), dst.iova(), 64, 1).unwrap();
    driver.flush();
    assert!(poll(&mut driver).is_empty(), "the doorbell was dropped");
    driver.check_health().unwrap();
    bus.clear_faults(addr()).unwrap();

    bus.inject(addr(), SimFault::SurpriseRemoval).unwrap();
    let err = driver.check_health().unwrap_err();
    assert!(
        matches!(
            err,
            Error::DeviceGone { device } if device == addr()
        ),
        "{err}"
    );
    assert!(poll(&mut driver).is_empty());
    assert!(dst.as_slice().iter().all(|&b| b == 0));
}

#[test]
fn raw_registers_bad_descriptors_and_the_no_irq_flag() {
    use userpci_framework::testdev::spec::{CompletionEntry, Descriptor};
    let bus = bus_with(None);
    let function = bus.open(addr()).unwrap();
    function.set_bus_master(true).unwrap();
    let vector = function.enable_msix(1).unwrap().remove(0);
    let regs = function.map_bar(spec::BAR).unwrap();
    let space = bus.dma_space();
    let ring = space
        .allocate_array::<Descriptor>(4, DmaDirection::ToDevice)
        .unwrap();
    let done = space
        .allocate_array::<CompletionEntry>(4, DmaDirection::FromDevice)
        .unwrap();
    let src = buffer(&bus, 64, DmaDirection::ToDevice, |i| i as u8);
    let dst = buffer(&bus, 64, DmaDirection::FromDevice, |_| 0);

    // 64-bit registers written as two 32-bit halves.
    regs.write32(spec::RING_BASE, ring.iova() as u32);
    regs.write32(spec::RING_BASE + 4, (ring.iova() >> 32) as u32);
    regs.write64(spec::COMPLETION_BASE, done.iova());
    regs.write32(spec::RING_SIZE, 4);
    regs.write32(spec::CTRL, spec::CTRL_EN);
    assert_eq!(regs.read32(spec::STATUS), spec::STATUS_RDY);
    assert_eq!(regs.read64(spec::RING_BASE), ring.iova());

    let copy = |len, flags| Descriptor {
        src: src.iova(),
        dst: dst.iova(),
        len,
        tag: len,
        flags,
        reserved: 0,
    };
    ring.set(0, copy(0, 0));
    ring.set(1, copy(spec::MAX_COPY_LEN + 1, 0));
    ring.set(2, copy(8, 0x80));
    regs.write32(spec::DOORBELL, 3);
    for slot in 0..3 {
        let entry = done.get(slot);
        assert_eq!(
            entry.status,
            CompletionStatus::BAD_DESCRIPTOR.0,
            "slot {slot}"
        );
        assert_eq!((entry.bytes, entry.phase), (0, spec::PHASE));
    }
    assert_eq!(vector.take().unwrap(), 3);
    assert!(dst.as_slice().iter().all(|&b| b == 0));

    ring.set(3, copy(64, spec::DESC_FLAG_NO_IRQ));
    regs.write32(spec::DOORBELL, 0);
    assert_eq!(done.get(3).status, CompletionStatus::OK.0);
    assert_eq!(vector.take().unwrap(), 0, "DESC_FLAG_NO_IRQ");
    assert_eq!(regs.read32(spec::HEAD), 0);
    assert_eq!(dst.as_slice(), src.as_slice());

    // Rings cannot move under a running engine.
    regs.write64(spec::RING_BASE, 0x1000);
    assert_eq!(
        regs.read32(spec::ERROR_CAUSE),
        spec::CAUSE_CONFIG_WHILE_ENABLED
    );
    assert_eq!(regs.read64(spec::RING_BASE), ring.iova());
    let s = stats(&bus);
    assert_eq!((s.copies, s.bad_descriptors, s.interrupts), (1, 3, 3));
}
