//! Character classes shared by the text rules and the regular expressions that
//! document them in the OpenAPI spec.
//!
//! The class bodies are written in the common subset of ECMA-262, Python `re`
//! and Rust `regex` syntax, so one string serves the spec, generated SDKs and
//! the unit tests that prove the spec and the parsers agree. That subset has
//! no way to name a character beyond the Basic Multilingual Plane (ECMA-262
//! without the `u` flag sees UTF-16 halves there), so a class that would need
//! one covers the BMP, and the field's description states the rest.

use std::{fmt::Write, sync::LazyLock};

use unicode_general_category::{get_general_category, GeneralCategory};

/// Exactly the characters `str::trim` removes (Unicode `White_Space`).
pub const WHITESPACE: &str =
    r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Unicode control characters (general category `Cc`).
pub const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";

/// Whether `c` is invisible or changes the direction or layout of text:
/// format characters (`Cf`: bidi controls, zero-width characters, the byte
/// order mark, tags), line and paragraph separators (`Zl`, `Zp`).
pub fn is_invisible(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Runs of consecutive characters, from `first` to `last` inclusive, that
/// are invisible (see [`is_invisible`]) within `range`.
fn invisible_runs(range: std::ops::RangeInclusive<u32>) -> Vec<(char, char)> {
    let mut runs: Vec<(char, char)> = Vec::new();
    for c in range
        .filter_map(char::from_u32)
        .filter(|c| is_invisible(*c))
    {
        match runs.last_mut() {
            Some((_, last)) if char::from_u32(*last as u32 + 1) == Some(c) => *last = c,
            _ => runs.push((c, c)),
        }
    }
    runs
}

/// [`is_invisible`] over the Basic Multilingual Plane, as a class body
/// computed from the same Unicode data. The invisible characters beyond it
/// are named by [`invisible_beyond_bmp`].
pub fn invisible() -> &'static str {
    static CLASS: LazyLock<String> = LazyLock::new(|| {
        invisible_runs(0..=0xFFFF)
            .iter()
            .fold(String::new(), |mut class, (first, last)| {
                let _ = write!(class, "\\u{:04X}", *first as u32);
                if first != last {
                    let _ = write!(class, "-\\u{:04X}", *last as u32);
                }
                class
            })
    });
    &CLASS
}

/// The invisible characters beyond the Basic Multilingual Plane, in words
/// for a field's description (`U+110BD, …, U+E0020–U+E007F`), computed from
/// the same Unicode data.
pub fn invisible_beyond_bmp() -> &'static str {
    static WORDS: LazyLock<String> = LazyLock::new(|| {
        let runs: Vec<String> = invisible_runs(0x10000..=0x10FFFF)
            .iter()
            .map(|(first, last)| match first == last {
                true => format!("U+{:04X}", *first as u32),
                false => format!("U+{:04X}–U+{:04X}", *first as u32, *last as u32),
            })
            .collect();
        runs.join(", ")
    });
    &WORDS
}

/// Letters that render as blank space (Hangul fillers, the braille blank):
/// not a name's first character.
pub const BLANK_LETTERS: [char; 5] = ['\u{115F}', '\u{1160}', '\u{2800}', '\u{3164}', '\u{FFA0}'];

/// [`BLANK_LETTERS`] as a class body.
pub const BLANK_LETTERS_CLASS: &str = r"\u115F\u1160\u2800\u3164\uFFA0";

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn all_chars() -> impl Iterator<Item = char> {
        (0..=0x10FFFF).filter_map(char::from_u32)
    }

    #[test]
    fn whitespace_class_is_exactly_what_trim_removes() {
        let class = Regex::new(&format!("^[{WHITESPACE}]$")).unwrap();
        for c in all_chars() {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                c.is_whitespace(),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn invisible_class_is_exactly_cf_zl_and_zp_in_the_bmp() {
        let class = Regex::new(&format!("^[{}]$", invisible())).unwrap();
        for c in all_chars().filter(|c| (*c as u32) <= 0xFFFF) {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                is_invisible(c),
                "U+{:04X}",
                c as u32
            );
        }
        for c in ['\u{200B}', '\u{FEFF}', '\u{202E}', '\u{2028}', '\u{E0041}'] {
            assert!(is_invisible(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_words_name_every_invisible_character_beyond_the_bmp() {
        let words = invisible_beyond_bmp();
        assert!(words.contains("U+E0020–U+E007F"), "{words}");
        let named: Vec<char> = words
            .split(", ")
            .flat_map(|run| {
                let mut ends = run
                    .split('–')
                    .map(|code| u32::from_str_radix(code.trim_start_matches("U+"), 16).unwrap());
                let first = ends.next().unwrap();
                let last = ends.next().unwrap_or(first);
                (first..=last).filter_map(char::from_u32)
            })
            .collect();
        let invisible: Vec<char> = all_chars()
            .filter(|c| (*c as u32) > 0xFFFF && is_invisible(*c))
            .collect();
        assert_eq!(named, invisible);
    }

    #[test]
    fn blank_letters_class_is_exactly_the_blank_letters() {
        let class = Regex::new(&format!("^[{BLANK_LETTERS_CLASS}]$")).unwrap();
        for c in all_chars() {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                BLANK_LETTERS.contains(&c),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn control_class_is_exactly_unicode_cc() {
        let class = Regex::new(&format!("^[{CONTROL}]$")).unwrap();
        for c in all_chars() {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                c.is_control(),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
