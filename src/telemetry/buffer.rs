//! Standard output for log lines, written off the request path in batches.

use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
    },
    thread,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// The most a [`LogBuffer`] holds before lines are dropped (and counted):
/// far more than the service writes between two flushes at full load.
const LOG_BUFFER_BYTES: usize = 2 << 20;
/// How long the writer thread lets lines gather after writing a batch.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(25);

/// Lines dropped because the buffer was full (standard output blocked or
/// far slower than the service) or standard output failed, since start.
static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far, for the `log_lines_dropped_total` metric.
pub fn dropped_lines() -> u64 {
    DROPPED_LINES.load(Ordering::Relaxed)
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer thread waits for a first line (so a line must wake it).
    idle: bool,
    closed: bool,
}

/// Standard output for log lines, written off the request path in batches.
///
/// A request appends its formatted line to one bounded buffer (a copy under
/// a lock, no system call); one thread writes whatever has gathered with a
/// single `write`, then waits [`LOG_FLUSH_INTERVAL`] for the next batch. So
/// under load the access log costs a `write` per batch rather than one per
/// request, and nothing wakes the thread per line: only the first line
/// after a quiet spell does, so a lone line still appears at once. (A
/// channel to a writer thread, as in `tracing-appender`, wakes it for
/// nearly every line at this rate, which costs more than the `write` it
/// saves.) A line that does not fit is dropped, never waited for, and
/// counted in [`dropped_lines`].
#[derive(Clone)]
pub struct LogBuffer(Arc<(Mutex<Pending>, Condvar)>);

/// Writes out the lines still buffered when dropped, at shutdown.
pub struct LogGuard {
    buffer: LogBuffer,
    thread: Option<thread::JoinHandle<()>>,
}

impl LogBuffer {
    pub(super) fn start() -> Result<(Self, LogGuard), String> {
        let buffer = Self(Arc::default());
        let writer = buffer.clone();
        let thread = thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.write_out(&mut io::stdout()))
            .map_err(|err| format!("cannot start the log writer: {err}"))?;
        let guard = LogGuard {
            buffer: buffer.clone(),
            thread: Some(thread),
        };
        Ok((buffer, guard))
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind: go on.
        self.0 .0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: takes what has gathered, writes it in one go,
    /// lets the next batch gather; after `close`, writes the rest and ends.
    fn write_out(&self, out: &mut impl Write) {
        let (_, wake) = &*self.0;
        let mut batch = Vec::with_capacity(64 << 10);
        loop {
            let mut pending = self.pending();
            while pending.bytes.is_empty() && !pending.closed {
                pending.idle = true;
                pending = wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
            }
            pending.idle = false;
            std::mem::swap(&mut pending.bytes, &mut batch);
            let closed = pending.closed;
            drop(pending);
            if !batch.is_empty() && out.write_all(&batch).and_then(|()| out.flush()).is_err() {
                let lost = batch.iter().filter(|&&byte| byte == b'\n').count();
                DROPPED_LINES.fetch_add(lost as u64, Ordering::Relaxed);
            }
            batch.clear();
            if closed {
                return;
            }
            let pending = self.pending();
            let _ = wake.wait_timeout_while(pending, LOG_FLUSH_INTERVAL, |pending| !pending.closed);
        }
    }
}

impl Write for &LogBuffer {
    /// Takes one formatted line (the subscriber writes each event in one
    /// call), whole or not at all.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.pending();
        if pending.closed || pending.bytes.len() + line.len() > LOG_BUFFER_BYTES {
            DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        pending.bytes.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if wake {
            self.0 .1.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = &'a LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.buffer.pending().closed = true;
        self.buffer.0 .1.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
