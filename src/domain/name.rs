use std::sync::LazyLock;

use super::text::{CONTROL, WHITESPACE};

/// A user's display name: trimmed, 1 to 100 characters, no control characters.
/// Any script is welcome.
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
        Ok(Self(name.to_owned()))
    }

    /// The same rule as [`UserName::parse`], as a regular expression over the
    /// raw input: optional surrounding whitespace around 1 to 100 characters
    /// that start and end with a visible character and contain no controls.
    pub fn pattern() -> &'static str {
        static PATTERN: LazyLock<String> = LazyLock::new(|| {
            let inner = UserName::MAX_CHARS - 2;
            format!(
                "^[{WHITESPACE}]*[^{CONTROL}{WHITESPACE}](?:[^{CONTROL}]{{0,{inner}}}[^{CONTROL}{WHITESPACE}])?[{WHITESPACE}]*$"
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
    fn pattern_agrees_with_parse() {
        let pattern = Regex::new(UserName::pattern()).unwrap();
        let pieces = [
            "a", "Z", " ", "\t", "\n", "\u{0}", "\u{7f}", "\u{85}", "\u{a0}", "\u{3000}", "é",
            "李", "🦀", "\u{200b}", "\u{feff}", "-",
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
}
