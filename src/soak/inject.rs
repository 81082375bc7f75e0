//! Putting a fault into the simulated bus or the NVMe model: the bus's faults (removal,
//! link down, slow ready) and the model's (hang, fatal status, corrupt completions).

use userpci_framework::backend::sim::{SimBus, SimFault};
use userpci_framework::pci::PciAddress;
use userpci_framework::Result;
use userpci_nvme::model::{CommandClass, Corruption, NvmeModel, Recovery};

use super::fault::{Clearing, DeviceFault, FaultClass, FaultEvent, Trigger};

fn recovery(clearing: Clearing) -> Recovery {
    match clearing {
        Clearing::ControllerReset => Recovery::ControllerReset,
        Clearing::FunctionReset => Recovery::FunctionReset,
    }
}

/// Applies `fault` to the function at `address` now.
pub fn apply(bus: &SimBus, address: PciAddress, fault: DeviceFault) -> Result<()> {
    match fault {
        DeviceFault::Hang(c) => bus.with_model(address, |m: &mut NvmeModel| m.hang(recovery(c))),
        DeviceFault::Fatal(c) => bus.with_model(address, |m: &mut NvmeModel| m.fatal(recovery(c))),
        DeviceFault::LinkDown => bus.inject(address, SimFault::LinkDown),
    }
}

/// Starts the reset that a hook class (or slow ready) needs.
pub fn trigger(bus: &SimBus, address: PciAddress, trigger: Trigger) -> Result<()> {
    match trigger {
        Trigger::Fatal => apply(bus, address, DeviceFault::Fatal(Clearing::FunctionReset)),
        Trigger::LinkDown => apply(bus, address, DeviceFault::LinkDown),
    }
}

/// Injects the immediate part of `event` into the controller at `address`: the whole fault
/// for the device classes; for the hook classes (whose hooks the runner arms first) and
/// slow ready, the fault that starts a reset.
pub fn inject(bus: &SimBus, address: PciAddress, event: &FaultEvent) -> Result<()> {
    let corrupt = |corruption| {
        bus.with_model(address, |m: &mut NvmeModel| {
            m.corrupt_next_completion(CommandClass::Io, corruption)
        })
    };
    match event.class {
        FaultClass::CommandHang | FaultClass::ControllerFatal => {
            apply(bus, address, event.device_fault)
        }
        FaultClass::SurpriseRemoval => bus.inject(address, SimFault::SurpriseRemoval),
        FaultClass::LinkDown => bus.inject(address, SimFault::LinkDown),
        FaultClass::CorruptBadCid => corrupt(Corruption::CidOutOfRange),
        FaultClass::CorruptDuplicateCid => corrupt(Corruption::DuplicateCid),
        FaultClass::CorruptBadSqHead => corrupt(Corruption::SqHeadOutOfRange),
        FaultClass::CorruptWrongPhase => corrupt(Corruption::WrongPhase),
        FaultClass::SlowReady => {
            bus.inject(address, SimFault::SlowReady(event.slow_by))?;
            trigger(bus, address, event.trigger)
        }
        FaultClass::MissedQuiesceDeadline
        | FaultClass::MissedRecoverDeadline
        | FaultClass::FaultDuringRecovery
        | FaultClass::SecondFaultDuringReset => trigger(bus, address, event.trigger),
    }
}

/// Clears what is left of every fault on the controller at `address` (bus and model): an
/// episode ends with a clean device, so that a fault that did not fire (a corruption on an
/// idle queue) does not leak into the next one.
pub fn clear(bus: &SimBus, address: PciAddress) -> Result<()> {
    bus.clear_faults(address)?;
    bus.with_model(address, |m: &mut NvmeModel| m.clear_faults())
}
