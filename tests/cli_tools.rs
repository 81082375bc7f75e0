//! `userpci nvme identify|perf` and `userpci net pktgen|fwd` as a user runs them, on the
//! simulated devices, with `--json`: the fields, the schema version, the units in names.

use std::process::Command;

use serde_json::Value;

fn userpci_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(args)
        .output()
        .expect("the userpci binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "userpci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

fn is_hex_id(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 6 && s.starts_with("0x") && u16::from_str_radix(&s[2..], 16).is_ok()
    })
}

#[test]
fn nvme_identify_json_has_the_schema_and_hex_ids() {
    let report = userpci_json(&["nvme", "identify", "--json"]);
    assert_eq!(report["schema"], 1);
    assert_eq!(report["backend"], "sim");
    for id in ["vid", "did", "ssvid", "ssid"] {
        assert!(is_hex_id(&report[id]), "{id} = {}", report[id]);
    }
    assert_eq!(
        report["vid"], "0x1b36",
        "the QEMU NVMe vendor id of the model"
    );
}

#[test]
fn nvme_perf_json_reports_io_with_units_in_names() {
    let report = userpci_json(&["nvme", "perf", "--seconds", "0.2", "--json"]);
    assert_eq!(report["schema"], 1);
    assert_eq!(report["interrupted"], false);
    assert_eq!(report["errors"], 0);
    assert!(report["ios"].as_u64().unwrap() > 0);
    let mbytes = report["mbytes_per_s"].as_f64().unwrap();
    let iops = report["iops"].as_f64().unwrap();
    let bs = report["bs"].as_f64().unwrap();
    assert!((mbytes - iops * bs / 1e6).abs() < 1e-6 * mbytes.max(1.0));
    assert!(report.get("mbps").is_none(), "the old name is gone");
}

#[test]
fn net_pktgen_json_reports_gbits_per_s() {
    let report = userpci_json(&["net", "pktgen", "--seconds", "0.2", "--json"]);
    assert_eq!(report["schema"], 1);
    assert_eq!(report["interrupted"], false);
    assert_eq!(report["tool"], "pktgen");
    assert!(report["packets"].as_u64().unwrap() > 0);
    assert!(report["gbits_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["ports"][0].get("tx_gbits_per_s").is_some());
    assert!(report.get("gbps").is_none(), "the old name is gone");
}

#[test]
fn net_fwd_json_reports_both_ports() {
    let report = userpci_json(&["net", "fwd", "--seconds", "0.2", "--json"]);
    assert_eq!(report["schema"], 1);
    assert_eq!(report["interrupted"], false);
    assert_eq!(report["tool"], "fwd");
    assert_eq!(report["ports"].as_array().unwrap().len(), 2);
    assert!(report["gbits_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn net_pktgen_clamps_a_rate_above_line_rate_and_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args([
            "net",
            "pktgen",
            "--seconds",
            "0.2",
            "--size",
            "1514",
            "--rate",
            "5",
            "--json",
        ])
        .output()
        .expect("the userpci binary runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("above the line rate") && stderr.contains("0.8127 Mpps"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 10 Gbit/s / ((1514 + 24) * 8) = 0.8127 Mpps at most, whatever the host's speed.
    assert!(report["mpps"].as_f64().unwrap() <= 0.8127 * 1.01);
}

#[test]
fn net_pktgen_sends_without_a_long_bring_up() {
    // The two-port mode once busy-spun ~4.5 s (release) bringing the ports up before sending:
    // the virtual clock moved in 1 ns steps while the wire timer fired, which is tens of
    // seconds in a debug build. A 0.1 s run now takes well under a second when the machine is
    // quiet; the bounds leave room for a debug build on a loaded 2-core machine (the timed
    // part was seen at 1.1 to 1.6 s with two other builds running).
    let start = std::time::Instant::now();
    let report = userpci_json(&["net", "pktgen", "--seconds", "0.1", "--json"]);
    let wall = start.elapsed();
    assert!(report["packets"].as_u64().unwrap() > 0);
    assert!(
        wall < std::time::Duration::from_secs(20),
        "pktgen --seconds 0.1 took {wall:?}"
    );
    let seconds = report["seconds"].as_f64().unwrap();
    assert!(seconds < 4.0, "the timed part took {seconds} s");
}

fn userpci_err(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(args)
        .output()
        .expect("the userpci binary runs");
    assert!(!out.status.success(), "userpci {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_negative_number_gets_the_same_message_in_every_tool() {
    for (args, option, value) in [
        (&["nvme", "perf", "--qd", "-1"][..], "--qd", "-1"),
        (&["net", "pktgen", "--size", "-5"][..], "--size", "-5"),
        (&["net", "fwd", "--batch", "-2"][..], "--batch", "-2"),
        (&["soak", "--faults", "-3"][..], "--faults", "-3"),
        (&["demo", "--writes", "-1"][..], "--writes", "-1"),
    ] {
        let stderr = userpci_err(args);
        let expected = format!(
            "invalid value '{value}' for '{option}': expected a number that is not negative"
        );
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_device_address_says_what_was_expected_once() {
    for tool in [&["nvme", "identify"][..], &["net", "pktgen"][..]] {
        let mut args = tool.to_vec();
        args.extend(["--device", "bad"]);
        let stderr = userpci_err(&args);
        assert!(stderr.contains("\"bad\""), "{stderr}");
        assert_eq!(
            stderr.matches("DDDD:BB:DD.F").count(),
            1,
            "the hint once: {stderr}"
        );
    }
}
