//! The run's plan: the arguments checked against the controller and namespace.

use std::time::Duration;

use crate::framework::backend::sim::SimClock;
use crate::framework::device::PciFunction;
use crate::nvme::{Controller, Namespace};
use crate::tools::nvme::device::{invalid, Result};

use super::args::{PerfArgs, Workload};

/// Everything a worker needs to know, checked.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub(super) rw: Workload,
    pub(super) bs: usize,
    /// `bs` in logical blocks.
    pub(super) bs_blocks: u64,
    pub(super) qd: usize,
    /// Queue entries: `qd` times the commands per I/O, plus one.
    pub(super) entries: u16,
    /// `bs`-sized positions in the namespace.
    pub(super) units: u64,
    pub(super) cpus: Vec<usize>,
    pub(super) duration: Duration,
    pub(super) seed: u64,
    pub(super) use_async: bool,
}

/// Checks the arguments against the controller and namespace; returns the plan.
pub(super) fn make_plan<F: PciFunction>(
    args: &PerfArgs,
    ctrl: &Controller<F>,
    ns: &Namespace,
    cpus: Vec<usize>,
) -> Result<Plan> {
    let block = u64::from(ns.block_size());
    if !args.bs.is_multiple_of(block) {
        return Err(invalid(
            "--bs",
            args.bs,
            format!(
                "a multiple of namespace {}'s block size, {block} bytes",
                ns.nsid()
            ),
        ));
    }
    if args.bs > ns.size_bytes() {
        return Err(invalid(
            "--bs",
            args.bs,
            format!("at most the namespace's size, {} bytes", ns.size_bytes()),
        ));
    }
    let bs_blocks = args.bs / block;
    let per_command = ns.max_blocks_per_command();
    let commands = bs_blocks.div_ceil(per_command);
    let max_entries = u64::from(ctrl.info().cap.max_queue_entries().min(u32::from(u16::MAX)));
    let max_commands = max_entries - 1;
    if commands > max_commands {
        return Err(invalid(
            "--bs",
            args.bs,
            format!(
                "at most {} bytes: an I/O is split into commands of at most {} bytes (MDTS), \
                 and a queue holds {max_commands} commands",
                max_commands * per_command * block,
                per_command * block
            ),
        ));
    }
    let qd = u64::from(args.qd);
    if qd * commands > max_commands {
        let split = if commands == 1 {
            String::new()
        } else {
            format!(", {commands} commands per {}-byte I/O", args.bs)
        };
        return Err(invalid(
            "--qd",
            args.qd,
            format!(
                "1..={} (a queue holds {max_commands} commands, CAP.MQES{split})",
                max_commands / commands
            ),
        ));
    }
    let granted = usize::from(ctrl.info().io_queues);
    if cpus.len() > granted {
        let (name, value) = match &args.cpus {
            Some(list) => ("--cpus", list.clone()),
            None => ("--cores", cpus.len().to_string()),
        };
        return Err(invalid(
            name,
            value,
            format!("at most {granted} cores: the controller grants {granted} I/O queue pairs"),
        ));
    }
    let units = ns.blocks() / bs_blocks;
    if args.rw == Workload::Verify {
        let slots = qd * cpus.len() as u64;
        if units < slots {
            return Err(invalid(
                "--qd",
                args.qd,
                format!(
                    "at most {} with {} core(s) for verify: each slot needs its own {}-byte \
                     stretch of the namespace, which holds {units}",
                    units / cpus.len() as u64,
                    cpus.len(),
                    args.bs
                ),
            ));
        }
    }
    Ok(Plan {
        rw: args.rw,
        bs: args.bs as usize,
        bs_blocks,
        qd: args.qd as usize,
        entries: (qd * commands + 1) as u16,
        units,
        cpus,
        duration: Duration::from_secs_f64(args.seconds),
        seed: args.seed,
        use_async: args.use_async,
    })
}

/// Advances the simulated clock to the model's next timer (a delayed command completing).
pub(super) fn advance_virtual_time(clock: &SimClock) {
    if let Some(next) = clock.next_timer() {
        clock.advance_to(next);
    }
}
