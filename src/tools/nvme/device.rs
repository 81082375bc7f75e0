//! Where the examples' controller comes from, and what they fail with.
//!
//! By default a simulated PCI bus with one function, `01:00.0`, running the NVMe controller
//! model (`userpci_nvme::model`), configured by the `--model-*` options. With `--device BDF` a
//! real controller bound to `vfio-pci`, opened through [`VfioContext`]; the model options are
//! then refused, as they would mean nothing.

use std::sync::Arc;

use crate::framework::backend::sim::topology::TopologyBuilder;
use crate::framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use crate::framework::backend::vfio::{VfioContext, VfioFunction, VfioOptions};
use crate::framework::pci::PciAddress;
use crate::nvme::model;

/// The address of the simulated controller.
pub const SIM_ADDRESS: &str = "01:00.0";

pub use crate::tools::error::{invalid, parse_bdf, Result, ToolError};

/// The device options both examples take.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// A real controller bound to vfio-pci (e.g. 0000:01:00.0). Default: the simulated
    /// controller model.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
    pub device: Option<PciAddress>,
    /// Model: bytes per logical block, 512 or 4096 [default: 512].
    #[arg(long, value_name = "BYTES", conflicts_with = "device")]
    pub model_lba_size: Option<u32>,
    /// Model: logical blocks per namespace [default: 262144].
    #[arg(long, value_name = "BLOCKS", conflicts_with = "device")]
    pub model_blocks: Option<u64>,
    /// Model: active namespaces [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "device")]
    pub model_namespaces: Option<u32>,
    /// Model: MDTS, transfers up to 4 KiB << MDTS, 0 for no limit [default: 5].
    #[arg(long, value_name = "MDTS", conflicts_with = "device")]
    pub model_mdts: Option<u8>,
    /// Model: I/O queue pairs the controller grants at most [default: 8].
    #[arg(long, value_name = "N", conflicts_with = "device")]
    pub model_max_queues: Option<u16>,
    /// Model: offer shadow doorbells (Doorbell Buffer Config, OACS bit 8).
    #[arg(long, conflicts_with = "device")]
    pub model_shadow_doorbells: bool,
    /// Model: each command completes this long after it is fetched, in virtual time (the
    /// examples advance the bus's clock whenever they find nothing to do) [default: 0, the
    /// model completes commands inside the doorbell write].
    #[arg(long, value_name = "NS", conflicts_with = "device")]
    pub model_latency_ns: Option<u64>,
}

/// An opened controller function.
pub enum Opened {
    /// The controller model; the bus is kept for its clock.
    Sim {
        bus: Arc<SimBus>,
        function: SimFunction,
    },
    /// A real controller (boxed: it is much larger than the simulated one).
    Vfio(Box<VfioFunction>),
}

impl DeviceArgs {
    /// The model's parameters, as a topology file would give them.
    pub fn model_params(&self) -> String {
        let mut params = String::new();
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                params.push_str(&format!("{key} = {value}\n"));
            }
        };
        add("lba_size", self.model_lba_size.map(|v| v.to_string()));
        add("blocks", self.model_blocks.map(|v| v.to_string()));
        add("namespaces", self.model_namespaces.map(|v| v.to_string()));
        add("mdts", self.model_mdts.map(|v| v.to_string()));
        add("max_queues", self.model_max_queues.map(|v| v.to_string()));
        add("latency_ns", self.model_latency_ns.map(|v| v.to_string()));
        if self.model_shadow_doorbells {
            add("shadow_doorbells", Some("true".into()));
        }
        params
    }

    /// A simulated bus with one NVMe controller model at [`SIM_ADDRESS`].
    pub fn sim_bus(&self) -> Result<Arc<SimBus>> {
        let params = self
            .model_params()
            .parse()
            .map_err(|err| ToolError::Model(format!("model parameters: {err}")))?;
        let mut registry = ModelRegistry::new();
        model::register(&mut registry);
        let topology = TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .function(SIM_ADDRESS, model::MODEL_NAME)
            .params(params)
            .build()
            .map_err(|err| ToolError::Model(err.to_string()))?;
        SimBus::new(topology, &registry).map_err(|err| ToolError::Model(err.to_string()))
    }

    /// Opens the controller: the model by default, the real one with `--device`.
    pub fn open(&self) -> Result<Opened> {
        match self.device {
            None => {
                let bus = self.sim_bus()?;
                let address = bus.topology().functions()[0].address;
                let function = bus.open(address)?;
                Ok(Opened::Sim { bus, function })
            }
            Some(address) => {
                let context = VfioContext::new(VfioOptions::new())?;
                Ok(Opened::Vfio(Box::new(context.open(address)?)))
            }
        }
    }
}

impl Opened {
    /// `"sim"` or `"vfio"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Opened::Sim { .. } => "sim",
            Opened::Vfio(_) => "vfio",
        }
    }
}
