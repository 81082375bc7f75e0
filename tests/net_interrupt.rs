//! Ctrl-C (here: the stop it requests) ends pktgen and fwd at their next look at the clock
//! with the partial report; progress lines go to a terminal only. Its own test binary, since
//! the stop request is process-wide.

use userpci::tools::net;

use std::time::Instant;

use clap::Parser;
use net::{FwdArgs, PktgenArgs};

#[test]
fn a_stop_request_ends_both_tools_with_the_partial_report() {
    net::request_stop();
    let start = Instant::now();
    let args = PktgenArgs::try_parse_from(["pktgen", "--seconds", "60", "--sink"]).unwrap();
    let report = net::run_pktgen(&args, &mut |_| {}).unwrap();
    assert!(report.seconds < 30.0, "{}", report.to_text());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["seconds"].as_f64().unwrap() < 30.0);

    let args = FwdArgs::try_parse_from(["fwd", "--seconds", "60"]).unwrap();
    let report = net::run_fwd(&args, &mut |_| {}).unwrap();
    assert!(report.seconds < 30.0, "{}", report.to_text());
    assert!(start.elapsed().as_secs() < 30);
}

#[test]
fn progress_lines_only_on_a_terminal_without_json() {
    assert!(net::show_progress(false, true));
    assert!(!net::show_progress(true, true), "--json");
    assert!(!net::show_progress(false, false), "a pipe or a file");
    assert!(!net::show_progress(true, false));
}
