//! Logging: one subscriber for the process, filtered by `RUST_LOG`, as text
//! or JSON lines.

use std::{
    error::Error,
    fmt,
    io::{self, IsTerminal},
};

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The service logs to standard output.
    Stdout,
    /// Commands whose standard output is their result log to standard error.
    Stderr,
}

/// Installs the global subscriber. Colours only on a terminal, so files and
/// log pipelines get plain text. Fails on a malformed filter.
pub fn init(filter: &str, format: LogFormat, output: Output) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|err| format!("RUST_LOG: {err}"))?;
    let installed = match output {
        Output::Stdout => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(io::stdout().is_terminal());
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().flatten_event(true).try_init(),
            }
        }
        Output::Stderr => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal());
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().flatten_event(true).try_init(),
            }
        }
    };
    installed.map_err(|err| err.to_string())
}

/// Displays an error with all its causes on one line: `outer: inner: root`.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
