//! What the tool's subcommands fail with; below every subcommand and `main`.

/// What the tool can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A framework error (device, DMA, topology, sysfs).
    #[error(transparent)]
    Framework(#[from] userpci::framework::Error),
    /// An NVMe driver error.
    #[error(transparent)]
    Nvme(#[from] userpci::nvme::Error),
    /// A tool error (`userpci setup`: bad input, a file of the system, a command).
    #[error(transparent)]
    Tool(#[from] userpci::tools::error::ToolError),
    /// Standard output could not be written (`OutputError::Closed` ends the tool quietly).
    #[error(transparent)]
    Output(#[from] userpci::output::OutputError),
    /// A demo ran but its checks failed.
    #[error("demo verification failed: {0}")]
    DemoFailed(String),
    /// A command-line value out of range.
    #[error("invalid argument {name} = {value}: expected {expected}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Result of a subcommand.
pub type CliResult<T = ()> = Result<T, CliError>;
