//! Ctrl-C (here: the stop it requests) ends nvme_perf early: the workers stop submitting, the
//! I/Os in flight drain, and the partial report comes out, for the raw and the async path.
//! Its own test binary, since the stop request is process-wide.

use userpci::tools::nvme as common;

use std::time::Instant;

use clap::Parser;
use common::perf::{self, PerfArgs};

#[test]
fn a_stop_request_ends_perf_with_the_partial_report() {
    perf::request_stop();
    for extra in [&[][..], &["--async"][..]] {
        let start = Instant::now();
        let args = PerfArgs::try_parse_from(
            ["nvme_perf", "--seconds", "60", "--qd", "4"]
                .into_iter()
                .chain(extra.iter().copied()),
        )
        .unwrap();
        let report = perf::run(&args).unwrap();
        assert!(report.seconds < 30.0, "{extra:?}: {}", report.to_text());
        assert_eq!(report.errors, 0, "{extra:?}: {}", report.to_text());
        assert!(start.elapsed().as_secs() < 30, "{extra:?}");
    }
}
