//! The tools behind `userpci nvme identify|perf` and `userpci net pktgen|fwd` (and the thin
//! examples of the same names).
//!
//! | module | contents |
//! |---|---|
//! | [`run`] | what every tool shares: the Ctrl-C stop flag, the progress rule, the `main` |
//! | [`nvme`] | `identify` (an `nvme id-ctrl`/`id-ns` report) and `perf` (SPDK-`perf`-like) |
//! | [`net`] | `pktgen` (ixy-pktgen-like) and `fwd` (a two-port forwarder) |
//! | [`setup`] | `userpci setup`: hugepages, modules, IOMMU, memlock, device nodes for a user |

pub mod cli;
pub mod error;
pub mod net;
pub mod nvme;
pub mod run;
pub mod setup;

/// Sets up logging to stderr (`RUST_LOG`, default `warn`), for the examples.
pub fn init_logging() {
    init_logging_at("warn");
}

/// Sets up logging to stderr: `RUST_LOG`, or `default` when it is unset or invalid. Colours
/// only when stderr is a terminal (a log file or a pipe gets plain text).
pub fn init_logging_at(default: &str) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
