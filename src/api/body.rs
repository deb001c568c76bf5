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
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

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

/// A JSON body of type `T`; unknown fields are refused.
pub struct JsonBody<T>(pub T);

impl<T: RequestBody> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type.parse::<mime::Mime>().is_ok_and(|mime| {
            mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
        })
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
    let value: Value =
        serde_json::from_slice(bytes).map_err(|err| ApiError::MalformedJson(err.to_string()))?;
    let Value::Object(object) = value else {
        return Err(ValidationErrors::single("body", "must be a JSON object").into());
    };
    check_field_names::<T>(&object)?;
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|err| {
        let field = err.path().to_string();
        ValidationErrors::single(field, err.into_inner().to_string()).into()
    })
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
