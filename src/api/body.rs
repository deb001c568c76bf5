//! JSON request bodies, parsed so that every rejection names its field:
//! syntax errors, unknown fields (all of them at once), missing fields (all
//! at once) and wrong types. Values are checked afterwards, by the domain.

use poem::{error::ReadBodyError, http::header, Request, RequestBody as PoemBody, Result};
use poem_openapi::{
    impl_apirequest_for_payload,
    payload::{ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::Type,
};
use std::{cell::RefCell, fmt};

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::errors::ApiError;
use crate::domain::{FieldError, ValidationErrors};

/// Largest request body accepted by default; bigger ones get 413 before any
/// parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request body type: its spec schema, how serde reads it, and its fields.
pub trait RequestBody: Type + DeserializeOwned + Send {
    /// Fewest properties a valid body has (PATCH needs at least one).
    const MIN_PROPERTIES: usize = 0;
    /// Largest body accepted; bigger ones get 413 before any parsing.
    const MAX_BYTES: usize = MAX_BODY_BYTES;
    /// Every property, and whether it is required, as the published schema
    /// says. Implement with [`request_body!`].
    fn fields() -> &'static [(String, bool)];
}

/// Implements [`RequestBody`] for a body type, reading its fields once from
/// its own schema.
macro_rules! request_body {
    ($body:ty $(, min_properties = $min:expr)? $(, max_bytes = $max:expr)?) => {
        impl $crate::api::body::RequestBody for $body {
            $(const MIN_PROPERTIES: usize = $min;)?
            $(const MAX_BYTES: usize = $max;)?
            fn fields() -> &'static [(String, bool)] {
                static FIELDS: std::sync::LazyLock<Vec<(String, bool)>> =
                    std::sync::LazyLock::new($crate::api::body::schema_fields::<$body>);
                &FIELDS
            }
        }
    };
}
pub(crate) use request_body;

/// The properties of `T`'s schema, in order, and whether each is required.
pub fn schema_fields<T: Type>() -> Vec<(String, bool)> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    registry
        .schemas
        .get(T::name().as_ref())
        .map(|schema| {
            schema
                .properties
                .iter()
                .map(|(name, _)| ((*name).to_owned(), schema.required.contains(name)))
                .collect()
        })
        .unwrap_or_default()
}

/// For a JSON media type (`application/json` or `application/*+json`), its
/// `charset` parameter if it has one; `None` for any other type. JSON is
/// UTF-8 (RFC 8259 §8.1), so a body labelled otherwise is refused rather
/// than read as UTF-8 anyway.
pub fn json_charset(content_type: &str) -> Option<Option<String>> {
    let mime = content_type.parse::<mime::Mime>().ok()?;
    let json = mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON));
    json.then(|| {
        mime.get_param(mime::CHARSET)
            .map(|charset| charset.to_string())
    })
}

/// Whether a `charset` parameter names UTF-8.
pub fn is_utf8(charset: String) -> bool {
    charset.eq_ignore_ascii_case("utf-8")
}

/// A JSON body of type `T`; unknown fields are refused.
pub struct JsonBody<T>(pub T);

impl<T: RequestBody> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        json_charset(content_type).is_some_and(|charset| charset.is_none_or(is_utf8))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        if T::MIN_PROPERTIES > 0 {
            if let Some(schema) = registry.schemas.get_mut(T::name().as_ref()) {
                schema.min_properties = Some(T::MIN_PROPERTIES);
            }
        }
    }
}

impl<T: RequestBody> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut PoemBody) -> Result<Self> {
        let too_large = ApiError::PayloadTooLarge {
            limit: T::MAX_BYTES,
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > T::MAX_BYTES as u64) {
            return Err(too_large.into());
        }
        // A chunked body declares no length: stop reading at the limit.
        let bytes = match body.take()?.into_bytes_limit(T::MAX_BYTES).await {
            Ok(bytes) => bytes,
            Err(ReadBodyError::PayloadTooLarge) => return Err(too_large.into()),
            Err(other) => return Err(other.into()),
        };
        Ok(Self(parse::<T>(&bytes)?))
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: RequestBody);

