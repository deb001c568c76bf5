use std::sync::LazyLock;

use regex::Regex;

use super::text::WHITESPACE;

/// A normalized email address: trimmed, checked against the address grammar
/// below, and lowercased, so uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

/// Characters allowed in the local part, besides an inner dot.
const LOCAL_CHAR: &str = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-";

/// The accepted address, without surrounding whitespace: the WHATWG "valid
/// email address" grammar (what browsers accept in `<input type=email>`),
/// tightened to RFC 5321 sizes (local part up to 64 characters, DNS labels up
/// to 63) and requiring a dot in the domain, which catches `name@gmailcom`.
fn address_pattern() -> String {
    let label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    [
        "[", LOCAL_CHAR, "](?:[.", LOCAL_CHAR, "]{0,62}[", LOCAL_CHAR, "])?@", label, r"(?:\.",
        label, ")+",
    ]
    .concat()
}

impl EmailAddress {
    /// Limit on the raw input, surrounding whitespace included (RFC 5321 path
    /// limit less the angle brackets).
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(&format!("^{}$", address_pattern())).expect("the address pattern is valid")
        });
        let chars = raw.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(format!(
                "must be at most {} characters (got {chars})",
                Self::MAX_CHARS
            ));
        }
        let address = raw.trim();
        if address.is_empty() {
            return Err("must not be empty".into());
        }
        if !ADDRESS.is_match(address) {
            return Err("must be an email address like name@example.com".into());
        }
        Ok(Self(address.to_ascii_lowercase()))
    }

    /// [`EmailAddress::parse`]'s grammar over the raw input, for the spec; the
    /// length limit is documented separately as `maxLength`.
    pub fn pattern() -> &'static str {
        static PATTERN: LazyLock<String> =
            LazyLock::new(|| format!("^[{WHITESPACE}]*{}[{WHITESPACE}]*$", address_pattern()));
        &PATTERN
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let email = EmailAddress::parse("  John.Doe@Example.COM \t").unwrap();
        assert_eq!(email.as_str(), "john.doe@example.com");
    }

    #[test]
    fn accepts_common_addresses() {
        for raw in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'brien@example.ie",
            "x_y-z@my-host.example",
            "1234@123.45.com",
        ] {
            assert!(EmailAddress::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn rejects_non_addresses() {
        for raw in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "name@",
            "name@localhost",
            "name@gmailcom",
            "name@@example.com",
            "na me@example.com",
            ".name@example.com",
            "name.@example.com",
            "name@-example.com",
            "name@example-.com",
            "name@example..com",
            "name@.example.com",
            "name@example.com.",
            "\"quoted\"@example.com",
            "名前@example.com",
            "name@exämple.com",
            "name@example.com\u{0}",
            "a\nb@example.com",
        ] {
            assert!(EmailAddress::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn enforces_part_sizes() {
        let local64 = "a".repeat(64);
        assert!(EmailAddress::parse(&format!("{local64}@example.com")).is_ok());
        assert!(EmailAddress::parse(&format!("{local64}a@example.com")).is_err());
        let label63 = "b".repeat(63);
        assert!(EmailAddress::parse(&format!("a@{label63}.com")).is_ok());
        assert!(EmailAddress::parse(&format!("a@{label63}b.com")).is_err());
    }

    #[test]
    fn enforces_total_length_on_the_raw_input() {
        let domain = format!(
            "{}.{}.{}.com",
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(63)
        );
        let at_limit = format!("{}@{domain}", "a".repeat(254 - 1 - domain.len()));
        assert_eq!(at_limit.len(), 254);
        assert!(EmailAddress::parse(&at_limit).is_ok());
        assert!(EmailAddress::parse(&format!("a{at_limit}")).is_err());
        assert!(EmailAddress::parse(&format!(" {at_limit}")).is_err());
    }

    #[test]
    fn pattern_agrees_with_parse_below_the_length_limit() {
        let pattern = Regex::new(EmailAddress::pattern()).unwrap();
        let pieces = [
            "a", "Z", "0", ".", "@", "-", "+", " ", "\t", "é", "\u{a0}", "x.io", "\u{feff}",
        ];
        let inputs = crate::test_support::concatenations(&pieces, 4);
        for input in inputs {
            assert_eq!(
                pattern.is_match(&input),
                EmailAddress::parse(&input).is_ok(),
                "{input:?}"
            );
        }
    }
}
