//! Cursor paging for `GET /user`: the limit, the opaque cursor, and the link
//! to the next page.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use poem_openapi::registry::MetaSchema;
use serde_json::Value;

use super::fields::FieldRules;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{Order, SearchPrefix, UserId, UserQuery};

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
/// `query`, each in its normalized form.
pub fn next_page_url(query: &UserQuery, after: UserId) -> String {
    let time = |time: DateTime<Utc>| time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut parameters = vec![("limit", query.limit.to_string())];
    if let Some(email) = &query.email {
        parameters.push(("email", email.as_str().to_owned()));
    }
    if let Some(disabled) = query.disabled {
        parameters.push(("disabled", disabled.to_string()));
    }
    if let Some(q) = &query.q {
        parameters.push(("q", q.as_str().to_owned()));
    }
    if let Some(after) = query.created_after {
        parameters.push(("created_after", time(after)));
    }
    if let Some(before) = query.created_before {
        parameters.push(("created_before", time(before)));
    }
    if let Some(ids) = &query.ids {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        parameters.push(("id", ids.join(",")));
    }
    if let Some(external_id) = &query.external_id {
        parameters.push(("external_id", external_id.as_str().to_owned()));
    }
    if query.order == Order::NewestFirst {
        parameters.push(("sort", "-created".to_owned()));
    }
    if query.include_total {
        parameters.push(("include_total", "true".to_owned()));
    }
    parameters.push(("after", encode_cursor(after)));
    let parameters = serde_urlencoded::to_string(parameters).unwrap_or_default();
    format!("/user?{parameters}")
}

pub enum SortRules {}

impl FieldRules for SortRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some("`created`: oldest first (the default); `-created`: newest first."),
            enum_items: vec![Value::from("created"), Value::from("-created")],
            default: Some(Value::from("created")),
            ..MetaSchema::new("string")
        }
    }
}

pub fn parse_sort(raw: &str) -> Result<Order, String> {
    match raw {
        "created" => Ok(Order::OldestFirst),
        "-created" => Ok(Order::NewestFirst),
        _ => Err("must be created or -created".into()),
    }
}

pub enum SearchRules {}

impl FieldRules for SearchRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "The start of a name or an email, 1 to 100 characters, compared without regard \
                 to case (Unicode case folding for names).",
            ),
            min_length: Some(1),
            max_length: Some(SearchPrefix::MAX_CHARS),
            ..MetaSchema::new("string")
        }
    }
}

pub enum TimeRules {}

impl FieldRules for TimeRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            format: Some("date-time"),
            description: Some("An RFC 3339 time, such as 2026-01-31T09:30:00Z."),
            ..MetaSchema::new("string")
        }
    }
}

pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 time, such as 2026-01-31T09:30:00Z".into())
}

/// Most ids one listing takes.
pub const MAX_IDS: usize = 100;

pub enum IdListRules {}

impl FieldRules for IdListRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "Only these users: up to 100 ids (24 hexadecimal digits each), separated by \
                 commas. Those that exist are returned, in the requested order.",
            ),
            pattern: Some(format!(
                "^[0-9a-fA-F]{{24}}(,[0-9a-fA-F]{{24}}){{0,{}}}$",
                MAX_IDS - 1
            )),
            ..MetaSchema::new("string")
        }
    }
}

pub fn parse_ids(raw: &str) -> Result<Vec<UserId>, String> {
    let ids: Vec<&str> = raw.split(',').collect();
    if ids.len() > MAX_IDS {
        return Err(format!(
            "must list at most {MAX_IDS} ids (got {})",
            ids.len()
        ));
    }
    ids.iter()
        .map(|id| {
            UserId::parse(id).map_err(|_| {
                format!(
                    "`{}` is not 24 hexadecimal digits",
                    id.chars().take(40).collect::<String>()
                )
            })
        })
        .collect()
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
    fn id_lists_take_up_to_100_valid_ids() {
        let id = UserId::generate().to_string();
        let hundred = vec![id.as_str(); 100].join(",");
        assert_eq!(parse_ids(&hundred).unwrap().len(), 100);
        assert!(parse_ids(&format!("{hundred},{id}"))
            .unwrap_err()
            .contains("at most 100"));
        assert!(parse_ids(&format!("{id},xyz"))
            .unwrap_err()
            .contains("`xyz`"));
        assert!(parse_ids(&format!("{id},")).is_err());
        let pattern = regex::Regex::new(IdListRules::schema().pattern.as_deref().unwrap()).unwrap();
        for input in [
            id.clone(),
            hundred.clone(),
            format!("{hundred},{id}"),
            format!("{id},"),
            "x".into(),
        ] {
            assert_eq!(
                pattern.is_match(&input),
                parse_ids(&input).is_ok(),
                "{input}"
            );
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
