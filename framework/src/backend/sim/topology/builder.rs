//! [`TopologyBuilder`]: a topology written as code, for tests and examples.

use super::spec::{FunctionSpec, RootPortSpec, TopologySpec};
use super::Topology;
use crate::device::ResetMethod;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// Which function the per-function setters apply to.
#[derive(Clone, Copy, Debug)]
enum Last {
    /// No function added yet.
    None,
    /// The last `function()` had a bad address; its setters are dropped (already reported).
    Invalid,
    /// Index into `spec.functions`.
    At(usize),
}

/// Builds a [`Topology`] fluently with string addresses.
///
/// Mistakes (unparsable addresses, a setter before any function) are collected and returned
/// together by [`TopologyBuilder::build`], which then also runs [`Topology::new`]'s validation.
///
/// ```
/// use userpci_framework::backend::sim::topology::TopologyBuilder;
///
/// let topo = TopologyBuilder::new()
///     .root_port("00:02.0", 1)
///     .function("01:00.0", "nvme")
///     .function("01:00.1", "nvme")
///     .owner("qemu")
///     .build()
///     .unwrap();
/// assert_eq!(topo.reset_groups().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct TopologyBuilder {
    spec: TopologySpec,
    last: Last,
    errors: Vec<String>,
}

impl Default for TopologyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TopologyBuilder {
    /// An empty machine.
    pub fn new() -> Self {
        TopologyBuilder {
            spec: TopologySpec::default(),
            last: Last::None,
            errors: Vec::new(),
        }
    }

    fn parse(&mut self, what: &str, address: &str) -> Option<PciAddress> {
        match address.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                self.errors.push(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Adds a root port with ACS, secondary bus reset allowed and no hotplug slot.
    pub fn root_port(mut self, address: &str, secondary_bus: u8) -> Self {
        if let Some(a) = self.parse("root port", address) {
            self.spec
                .root_ports
                .push(RootPortSpec::new(a, secondary_bus));
        }
        self
    }

    /// Adds a root port as specified.
    pub fn root_port_with(mut self, spec: RootPortSpec) -> Self {
        self.spec.root_ports.push(spec);
        self
    }

    /// Adds a function with reset methods `[flr]`, no ACS, no parameters and no other owner.
    pub fn function(mut self, address: &str, model: &str) -> Self {
        match self.parse(&format!("function ({model})"), address) {
            Some(a) => {
                self.spec.functions.push(FunctionSpec::new(a, model));
                self.last = Last::At(self.spec.functions.len() - 1);
            }
            None => self.last = Last::Invalid,
        }
        self
    }

    /// Adds a function as specified.
    pub fn function_with(mut self, spec: FunctionSpec) -> Self {
        self.spec.functions.push(spec);
        self.last = Last::At(self.spec.functions.len() - 1);
        self
    }

    fn last_function(&mut self, setter: &str) -> Option<&mut FunctionSpec> {
        match self.last {
            Last::At(i) => self.spec.functions.get_mut(i),
            Last::Invalid => None,
            Last::None => {
                self.errors
                    .push(format!("{setter}() called before any function() was added"));
                None
            }
        }
    }

    /// Sets the model parameters of the last added function.
    pub fn params(mut self, params: toml::Table) -> Self {
        if let Some(f) = self.last_function("params") {
            f.params = params;
        }
        self
    }

    /// Sets the reset methods of the last added function.
    pub fn reset_methods(mut self, methods: &[ResetMethod]) -> Self {
        if let Some(f) = self.last_function("reset_methods") {
            f.reset_methods = methods.to_vec();
        }
        self
    }

    /// Marks the last added function as held by another owner from the start.
    pub fn owner(mut self, owner: &str) -> Self {
        if let Some(f) = self.last_function("owner") {
            f.owner = Some(owner.to_string());
        }
        self
    }

    /// Gives the last added function ACS (isolating it from its slot's other functions).
    pub fn acs(mut self, acs: bool) -> Self {
        if let Some(f) = self.last_function("acs") {
            f.acs = acs;
        }
        self
    }

    /// The spec built so far, unvalidated (builder mistakes dropped).
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// Reports the collected mistakes, or validates the spec and computes its groups.
    pub fn build(self) -> Result<Topology> {
        match self.errors.len() {
            0 => Topology::new(self.spec),
            1 => Err(Error::Topology(
                self.errors.into_iter().next().unwrap_or_default(),
            )),
            n => Err(Error::Topology(format!(
                "{n} problems: {}",
                self.errors.join("; ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_builder_setters_apply_to_last_function() {
        let mut params = toml::Table::new();
        params.insert("queues".into(), toml::Value::Integer(4));
        let t = TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .function("01:00.0", "nvme")
            .function("01:00.1", "ixgbe")
            .params(params.clone())
            .reset_methods(&[])
            .owner("vm-7")
            .acs(true)
            .build()
            .unwrap();
        let f0 = &t.functions()[0].spec;
        assert!(f0.params.is_empty() && f0.owner.is_none() && !f0.acs);
        assert_eq!(f0.reset_methods, vec![ResetMethod::Flr]);
        let f1 = &t.functions()[1].spec;
        assert_eq!(f1.params, params);
        assert!(f1.reset_methods.is_empty());
        assert_eq!(f1.owner.as_deref(), Some("vm-7"));
        assert!(f1.acs);
    }

    #[test]
    fn topology_builder_collects_mistakes() {
        let err = TopologyBuilder::new()
            .owner("early")
            .root_port("00:02", 1)
            .function("zz:00.0", "nvme")
            .params(toml::Table::new())
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 problems"), "{err}");
        assert!(
            err.contains("owner() called before any function()"),
            "{err}"
        );
        assert!(
            err.contains("root port: invalid PCI address \"00:02\""),
            "{err}"
        );
        assert!(
            err.contains("function (nvme): invalid PCI address \"zz:00.0\""),
            "{err}"
        );
    }

    #[test]
    fn topology_builder_single_mistake_is_plain() {
        let err = TopologyBuilder::new()
            .function("00:20.0", "nvme")
            .build()
            .unwrap_err();
        match err {
            Error::Topology(m) => {
                assert!(m.starts_with("function (nvme): invalid PCI address"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
