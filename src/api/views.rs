//! Response bodies. Every success is an envelope: `data`, a human `message`
//! and the `status_code` repeated.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use poem::{
    http::{header, HeaderValue, StatusCode},
    IntoResponse, Response,
};
use poem_openapi::{
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
    Object,
};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::fields::metadata_schema;
use crate::domain::User;

/// A JSON response body, written by serde straight from the value.
///
/// poem-openapi's own `Json` payload first builds the body as a
/// `serde_json::Value` through `ToJSON` (a map per object, with its keys
/// hashed, and a copy of every key and string), then writes that tree out.
/// This one writes the same bytes from the value itself. The schema is
/// still the type's own, so the spec does not change; the body types derive
/// `Serialize` beside `Object`, and the tests hold every one of them to its
/// `ToJSON`, byte for byte.
#[derive(Debug)]
pub struct Json<T>(pub T);

/// What poem-openapi's `Json` answers with.
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl<T: Type + Send> Payload for Json<T> {
    const CONTENT_TYPE: &'static str = JSON_CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Serialize + Send> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            // A static value: not parsed and copied for every response.
            Ok(body) => Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(JSON_CONTENT_TYPE),
                )
                .body(body),
            // Only a map with keys that are not strings fails, and no body
            // type has one: an internal error if one ever does.
            Err(err) => {
                tracing::error!(error = %err, "cannot write a response body");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

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

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
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

impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_none(),
        }
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
#[derive(Object, Serialize, Debug)]
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

impl Serialize for MetadataView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
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
#[derive(Object, Serialize, Debug)]
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
#[derive(Object, Serialize, Debug)]
pub struct PageInfo {
    /// The page size that was applied.
    pub limit: u32,
    /// Cursor for the next page, passed back as `after`. Absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// How many users match the filters, whatever the cursor: only with
    /// `include_total=true`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A page of users in the standard envelope.
#[derive(Object, Serialize, Debug)]
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
#[derive(Object, Serialize, Debug)]
pub struct PingData {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// The liveness answer in the standard envelope.
#[derive(Object, Serialize, Debug)]
pub struct PingEnvelope {
    pub data: PingData,
    /// Always `pong`.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use poem_openapi::registry::Registry;
    use serde_json::json;

    use super::*;
    use crate::api::{
        errors::{ErrorCode, ErrorEnvelope, FieldProblem, Null},
        health::{
            DatabaseHealth, DatabaseStatus, HealthData, HealthEnvelope, NotReadyReason,
            ServiceStatus,
        },
        import::{ImportEnvelope, ImportResult, ImportStatus, ImportSummary},
    };

    /// `value` as the service writes it, and as poem-openapi's `Json`
    /// payload writes it (through `ToJSON`): the same bytes, key order
    /// included.
    #[track_caller]
    fn same_body<T: Serialize + ToJSON>(value: &T) {
        let ours = serde_json::to_string(value).unwrap();
        let theirs = serde_json::to_string(&value.to_json().unwrap()).unwrap();
        assert_eq!(ours, theirs);
    }

    /// Every value of an enum, as the spec lists them.
    fn every<T: Type + ParseFromJSON>() -> Vec<T> {
        let mut registry = Registry::new();
        T::register(&mut registry);
        let items = registry.schemas[&*T::name()].enum_items.clone();
        assert!(items.len() > 1, "{} lists {items:?}", T::name());
        items
            .into_iter()
            .map(|item| T::parse_from_json(Some(item)).unwrap_or_else(|_| panic!("{}", T::name())))
            .collect()
    }

    fn time(millis: i64) -> Timestamp {
        Utc.timestamp_millis_opt(millis).unwrap().into()
    }

    fn user(verified: bool, metadata: Value, external_id: Option<&str>) -> UserView {
        let Value::Object(metadata) = metadata else {
            panic!("metadata is an object")
        };
        UserView {
            id: "65a1b2c3d4e5f60718293a4b".into(),
            name: "Zoë \"Q\" O'Brien\u{1F600}".into(),
            email: "zoe@example.com".into(),
            created_at: time(1_769_851_800_000),
            updated_at: time(1_769_851_800_123),
            version: 7,
            disabled: verified,
            last_verified_at: Nullable(verified.then(|| time(1_769_851_801_005))),
            metadata: MetadataView(metadata),
            external_id: Nullable(external_id.map(str::to_owned)),
        }
    }

