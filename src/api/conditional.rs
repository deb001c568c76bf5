//! Optimistic concurrency: a user's version is its strong `ETag`, writes can
//! be made conditional with `If-Match`, and reads with `If-None-Match`.

use poem::Request;
use poem_openapi::registry::MetaSchema;

use super::{errors::ApiError, fields::FieldRules};
use crate::domain::{Precondition, ValidationErrors};

pub const IF_MATCH: &str = "If-Match";
pub const IF_NONE_MATCH: &str = "If-None-Match";

/// Every value of the header `name` as one list (RFC 9110, section 5.3:
/// several fields of a list header mean their values joined by commas), or
/// `None` without one. Read from the request itself: the framework's header
/// extractor skips a value that is not visible ASCII, and a condition that
/// cannot be read must refuse the write, not let it through unconditioned.
pub fn header_list(request: &Request, name: &'static str) -> Result<Option<String>, ApiError> {
    let mut values = Vec::new();
    for value in request.headers().get_all(name) {
        let readable = value.to_str().ok().filter(|text| {
            text.bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        });
        match readable {
            Some(text) => values.push(text),
            None => {
                return Err(ValidationErrors::single(
                    name,
                    "must be visible ASCII: * or quoted entity tags, such as \"3\"",
                )
                .into())
            }
        }
    }
    Ok((!values.is_empty()).then(|| values.join(", ")))
}

/// The strong entity tag for a user at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// An entity tag as received: its opaque text and whether it was weak.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    opaque: String,
}

/// A parsed `If-Match` or `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Any,
    Tags(Vec<EntityTag>),
}

/// One entity tag: optionally weak, then quoted `etagc` characters.
const TAG_PATTERN: &str = r#"(W/)?"[\x21\x23-\x7E]*""#;

/// `*`, or a list of entity tags separated by commas and optional spaces or
/// tabs. Empty list elements are allowed (RFC 9110, section 5.6.1).
pub fn condition_pattern() -> String {
    format!(r"^(\*|[ \t,]*{TAG_PATTERN}([ \t]*,[ \t,]*{TAG_PATTERN})*[ \t,]*)$")
}

/// Parses a value matching [`condition_pattern`].
fn parse(header: &str, raw: &str) -> Result<Condition, ApiError> {
    let invalid = || {
        ValidationErrors::single(
            header,
            "must be * or a comma-separated list of quoted entity tags, such as \"3\"",
        )
    };
    if raw == "*" {
        return Ok(Condition::Any);
    }
    let separators = |c: char| c == ' ' || c == '\t' || c == ',';
    let mut tags = Vec::new();
    let mut rest = raw.trim_start_matches(separators);
    while !rest.is_empty() {
        let weak = rest.starts_with("W/");
        let quoted = rest.strip_prefix("W/").unwrap_or(rest);
        let inner = quoted.strip_prefix('"').ok_or_else(invalid)?;
        let end = inner.find('"').ok_or_else(invalid)?;
        let opaque = &inner[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return Err(invalid().into());
        }
        tags.push(EntityTag {
            weak,
            opaque: opaque.to_owned(),
        });
        let after = inner[end + 1..].trim_start_matches([' ', '\t']);
        if !after.is_empty() && !after.starts_with(',') {
            return Err(invalid().into());
        }
        rest = after.trim_start_matches(separators);
    }
    if tags.is_empty() {
        return Err(invalid().into());
    }
    Ok(Condition::Tags(tags))
}

/// What `If-Match` asks of a write. `*` asks only that the user exist, as
/// every write does. `If-Match` compares strongly (RFC 9110, section 8.8.3.2):
/// a tag matches only if it is not weak and its text is exactly one of ours,
/// so `"+1"` and `"01"` never match `"1"`, and the list of versions may be
/// empty. Without the header, `required` (REQUIRE_IF_MATCH) refuses the
/// write.
pub fn precondition(if_match: Option<&str>, required: bool) -> Result<Precondition, ApiError> {
    let Some(raw) = if_match else {
        return if required {
            Err(ApiError::PreconditionRequired)
        } else {
            Ok(Precondition::Unconditional)
        };
    };
    Ok(match parse("If-Match", raw)? {
        Condition::Any => Precondition::Unconditional,
        Condition::Tags(tags) => Precondition::OneOf(
            tags.iter()
                .filter(|tag| !tag.weak)
                .filter_map(|tag| {
                    let version: i64 = tag.opaque.parse().ok()?;
                    (etag(version) == format!("\"{}\"", tag.opaque)).then_some(version)
                })
                .collect(),
        ),
    })
}

