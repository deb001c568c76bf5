//! Cursor paging for `GET /user`: the limit, the opaque cursor, and the link
//! to the next page.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use poem_openapi::registry::MetaSchema;
use serde_json::Value;

use super::fields::FieldRules;
use crate::domain::{EmailAddress, UserId};

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

/// The relative URL of the page after `after`, keeping the caller's filters.
pub fn next_page_url(limit: u32, email: Option<&EmailAddress>, after: UserId) -> String {
    let cursor = encode_cursor(after);
    let mut query = vec![("limit", limit.to_string())];
    if let Some(email) = email {
        query.push(("email", email.as_str().to_owned()));
    }
    query.push(("after", cursor));
    let query = serde_urlencoded::to_string(query).unwrap_or_default();
    format!("/user?{query}")
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
    fn next_url_keeps_the_email_filter_encoded() {
        let email = EmailAddress::parse("a+b@example.com").unwrap();
        let id = UserId::generate();
        let url = next_page_url(10, Some(&email), id);
        assert_eq!(
            url,
            format!(
                "/user?limit=10&email=a%2Bb%40example.com&after={}",
                encode_cursor(id)
            )
        );
    }
}
