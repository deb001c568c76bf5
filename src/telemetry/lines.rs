//! How a log line is written, as text or as JSON, and which request it
//! belongs to.
//!
//! The request a line belongs to rides in a task-local [`RequestContext`],
//! not in a tracing span. A span per request costs a registry slot, a
//! filter check, its fields formatted into a string, an enter and an exit
//! on every poll, and (in JSON) its fields parsed back out of that string
//! for every line: together a sixth of a `/ping`. The context costs a
//! thread-local swap per poll, and a line reads it only when it is written.
//! The lines look as they did with the span: text lines say
//! `request{request_id=… method="GET" route="/user/{id}"}:`, JSON lines
//! carry `span` and `spans` objects with the same fields and
//! `"name":"request"` (the tests hold both to tracing-subscriber's own
//! formats). Other spans are not written: the service opens none, and a
//! dependency's (h2's, at debug) would only add noise.

use std::{
    cell::Cell,
    fmt::{self, Write as _},
    future::Future,
    sync::Arc,
    time::UNIX_EPOCH,
};

use chrono::{DateTime, Datelike, Timelike, Utc};

use poem::http::HeaderValue;
use tokio::task::futures::TaskLocalFuture;
use tracing::{
    field::{Field, Visit},
    Event, Level, Metadata, Subscriber,
};
use tracing_log::NormalizeEvent;
use tracing_subscriber::{
    fmt::{
        format::Writer,
        time::{FormatTime, SystemTime},
        FmtContext, FormatEvent, FormatFields,
    },
    registry::LookupSpan,
};

use super::LogFormat;

/// The request a task is serving, as every line it logs names it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Short and plain already: the caller's `X-Request-Id` only when it is
    /// (see `api::edge`), otherwise a fresh one.
    pub request_id: HeaderValue,
    /// One of a fixed set of labels, never what the client sent.
    pub method: &'static str,
    /// The template of the route, such as `/user/{id}`, or `unmatched`.
    pub route: Arc<str>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

impl RequestContext {
    /// Runs `future` as this request: the lines it logs name the request.
    pub fn scope<F: Future>(self, future: F) -> TaskLocalFuture<Self, F> {
        REQUEST.scope(self, future)
    }

    /// Runs `job` as this request: for work handed to another thread.
    pub fn sync_scope<R>(self, job: impl FnOnce() -> R) -> R {
        REQUEST.sync_scope(self, job)
    }

    /// The request the current task is serving, if it is serving one.
    pub fn current() -> Option<Self> {
        REQUEST.try_with(Clone::clone).ok()
    }

    fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }
}

/// The event formatter for both formats.
pub struct Lines {
    pub format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records from the `log` crate (rustls) carry their real target in a field.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        match self.format {
            LogFormat::Text => text(ctx, writer, event, metadata),
            LogFormat::Json => json(writer, event, metadata),
        }
    }
}

