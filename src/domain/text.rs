//! Character classes shared by the text rules and the regular expressions that
//! document them in the OpenAPI spec.
//!
//! The class bodies are written in the common subset of ECMA-262, Python `re`
//! and Rust `regex` syntax, so one string serves the spec, generated SDKs and
//! the unit tests that prove the spec and the parsers agree.

/// Exactly the characters `str::trim` removes (Unicode `White_Space`).
pub const WHITESPACE: &str =
    r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Unicode control characters (general category `Cc`).
pub const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";

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
