//! `userpci soak`: the fault soak of `userpci::soak` on the simulated bus, printed as text
//! or as one JSON object. Exits non-zero when a write was lost, duplicated or left without
//! an answer, or an episode stalled. The drivers' logs of the faults are off unless
//! `RUST_LOG` is set.

use userpci::soak::{SoakConfig, SoakError};

use crate::error::{CliError, CliResult};

#[derive(clap::Args)]
pub struct Args {
    /// Seed of the fault schedule and the data: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults to inject.
    #[arg(long, default_value_t = 1000)]
    faults: u32,
    /// NVMe controllers in the reset group (1..=8, 1..=7 with --nic).
    #[arg(long, default_value_t = 3)]
    controllers: u8,
    /// Add an Intel 82599 port with echo traffic to the reset group.
    #[arg(long)]
    nic: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn soak_error(err: SoakError) -> CliError {
    match err {
        SoakError::InvalidConfig(what) => CliError::InvalidArgument {
            name: "soak",
            value: what,
            expected: "a configuration within range",
        },
        other => CliError::DemoFailed(format!("soak: {other}")),
    }
}

pub fn run(args: Args) -> CliResult {
    let config = SoakConfig {
        seed: args.seed,
        faults: args.faults,
        controllers: args.controllers,
        nic: args.nic,
        ..SoakConfig::default()
    };
    // The drivers log every fault they meet at `error`, thousands per run by design: quiet
    // unless RUST_LOG asks for them (the run is on this thread only).
    let report = if std::env::var_os("RUST_LOG").is_some() {
        userpci::soak::run(config)
    } else {
        let quiet = tracing::subscriber::NoSubscriber::default();
        tracing::subscriber::with_default(quiet, || userpci::soak::run(config))
    }
    .map_err(soak_error)?;
    if args.json {
        userpci::outln!("{}", report.to_json())?;
    } else {
        userpci::out!("{}", report.to_text())?;
    }
    if !report.passed {
        return Err(CliError::DemoFailed(format!(
            "soak seed {}: {} writes lost, {} duplicated, {} unanswered, {} stalls, {} blocks verified",
            report.seed,
            report.writes_lost,
            report.writes_duplicated,
            report.failures_reported.unanswered,
            report.stalls,
            report.blocks_verified
        )));
    }
    Ok(())
}