/// `2026-01-31T09:30:00.000000Z  INFO request{…}: target: message key=value`,
/// as tracing-subscriber's own text format writes it.
fn text<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
    metadata: &Metadata<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let ansi = writer.has_ansi_escapes();
    write_timestamp(&mut writer)?;
    let level = metadata.level();
    if ansi {
        write!(writer, " {}{:>5}\x1b[0m ", colour(level), level.as_str())?;
    } else {
        writer.write_str(match *level {
            Level::ERROR => " ERROR ",
            Level::WARN => "  WARN ",
            Level::INFO => "  INFO ",
            Level::DEBUG => " DEBUG ",
            Level::TRACE => " TRACE ",
        })?;
    }
    // Outside a request (start-up, shutdown) there is nothing to write.
    REQUEST
        .try_with(|request| {
            let (bold, plain) = if ansi {
                ("\x1b[1m", "\x1b[0m")
            } else {
                ("", "")
            };
            for piece in [bold, "request{", plain, "request_id=", request.request_id()] {
                writer.write_str(piece)?;
            }
            writer.write_str(" method=")?;
            debug_str(&mut writer, request.method)?;
            writer.write_str(" route=")?;
            debug_str(&mut writer, &request.route)?;
            for piece in [bold, "}", plain, ": "] {
                writer.write_str(piece)?;
            }
            Ok(())
        })
        .unwrap_or(Ok(()))?;
    if ansi {
        write!(writer, "\x1b[2m{}:\x1b[0m ", metadata.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
    } else {
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        let mut fields = TextFields {
            sanitize: writer.sanitizes_ansi_escapes(),
            writer: writer.by_ref(),
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
    }
    writer.write_char('\n')
}

/// `text` as `{text:?}` writes it, without the formatting machinery when
/// nothing in it needs escaping (route templates, method names).
fn debug_str(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    if text
        .bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\')
    {
        out.write_char('"')?;
        out.write_str(text)?;
        out.write_char('"')
    } else {
        write!(out, "{text:?}")
    }
}

/// `value` as `{value}` writes it, without the formatting machinery.
fn write_integer(out: &mut impl fmt::Write, value: impl itoa::Integer) -> fmt::Result {
    out.write_str(itoa::Buffer::new().format(value))
}

/// `value` as `{value:?}` writes it: the shortest decimal that reads back
/// as the same float, and of those the closest. ryu finds the same text
/// faster where `Debug` writes no exponent (a magnitude from 1e-4 up to
/// 1e16), except when two texts are equally close, which can only happen
/// with 16 or more significant digits (ryu then picks the even one, std
/// the higher): those, and the rest, are left to std. The unit tests hold
/// the two to each other.
fn debug_f64(out: &mut impl fmt::Write, value: f64) -> fmt::Result {
    if (1e-4..1e16).contains(&value.abs()) {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(value);
        // Digits from the first that is not zero: the significant ones,
        // with any trailing zeros (so this may send a few more to std).
        let significant = text
            .bytes()
            .filter(u8::is_ascii_digit)
            .skip_while(|&digit| digit == b'0')
            .count();
        if significant < 16 {
            return out.write_str(text);
        }
    }
    write!(out, "{value:?}")
}

/// The time now, as tracing-subscriber's `SystemTime` writes it:
/// `2026-01-31T09:30:00.000000Z`. The date and time of day are worked out
/// once a second on each thread, not on every line; a clock outside 1970
/// to 9999 is left to tracing-subscriber's own (which does not fail on it).
fn write_timestamp(out: &mut impl fmt::Write) -> fmt::Result {
    write_time(out, std::time::SystemTime::now())
        .unwrap_or_else(|| SystemTime.format_time(&mut Writer::new(out)))
}

/// `time` as [`write_timestamp`] writes it, if it falls from 1970 to 9999.
fn write_time(out: &mut impl fmt::Write, time: std::time::SystemTime) -> Option<fmt::Result> {
    thread_local! {
        /// The second last written on this thread, and its text up to
        /// the seconds' digits.
        static SECOND: Cell<Option<(u64, [u8; 19])>> = const { Cell::new(None) };
    }
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    let second = since.as_secs();
    let date = match SECOND.get() {
        Some((cached, date)) if cached == second => date,
        _ => {
            let date = date_and_time(second)?;
            SECOND.set(Some((second, date)));
            date
        }
    };
    let mut fraction = *b".000000Z";
    let mut micros = since.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    Some(write_ascii(out, &date).and_then(|()| write_ascii(out, &fraction)))
}

/// Digits and punctuation, as text.
fn write_ascii(out: &mut impl fmt::Write, text: &[u8]) -> fmt::Result {
    out.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS` for a second after 1970, if its year has four digits.
fn date_and_time(second: u64) -> Option<[u8; 19]> {
    let time = DateTime::<Utc>::from_timestamp(i64::try_from(second).ok()?, 0)?;
    let year = u32::try_from(time.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    let mut text = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, time.month());
    put(8, 2, time.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    Some(text)
}

/// Writes an event's fields as tracing-subscriber's default text format
/// does without colours: the message first (its terminal control
/// characters escaped), then `name=value` pairs with each value as `Debug`
/// writes it, separated by spaces. Fields the `log` bridge adds (`log.*`)
/// are left out, and a raw identifier's `r#` is dropped.
struct TextFields<'a> {
    writer: Writer<'a>,
    /// Whether the message's control characters are escaped.
    sanitize: bool,
    first: bool,
    result: fmt::Result,
}

impl TextFields<'_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>, bool) -> fmt::Result) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let sanitize = self.sanitize;
        let first = std::mem::replace(&mut self.first, false);
        self.result = (|| {
            if !first {
                self.writer.write_char(' ')?;
            }
            if name != "message" {
                self.writer
                    .write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.writer.write_char('=')?;
            }
            value(&mut self.writer, sanitize)
        })();
    }

    /// The message, escaped as tracing-subscriber escapes it.
    fn message(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.field(field, |w, sanitize| match sanitize {
            true => write!(ControlEscaped(w), "{value}"),
            false => w.write_fmt(value),
        });
    }
}

