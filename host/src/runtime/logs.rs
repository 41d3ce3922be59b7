//! Guest output: `log` lines, stdout and stderr go to the host's `tracing`
//! log, tagged with the plugin, step and run, within a byte budget per call.
//!
//! The last stderr lines are kept so that a trap can say what the guest
//! printed before it died (a Rust panic message, for example).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::printable::printable;

/// Severity of a guest log line (mirrors the WIT `level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Which guest stream a write came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

const MAX_LINE: usize = 8 << 10;
const STDERR_TAIL_LINES: usize = 8;
/// Lines of one call kept for its record (the first ones), each cut at
/// [`MAX_KEPT_LINE`] bytes: a run record stays small however a guest logs.
pub(crate) const MAX_KEPT_LINES: usize = 50;
const MAX_KEPT_LINE: usize = 1 << 10;

/// A guest output line, as a call's report and the run record keep it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// `log` (the `log` call), `stdout` or `stderr`.
    pub stream: String,
    /// The text, control characters escaped, cut at 1 KiB.
    pub message: String,
}

/// Where one call's guest output goes.
pub(crate) struct LogSink {
    plugin: String,
    ctx: Arc<super::Context>,
    state: Mutex<LogState>,
}

struct LogState {
    remaining: u64,
    dropped: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stderr_tail: VecDeque<String>,
    kept: Vec<LogLine>,
    /// Lines logged but past [`MAX_KEPT_LINES`].
    not_kept: u64,
}

macro_rules! guest_event {
    ($level:expr, $sink:expr, $stream:expr, $msg:expr) => {
        match $level {
            Level::Trace => tracing::trace!(target: "flowhost::guest", plugin = %$sink.plugin, step = %$sink.ctx.step_id, run = %$sink.ctx.run_id, stream = $stream, "{}", $msg),
            Level::Debug => tracing::debug!(target: "flowhost::guest", plugin = %$sink.plugin, step = %$sink.ctx.step_id, run = %$sink.ctx.run_id, stream = $stream, "{}", $msg),
            Level::Info => tracing::info!(target: "flowhost::guest", plugin = %$sink.plugin, step = %$sink.ctx.step_id, run = %$sink.ctx.run_id, stream = $stream, "{}", $msg),
            Level::Warn => tracing::warn!(target: "flowhost::guest", plugin = %$sink.plugin, step = %$sink.ctx.step_id, run = %$sink.ctx.run_id, stream = $stream, "{}", $msg),
            Level::Error => tracing::error!(target: "flowhost::guest", plugin = %$sink.plugin, step = %$sink.ctx.step_id, run = %$sink.ctx.run_id, stream = $stream, "{}", $msg),
        }
    };
}

impl LogSink {
    pub(crate) fn new(plugin: &str, ctx: &Arc<super::Context>, budget: u64) -> Self {
        LogSink {
            plugin: plugin.to_string(),
            ctx: ctx.clone(),
            state: Mutex::new(LogState {
                remaining: budget,
                dropped: 0,
                stdout: Vec::new(),
                stderr: Vec::new(),
                stderr_tail: VecDeque::new(),
                kept: Vec::new(),
                not_kept: 0,
            }),
        }
    }

    /// A `log` call from the guest.
    pub(crate) fn log(&self, level: Level, message: &str) {
        let mut state = self.lock();
        self.emit(&mut state, level, "log", message);
    }

