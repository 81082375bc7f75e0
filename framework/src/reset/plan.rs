//! Choosing the reset: FLR of one function, or a bus/slot reset of its whole reset group.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::{Ownership, ResetGroupMember, ResetMethod, ResetTarget};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// Why a reset was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetCause {
    /// An explicit API call.
    Api,
    /// A command or descriptor did not complete in time.
    Timeout,
    /// The device reported a fatal error (NVMe CSTS.CFS, a NIC's hang).
    FatalStatus,
    /// Reads return all ones: surprise removal or a link down. An FLR, which goes through the
    /// function's own config space, cannot help; only a bus reset can.
    NotResponding,
    /// The kernel's request interrupt asked for the device back.
    ReleaseRequest,
}

impl ResetCause {
    /// True when the fault is the function's own, so an FLR can clear it.
    pub fn is_local(self) -> bool {
        !matches!(self, ResetCause::NotResponding)
    }
}

/// How far a reset may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetScope {
    /// FLR when the function has it and the fault is local, else the group.
    Auto,
    /// The function alone (FLR); an error if it has none.
    Function,
    /// The whole reset group (bus or slot reset).
    Group,
}

/// A reset request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequest {
    /// The function that needs it.
    pub device: PciAddress,
    /// Why.
    pub cause: ResetCause,
    /// How far it may reach.
    pub scope: ResetScope,
}

impl ResetRequest {
    /// A request with [`ResetScope::Auto`].
    pub fn new(device: PciAddress, cause: ResetCause) -> Self {
        ResetRequest {
            device,
            cause,
            scope: ResetScope::Auto,
        }
    }

    /// The same request with another scope.
    pub fn with_scope(mut self, scope: ResetScope) -> Self {
        self.scope = scope;
        self
    }
}

/// What kind of reset a plan performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetKind {
    /// Function Level Reset of one function.
    Flr,
    /// Secondary bus (or slot) reset of the reset group.
    Bus,
}

impl fmt::Display for ResetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResetKind::Flr => "flr",
            ResetKind::Bus => "bus",
        })
    }
}

/// The chosen reset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResetPlan {
    /// FLR or bus reset.
    pub kind: ResetKind,
    /// Every function the reset hits.
    pub members: Vec<PciAddress>,
}

/// Plans the reset of `request.device`, reached through `target`.
///
/// A bus reset is planned only when every member of the reset group is owned by this process;
/// otherwise the error names each blocker, before anything was touched.
pub fn plan(request: &ResetRequest, target: &dyn ResetTarget) -> Result<ResetPlan> {
    let device = request.device;
    let methods = target.target_reset_methods();
    let has_flr = methods.contains(&ResetMethod::Flr) || methods.contains(&ResetMethod::AfFlr);
    let flr = match request.scope {
        ResetScope::Function => {
            if !has_flr {
                return Err(Error::NoFunctionReset {
                    device,
                    methods: method_names(&methods),
                });
            }
            true
        }
        ResetScope::Group => false,
        ResetScope::Auto => has_flr && request.cause.is_local(),
    };
    if flr {
        return Ok(ResetPlan {
            kind: ResetKind::Flr,
            members: vec![device],
        });
    }
    let group = target.target_reset_group()?;
    let blockers = bus_reset_blockers(&group);
    if !blockers.is_empty() {
        return Err(Error::HotResetRefused {
            device,
            blockers: blockers.join("; "),
        });
    }
    Ok(ResetPlan {
        kind: ResetKind::Bus,
        members: group.into_iter().map(|m| m.address).collect(),
    })
}

/// What stands in the way of a bus or slot reset of a reset group: one line per member this
/// process does not own; empty when the reset is allowed.
///
/// The planner ([`plan`]) and the group report ([`super::group_report`]) both decide through
/// this one function, so a report can never call possible a reset the planner would refuse (or
/// the other way round). A group of one owned function counts: its bus reset hits only itself.
pub fn bus_reset_blockers(members: &[ResetGroupMember]) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| match &m.ownership {
            Ownership::Owned => None,
            Ownership::OwnedElsewhere { owner } => {
                Some(format!("{} is owned by {owner}", m.address))
            }
            Ownership::Unopened => Some(format!("{} is not opened by this process", m.address)),
        })
        .collect()
}

pub(crate) fn method_names(methods: &[ResetMethod]) -> String {
    methods
        .iter()
        .map(|m| m.sysfs_name())
        .collect::<Vec<_>>()
        .join(" ")
}
