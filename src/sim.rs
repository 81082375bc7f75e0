//! Ready simulated devices in one call, for first programs, doctests and tests.

use crate::framework::backend::sim::topology::TopologyBuilder;
use crate::framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use crate::framework::Result;
use crate::nvme::model;

/// Where [`nvme_function`] puts the controller: behind root port `00:02.0`, on bus 1.
pub const NVME_ADDRESS: &str = "01:00.0";

/// A simulated PCI bus with one NVMe controller model (the model's defaults: 512-byte
/// blocks, 262,144 of them in namespace 1), opened: pass it to
/// [`Controller::new`](crate::nvme::Controller::new) as a real `VfioFunction` would be.
/// The function keeps its bus alive.
pub fn nvme_function() -> Result<SimFunction> {
    nvme_function_with(toml::Table::new())
}

/// [`nvme_function`] with model parameters, as a topology file gives them (`lba_size`,
/// `blocks`, `namespaces`, `mdts`, `max_queues`, `latency_ns`, …).
pub fn nvme_function_with(params: toml::Table) -> Result<SimFunction> {
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(NVME_ADDRESS, model::MODEL_NAME)
        .params(params)
        .build()?;
    let bus = SimBus::new(topology, &registry)?;
    bus.open(NVME_ADDRESS.parse()?)
}
