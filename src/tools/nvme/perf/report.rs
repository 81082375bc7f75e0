//! What a run reports: per core and in total, as a table or one JSON object.

use std::fmt::Write as _;

use serde::Serialize;

use crate::framework::device::PciFunction;
use crate::nvme::{Controller, Namespace};

use super::args::{PerfArgs, Workload};
use super::plan::Plan;
use super::stats::{latency_fields, new_histogram, CoreStats};

/// One core's results.
#[derive(Serialize, Debug, Clone)]
pub struct CoreReport {
    pub core: usize,
    pub qid: u16,
    pub ios: u64,
    pub errors: u64,
    /// Verify reads whose data differed (also counted in `errors`).
    pub mismatches: u64,
    pub seconds: f64,
    pub iops: f64,
    #[serde(rename = "mbytes_per_s")]
    pub mbps: f64,
    pub lat_mean_ns: f64,
    pub lat_min_ns: u64,
    pub lat_p50_ns: u64,
    pub lat_p99_ns: u64,
    pub lat_p999_ns: u64,
    pub lat_max_ns: u64,
}

/// The whole run.
#[derive(Serialize, Debug, Clone)]
pub struct PerfReport {
    /// [`crate::tools::run::SCHEMA_VERSION`].
    pub schema: u32,
    /// Ctrl-C ended the run early: the figures cover the part that ran.
    pub interrupted: bool,
    /// `"sim"` (the controller model) or `"vfio"`.
    pub backend: &'static str,
    pub device: String,
    pub nsid: u32,
    pub block_size: u32,
    pub rw: Workload,
    pub bs: u64,
    pub qd: u32,
    pub cores: usize,
    pub cpus: Vec<usize>,
    /// `"raw"` or `"async"`.
    pub api: &'static str,
    /// Longest core's run, submission start to last completion.
    pub seconds: f64,
    pub ios: u64,
    pub errors: u64,
    pub mismatches: u64,
    /// Sum over the cores.
    pub iops: f64,
    /// Megabytes (10^6 bytes) per second, summed over the cores.
    #[serde(rename = "mbytes_per_s")]
    pub mbps: f64,
    pub lat_mean_ns: f64,
    pub lat_min_ns: u64,
    pub lat_p50_ns: u64,
    pub lat_p99_ns: u64,
    pub lat_p999_ns: u64,
    pub lat_max_ns: u64,
    pub per_core: Vec<CoreReport>,
    /// The model's latency, when simulated.
    pub model_latency_ns: Option<u64>,
    /// Virtual time that passed on the simulated bus's clock.
    pub virtual_ns: Option<u64>,
    /// I/Os per second of virtual time, when virtual time passed (a delayed model): about
    /// `qd * cores / model_latency` when the host keeps up.
    pub virtual_iops: Option<f64>,
}

