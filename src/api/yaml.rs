//! YAML for the spec that every YAML parser reads as the JSON it came from.
//!
//! General-purpose emitters write a string plain whenever YAML 1.2 would
//! read it back as a string, but many loaders (PyYAML, and the generators
//! built on YAML 1.1 libraries) resolve plain `2026-01-31T09:30:00.000Z` to
//! a timestamp, `yes`/`off` to booleans and `1_000` or `0o17` to numbers.
//! Here a string is plain only when it starts with a letter, `/`, `_` or
//! `$`: then no YAML 1.1 or 1.2 resolver reads it as a number, a date or a
//! timestamp, and the boolean and null words are quoted. It must also end
//! a plain scalar nowhere but at its end (no `: `, ` #`, trailing `:` or
//! space) and need no escapes. Everything else is double-quoted with
//! escapes, or, for multi-line prose, a literal block.

use serde_json::{Map, Number, Value};

/// The YAML document for `value`, with a trailing newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

fn mapping(out: &mut String, map: &Map<String, Value>, width: usize) {
    for (key, value) in map {
        indent(out, width);
        out.push_str(&string(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, width + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, width);
            }
            Value::String(text) if literal_block(text) => block(out, text, width + 2),
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], width: usize) {
    for item in items {
        indent(out, width);
        out.push('-');
        match item {
            Value::Object(inner) if !inner.is_empty() => {
                // The first entry goes on the dash's line.
                let mut nested = String::new();
                mapping(&mut nested, inner, width + 2);
                out.push(' ');
                out.push_str(&nested[width + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                sequence(&mut nested, inner, width + 2);
                out.push(' ');
                out.push_str(&nested[width + 2..]);
            }
            Value::String(text) if literal_block(text) => block(out, text, width + 2),
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// A literal block: the text's lines as they are, indented; `|` keeps one
/// final line break, `|-` has none.
fn block(out: &mut String, text: &str, width: usize) {
    let (body, header) = match text.strip_suffix('\n') {
        Some(body) => (body, " |\n"),
        None => (text, " |-\n"),
    };
    out.push_str(header);
    for line in body.split('\n') {
        if !line.is_empty() {
            indent(out, width);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// Multi-line text that a literal block keeps exactly: no line breaks but
/// `\n` (YAML 1.1 also breaks lines at U+0085, U+2028 and U+2029), nothing
/// that must be escaped, no trailing spaces (a reader may trim them), no
/// leading space on the first line with text (it would set the
/// indentation) and at most one final line break.
fn literal_block(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.contains('\n')
        && !body.ends_with('\n')
        && body
            .split('\n')
            .find(|line| !line.is_empty())
            .is_some_and(|line| !line.starts_with([' ', '\t']))
        && body.chars().all(|c| c == '\n' || !needs_escape(c))
        && body.split('\n').all(|line| !line.ends_with([' ', '\t']))
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => self::number(number),
        Value::String(text) => string(text),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// Integers as they are; other numbers always with a decimal point and
/// never in exponent form, which YAML 1.1 reads as a float only with a
/// point and a signed exponent.
fn number(number: &Number) -> String {
    if number.is_f64() {
        if let Some(float) = number.as_f64().filter(|float| float.is_finite()) {
            let text = float.to_string();
            return if text.contains('.') {
                text
            } else {
                format!("{text}.0")
            };
        }
    }
    number.to_string()
}

/// Words YAML 1.1 reads as booleans or null in any of their spellings.
const RESERVED: [&str; 11] = [
    "y", "n", "yes", "no", "true", "false", "on", "off", "null", "=", "<<",
];

fn string(text: &str) -> String {
    if plain(text) {
        text.to_owned()
    } else {
        quoted(text)
    }
}

fn plain(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    (first.is_alphabetic() || "/_$".contains(first))
        && text.chars().all(|c| c != '\t' && !needs_escape(c))
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with([':', ' '])
        && !RESERVED.contains(&text.to_ascii_lowercase().as_str())
}

/// Characters a YAML document may not hold as they are, or that YAML 1.1
/// reads as line breaks or a byte-order mark.
fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) && u32::from(c) <= 0xff => {
                out.push_str(&format!("\\x{:02X}", u32::from(c)));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_unambiguous_text_stays_plain() {
        for text in [
            "User",
            "/user/{id}",
            "$ref",
            "application/json; charset=utf-8",
            "Bearer token, [see] {docs}; here",
            "José",
        ] {
            assert_eq!(string(text), text);
        }
        for text in [
            "2026-01-31T09:30:00.000Z",
            "yes",
            "Off",
            "NULL",
            "1_000",
            "0o17",
            "",
            "a: b",
            "a #b",
            "a:",
            "#x",
            " x",
            "x ",
            "-",
            "~",
            "<<",
            "1a",
            "tab\tx",
            "line\nbreak",
            "separator\u{2028}",
        ] {
            assert!(string(text).starts_with('"'), "{text} must be quoted");
        }
    }

    #[test]
    fn nesting_and_blocks_have_the_expected_shape() {
        let value = json!({
            "a": [{"b": 1, "c": [1.5, "x"]}, []],
            "d": "one\ntwo",
            "e": {},
            "f": "three\n\nfour\n"
        });
        assert_eq!(
            to_string(&value),
            "a:\n- b: 1\n  c:\n  - 1.5\n  - x\n- []\nd: |-\n  one\n  two\ne: {}\nf: |\n  three\n\n  four\n"
        );
    }
}