impl Visit for TextFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |w, _| debug_f64(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w, _| write_integer(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w, _| write_integer(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w, _| {
            w.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message(field, format_args!("{value}")),
            _ => self.field(field, |w, _| debug_str(w, value)),
        }
    }

    /// The error's text, then its sources' (if it has any) as a list.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let name = field.name();
        self.field(field, |w, sanitize| {
            let escaped = |w: &mut Writer<'_>, text: &dyn fmt::Display| match sanitize {
                true => write!(ControlEscaped(w), "{text}"),
                false => write!(w, "{text}"),
            };
            escaped(w, value)?;
            let mut source = value.source();
            if source.is_none() {
                return Ok(());
            }
            write!(w, " {name}.sources=[")?;
            let mut separator = "";
            while let Some(error) = source {
                w.write_str(separator)?;
                escaped(w, error)?;
                separator = ", ";
                source = error.source();
            }
            w.write_char(']')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message(field, format_args!("{value:?}")),
            _ => self.field(field, |w, _| write!(w, "{value:?}")),
        }
    }
}

/// Escapes what is written through it as tracing-subscriber escapes a
/// message: the control characters a terminal could act on (ESC, BEL, BS,
/// FF, DEL, and the C1 range) become their escapes; the rest goes through
/// in runs, not a character at a time.
struct ControlEscaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for ControlEscaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(
            self.0,
            text,
            |ch| {
                matches!(
                    ch,
                    '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
                )
            },
            |out, ch| match ch {
                '\u{80}'..='\u{9f}' => write!(out, "\\u{{{:x}}}", ch as u32),
                _ => write!(out, "\\x{:02x}", ch as u32),
            },
        )
    }
}

/// Writes `text` to `out` in runs, each character `escapes` picks written
/// by `escape` in its place.
fn write_escaped<W: fmt::Write>(
    out: &mut W,
    text: &str,
    escapes: impl Fn(char) -> bool,
    escape: impl Fn(&mut W, char) -> fmt::Result,
) -> fmt::Result {
    let mut plain = 0;
    for (at, ch) in text.char_indices().filter(|&(_, ch)| escapes(ch)) {
        out.write_str(&text[plain..at])?;
        escape(out, ch)?;
        plain = at + ch.len_utf8();
    }
    out.write_str(&text[plain..])
}

