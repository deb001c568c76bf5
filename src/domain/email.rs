use std::{borrow::Cow, fmt::Write, sync::LazyLock};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::text::{CONTROL, WHITESPACE};

/// A normalized email address: the local part in Unicode NFC, lowercased;
/// the domain in Unicode (an `xn--` label decoded), NFC, lowercased. So
/// `User@XN--BCHER-KVA.DE`, `user@BÜCHER.de` and `user@bücher.de` are one
/// address, and uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

/// ASCII characters allowed in the local part, besides an inner dot.
const LOCAL_ASCII: &str = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-";

/// Letters of the Latin, Greek, Cyrillic, CJK, kana and Hangul blocks that
/// an internationalized address may use (RFC 6531/6532) ...
const CANDIDATE_BLOCKS: [(char, char); 10] = [
    ('\u{00C0}', '\u{00FF}'),
    ('\u{0100}', '\u{017F}'),
    ('\u{0180}', '\u{024F}'),
    ('\u{0370}', '\u{03FF}'),
    ('\u{0400}', '\u{04FF}'),
    ('\u{3041}', '\u{3096}'),
    ('\u{30A1}', '\u{30FA}'),
    ('\u{4E00}', '\u{9FFF}'),
    ('\u{AC00}', '\u{D7A3}'),
    ('\u{1E00}', '\u{1EFF}'),
];

fn uts46() -> Uts46 {
    Uts46::new()
}

