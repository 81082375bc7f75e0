//! The ixgbe examples' logic (`userpci::tools::net`), run as `pktgen` and `fwd` run it, on
//! the model, briefly: packets flow, every drop is accounted, the JSON has its fields, and bad
//! arguments fail naming the value at fault.

use userpci::tools::net;

use clap::Parser;
use net::{FwdArgs, NetReport, PktgenArgs, ToolError};

fn pktgen_args(extra: &[&str]) -> Result<PktgenArgs, ToolError> {
    Ok(PktgenArgs::try_parse_from(
        std::iter::once("pktgen").chain(extra.iter().copied()),
    )?)
}

fn fwd_args(extra: &[&str]) -> Result<FwdArgs, ToolError> {
    Ok(FwdArgs::try_parse_from(
        std::iter::once("fwd").chain(extra.iter().copied()),
    )?)
}

fn pktgen(extra: &[&str]) -> Result<NetReport, ToolError> {
    net::run_pktgen(&pktgen_args(extra)?, &mut |_| {})
}

fn fwd(extra: &[&str]) -> Result<NetReport, ToolError> {
    net::run_fwd(&fwd_args(extra)?, &mut |_| {})
}

fn error_of(result: Result<NetReport, ToolError>) -> String {
    match result {
        Ok(report) => panic!("ran: {}", report.to_text()),
        Err(err) => err.to_string(),
    }
}

/// The JSON has every field a script reads, as numbers.
fn check_json(report: &NetReport) {
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for field in [
        "mpps",
        "gbits_per_s",
        "packets",
        "dropped",
        "ns_per_packet",
        "seconds",
        "offered",
    ] {
        assert!(json[field].is_number(), "{field} missing: {json}");
    }
    assert!(
        json["cycles_per_packet"].is_number() || json["cycles_per_packet"].is_null(),
        "{json}"
    );
    assert!(json["drops"]["rx_missed"].is_number(), "{json}");
    assert_eq!(json["ports"].as_array().unwrap().len(), 2);
    assert!(json["ports"][0]["tx_mpps"].is_number());
}

#[test]
fn pktgen_over_a_wire_sends_and_accounts_every_packet() {
    let report = pktgen(&["--seconds", "0.3", "--size", "128", "--batch", "16"]).unwrap();
    assert_eq!(report.backend, "sim");
    assert!(report.packets > 0, "{}", report.to_text());
    assert!(report.mpps > 0.0 && report.gbps > 0.0);
    assert_eq!(report.bytes, report.packets * 128);
    // Everything sent arrived at B or is counted as dropped.
    assert_eq!(
        report.offered + report.dropped,
        report.packets,
        "{}",
        report.to_text()
    );
    assert_eq!(report.ports[0].tx_packets, report.packets);
    assert_eq!(report.ports[1].rx_packets, report.offered);
    check_json(&report);
    let text = report.to_text();
    assert!(text.contains("Mpps") && text.contains("Gbit/s"), "{text}");
}

#[test]
fn pktgen_into_the_sink_at_a_rate() {
    let report = pktgen(&["--sink", "--seconds", "0.3", "--rate", "0.1", "--json"]).unwrap();
    assert!(report.packets > 0);
    // 0.1 Mpps for 0.3 s: 30 000 packets, give or take a batch.
    assert!(report.packets <= 30_000 + 32, "{}", report.to_text());
    assert!(report.packets >= 10_000, "{}", report.to_text());
    assert_eq!(report.offered + report.dropped, report.packets);
    check_json(&report);
}

#[test]
fn fwd_forwards_both_ways_and_accounts_every_generated_frame() {
    let report = fwd(&["--seconds", "0.3", "--batch", "8"]).unwrap();
    assert!(report.packets > 0, "{}", report.to_text());
    assert!(report.ports[0].rx_packets > 0 && report.ports[1].rx_packets > 0);
    assert!(report.ports[0].tx_packets > 0 && report.ports[1].tx_packets > 0);
    // Every generated frame was forwarded or is in a drop counter; `packets` counts only
    // what was forwarded while the clock ran (not the final drain), so it is at most that.
    let forwarded = report.offered - report.dropped;
    assert!(forwarded >= report.packets, "{}", report.to_text());
    assert!(report.cycles_per_packet.is_none_or(|c| c > 0.0));
    check_json(&report);
}

#[test]
fn bad_arguments_name_the_value() {
    for (args, needle) in [
        (&["--size", "59"][..], "--size = 59"),
        (&["--size", "1515"][..], "--size = 1515"),
        (&["--batch", "0"][..], "--batch = 0"),
        (&["--batch", "513"][..], "--batch = 513"),
        (&["--seconds", "0"][..], "--seconds = 0"),
        (&["--seconds", "-1"][..], "-1"),
        (&["--rate", "0"][..], "--rate = 0"),
        (&["--rate", "nan"][..], "--rate = NaN"),
        (&["--size", "big"][..], "big"),
        (&["--device", "zz:00.0"][..], "zz:00.0"),
        (&["--sink", "--device", "01:00.0"][..], "--device"),
    ] {
        let err = error_of(pktgen(args));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    for (args, needle) in [
        (&["--batch", "1000"][..], "--batch = 1000"),
        (&["--size", "2000"][..], "--size = 2000"),
        (&["--devices", "01:00.0"][..], "--devices"),
        (&["--devices", "01:00.0", "01:00.0"][..], "01:00.0"),
        (&["--seconds", "inf"][..], "--seconds = inf"),
    ] {
        let err = error_of(fwd(args));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_real_device_fails_with_the_backends_error() {
    // No vfio-pci device here: the VFIO backend's error, not a panic.
    let err = error_of(pktgen(&["--device", "0000:7f:1f.7", "--seconds", "0.1"]));
    assert!(!err.is_empty());
    let err = error_of(fwd(&[
        "--devices",
        "0000:7f:1f.6",
        "0000:7f:1f.7",
        "--seconds",
        "0.1",
    ]));
    assert!(!err.is_empty());
}

#[test]
fn real_ports_get_the_driver_of_their_ids() {
    use net::hw::Driver;
    assert_eq!(
        Driver::for_ids(0x8086, 0x10FB),
        Some(Driver::Ixgbe),
        "82599ES SFP"
    );
    assert_eq!(
        Driver::for_ids(0x8086, 0x0953),
        None,
        "an Intel NVMe controller"
    );
    assert_eq!(Driver::for_ids(0x15b3, 0x10FB), None, "not Intel");
    let err = ToolError::UnsupportedNic {
        address: "0000:03:00.0".parse().unwrap(),
        vendor: 0x1af4,
        device: 0x1041,
    };
    assert_eq!(
        err.to_string(),
        "0000:03:00.0: vendor 0x1af4 device 0x1041 is not a NIC userpci drives \
         (expected an Intel 82599 for ixgbe or an Intel 82576 for igb)"
    );
}
