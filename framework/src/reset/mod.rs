//! Reset coordination across the co-owned functions of one reset group.
//!
//! The kernel puts functions that one slot or bus reset hits into one reset group (`dev_set`).
//! This module makes the group visible ([`group_report`]), makes ownership explicit
//! ([`claim_reset_group`]), and turns recovery into a timed, ordered sequence
//! ([`ResetCoordinator`]): plan → quiesce (parallel, budgeted) → disable → reset → wait for
//! config reads → recover (priority order, budgeted), recorded in a [`Timeline`] that renders
//! as JSON and as an SVG picture ([`render_svg`]).
//!
//! Drivers take part through [`ResetParticipant`]; functions are reached through
//! [`crate::device::ResetTarget`], which every [`crate::device::PciFunction`] implements.

mod coordinator;
mod group;
mod participant;
mod plan;
mod svg;
mod timeline;

pub use coordinator::{
    CoordinatorConfig, MemberReport, ResetCoordinator, ResetOutcome, ResetReport,
};
pub use group::{claim_reset_group, group_report, render_table, FunctionOpener, ResetGroupView};
pub use participant::{ParticipantConfig, Progress, ResetParticipant};
pub use plan::{
    bus_reset_blockers, plan, ResetCause, ResetKind, ResetPlan, ResetRequest, ResetScope,
};
pub use svg::render as render_svg;
pub use timeline::{Outcome, Phase, PhaseRecord, Timeline};
