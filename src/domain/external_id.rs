/// A user's id in another system (Kratos' `external_id`): 1 to 255
/// characters, no control characters, unique among users and compared
/// exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId(String);

impl ExternalId {
    pub const MAX_CHARS: usize = 255;
    /// [`ExternalId::parse`]'s rule, for the spec.
    pub const PATTERN: &'static str = r"^[^\x00-\x1F\x7F-\x9F]{1,255}$";

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || raw.chars().any(char::is_control) {
            return Err(format!(
                "must be 1 to {} characters, none of them control characters",
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
        let pattern = regex::Regex::new(ExternalId::PATTERN).unwrap();
        let pieces = ["a", " ", "\u{0}", "é", "\u{85}", "李"];
        let mut inputs = crate::test_support::concatenations(&pieces, 3);
        inputs.extend(["x".repeat(255), "x".repeat(256), "é".repeat(255)]);
        for input in inputs {
            assert_eq!(
                pattern.is_match(&input),
                ExternalId::parse(&input).is_ok(),
                "{input:?}"
            );
        }
    }
}