    #[test]
    fn user_bodies_are_written_as_to_json_writes_them() {
        let nested = json!({"plan": "pro", "seats": 3, "ratio": 0.25, "tags": ["a", null],
            "deep": {"z": true, "a": {"k": "\u{7}\n"}}});
        for data in [
            user(false, json!({}), None),
            user(true, nested.clone(), Some("crm-42")),
        ] {
            same_body(&UserEnvelope {
                data,
                message: "User found.".into(),
                status_code: 200,
            });
        }
        for (next, total) in [(None, None), (Some("c3VyZQ".to_owned()), Some(12))] {
            same_body(&UserListEnvelope {
                data: vec![
                    user(false, json!({}), None),
                    user(true, nested.clone(), None),
                ],
                message: "Users listed.".into(),
                status_code: 200,
                page: PageInfo {
                    limit: 2,
                    next,
                    total,
                },
            });
        }
        same_body(&UserListEnvelope {
            data: vec![],
            message: "Users listed.".into(),
            status_code: 200,
            page: PageInfo {
                limit: 20,
                next: None,
                total: Some(0),
            },
        });
    }

    #[test]
    fn operations_bodies_are_written_as_to_json_writes_them() {
        same_body(&PingEnvelope {
            data: PingData {
                status: "ok".into(),
            },
            message: "pong".into(),
            status_code: 200,
        });
        let reasons = every::<NotReadyReason>().into_iter().map(Some);
        for (index, reason) in reasons.chain([None]).enumerate() {
            let statuses = every::<ServiceStatus>();
            let databases = every::<DatabaseStatus>();
            same_body(&HealthEnvelope {
                data: HealthData {
                    ready: reason.is_none(),
                    status: statuses[index % statuses.len()],
                    reason,
                    database: DatabaseHealth {
                        status: databases[index % databases.len()],
                        latency_ms: (index % 2 == 0).then_some(index as f64 * 1.375 + 0.1),
                        checked_at: (index % 2 == 1).then(|| time(1_769_851_800_999)),
                    },
                    indexes_ready: index % 2 == 0,
                    detail: (index % 3 == 0).then(|| "server selection timed out".into()),
                },
                message: "not ready".into(),
                status_code: 503,
            });
        }
    }

    #[test]
    fn import_and_error_bodies_are_written_as_to_json_writes_them() {
        let problem = || FieldProblem {
            field: "email".into(),
            message: "must be an email address".into(),
        };
        let codes = every::<ErrorCode>();
        let results = every::<ImportStatus>()
            .into_iter()
            .zip(codes.iter().cycle())
            .enumerate()
            .flat_map(|(index, (status, &code))| {
                let full = ImportResult {
                    index: u32::try_from(index).unwrap(),
                    reference: Some(format!("row-{index}")),
                    status,
                    id: Some("65a1b2c3d4e5f60718293a4b".into()),
                    error: Some(code),
                    message: Some("email: must be an email address".into()),
                    details: Some(vec![problem(), problem()]),
                };
                let bare = ImportResult {
                    index: u32::try_from(index).unwrap(),
                    reference: None,
                    status,
                    id: None,
                    error: None,
                    message: None,
                    details: None,
                };
                [full, bare]
            })
            .collect();
        same_body(&ImportEnvelope {
            data: ImportSummary {
                created: 1,
                existing: 1,
                failed: 1,
                results,
            },
            message: "Import finished.".into(),
            status_code: 200,
        });
        for (index, error) in codes.into_iter().enumerate() {
            same_body(&ErrorEnvelope {
                data: Null,
                message: "no user has id 65a1b2c3d4e5f60718293a4b".into(),
                status_code: 404,
                error,
                details: (index % 2 == 0).then(|| vec![problem()]),
            });
        }
    }
}
