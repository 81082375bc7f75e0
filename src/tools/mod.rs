//! The tools behind `userpci nvme identify|perf` and `userpci net pktgen|fwd` (and the thin
//! examples of the same names).
//!
//! | module | contents |
//! |---|---|
//! | [`run`] | what every tool shares: the Ctrl-C stop flag, the progress rule, the `main` |
//! | [`nvme`] | `identify` (an `nvme id-ctrl`/`id-ns` report) and `perf` (SPDK-`perf`-like) |
//! | [`net`] | `pktgen` (ixy-pktgen-like) and `fwd` (a two-port forwarder) |

pub mod error;
pub mod net;
pub mod nvme;
pub mod run;

/// Sets up logging to stderr (`RUST_LOG`, default `warn`), for the examples (the CLI has its
/// own).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
