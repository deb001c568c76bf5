//! Cursor paging for `GET /user`: the limit, the opaque cursor, and the link
//! to the next page.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use poem_openapi::registry::MetaSchema;
use serde_json::Value;

use super::fields::FieldRules;
use crate::domain::{UserId, UserQuery};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

pub enum LimitRules {}

impl FieldRules for LimitRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            format: Some("int32"),
            description: Some("How many users to return, 1 to 200."),
            default: Some(Value::from(DEFAULT_LIMIT)),
            minimum: Some(1.0),
            maximum: Some(f64::from(MAX_LIMIT)),
            ..MetaSchema::new("integer")
        }
    }
}

pub fn parse_limit(raw: Option<&str>) -> Result<u32, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(format!("must be an integer from 1 to {MAX_LIMIT}")),
    }
}

pub enum CursorRules {}

impl FieldRules for CursorRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "Opaque cursor from `page.next` of the previous page (or its `Link` header). \
                 Omit it for the first page.",
            ),
            pattern: Some("^[A-Za-z0-9_-]{16}$".to_owned()),
            ..MetaSchema::new("string")
        }
    }
}

/// A cursor names the last user of a page; the next page starts after it.
/// Every 16-character base64url string decodes to exactly 12 bytes, so any
/// string that matches the documented pattern is a usable cursor.
pub fn encode_cursor(after: UserId) -> String {
    URL_SAFE_NO_PAD.encode(after.bytes())
}

pub fn decode_cursor(cursor: &str) -> Result<UserId, String> {
    const MALFORMED: &str = "must be a cursor returned by a previous page";
    if cursor.len() != 16 {
        return Err(MALFORMED.into());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| MALFORMED)?;
    let bytes: [u8; 12] = bytes.try_into().map_err(|_| MALFORMED)?;
    Ok(UserId::from_bytes(bytes))
}

/// The relative URL of the page after `after`, keeping every filter of
/// `query` in its normalized form.
pub fn next_page_url(query: &UserQuery, after: UserId) -> String {
    let mut parameters = vec![("limit", query.limit.to_string())];
    if let Some(email) = &query.email {
        parameters.push(("email", email.as_str().to_owned()));
    }
    if let Some(disabled) = query.disabled {
        parameters.push(("disabled", disabled.to_string()));
    }
    parameters.push(("after", encode_cursor(after)));
    let parameters = serde_urlencoded::to_string(parameters).unwrap_or_default();
    format!("/user?{parameters}")
}

pub enum FlagRules {}

impl FieldRules for FlagRules {
    fn schema() -> MetaSchema {
        MetaSchema::new("boolean")
    }
}

/// `true` or `false`, as a query parameter.
pub fn parse_flag(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        assert_eq!(parse_limit(Some("200")), Ok(200));
        for bad in ["0", "201", "-1", "", "ten", "1.5", "99999999999"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let id = UserId::generate();
        let cursor = encode_cursor(id);
        assert_eq!(cursor.len(), 16);
        assert_eq!(decode_cursor(&cursor), Ok(id));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in [
            "",
            "abc",
            "AAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAA=",
            "AAAAAAAA+AAAAAAA",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_url_keeps_every_filter_encoded() {
        let query = UserQuery {
            email: Some(crate::domain::EmailAddress::parse("a+b@example.com").unwrap()),
            disabled: Some(false),
            limit: 10,
            ..UserQuery::default()
        };
        let id = UserId::generate();
        assert_eq!(
            next_page_url(&query, id),
            format!(
                "/user?limit=10&email=a%2Bb%40example.com&disabled=false&after={}",
                encode_cursor(id)
            )
        );
    }
}
