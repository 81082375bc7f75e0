//! The NVMe examples' logic (`userpci::tools::nvme`), run as `nvme_identify` and `nvme_perf` run it:
//! identify fields, short perf runs in verify mode on both APIs and on a delayed model, and
//! the argument checks, each of which must name the value at fault.

use userpci::tools::nvme as common;

use clap::Parser;
use common::device::ToolError;
use common::identify::{self, IdentifyArgs};
use common::perf::{self, PerfArgs, PerfReport};

fn identify_args(extra: &[&str]) -> IdentifyArgs {
    IdentifyArgs::try_parse_from(std::iter::once("nvme_identify").chain(extra.iter().copied()))
        .expect("arguments parse")
}

fn perf_args(extra: &[&str]) -> Result<PerfArgs, ToolError> {
    Ok(PerfArgs::try_parse_from(
        std::iter::once("nvme_perf").chain(extra.iter().copied()),
    )?)
}

fn run_perf(extra: &[&str]) -> Result<PerfReport, ToolError> {
    perf::run(&perf_args(extra)?)
}

/// The error message of a perf run that must fail.
fn perf_error(extra: &[&str]) -> String {
    match run_perf(extra) {
        Ok(report) => panic!("{extra:?} ran: {}", report.to_text()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn identify_shows_controller_and_namespace_fields() {
    let report = identify::run(&identify_args(&[])).unwrap();
    assert_eq!(report.backend, "sim");
    assert_eq!(report.vid, "0x1b36");
    assert_eq!(report.serial, "USERPCI0001");
    assert_eq!(report.mdts, 5);
    assert_eq!(report.mdts_bytes, Some(128 * 1024));
    assert_eq!(report.max_io_queues, 8, "the model's max_queues");
    assert_eq!(report.max_queue_entries, 1024);
    assert_eq!(report.nn, 1);
    assert!(!report.shadow_doorbells_supported);
    assert!(report
        .oncs_features
        .iter()
        .any(|f| f.contains("Write Zeroes")));
    let ns = &report.namespaces[0];
    assert_eq!((ns.nsid, ns.blocks, ns.block_size), (1, 262_144, 512));
    assert_eq!(ns.bytes, 262_144 * 512);
    assert_eq!(ns.lba_formats.len(), 1);
    assert!(ns.lba_formats[0].in_use);
    let text = report.to_text();
    for field in [
        "vid",
        "sn",
        "mn",
        "fr",
        "mdts",
        "131072 bytes",
        "nn",
        "oacs",
        "oncs",
        "nsze",
    ] {
        assert!(text.contains(field), "{field} missing from\n{text}");
    }
    assert!(
        text.contains("lbaf  0   : ms:0   lbads:9  rp:0 (in use)"),
        "{text}"
    );
}

#[test]
fn identify_follows_the_model_options_and_prints_json() {
    let args = identify_args(&[
        "--model-lba-size",
        "4096",
        "--model-namespaces",
        "2",
        "--model-blocks",
        "1000",
        "--model-shadow-doorbells",
        "--json",
    ]);
    let report = identify::run(&args).unwrap();
    assert_eq!(report.namespaces.len(), 2);
    assert!(report
        .namespaces
        .iter()
        .all(|n| n.block_size == 4096 && n.bytes == 4_096_000));
    assert!(report.shadow_doorbells_supported && report.shadow_doorbells_in_use);
    assert!(report
        .oacs_features
        .iter()
        .any(|f| f.contains("Doorbell Buffer Config")));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["namespaces"][1]["nsid"], 2);
    assert_eq!(json["namespaces"][0]["lba_formats"][0]["in_use"], true);
    assert_eq!(json["oacs"], "0x0100");
}

#[test]
fn identify_on_a_real_device_fails_with_the_backends_error() {
    // Whatever this machine has (no IOMMU, no such device, not bound to vfio-pci), the
    // backend's error comes back instead of a panic.
    let err = identify::run(&identify_args(&["--device", "0000:ff:1f.7"])).unwrap_err();
    assert!(matches!(err, ToolError::Framework(_)), "{err:?}");
    assert!(!err.to_string().is_empty());
    // Model options with a real device are refused by the parser.
    let err = IdentifyArgs::try_parse_from(["x", "--device", "01:00.0", "--model-blocks", "5"])
        .unwrap_err();
    assert!(err.to_string().contains("--model-blocks"), "{err}");
}

fn check_verify(report: &PerfReport, api: &str) {
    assert_eq!(report.api, api);
    assert_eq!(report.errors, 0, "{}", report.to_text());
    assert_eq!(report.mismatches, 0);
    assert!(report.ios > 0);
    assert!(report.iops > 0.0 && report.mbps > 0.0);
    assert!(report.lat_p50_ns <= report.lat_p99_ns && report.lat_p99_ns <= report.lat_p999_ns);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for field in [
        "iops",
        "mbytes_per_s",
        "lat_p50_ns",
        "lat_p99_ns",
        "lat_p999_ns",
        "ios",
        "errors",
        "rw",
        "bs",
        "qd",
        "cores",
        "api",
    ] {
        assert!(!json[field].is_null(), "{field} missing from {json}");
    }
    assert_eq!(json["rw"], "verify");
    assert_eq!(json["api"], api);
    assert_eq!(json["ios"], report.ios);
}

#[test]
fn perf_verify_on_the_raw_api_finds_no_mismatch() {
    // 2048 blocks: 256 I/Os of 4 KiB, 16 per slot.
    let report = run_perf(&[
        "--rw",
        "verify",
        "--seconds",
        "1",
        "--qd",
        "16",
        "--model-blocks",
        "2048",
        "--json",
    ])
    .unwrap();
    check_verify(&report, "raw");
    assert_eq!((report.bs, report.qd, report.cores), (4096, 16, 1));
    // At least two passes over each slot's stretch (a write and a read per position), so the
    // data read back differs from the previous pass's. Wall-clock bound: a loaded machine
    // completes exactly two passes in the time, so the bound is inclusive.
    assert!(report.ios >= 2 * 2 * 256, "{} I/Os", report.ios);
}

#[test]
fn perf_verify_on_the_async_api_finds_no_mismatch() {
    let report = run_perf(&[
        "--rw",
        "verify",
        "--seconds",
        "0.2",
        "--async",
        "--bs",
        "8192",
        "--model-lba-size",
        "4096",
    ])
    .unwrap();
    check_verify(&report, "async");
    assert_eq!(report.block_size, 4096);
}

#[test]
fn perf_on_a_delayed_model_advances_virtual_time() {
    // 4 in flight, 10 µs each in virtual time: 400,000 IOPS of virtual time.
    for api in [&[][..], &["--async"][..]] {
        let mut args = vec![
            "--rw",
            "verify",
            "--seconds",
            "0.1",
            "--qd",
            "4",
            "--model-latency-ns",
            "10000",
        ];
        args.extend_from_slice(api);
        let report = run_perf(&args).unwrap();
        assert_eq!(report.errors, 0);
        assert!(report.ios > 0);
        let virtual_iops = report.virtual_iops.expect("virtual time passed");
        assert!(
            (virtual_iops - 400_000.0).abs() < 4_000.0,
            "{virtual_iops} IOPS of virtual time"
        );
    }
}

#[test]
fn perf_runs_every_workload() {
    for rw in ["randread", "randwrite", "read", "write"] {
        let report = run_perf(&["--rw", rw, "--seconds", "0.05", "--qd", "4"]).unwrap();
        assert_eq!(report.errors, 0, "{rw}");
        assert!(report.ios > 0, "{rw}");
    }
}

#[test]
fn perf_arguments_are_checked_and_named() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--bs", "1000"], &["--bs = 1000", "block size, 512 bytes"]),
        (&["--bs", "0"], &["--bs = 0"]),
        (
            &["--bs", "268435456"],
            &["--bs = 268435456", "namespace's size"],
        ),
        // 128 MiB: 1024 commands of 128 KiB, more than a queue holds.
        (&["--bs", "134217728"], &["--bs = 134217728", "MDTS"]),
        (&["--qd", "0"], &["--qd = 0"]),
        (&["--qd", "1024"], &["--qd = 1024", "1..=1023"]),
        (
            &["--qd", "600", "--bs", "262144"],
            &["--qd = 600", "1..=511", "2 commands"],
        ),
        (&["--seconds", "0"], &["--seconds = 0"]),
        (&["--seconds", "-1"], &["--seconds = -1"]),
        (&["--seconds", "NaN"], &["--seconds = NaN"]),
        (&["--cores", "0"], &["--cores = 0"]),
        (&["--cores", "4097"], &["--cores = 4097", "may run on CPUs"]),
        (
            &["--cpus", "4096"],
            &["--cpus = 4096", "CPU 4096 is not one"],
        ),
        (&["--cpus", "1-0"], &["--cpus = 1-0"]),
        (&["--cpus", "0,0"], &["--cpus = 0,0", "at most once"]),
        (&["--nsid", "7"], &["--nsid = 7", "usable namespace (1)"]),
        (
            &["--model-lba-size", "1000"],
            &["lba_size = 1000", "512 or 4096"],
        ),
        (&["--model-max-queues", "1", "--cpus", "0"], &[]),
        (
            &["--rw", "verify", "--model-blocks", "64"],
            &["--qd = 32", "verify", "holds 8"],
        ),
        // Parse errors come from clap, naming the text.
        (&["--bs", "abc"], &["abc", "--bs"]),
        (&["--rw", "sideways"], &["sideways", "--rw"]),
        (&["--device", "nonsense"], &["nonsense", "--device"]),
        (&["--cores", "1", "--cpus", "0"], &["--cores", "--cpus"]),
    ];
    for (args, expected) in cases {
        let mut full = args.to_vec();
        full.extend_from_slice(
            &["--seconds", "0.01"][..if args.contains(&"--seconds") { 0 } else { 2 }],
        );
        if expected.is_empty() {
            // A valid combination, as a control.
            run_perf(&full).unwrap();
            continue;
        }
        let message = perf_error(&full);
        for part in *expected {
            assert!(
                message.contains(part),
                "{args:?}: {part:?} not in {message:?}"
            );
        }
    }
    // More cores than the controller grants queues (when this machine has two CPUs).
    if userpci::framework::runtime::affinity::allowed_cpus()
        .unwrap()
        .len()
        >= 2
    {
        let message = perf_error(&[
            "--cores",
            "2",
            "--model-max-queues",
            "1",
            "--seconds",
            "0.01",
        ]);
        assert!(
            message.contains("--cores = 2") && message.contains("grants 1"),
            "{message}"
        );
    }
}
