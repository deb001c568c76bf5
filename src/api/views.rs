//! Response bodies. Every success is an envelope: `data`, a human `message`
//! and the `status_code` repeated.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
    Object,
};
use serde_json::Value;

use crate::domain::User;

/// A point in time, as RFC 3339 in UTC with millisecond precision, such as
/// `2026-01-31T09:30:00.000Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time)
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = DateTime<Utc>;
    type RawElementValueType = DateTime<Utc>;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("string_date-time")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("date-time"),
            example: Some(Value::String("2026-01-31T09:30:00.000Z".into())),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&DateTime<Utc>> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a DateTime<Utc>> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(
            self.0.to_rfc3339_opts(SecondsFormat::Millis, true),
        ))
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let Some(Value::String(text)) = value else {
            return Err(ParseError::expected_input());
        };
        let time = DateTime::parse_from_rfc3339(&text).map_err(ParseError::custom)?;
        Ok(Self(time.with_timezone(&Utc)))
    }
}

/// A user. The password and its hash are never part of it.
#[derive(Object, Debug)]
#[oai(rename = "User")]
pub struct UserView {
    /// The user's id: 24 lowercase hexadecimal digits.
    #[oai(validator(pattern = "^[0-9a-f]{24}$"))]
    pub id: String,
    /// Display name, trimmed.
    pub name: String,
    /// Email address, lowercased.
    pub email: String,
    /// When the user was created. Never changes.
    pub created_at: Timestamp,
    /// When the user was last changed. Moves forward on every successful update.
    pub updated_at: Timestamp,
    /// Goes up by one with every change: the same value as the `ETag` header
    /// (which quotes it), for `If-Match`.
    pub version: i64,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            name: user.name,
            email: user.email,
            created_at: user.created_at.into(),
            updated_at: user.updated_at.into(),
            version: user.version,
        }
    }
}

/// One user in the standard envelope.
#[derive(Object, Debug)]
pub struct UserEnvelope {
    pub data: UserView,
    /// What happened, for humans.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}

impl UserEnvelope {
    pub fn new(user: User, message: &str, status_code: u16) -> Self {
        Self {
            data: user.into(),
            message: message.to_owned(),
            status_code,
        }
    }
}

/// Where a page of users ends.
#[derive(Object, Debug)]
pub struct PageInfo {
    /// The page size that was applied.
    pub limit: u32,
    /// Cursor for the next page, passed back as `after`. Absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

/// A page of users in the standard envelope.
#[derive(Object, Debug)]
pub struct UserListEnvelope {
    /// Users in creation order.
    pub data: Vec<UserView>,
    /// What happened, for humans.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
    pub page: PageInfo,
}

/// Liveness details.
#[derive(Object, Debug)]
pub struct PingData {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// The liveness answer in the standard envelope.
#[derive(Object, Debug)]
pub struct PingEnvelope {
    pub data: PingData,
    /// Always `pong`.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}