fn parse<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".into()));
    }
    let value = parse_unique_keys(bytes)?;
    let Value::Object(object) = value else {
        return Err(ValidationErrors::single("body", "must be a JSON object").into());
    };
    check_field_names::<T>(&object)?;
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|err| {
        let field = err.path().to_string();
        ValidationErrors::single(field, err.into_inner().to_string()).into()
    })
}

/// Parses JSON into a [`Value`], refusing an object that names a key twice
/// (at any depth) with the path of the repeated key: RFC 8259 leaves such a
/// body's meaning open, and serde_json would silently keep the last value.
fn parse_unique_keys(bytes: &[u8]) -> Result<Value, ApiError> {
    let path = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = UniqueKeys { path: &path }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    value.map_err(|err| {
        let Some(path) = path.into_inner() else {
            return ApiError::MalformedJson(err.to_string());
        };
        let field = path.iter().rev().fold(String::new(), |mut field, segment| {
            match segment {
                Segment::Index(index) => field.push_str(&format!("[{index}]")),
                Segment::Key(key) if field.is_empty() => field.push_str(key),
                Segment::Key(key) => {
                    field.push('.');
                    field.push_str(key);
                }
            }
            field
        });
        ValidationErrors::single(
            field,
            "appears more than once in its object; send each key once",
        )
        .into()
    })
}

/// A step on the way to a repeated key, recorded innermost first while the
/// error unwinds (nothing is recorded for a body without one).
enum Segment {
    Key(String),
    Index(usize),
}

/// Builds serde_json's [`Value`], except that a repeated key is an error.
/// serde_json limits the nesting depth, so the recursion is bounded.
#[derive(Clone, Copy)]
struct UniqueKeys<'a> {
    path: &'a RefCell<Option<Vec<Segment>>>,
}

impl<'de> DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(err) => {
                    self.record(Segment::Index(items.len()));
                    return Err(err);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let message = format!("duplicate key `{key}`");
                self.found_duplicate(key);
                return Err(de::Error::custom(message));
            }
            match map.next_value_seed(self) {
                Ok(value) => {
                    object.insert(key, value);
                }
                Err(err) => {
                    self.record(Segment::Key(key));
                    return Err(err);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

impl UniqueKeys<'_> {
    /// Starts the path at a repeated key.
    fn found_duplicate(&self, key: String) {
        *self.path.borrow_mut() = Some(vec![Segment::Key(key)]);
    }

    /// Adds an enclosing step while unwinding from a repeated key; any other
    /// error (a syntax error) records nothing.
    fn record(&self, segment: Segment) {
        if let Some(path) = self.path.borrow_mut().as_mut() {
            path.push(segment);
        }
    }
}

/// Names every unknown and every missing field at once.
fn check_field_names<T: RequestBody>(object: &Map<String, Value>) -> Result<(), ApiError> {
    let fields = T::fields();
    let known = |name: &str| fields.iter().any(|(field, _)| field == name);
    let mut errors = ValidationErrors::default();
    let allowed = || {
        fields
            .iter()
            .map(|(field, _)| field.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in object.keys().filter(|name| !known(name)) {
        errors.push(FieldError::new(
            name.as_str(),
            format!("unknown field; allowed fields are {}", allowed()),
        ));
    }
    for (name, _) in fields
        .iter()
        .filter(|(name, required)| *required && !object.contains_key(name))
    {
        errors.push(FieldError::new(name.as_str(), "is required"));
    }
    if errors.is_empty() && object.len() < T::MIN_PROPERTIES {
        errors.push(FieldError::new(
            "body",
            format!("must set at least one of {}", allowed()),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}
