//! Finding users by the start of their name or email.

use unicode_normalization::UnicodeNormalization;

/// A name as searches compare it: Unicode NFC, then full case folding (so
/// `ZOË`, `zoë` and a decomposed `zoë` are one), then NFC again.
pub fn fold_name(name: &str) -> String {
    let composed: String = name.nfc().collect();
    caseless::default_case_fold_str(&composed).nfc().collect()
}

/// The `q` of a search: the start of a name or an email, 1 to 100
/// characters, compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPrefix {
    raw: String,
    name: String,
    email: String,
}

impl SearchPrefix {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        Ok(Self {
            raw: raw.to_owned(),
            name: fold_name(raw),
            email: raw.nfc().collect::<String>().to_lowercase(),
        })
    }

    /// The prefix as given, for the next page's link.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The prefix of a folded name, as [`fold_name`] stores them.
    pub fn name_prefix(&self) -> &str {
        &self.name
    }

    /// The prefix of a normalized email (NFC, lowercased).
    pub fn email_prefix(&self) -> &str {
        &self.email
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_composition_do_not_matter() {
        for name in ["Zoë Smith", "ZOË SMITH", "zoe\u{308} smith"] {
            assert!(fold_name(name).starts_with(SearchPrefix::parse("zoë").unwrap().name_prefix()));
            assert!(fold_name(name).starts_with(SearchPrefix::parse("ZOË").unwrap().name_prefix()));
        }
        // Full folding, not just lowercasing: ß and SS meet.
        assert_eq!(fold_name("Straße"), fold_name("STRASSE"));
    }

    #[test]
    fn length_is_bounded() {
        assert!(SearchPrefix::parse("").is_err());
        assert!(SearchPrefix::parse(&"a".repeat(100)).is_ok());
        assert!(SearchPrefix::parse(&"a".repeat(101)).is_err());
    }
}