pub(super) fn summarise<F: PciFunction>(
    args: &PerfArgs,
    plan: &Plan,
    ns: &Namespace,
    ctrl: &Controller<F>,
    backend: &'static str,
    cores: Vec<CoreStats>,
) -> PerfReport {
    let mut total = new_histogram();
    let mut per_core = Vec::with_capacity(cores.len());
    for c in &cores {
        total
            .add(&c.histogram)
            .expect("the histograms share their bounds");
        let seconds = c.elapsed.as_secs_f64();
        let iops = c.ios as f64 / seconds;
        let (mean, min, p50, p99, p999, max) = latency_fields(&c.histogram);
        per_core.push(CoreReport {
            core: c.core,
            qid: c.qid,
            ios: c.ios,
            errors: c.errors,
            mismatches: c.mismatches,
            seconds,
            iops,
            mbps: iops * plan.bs as f64 / 1e6,
            lat_mean_ns: mean,
            lat_min_ns: min,
            lat_p50_ns: p50,
            lat_p99_ns: p99,
            lat_p999_ns: p999,
            lat_max_ns: max,
        });
    }
    let (mean, min, p50, p99, p999, max) = latency_fields(&total);
    let iops: f64 = per_core.iter().map(|c| c.iops).sum();
    PerfReport {
        schema: crate::tools::run::SCHEMA_VERSION,
        interrupted: crate::tools::run::stop_requested(),
        backend,
        device: ctrl.device().to_string(),
        nsid: ns.nsid(),
        block_size: ns.block_size(),
        rw: plan.rw,
        bs: args.bs,
        qd: args.qd,
        cores: plan.cpus.len(),
        cpus: plan.cpus.clone(),
        api: if plan.use_async { "async" } else { "raw" },
        seconds: per_core.iter().map(|c| c.seconds).fold(0.0, f64::max),
        ios: per_core.iter().map(|c| c.ios).sum(),
        errors: per_core.iter().map(|c| c.errors).sum(),
        mismatches: per_core.iter().map(|c| c.mismatches).sum(),
        iops,
        mbps: iops * plan.bs as f64 / 1e6,
        lat_mean_ns: mean,
        lat_min_ns: min,
        lat_p50_ns: p50,
        lat_p99_ns: p99,
        lat_p999_ns: p999,
        lat_max_ns: max,
        per_core,
        model_latency_ns: (backend == "sim").then(|| args.device.model_latency_ns.unwrap_or(0)),
        virtual_ns: None,
        virtual_iops: None,
    }
}

impl PerfReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    /// The report as a table, one line per core and a total.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let what = match self.backend {
            "sim" => match self.model_latency_ns {
                Some(ns) if ns > 0 => {
                    format!("simulated NVMe controller model, {ns} ns per command in virtual time")
                }
                _ => "simulated NVMe controller model, instant".to_string(),
            },
            _ => "vfio-pci".to_string(),
        };
        let _ = writeln!(
            out,
            "Device {} ({what}), namespace {} ({}-byte blocks)",
            self.device, self.nsid, self.block_size
        );
        let _ = writeln!(
            out,
            "{} {} bytes, QD {}, {} core(s), {} API, {:.2} s",
            self.rw.name(),
            self.bs,
            self.qd,
            self.cores,
            self.api,
            self.seconds
        );
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "core", "qid", "IOPS", "MB/s", "p50 ns", "p99 ns", "p99.9 ns", "I/Os", "errors"
        );
        for c in &self.per_core {
            let _ = writeln!(
                out,
                "{:<8} {:>5} {:>12.0} {:>10.1} {:>10} {:>10} {:>10} {:>12} {:>8}",
                c.core,
                c.qid,
                c.iops,
                c.mbps,
                c.lat_p50_ns,
                c.lat_p99_ns,
                c.lat_p999_ns,
                c.ios,
                c.errors
            );
        }
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>12.0} {:>10.1} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "total",
            "",
            self.iops,
            self.mbps,
            self.lat_p50_ns,
            self.lat_p99_ns,
            self.lat_p999_ns,
            self.ios,
            self.errors
        );
        let _ = writeln!(
            out,
            "latency ns: min {} mean {:.0} max {}",
            self.lat_min_ns, self.lat_mean_ns, self.lat_max_ns
        );
        if self.rw == Workload::Verify {
            let _ = writeln!(out, "verify: {} mismatching read(s)", self.mismatches);
        }
        if let (Some(ns), Some(iops)) = (self.virtual_ns, self.virtual_iops) {
            let _ = writeln!(
                out,
                "virtual time on the simulated bus: {:.6} s, {iops:.0} IOPS in virtual time",
                ns as f64 / 1e9
            );
        }
        out
    }
}

impl crate::tools::run::ToolReport for PerfReport {
    fn to_text(&self) -> String {
        PerfReport::to_text(self)
    }
    fn to_json(&self) -> String {
        PerfReport::to_json(self)
    }
    fn failure(&self) -> Option<String> {
        (self.errors > 0).then(|| format!("{} I/O error(s)", self.errors))
    }
}
