use std::sync::LazyLock;

use super::text::{
    invisible, is_invisible, BLANK_LETTERS, BLANK_LETTERS_CLASS, CONTROL, WHITESPACE,
};

/// A user's display name: trimmed, 1 to 100 characters, no control, format
/// or line-separating characters (nothing invisible or direction-changing,
/// such as `Admin\u{202E}txt.exe`), starting with a visible character. Any
/// script is welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err("must not be empty or only whitespace".into());
        }
        if chars > Self::MAX_CHARS {
            return Err(format!(
                "must be at most {} characters after trimming (got {chars})",
                Self::MAX_CHARS
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if name.chars().any(is_invisible) {
            return Err(
                "must not contain invisible or direction-changing characters (zero-width \
                 characters, bidi controls, line separators)"
                    .into(),
            );
        }
        if name.starts_with(BLANK_LETTERS) {
            return Err("must start with a visible character".into());
        }
        Ok(Self(name.to_owned()))
    }

    /// The same rule as [`UserName::parse`], as a regular expression over the
    /// raw input: optional surrounding whitespace around 1 to 100 characters
    /// with no control or invisible ones, the first visible, the last not
    /// whitespace. The pattern's dialect cannot name the few invisible
    /// characters beyond the Basic Multilingual Plane (see
    /// [`invisible_beyond_bmp`]); the field's description does.
    pub fn pattern() -> &'static str {
        static PATTERN: LazyLock<String> = LazyLock::new(|| {
            let inner = UserName::MAX_CHARS - 2;
            let banned = format!("{CONTROL}{}", invisible());
            format!(
                "^[{WHITESPACE}]*[^{banned}{WHITESPACE}{BLANK_LETTERS_CLASS}](?:[^{banned}]{{0,{inner}}}[^{banned}{WHITESPACE}])?[{WHITESPACE}]*$"
            )
        });
        &PATTERN
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::invisible_beyond_bmp;
    use regex::Regex;

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(
            UserName::parse("  Ada Lovelace \n").unwrap().as_str(),
            "Ada Lovelace"
        );
    }

    #[test]
    fn accepts_unicode_names() {
        for name in ["Zoë", "李小龍", "Łukasz Żółć", "Ἀριστοτέλης", "🦀"] {
            assert_eq!(UserName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_empty_and_blank() {
        for raw in ["", " ", "\t\n", "\u{3000}"] {
            assert!(UserName::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
        assert!(UserName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn length_is_measured_after_trimming() {
        let hundred = "a".repeat(100);
        assert!(UserName::parse(&format!("  {hundred}  ")).is_ok());
        assert!(UserName::parse(&format!("{hundred}b")).is_err());
    }

    #[test]
    fn rejects_inner_control_characters() {
        for raw in ["Ada\u{0}Lovelace", "Ada\nLovelace", "Ada\u{7f}", "x\u{9f}y"] {
            assert!(UserName::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn refuses_invisible_and_direction_changing_names() {
        for raw in [
            "\u{200b}",
            "\u{feff}",
            "Admin\u{202e}txt.exe",
            "a\u{2028}b",
            "Ada\u{E0041}",
            "\u{3164}",
            "\u{2800}Ada",
        ] {
            assert!(UserName::parse(raw).is_err(), "{raw:?}");
        }
        assert!(UserName::parse("Zoë O'Brien-Łukasz 李小龍").is_ok());
        assert!(
            UserName::parse("Zoe\u{308}").is_ok(),
            "a decomposed name ends in a mark"
        );
    }

    #[test]
    fn pattern_agrees_with_parse() {
        let pattern = Regex::new(UserName::pattern()).unwrap();
        let pieces = [
            "a", "Z", " ", "\t", "\n", "\u{0}", "\u{7f}", "\u{85}", "\u{a0}", "\u{3000}", "é",
            "李", "🦀", "\u{200b}", "\u{feff}", "-", "\u{202e}", "\u{2028}", "\u{3164}", "\u{308}",
        ];
        // Every string of up to three pieces, and long runs around the limit.
        let mut inputs = crate::test_support::concatenations(&pieces, 3);
        for n in [98, 99, 100, 101] {
            for piece in pieces {
                inputs.push(format!(" {}{} ", "x".repeat(n - 1), piece));
                inputs.push(format!("{}{}", piece, "x".repeat(n - 1)));
            }
        }
        for input in inputs {
            assert_eq!(
                pattern.is_match(&input),
                UserName::parse(&input).is_ok(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn beyond_the_bmp_only_the_description_names_invisible_characters() {
        let pattern = Regex::new(UserName::pattern()).unwrap();
        for raw in ["Ada\u{E0041}", "\u{E0001}Ada", "a\u{1D173}b"] {
            assert!(pattern.is_match(raw), "{raw:?}");
            assert!(UserName::parse(raw).is_err(), "{raw:?}");
        }
        assert!(invisible_beyond_bmp().contains("U+E0001"));
    }
}