fn colour(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// One object per line: `timestamp`, `level`, the event's fields (the
/// message as `message`), `target`, and for a request's lines `span` and
/// `spans`, as tracing-subscriber's JSON format with `flatten_event` writes
/// them. Never coloured.
fn json(mut writer: Writer<'_>, event: &Event<'_>, metadata: &Metadata<'_>) -> fmt::Result {
    writer.write_str("{\"timestamp\":\"")?;
    write_timestamp(&mut writer)?;
    write!(writer, "\",\"level\":\"{}\"", metadata.level().as_str())?;
    let mut fields = JsonFields {
        writer: writer.by_ref(),
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    writer.write_str(",\"target\":")?;
    json_string(&mut writer, metadata.target())?;
    REQUEST
        .try_with(|request| {
            writer.write_str(",\"span\":")?;
            json_span(&mut writer, request)?;
            writer.write_str(",\"spans\":[")?;
            json_span(&mut writer, request)?;
            writer.write_char(']')
        })
        .unwrap_or(Ok(()))?;
    writer.write_str("}\n")
}

/// The request as tracing-subscriber wrote its span: fields in name order,
/// then `name`.
fn json_span(writer: &mut Writer<'_>, request: &RequestContext) -> fmt::Result {
    writer.write_str("{\"method\":")?;
    json_string(writer, request.method)?;
    writer.write_str(",\"request_id\":")?;
    json_string(writer, request.request_id())?;
    writer.write_str(",\"route\":")?;
    json_string(writer, &request.route)?;
    writer.write_str(",\"name\":\"request\"}")
}

/// Writes an event's fields as `,"name":value` pairs. 64-bit numbers, floats
/// and booleans stay JSON numbers and booleans; everything else (128-bit
/// numbers included, as tracing-subscriber writes them) becomes a string.
struct JsonFields<'a> {
    writer: Writer<'a>,
    result: fmt::Result,
}

impl JsonFields<'_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.writer.write_char(',')?;
            json_string(&mut self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(&mut self.writer)
        })();
    }
}

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // `Debug` keeps a float a float (`1.0`, `1e-7`), as serde_json
        // writes it; JSON has no NaN or infinity.
        self.field(field, |w| match value.is_finite() {
            true => debug_f64(w, value),
            false => w.write_str("null"),
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write_integer(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write_integer(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| json_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(JsonEscaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string, quotes included.
fn json_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaped(out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what is written through it as the inside of a JSON string
/// (RFC 8259 section 7): quotes, backslashes and control characters.
struct JsonEscaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(
            self.0,
            text,
            |ch| matches!(ch, '"' | '\\' | '\0'..='\x1f'),
            |out, ch| match ch {
                '"' => out.write_str("\\\""),
                '\\' => out.write_str("\\\\"),
                '\n' => out.write_str("\\n"),
                '\r' => out.write_str("\\r"),
                '\t' => out.write_str("\\t"),
                '\x08' => out.write_str("\\b"),
                '\x0c' => out.write_str("\\f"),
                _ => write!(out, "\\u{:04x}", ch as u32),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use serde_json::{json, Value};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Lines written by a subscriber with [`Lines`], kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn logged(format: LogFormat, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(Lines { format })
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn request(id: &'static str) -> RequestContext {
        RequestContext {
            request_id: HeaderValue::from_static(id),
            method: "GET",
            route: "/user/{id}".into(),
        }
    }

    #[test]
    fn json_lines_parse_back_to_every_field_whatever_the_strings_hold() {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 é 雪 🦀";
        let logs = logged(LogFormat::Json, || {
            request("read-1").sync_scope(|| {
                tracing::info!(
                    target: "access",
                    status = 200_u64,
                    delta = -3_i64,
                    latency_ms = 0.25_f64,
                    cached = true,
                    text = awkward,
                    debugged = ?awkward,
                    "GET /user/{{id}} {}", 200
                );
            });
            tracing::warn!(ratio = f64::NAN, "outside a request");
        });
        let lines: Vec<Value> = logs
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect();
        assert_eq!(lines.len(), 2, "{logs}");
        let access = &lines[0];
        assert!(access["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(access["level"], "INFO");
        assert_eq!(access["target"], "access");
        assert_eq!(access["message"], "GET /user/{id} 200");
        assert_eq!(access["status"], 200);
        assert_eq!(access["delta"], -3);
        assert_eq!(access["latency_ms"], 0.25);
        assert_eq!(access["cached"], true);
        assert_eq!(access["text"], awkward);
        assert_eq!(access["debugged"], format!("{awkward:?}"));
        let span = json!({ "method": "GET", "request_id": "read-1", "route": "/user/{id}", "name": "request" });
        assert_eq!(access["span"], span);
        assert_eq!(access["spans"], json!([span]));
        let outside = &lines[1];
        assert_eq!(outside["level"], "WARN");
        assert_eq!(outside["message"], "outside a request");
        assert_eq!(outside["ratio"], Value::Null);
        assert!(outside.get("span").is_none(), "{outside}");
    }

    /// Logs the same events twice: as the service does now, and as it did
    /// with tracing-subscriber's own formats inside a `request` span.
    fn ours_and_theirs(format: LogFormat, emit: fn()) -> (String, String) {
        let ours = logged(format, || request("read-1").sync_scope(emit));
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(captured.clone());
        let in_span = || {
            let route = "/user/{id}";
            let span =
                tracing::info_span!("request", request_id = %"read-1", method = "GET", route);
            span.in_scope(emit);
        };
        match format {
            LogFormat::Text => tracing::subscriber::with_default(builder.finish(), in_span),
            LogFormat::Json => tracing::subscriber::with_default(
                builder.json().flatten_event(true).finish(),
                in_span,
            ),
        }
        let theirs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (ours, theirs)
    }

    /// An error with a chain of sources, for `record_error`.
    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|source| source as _)
        }
    }

    fn events() {
        let awkward =
            "quote \" backslash \\ cr \r lf \n tab \t bs \u{8} ff \u{c} us \u{1f} del \u{7f} \
                       esc \u{1b}[31m bel \u{7} c1 \u{85}\u{9b} é 雪 🦀";
        let chained = Failure(
            "cannot read \u{1b}[2J",
            Some(Box::new(Failure(
                "pool closed",
                Some(Box::new(Failure("reset \u{7}", None))),
            ))),
        );
        let alone = Failure("alone", None);
        tracing::error!(
            cause = &chained as &(dyn std::error::Error + 'static),
            single = &alone as &(dyn std::error::Error + 'static),
            r#type = "raw",
            "{}",
            "failed"
        );
        tracing::info!(message = awkward, unsigned = u64::MAX, wide = -7_i128);
        // Fields the `log` bridge adds are not written.
        tracing::warn!(
            log.line = 42_u64,
            kept = 1_u64,
            log.file = "a.rs",
            "from the log crate"
        );
        tracing::info!(
            target: "access",
            status = 200_u64,
            latency_ms = 0.009548000000000001_f64,
            "GET /user/{{id}} {}", 200
        );
        tracing::warn!(
            whole = 1.0_f64,
            negative = -3_i64,
            yes = false,
            "a {} float",
            "whole"
        );
        tracing::error!(text = awkward, debugged = ?awkward, shown = %awkward, "{awkward}");
    }

    #[test]
    fn json_lines_are_what_tracing_subscribers_json_format_wrote_in_the_span() {
        let (ours, theirs) = ours_and_theirs(LogFormat::Json, events);
        let without_timestamp = |logs: &str| -> Vec<String> {
            logs.lines()
                .map(|line| {
                    let mut line: Value = serde_json::from_str(line).unwrap();
                    line.as_object_mut().unwrap().shift_remove("timestamp");
                    // In order: serde_json here keeps the keys as written.
                    line.to_string()
                })
                .collect()
        };
        assert_eq!(without_timestamp(&ours).len(), 6, "{ours}");
        assert_eq!(without_timestamp(&ours), without_timestamp(&theirs));
        // Byte for byte, timestamps aside.
        let cut = |logs: &str| -> Vec<String> {
            logs.lines()
                .map(|line| line.split_once(",\"level\"").unwrap().1.to_owned())
                .collect()
        };
        assert_eq!(cut(&ours), cut(&theirs));
    }

    #[test]
    fn text_lines_are_what_tracing_subscribers_text_format_wrote_in_the_span() {
        let (ours, theirs) = ours_and_theirs(LogFormat::Text, events);
        // A message's line feeds are written as they are, in both: a line
        // that starts with no timestamp continues the one before.
        let without_timestamp = |logs: &str| -> Vec<String> {
            logs.lines()
                .map(|line| match line.split_once(' ') {
                    Some((stamp, rest)) if stamp.len() == 27 && stamp.ends_with('Z') => {
                        rest.to_owned()
                    }
                    _ => line.to_owned(),
                })
                .collect()
        };
        assert_eq!(
            ours.matches(" request{request_id=read-1 ").count(),
            6,
            "{ours}"
        );
        assert_eq!(without_timestamp(&ours), without_timestamp(&theirs));
    }

    #[test]
    fn text_lines_name_the_request_as_its_span_did() {
        let logs = logged(LogFormat::Text, || {
            request("read-1").sync_scope(|| {
                tracing::info!(target: "access", status = 200_u64, "GET /user/{{id}} 200");
            });
            tracing::info!(database = "users", "outside a request");
        });
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        let (_timestamp, access) = lines[0].split_once(' ').unwrap();
        assert_eq!(
            access,
            " INFO request{request_id=read-1 method=\"GET\" route=\"/user/{id}\"}: \
             access: GET /user/{id} 200 status=200"
        );
        let (_timestamp, outside) = lines[1].split_once(' ').unwrap();
        assert_eq!(
            outside,
            " INFO user_api::telemetry::lines::tests: outside a request database=\"users\""
        );
    }

    #[test]
    fn floats_are_written_as_debug_writes_them() {
        let mut by_ryu = 0;
        let mut check = |value: f64| {
            let mut ours = String::new();
            debug_f64(&mut ours, value).unwrap();
            let debug = format!("{value:?}");
            assert_eq!(ours, debug, "{:#x}", value.to_bits());
            // What the rule rests on: below 16 significant digits, ryu and
            // std agree wherever std writes no exponent.
            let text = ryu::Buffer::new().format_finite(value).to_owned();
            let digits = text.trim_start_matches(['-', '0', '.']).replace('.', "");
            if value.is_finite() && (1e-4..1e16).contains(&value.abs()) && digits.len() < 16 {
                assert_eq!(text, debug, "{:#x}", value.to_bits());
                by_ryu += 1;
            }
        };
        // Around the bounds of the range ryu writes, and past them.
        for bound in [1e-4, 1e16] {
            let mut below = bound;
            let mut above = bound;
            for _ in 0..1_000 {
                check(below);
                check(above);
                check(-above);
                below = f64::from_bits(below.to_bits() - 1);
                above = f64::from_bits(above.to_bits() + 1);
            }
        }
        for special in [
            0.0,
            -0.0,
            1.0,
            0.1,
            0.25,
            1e15,
            123_456.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            check(special);
        }
        // Latencies as the access line writes them: whole microseconds, in
        // milliseconds, from one to a day.
        let mut micros = 1_u64;
        while micros < 86_400_000_000 {
            check(micros as f64 / 1000.0);
            micros = micros * 9 / 8 + 1;
        }
        // Any bit pattern at all (xorshift, a fixed seed), and the same
        // value cut to a few decimals.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            check(value);
            let scale = 10_f64.powi((state % 12) as i32);
            check((value.abs().log10().fract() * 1e6).round() / scale);
        }
        assert!(by_ryu > 100_000, "only {by_ryu} values took ryu's path");
    }

    #[test]
    fn timestamps_are_written_as_chrono_formats_them_whatever_the_second() {
        use std::time::Duration;
        let reference = |time: std::time::SystemTime| {
            DateTime::<Utc>::from(time)
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        };
        let at = |seconds: u64, nanos: u32| UNIX_EPOCH + Duration::new(seconds, nanos);
        let times = [
            at(1_769_851_800, 0),
            at(1_769_851_800, 999_999_999),
            at(1_769_851_801, 1_000),
            // Back to a second already written: the cache must not stick.
            at(1_769_851_800, 500_000_000),
            at(951_782_400, 123_456_789), // 2000-02-29
            at(0, 0),
            at(253_402_300_799, 999_999_000), // 9999-12-31T23:59:59
        ];
        for time in times {
            let mut ours = String::new();
            write_time(&mut ours, time).unwrap().unwrap();
            assert_eq!(ours, reference(time));
        }
        // Outside 1970 to 9999 the line is left to tracing-subscriber's
        // clock, with nothing written here.
        for time in [
            at(253_402_300_800, 0), // year 10000
            UNIX_EPOCH - Duration::from_millis(1_250),
        ] {
            let mut ours = String::new();
            assert!(write_time(&mut ours, time).is_none(), "{ours}");
            assert_eq!(ours, "");
        }
        // And as tracing-subscriber's own clock (its `SystemTime`) writes
        // the time now.
        let mut theirs = String::new();
        SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let mut ours = String::new();
        write_timestamp(&mut ours).unwrap();
        let parse = |text: &str| {
            assert_eq!(text.len(), 27, "{text}");
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6fZ").unwrap()
        };
        let apart = parse(&ours) - parse(&theirs);
        assert!(apart >= chrono::TimeDelta::zero(), "{theirs} then {ours}");
        assert!(
            apart < chrono::TimeDelta::seconds(5),
            "{theirs} then {ours}"
        );
    }

    #[tokio::test]
    async fn a_request_scope_reaches_across_awaits_and_ends_with_the_future() {
        let logs_inside = request("async-1")
            .scope(async {
                tokio::task::yield_now().await;
                RequestContext::current().map(|request| request.request_id)
            })
            .await;
        assert_eq!(logs_inside, Some(HeaderValue::from_static("async-1")));
        assert!(RequestContext::current().is_none());
    }
}
