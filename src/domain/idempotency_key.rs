/// An `Idempotency-Key` as a client sent it: 1 to 255 visible ASCII
/// characters, such as a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 255;
    /// [`IdempotencyKey::parse`]'s rule, for the spec.
    pub const PATTERN: &'static str = r"^[\x21-\x7E]+$";

    pub fn parse(raw: &str) -> Result<Self, String> {
        let visible = |b: u8| (0x21..=0x7e).contains(&b);
        if raw.is_empty() || raw.len() > Self::MAX_CHARS || !raw.bytes().all(visible) {
            return Err(format!(
                "must be 1 to {} visible ASCII characters, such as a UUID",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_agrees_with_parse() {
        let pattern = regex::Regex::new(IdempotencyKey::PATTERN).unwrap();
        let pieces = ["a", "-", " ", "\t", "é", "~", "\u{7f}", "\u{0}"];
        for input in crate::test_support::concatenations(&pieces, 3) {
            assert_eq!(
                pattern.is_match(&input),
                IdempotencyKey::parse(&input).is_ok(),
                "{input:?}"
            );
        }
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