/// Whether `If-None-Match` says the client already has `version` (weak
/// comparison, as RFC 9110 prescribes for it).
pub fn not_modified(if_none_match: Option<&str>, version: i64) -> Result<bool, ApiError> {
    let Some(raw) = if_none_match else {
        return Ok(false);
    };
    Ok(match parse("If-None-Match", raw)? {
        Condition::Any => true,
        Condition::Tags(tags) => tags.iter().any(|tag| tag.opaque == version.to_string()),
    })
}

pub enum IfMatchRules {}

impl FieldRules for IfMatchRules {
    fn schema() -> MetaSchema {
        // No example: Swagger UI would pre-fill it into every "Try it out".
        MetaSchema {
            description: Some("`*`, or one or more entity tags such as `\"3\"`."),
            pattern: Some(condition_pattern()),
            ..MetaSchema::new("string")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_strong_and_quoted() {
        assert_eq!(etag(7), "\"7\"");
    }

    #[test]
    fn if_match_lists_parse() {
        let parse = |raw| precondition(Some(raw), false).unwrap();
        assert_eq!(parse("*"), Precondition::Unconditional);
        assert_eq!(parse("\"3\""), Precondition::OneOf(vec![3]));
        assert_eq!(
            parse(" \"3\" , \"5\",\"x\" "),
            Precondition::OneOf(vec![3, 5])
        );
        assert_eq!(parse("W/\"3\""), Precondition::OneOf(vec![]));
        assert_eq!(parse("\"a,b\""), Precondition::OneOf(vec![]));
    }

    #[test]
    fn malformed_if_match_is_refused() {
        for raw in [
            "3",
            "\"3",
            "\"3\" \"4\"",
            "",
            ",",
            "* , \"3\"",
            "\"a b\"",
            " *",
        ] {
            assert!(precondition(Some(raw), false).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn only_the_exact_text_of_a_tag_matches() {
        let parse = |raw| precondition(Some(raw), false).unwrap();
        for lookalike in ["\"+1\"", "\"01\"", "\"1.0\"", "\"-0\""] {
            assert_eq!(parse(lookalike), Precondition::OneOf(vec![]), "{lookalike}");
        }
        assert_eq!(parse("\"-1\", \"0\""), Precondition::OneOf(vec![-1, 0]));
    }

    #[test]
    fn empty_list_elements_are_ignored() {
        let parse = |raw| precondition(Some(raw), false).unwrap();
        assert_eq!(parse(", \"3\",, \"4\" ,"), Precondition::OneOf(vec![3, 4]));
    }

    #[test]
    fn the_pattern_agrees_with_the_parser() {
        let pattern = regex::Regex::new(&condition_pattern()).unwrap();
        let pieces = [
            "\"1\"", "W/", "\"", "*", ",", " ", "\t", "a", "\"x y\"", "W/\"2\"",
        ];
        let inputs = crate::test_support::concatenations(&pieces, 4);
        for input in inputs {
            assert_eq!(
                pattern.is_match(&input),
                parse("If-Match", &input).is_ok(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn strict_mode_requires_if_match() {
        assert!(matches!(
            precondition(None, true),
            Err(ApiError::PreconditionRequired)
        ));
        assert_eq!(
            precondition(None, false).unwrap(),
            Precondition::Unconditional
        );
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(not_modified(Some("\"4\""), 4).unwrap());
        assert!(not_modified(Some("W/\"4\""), 4).unwrap());
        assert!(not_modified(Some("\"1\", \"4\""), 4).unwrap());
        assert!(not_modified(Some("*"), 4).unwrap());
        assert!(!not_modified(Some("\"3\""), 4).unwrap());
        assert!(!not_modified(None, 4).unwrap());
        assert!(not_modified(Some("4"), 4).is_err());
    }
}
