//! The simulated ports: 82599 models on a simulated PCI bus (`userpci_ixgbe::model`), with
//! the model's traffic generators for `fwd`.

use std::sync::Arc;
use std::time::Duration;

use crate::framework::backend::sim::topology::TopologyBuilder;
use crate::framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use crate::framework::pci::PciAddress;
use crate::ixgbe::model::{self, GeneratorConfig, GeneratorDst, IxgbeModel};
use crate::ixgbe::{IxgbeDevice, IxgbeOptions};

use super::args::{MAC_A, MAC_B, SIM_A, SIM_B};
use crate::tools::error::{Result, ToolError};

/// A simulated bus with the given ports (address, MAC), each with `extra` model parameters
/// (TOML key = value lines).
pub fn sim_bus(ports: &[(&str, [u8; 6])], extra: &str) -> Result<Arc<SimBus>> {
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    let mut builder = TopologyBuilder::new().root_port("00:02.0", 1);
    for (address, mac) in ports {
        let params: toml::Table = format!("mac = \"{}\"\n{extra}", model::config::format_mac(*mac))
            .parse()
            .map_err(|err| ToolError::Model(format!("model parameters: {err}")))?;
        builder = builder.function(address, model::MODEL_NAME).params(params);
    }
    let topology = builder
        .build()
        .map_err(|e| ToolError::Model(e.to_string()))?;
    SimBus::new(topology, &registry).map_err(|e| ToolError::Model(e.to_string()))
}

/// Driver options on the model: the link must come up (it does, in virtual time).
pub fn sim_options() -> IxgbeOptions {
    IxgbeOptions {
        require_link: true,
        link_timeout: Duration::from_secs(1),
        ..IxgbeOptions::default()
    }
}

/// One of the fixed simulated addresses.
pub fn addr(text: &str) -> PciAddress {
    text.parse().expect("a valid address")
}

/// A simulated pair for `fwd`: ports A and B, no wire, each with a generator sending
/// `size`-byte frames to it (start it with [`start_generators`]).
pub fn fwd_sim(
    size: usize,
) -> Result<(
    Arc<SimBus>,
    IxgbeDevice<SimFunction>,
    IxgbeDevice<SimFunction>,
)> {
    let bus = sim_bus(&[(SIM_A, MAC_A), (SIM_B, MAC_B)], "sink_keep = 0\n")?;
    let a = IxgbeDevice::new(bus.open(addr(SIM_A))?, sim_options())?;
    let b = IxgbeDevice::new(bus.open(addr(SIM_B))?, sim_options())?;
    start_generators(&bus, size)?;
    Ok((bus, a, b))
}

/// Starts both ports' generators: `size`-byte frames at line rate, for ever.
pub fn start_generators(bus: &SimBus, size: usize) -> Result<()> {
    for (address, src) in [(SIM_A, MAC_B), (SIM_B, MAC_A)] {
        let config = GeneratorConfig {
            frame_len: size,
            count: 0,
            rate_pps: 1_000_000_000,
            flows: 1,
            dst: GeneratorDst::Port,
            src_mac: src,
        };
        bus.with_model_ctx(addr(address), |m: &mut IxgbeModel, ctx| {
            m.start_generator(ctx, config)
        })??;
    }
    Ok(())
}
