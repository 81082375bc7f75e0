//! The reset group the soak runs on: the simulated bus with its NVMe controllers (and the
//! NIC), each controller's member record, and bringing a controller up, or back after it
//! was failed or lost, with its participant registered and its workload attached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci_framework::device::{ResetMethod, ResetTarget};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{ParticipantConfig, ResetCoordinator, ResetRequest};
use userpci_nvme::{Controller, ControllerOptions, NvmeParticipant, ResetHandler};

use super::config::{timing, SoakConfig};
use super::error::Result;
use super::inject;
use super::nic;
use super::participant::{Arming, ArmingHandle, SoakParticipant};
use super::report::ResetTally;
use super::workload::{Workload, SLOTS, WRITE_BLOCKS};

/// One controller of the group: its function, the controller in use, its workload (which
/// outlives controllers) and the switch of its misbehaving participant.
pub struct Member {
    pub address: PciAddress,
    pub name: String,
    pub priority: u32,
    pub function: Arc<SimFunction>,
    pub ctrl: Option<Controller<Arc<SimFunction>>>,
    pub workload: Workload,
    pub arming: ArmingHandle,
    /// Acknowledged writes when the last reset finished.
    pub mark: u64,
    /// Acknowledged writes to reach before the next fault.
    pub goal: u64,
}

/// Locks the tally, whatever a panic elsewhere left in it.
pub fn lock(tally: &Mutex<ResetTally>) -> MutexGuard<'_, ResetTally> {
    tally.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks a participant's switch.
pub fn lock_arming(arming: &Mutex<Arming>) -> MutexGuard<'_, Arming> {
    arming.lock().unwrap_or_else(|p| p.into_inner())
}

/// Root port 00:02.0 with one multifunction device on bus 1: the controllers at 01:00.0
/// onwards, then the NIC; one slot, so one reset group.
pub fn build_bus(config: &SoakConfig) -> Result<Arc<SimBus>> {
    let params: toml::Table = format!(
        "latency_ns = {}\nblocks = {}\ntimeout_500ms = 1\nready_delay_us = {}",
        timing::IO_LATENCY.as_nanos(),
        SLOTS * WRITE_BLOCKS,
        timing::READY_DELAY.as_micros()
    )
    .parse()
    .expect("static parameters parse");
    let mut builder = TopologyBuilder::new().root_port("00:02.0", 1);
    let functions = config.controllers + u8::from(config.nic);
    for i in 0..functions {
        // As the kernel shows a multifunction slot: `bus` only on the function probed first.
        let methods: &[ResetMethod] = if i == 0 {
            &[ResetMethod::Flr, ResetMethod::Bus]
        } else {
            &[ResetMethod::Flr]
        };
        let at = format!("01:00.{i}");
        builder = if i == config.controllers {
            builder.function(&at, "ixgbe").params(nic::params())
        } else {
            let mut p = params.clone();
            p.insert("serial".into(), format!("SOAK{i}").into());
            builder.function(&at, "nvme").params(p)
        }
        .reset_methods(methods);
    }
    let mut registry = ModelRegistry::new();
    userpci_nvme::model::register(&mut registry);
    userpci_ixgbe::model::register(&mut registry);
    Ok(SimBus::new(builder.build()?, &registry)?)
}

/// What bringing controllers up needs: the bus, the coordinator, the tally the reset
/// handler records into.
pub struct Group {
    pub bus: Arc<SimBus>,
    pub coordinator: Arc<ResetCoordinator>,
    pub tally: Arc<Mutex<ResetTally>>,
    /// Resets asked for so far; the handler adds 1 before each (the workloads watch it).
    pub reset_epoch: Arc<AtomicU64>,
}

impl Group {
    /// Opens controller `index`'s function; no controller yet.
    pub fn member(&self, index: u8, config: &SoakConfig) -> Result<Member> {
        let address: PciAddress = format!("01:00.{index}").parse()?;
        let name = format!("nvme{index} {}", &address.to_string()[5..]);
        Ok(Member {
            address,
            priority: u32::from(index),
            function: Arc::new(self.bus.open(address)?),
            ctrl: None,
            workload: Workload::new(
                name.clone(),
                config.depth,
                config.seed ^ (u64::from(index) << 56),
            )
            .with_reset_epoch(Arc::clone(&self.reset_epoch)),
            name,
            arming: Arc::new(Mutex::new(Arming::default())),
            mark: 0,
            goal: 0,
        })
    }

    /// The drivers' reset handler: the coordinator, every reset recorded in the tally.
    fn handler(&self) -> ResetHandler {
        let coordinator = Arc::clone(&self.coordinator);
        let tally = Arc::clone(&self.tally);
        let epoch = Arc::clone(&self.reset_epoch);
        ResetHandler::new(move |device, cause| {
            epoch.fetch_add(1, Ordering::AcqRel);
            match coordinator.request(ResetRequest::new(device, cause)) {
                Ok(outcome) => {
                    if !outcome.coalesced {
                        lock(&tally).record(&outcome.report);
                    }
                    true
                }
                Err(err) => {
                    tracing::warn!(%device, %err, "soak: reset refused");
                    lock(&tally).refused += 1;
                    false
                }
            }
        })
    }

    /// A controller on the member's function, its participant registered, its workload
    /// attached.
    pub fn bring_up(&self, member: &mut Member) -> Result<()> {
        let ctrl = Controller::new(
            Arc::clone(&member.function),
            ControllerOptions {
                admin_timeout: timing::ADMIN_TIMEOUT,
                reset_handler: Some(self.handler()),
                ..ControllerOptions::default()
            },
        )?;
        let participant = SoakParticipant::new(
            Box::new(NvmeParticipant::new(ctrl.clone(), member.name.clone())),
            Arc::clone(&member.arming),
            Arc::clone(&self.bus),
        );
        self.coordinator.register(
            Arc::clone(&member.function) as Arc<dyn ResetTarget>,
            Box::new(participant),
            ParticipantConfig {
                priority: member.priority,
                quiesce_budget: timing::QUIESCE_BUDGET,
                recover_budget: timing::RECOVER_BUDGET,
            },
        )?;
        member.workload.attach(&ctrl)?;
        member.ctrl = Some(ctrl);
        Ok(())
    }

    /// Brings a failed or lost controller back as an application would: its callers have
    /// had their errors; unregister it, clear the device's faults (the device is replaced or
    /// its link retrained), FLR, and a new controller with the same workload and ledger.
    pub fn reattach(&self, member: &mut Member) -> Result<()> {
        member.workload.detach();
        drop(self.coordinator.unregister(member.address));
        member.ctrl = None;
        inject::clear(&self.bus, member.address)?;
        member.function.target_reset_function()?;
        self.bring_up(member)
    }
}
