//! What every long-running tool shares: one stop flag set by Ctrl-C (and by a closed
//! stdout), the rule for progress lines, and the `main` that prints the report.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::output::OutputError;

/// The version of the tools' JSON objects (the `schema` field); bumped when a field changes
/// meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C (or a closed stdout) asked the running loop to end and report.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Asks the running loop to end and report (the Ctrl-C handler; tests).
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Forgets an earlier stop request (tests running several tools in one process).
pub fn clear_stop() {
    STOP.store(false, Ordering::Relaxed);
}

/// Progress lines go to a terminal only: `--json` output and a pipe get the summary alone.
pub fn show_progress(json: bool, stdout_is_terminal: bool) -> bool {
    !json && stdout_is_terminal
}

/// Ctrl-C ends the run early with the partial report; a second Ctrl-C exits at once (130).
pub fn install_ctrlc(name: &str) {
    if let Err(err) = ctrlc::set_handler(|| {
        if stop_requested() {
            std::process::exit(130);
        }
        request_stop();
    }) {
        tracing::warn!("{name}: Ctrl-C will not end the run with a summary: {err}");
    }
}

/// A tool's report: as text, as one JSON object, and whether the run failed.
pub trait ToolReport {
    fn to_text(&self) -> String;
    fn to_json(&self) -> String;
    /// A failure found by a run that completed (I/O errors), printed after the report.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// The whole `main` of a long-running tool: Ctrl-C handling, the run with its per-second
/// lines (on a terminal, without `--json`), then the report, or the error prefixed with the
/// tool's `name`. A reader that closes standard output (`| head -1`) ends the run quietly:
/// no more lines, no report, exit status 0.
pub fn tool_main<R: ToolReport, E: std::fmt::Display>(
    name: &str,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&str)) -> Result<R, E>,
) -> ExitCode {
    install_ctrlc(name);
    report_main(name, json, run)
}

/// [`tool_main`] without the Ctrl-C handler, for the short tools (`nvme identify`), which
/// Ctrl-C simply ends.
pub fn report_main<R: ToolReport, E: std::fmt::Display>(
    name: &str,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&str)) -> Result<R, E>,
) -> ExitCode {
    let progress = show_progress(json, std::io::stdout().is_terminal());
    let mut output: Result<(), OutputError> = Ok(());
    let result = run(&mut |line| {
        if progress && output.is_ok() {
            output = crate::outln!("{line}");
            if output.is_err() {
                request_stop();
            }
        }
    });
    let written = output.and_then(|()| match &result {
        Ok(report) if json => crate::outln!("{}", report.to_json()),
        Ok(report) => crate::out!("{}", report.to_text()),
        Err(_) => Ok(()),
    });
    match (result, written) {
        (Err(err), _) => {
            crate::errln!("{name}: {err}");
            ExitCode::FAILURE
        }
        (Ok(_), Err(err)) if !err.is_closed() => {
            crate::errln!("{name}: {err}");
            ExitCode::FAILURE
        }
        (Ok(_), Err(_)) => ExitCode::SUCCESS,
        (Ok(report), Ok(())) => match report.failure() {
            Some(failure) => {
                crate::errln!("{name}: {failure}");
                ExitCode::FAILURE
            }
            None => ExitCode::SUCCESS,
        },
    }
}