/// ... each of which IDNA (UTS 46) accepts in a domain label and Unicode
/// normalization leaves as it is. Computed once, from the same IDNA and
/// Unicode data that checks addresses, so the spec's pattern and the parser
/// agree character for character.
fn letter_class() -> &'static str {
    static CLASS: LazyLock<String> = LazyLock::new(|| {
        let accepted = |c: &char| {
            c.is_alphabetic()
                && std::iter::once(*c).nfc().eq(std::iter::once(*c))
                && uts46()
                    .to_ascii(
                        format!("a{c}").as_bytes(),
                        AsciiDenyList::STD3,
                        Hyphens::CheckFirstLast,
                        DnsLength::Ignore,
                    )
                    .is_ok()
        };
        let mut ranges: Vec<(char, char)> = Vec::new();
        for c in CANDIDATE_BLOCKS
            .iter()
            .flat_map(|(first, last)| *first..=*last)
            .filter(accepted)
        {
            match ranges.last_mut() {
                Some((_, last)) if char::from_u32(*last as u32 + 1) == Some(c) => *last = c,
                _ => ranges.push((c, c)),
            }
        }
        ranges
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

/// The accepted address, without surrounding whitespace: the WHATWG "valid
/// email address" grammar (what browsers accept in `<input type=email>`)
/// widened to the letters above in the local part and the domain, tightened
/// to RFC 5321 sizes (local part up to 64 characters, labels up to 63) and
/// requiring a dot in the domain, which catches `name@gmailcom`. Quoted
/// local parts and IP-literal domains are refused.
fn address_pattern() -> String {
    let letters = letter_class();
    // The ASCII set ends in `-`, which must stay last to mean itself.
    let local = format!("{letters}{LOCAL_ASCII}");
    let label =
        format!("[A-Za-z0-9{letters}](?:[A-Za-z0-9{letters}-]{{0,61}}[A-Za-z0-9{letters}])?");
    format!("[{local}](?:[.{local}]{{0,62}}[{local}])?@{label}(?:\\.{label})+")
}

/// Lowercased after Unicode NFC.
fn fold(text: &str) -> String {
    text.nfc().collect::<String>().to_lowercase()
}

/// The domain as Unicode, `xn--` labels decoded, mapped by UTS 46 (which
/// lowercases and normalizes); `None` when it is not a valid IDNA domain.
fn unicode_domain(domain: &str) -> Option<String> {
    let (unicode, checked) = uts46().to_unicode(
        domain.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
    );
    checked.ok().map(|()| unicode.into_owned())
}

impl EmailAddress {
    /// Limit on the raw input, surrounding whitespace included (RFC 5321 path
    /// limit less the angle brackets).
    pub const MAX_CHARS: usize = 254;

    /// An address a user may be given: checked against the grammar above,
    /// then normalized.
    pub fn parse(raw: &str) -> Result<Self, String> {
        static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(&format!("^{}$", address_pattern())).expect("the address pattern is valid")
        });
        let address = Self::trimmed(raw)?;
        if !ADDRESS.is_match(address) {
            return Err("must be an email address like name@example.com".into());
        }
        let (local, domain) = address.rsplit_once('@').unwrap_or_default();
        let domain = unicode_domain(domain).ok_or_else(|| {
            "the domain must be a valid internationalized domain name (an `xn--` label must be \
             valid punycode)"
                .to_owned()
        })?;
        Ok(Self(format!("{}@{}", fold(local), fold(&domain))))
    }

    /// Any address-shaped text (one `@` with something on each side, no
    /// whitespace or control characters), normalized as [`parse`] would
    /// without checking the grammar: for looking an address up, and for
    /// addresses stored before today's rules, which are still served.
    ///
    /// [`parse`]: EmailAddress::parse
    pub fn normalize(raw: &str) -> Result<Self, String> {
        let address = Self::trimmed(raw)?;
        let shaped = address.matches('@').count() == 1
            && !address.starts_with('@')
            && !address.ends_with('@')
            && !address.chars().any(|c| c.is_whitespace() || c.is_control());
        if !shaped {
            return Err("must be an email address like name@example.com".into());
        }
        let (local, domain) = address.rsplit_once('@').unwrap_or_default();
        let domain: Cow<str> = unicode_domain(domain).map_or(Cow::Borrowed(domain), Cow::Owned);
        Ok(Self(format!("{}@{}", fold(local), fold(&domain))))
    }

    fn trimmed(raw: &str) -> Result<&str, String> {
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
        Ok(address)
    }

    /// [`EmailAddress::parse`]'s grammar over the raw input, for the spec; the
    /// length limit is documented separately as `maxLength`.
    pub fn pattern() -> &'static str {
        static PATTERN: LazyLock<String> =
            LazyLock::new(|| format!("^[{WHITESPACE}]*{}[{WHITESPACE}]*$", address_pattern()));
        &PATTERN
    }

    /// [`EmailAddress::normalize`]'s shape over the raw input, for the spec.
    pub fn lookup_pattern() -> &'static str {
        static PATTERN: LazyLock<String> = LazyLock::new(|| {
            let part = format!("[^@{WHITESPACE}{CONTROL}]+");
            format!("^[{WHITESPACE}]*{part}@{part}[{WHITESPACE}]*$")
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
            "a--b@ex--ample.com",
        ] {
            assert!(EmailAddress::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn accepts_internationalized_addresses_in_one_canonical_form() {
        for (raw, canonical) in [
            ("user@bücher.de", "user@bücher.de"),
            ("User@XN--BCHER-KVA.DE", "user@bücher.de"),
            ("user@BÜCHER.de", "user@bücher.de"),
            ("josé@correo.es", "josé@correo.es"),
            ("JOSÉ@Correo.ES", "josé@correo.es"),
            ("名前@例え.jp", "名前@例え.jp"),
            ("Ελλάδα@παράδειγμα.ελ", "ελλάδα@παράδειγμα.ελ"),
            ("почта@пример.рф", "почта@пример.рф"),
        ] {
            assert_eq!(
                EmailAddress::parse(raw).map(|e| e.0),
                Ok(canonical.to_owned()),
                "{raw}"
            );
        }
        // A decomposed é (e + combining acute) is the same address.
        assert_eq!(
            EmailAddress::normalize("jose\u{301}@correo.es").unwrap().0,
            "josé@correo.es"
        );
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
            "name@[192.0.2.1]",
            "name@example.com\u{0}",
            "a\nb@example.com",
            "name@xn--zz.com",
            "☃@example.com",
            "name@exa☃mple.com",
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
    fn normalize_takes_any_address_shape_and_normalizes_it() {
        for (raw, normalized) in [
            ("  Weird..Dots@Example.COM ", "weird..dots@example.com"),
            ("☃@Example.com", "☃@example.com"),
            ("a@XN--BCHER-KVA.DE", "a@bücher.de"),
            ("a@localhost", "a@localhost"),
        ] {
            assert_eq!(
                EmailAddress::normalize(raw).map(|e| e.0),
                Ok(normalized.to_owned())
            );
        }
        for raw in ["", "no-at", "@x", "x@", "a@b@c", "a b@c.d", "a@b\u{0}"] {
            assert!(EmailAddress::normalize(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn every_letter_in_the_class_parses_in_both_parts() {
        let class = Regex::new(&format!("^[{}]$", letter_class())).unwrap();
        let letters: Vec<char> = CANDIDATE_BLOCKS
            .iter()
            .flat_map(|(first, last)| *first..=*last)
            .filter(|c| class.is_match(c.encode_utf8(&mut [0; 4])))
            .collect();
        assert!(letters.len() > 25_000, "{}", letters.len());
        for c in letters {
            for raw in [format!("{c}@example.com"), format!("a@x{c}.com")] {
                assert!(EmailAddress::parse(&raw).is_ok(), "{raw:?}");
            }
        }
    }

    #[test]
    fn pattern_agrees_with_parse_below_the_length_limit() {
        let pattern = Regex::new(EmailAddress::pattern()).unwrap();
        let pieces = [
            "a", "Z", "0", ".", "@", "-", "+", " ", "\t", "é", "Ü", "名", "\u{a0}", "x.io",
            "\u{feff}", "☃", "\u{301}",
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

    #[test]
    fn lookup_pattern_agrees_with_normalize() {
        let pattern = Regex::new(EmailAddress::lookup_pattern()).unwrap();
        let pieces = ["a", "@", " ", "\t", "é", "\u{0}", "\u{85}", ".", "\u{3000}"];
        for input in crate::test_support::concatenations(&pieces, 4) {
            assert_eq!(
                pattern.is_match(&input),
                EmailAddress::normalize(&input).is_ok(),
                "{input:?}"
            );
        }
    }
}