    /// Bytes the guest wrote to stdout or stderr; whole lines are logged.
    pub(crate) fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut state = self.lock();
        let mut pending = std::mem::take(match stream {
            Stream::Stdout => &mut state.stdout,
            Stream::Stderr => &mut state.stderr,
        });
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            self.line(&mut state, stream, &pending[start..start + pos]);
            start += pos + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            self.line(&mut state, stream, &pending);
            pending.clear();
        }
        *match stream {
            Stream::Stdout => &mut state.stdout,
            Stream::Stderr => &mut state.stderr,
        } = pending;
    }

    /// Logs what is left of unterminated lines; returns the number of lines dropped.
    pub(crate) fn finish(&self) -> u64 {
        let mut state = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(match stream {
                Stream::Stdout => &mut state.stdout,
                Stream::Stderr => &mut state.stderr,
            });
            if !rest.is_empty() {
                self.line(&mut state, stream, &rest);
            }
        }
        state.dropped
    }

    /// The lines kept for the record, and how many logged lines were not.
    pub(crate) fn take_kept(&self) -> (Vec<LogLine>, u64) {
        let mut state = self.lock();
        (std::mem::take(&mut state.kept), state.not_kept)
    }

    /// The guest's last stderr lines, for trap messages.
    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        let mut state = self.lock();
        let rest = std::mem::take(&mut state.stderr);
        if !rest.is_empty() {
            self.line(&mut state, Stream::Stderr, &rest);
        }
        state.stderr_tail.iter().cloned().collect()
    }

    fn line(&self, state: &mut LogState, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        let (level, name) = match stream {
            Stream::Stdout => (Level::Info, "stdout"),
            Stream::Stderr => {
                if state.stderr_tail.len() == STDERR_TAIL_LINES {
                    state.stderr_tail.pop_front();
                }
                state
                    .stderr_tail
                    .push_back(truncate(text, 1024).to_string());
                (Level::Warn, "stderr")
            }
        };
        self.emit(state, level, name, text);
    }

    fn emit(&self, state: &mut LogState, level: Level, stream: &str, message: &str) {
        let cost = message.len() as u64 + 1;
        if cost > state.remaining {
            if state.dropped == 0 {
                tracing::warn!(target: "flowhost::guest", plugin = %self.plugin, step = %self.ctx.step_id, run = %self.ctx.run_id,
                    "log limit reached; further output from this call is dropped");
            }
            state.remaining = 0;
            state.dropped += 1;
            return;
        }
        state.remaining -= cost;
        let message = printable(message);
        if state.kept.len() < MAX_KEPT_LINES {
            let level = match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            state.kept.push(LogLine {
                level: level.into(),
                stream: stream.into(),
                message: truncate(&message, MAX_KEPT_LINE).to_string(),
            });
        } else {
            state.not_kept += 1;
        }
        guest_event!(level, self, stream, message);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A guest's stdout or stderr, feeding a [`LogSink`].
pub(crate) struct GuestStdio {
    sink: Arc<LogSink>,
    stream: Stream,
}

impl GuestStdio {
    pub(crate) fn new(sink: Arc<LogSink>, stream: Stream) -> Self {
        GuestStdio { sink, stream }
    }
}

impl IsTerminal for GuestStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdio {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(GuestStdio::new(self.sink.clone(), self.stream))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestStdio::new(self.sink.clone(), self.stream))
    }
}

impl OutputStream for GuestStdio {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestStdio {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestStdio {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log writer that keeps what was written.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl tracing_subscriber::fmt::MakeWriter<'_> for Captured {
        type Writer = Captured;

        fn make_writer(&self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn guest_lines_are_logged_with_control_characters_escaped() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let ctx = Arc::new(crate::runtime::Context::direct("p"));
            let sink = LogSink::new("p", &ctx, 1 << 20);
            sink.log(Level::Info, "\u{1b}[2J\n2026-01-01T00:00:00Z  INFO forged");
            sink.write(Stream::Stdout, b"out \x1b[31mred\x1b[0m\r\n");
            sink.write(Stream::Stderr, b"err \x07\x08\x9b\n");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 3, "a line per guest line: {text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        for escaped in [
            "\\u{1b}[2J\\u{a}2026-01-01T00:00:00Z  INFO forged",
            "out \\u{1b}[31mred\\u{1b}[0m",
            "err \\u{7}\\u{8}",
        ] {
            assert!(text.contains(escaped), "{escaped} in {text}");
        }
    }
}
