//! Response bodies. Every success is an envelope: `data`, a human `message`
//! and the `status_code` repeated.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
    Object,
};
use serde_json::{Map, Value};

use super::fields::metadata_schema;
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

/// A value or `null`, always present: the spec marks it nullable and
/// required, so a generated client sees `null`, not a missing field.
#[derive(Debug, Clone, PartialEq)]
pub struct Nullable<T>(pub Option<T>);

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("nullable_{}", T::name()))
    }

    fn schema_ref() -> MetaSchemaRef {
        match T::schema_ref() {
            MetaSchemaRef::Inline(schema) => MetaSchemaRef::Inline(Box::new(MetaSchema {
                nullable: true,
                ..*schema
            })),
            reference => reference,
        }
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(T::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.as_ref().and_then(T::to_json).unwrap_or(Value::Null))
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            value => T::parse_from_json(value)
                .map(|inner| Self(Some(inner)))
                .map_err(ParseError::propagate),
        }
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
    /// Goes up by one with every change, a successful verify included (it
    /// sets `last_verified_at`): the same value as the `ETag` header (which
    /// quotes it), for `If-Match`.
    pub version: i64,
    /// `true` when the account is switched off: its credentials are refused.
    pub disabled: bool,
    /// When the user's credentials last verified (`POST /user/verify`);
    /// `null` until they have.
    pub last_verified_at: Nullable<Timestamp>,
    /// The application's own data; `{}` when it has none.
    pub metadata: MetadataView,
    /// The user's id in another system; `null` when it has none.
    pub external_id: Nullable<String>,
}

/// A user's metadata as it is answered: a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataView(pub Map<String, Value>);

impl Type for MetadataView {
    const IS_REQUIRED: bool = true;
    type RawValueType = Map<String, Value>;
    type RawElementValueType = Map<String, Value>;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("object")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(metadata_schema(
            "The application's own data; `{}` when it has none.",
        )))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ToJSON for MetadataView {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(self.0.clone()))
    }
}

impl ParseFromJSON for MetadataView {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Object(map)) => Ok(Self(map)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
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
            disabled: user.disabled,
            last_verified_at: Nullable(user.last_verified_at.map(Timestamp::from)),
            metadata: MetadataView(user.metadata.as_map().clone()),
            external_id: Nullable(user.external_id.map(|id| id.as_str().to_owned())),
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
    /// How many users match the filters, whatever the cursor: only with
    /// `include_total=true`.
    #[oai(skip_serializing_if_is_none)]
    pub total: Option<u64>,
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
