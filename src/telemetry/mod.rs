//! Logging: one subscriber for the process, filtered by `RUST_LOG`, as text
//! or JSON lines.

mod buffer;
mod lines;

use std::{
    error::Error,
    fmt,
    io::{self, IsTerminal},
};

use tracing_subscriber::EnvFilter;

pub use buffer::{dropped_lines, LogBuffer, LogGuard};
use lines::Lines;
pub use lines::RequestContext;

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
    /// The service logs to standard output, through [`LogBuffer`]: the
    /// request path only copies a line into memory.
    Stdout,
    /// Commands whose standard output is their result log to standard
    /// error, a line at a time.
    Stderr,
}

/// Installs the global subscriber. Colours only on a terminal, so files and
/// log pipelines get plain text. Fails on a malformed filter. Keep the
/// returned guard until the process ends: dropping it writes out the lines
/// still buffered.
pub fn init(filter: &str, format: LogFormat, output: Output) -> Result<Option<LogGuard>, String> {
    let filter = EnvFilter::try_new(filter).map_err(|err| format!("RUST_LOG: {err}"))?;
    // Colours only in text, and only on a terminal.
    let builder = |ansi: bool| {
        tracing_subscriber::fmt()
            .with_ansi(format == LogFormat::Text && ansi)
            .with_env_filter(filter)
            .event_format(Lines { format })
    };
    let (installed, guard) = match output {
        Output::Stdout => {
            let (writer, guard) = LogBuffer::start()?;
            let installed = builder(io::stdout().is_terminal())
                .with_writer(writer)
                .try_init();
            (installed, Some(guard))
        }
        Output::Stderr => {
            let installed = builder(io::stderr().is_terminal())
                .with_writer(io::stderr)
                .try_init();
            (installed, None)
        }
    };
    installed.map_err(|err| err.to_string())?;
    Ok(guard)
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
