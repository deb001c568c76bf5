use std::{fmt, sync::LazyLock};

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};

use super::text::CONTROL;

/// A password that meets the policy. The text is kept in a [`SecretString`],
/// so it is redacted from `Debug` output and zeroed when dropped.
pub struct Password(SecretString);

/// Character classes a password must each contain at least once, with how a
/// caller is told about a missing one. ASCII classes keep the rule exactly
/// expressible as a spec pattern that every client regex engine understands.
const REQUIRED_CLASSES: [(&str, &str); 4] = [
    ("a-z", "a lowercase letter (a-z)"),
    ("A-Z", "an uppercase letter (A-Z)"),
    ("0-9", "a digit (0-9)"),
    ("^A-Za-z0-9", "a character that is not a letter or digit"),
];

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// bcrypt reads at most 72 bytes; longer input is refused rather than
    /// silently truncated.
    pub const MAX_BYTES: usize = 72;

    pub fn parse(raw: String) -> Result<Self, String> {
        static CLASSES: LazyLock<Vec<(Regex, &str)>> = LazyLock::new(|| {
            REQUIRED_CLASSES
                .iter()
                .map(|(class, what)| {
                    let regex = Regex::new(&format!("[{class}]")).expect("class is valid");
                    (regex, *what)
                })
                .collect()
        });
        let raw = SecretString::from(raw);
        let text = raw.expose_secret();
        if text.chars().count() < Self::MIN_CHARS {
            return Err(format!(
                "must be at least {} characters long",
                Self::MIN_CHARS
            ));
        }
        if text.len() > Self::MAX_BYTES {
            return Err(format!(
                "must be at most {} bytes when UTF-8 encoded (got {})",
                Self::MAX_BYTES,
                text.len()
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let missing: Vec<&str> = CLASSES
            .iter()
            .filter(|(class, _)| !class.is_match(text))
            .map(|(_, what)| *what)
            .collect();
        if !missing.is_empty() {
            return Err(format!("must contain {}", missing.join(", ")));
        }
        Ok(Self(raw))
    }

    /// The character-class part of the policy as a spec pattern (lookaheads;
    /// lengths are documented as `minLength` and `maxLength`).
    pub fn pattern() -> &'static str {
        static PATTERN: LazyLock<String> = LazyLock::new(|| {
            let lookaheads: String = REQUIRED_CLASSES
                .iter()
                .map(|(class, _)| format!(r"(?=[\s\S]*[{class}])"))
                .collect();
            format!("^{lookaheads}[^{CONTROL}]*$")
        });
        &PATTERN
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Password, String> {
        Password::parse(raw.to_owned())
    }

    #[test]
    fn accepts_the_documented_example() {
        assert!(parse("Password@123").is_ok());
    }

    #[test]
    fn requires_eight_characters() {
        assert!(parse("Pa@1xyz").is_err());
        assert!(parse("Pa@1wxyz").is_ok());
        // Characters, not bytes: seven characters are too few however wide.
        assert!(parse("Pa@1éé€").is_err());
    }

    #[test]
    fn accepts_72_bytes_and_refuses_73() {
        let base = "Aa1!";
        let exactly_72 = format!("{base}{}", "x".repeat(72 - base.len()));
        assert_eq!(exactly_72.len(), 72);
        assert!(parse(&exactly_72).is_ok());
        let err = parse(&format!("{exactly_72}x")).err().unwrap();
        assert!(err.contains("72 bytes"), "{err}");
        // Multi-byte characters count by their UTF-8 size.
        let wide = format!("{base}{}", "é".repeat(35));
        assert_eq!(wide.len(), 74);
        assert!(parse(&wide).is_err());
    }

    #[test]
    fn names_every_missing_class() {
        let err = parse("alllowercase").err().unwrap();
        assert!(err.contains("uppercase"), "{err}");
        assert!(err.contains("digit"), "{err}");
        assert!(err.contains("not a letter or digit"), "{err}");
        assert!(!err.contains("lowercase letter"), "{err}");
        for raw in [
            "PASSWORD@123",
            "password@123",
            "Password@abc",
            "Password1234",
        ] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn spaces_and_non_ascii_count_as_symbols() {
        assert!(parse("Pass word1").is_ok());
        assert!(parse("Passwörd1").is_ok());
    }

    #[test]
    fn control_characters_are_refused() {
        for raw in ["Abcdef1!\0", "Abc\tdef1!", "Abcdef1!\n", "Abc\u{85}def1!"] {
            let err = parse(raw).err().unwrap();
            assert!(err.contains("control"), "{raw:?}: {err}");
        }
    }

    #[test]
    fn a_bcrypt_lookalike_is_just_a_password() {
        let lookalike = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(parse(lookalike).is_ok());
    }

    #[test]
    fn debug_output_is_redacted() {
        let password = parse("Password@123").unwrap();
        assert!(!format!("{password:?}").contains("Password@123"));
    }

    #[test]
    fn pattern_lists_each_class_as_a_lookahead() {
        assert_eq!(
            Password::pattern(),
            r"^(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[^A-Za-z0-9])[^\x00-\x1F\x7F-\x9F]*$"
        );
    }
}
