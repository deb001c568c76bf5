//! Every error the service returns, and the one place that turns each into
//! the JSON envelope: `{"data": null, "message", "status_code", "error",
//! "details"}`.
//!
//! Each [`ErrorCode`] is the single source of its status, its description
//! and the headers that come with it: responses are built from it, and so
//! are the spec's error responses for each operation.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    error::Error as StdError,
    marker::PhantomData,
    sync::{LazyLock, Mutex},
};

use poem::{
    error::{MethodNotAllowedError, NotFoundError, ReadBodyError, ResponseError},
    http::{header, HeaderName, StatusCode},
    IntoResponse, Response,
};
use poem_openapi::{
    error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError},
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
    ApiResponse, Enum, Object,
};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{operations::Documented, views::Json};
use crate::{
    domain::{UserId, ValidationErrors},
    hashing::HashingError,
    service::UserError,
    telemetry::ErrorChain,
};

/// A stable, machine-readable error code. New codes may be added; clients
/// should treat an unknown code by its HTTP status.
#[derive(Enum, Serialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ValidationFailed,
    MalformedJson,
    InvalidId,
    NotFound,
    EmailTaken,
    ExternalIdTaken,
    IdTaken,
    UnsupportedMediaType,
    MethodNotAllowed,
    Unauthorized,
    InvalidCredentials,
    UserDisabled,
    PayloadTooLarge,
    IdempotencyKeyReused,
    IdempotencyKeyInProgress,
    RateLimited,
    TooManyFailures,
    Busy,
    Timeout,
    Unavailable,
    MigrationRequired,
    PreconditionFailed,
    PreconditionRequired,
    BadRequest,
    Internal,
}

/// A header that comes with some errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorHeader {
    RetryAfter,
    WwwAuthenticate,
    ETag,
    Allow,
}

/// What a code means, as the spec and every response say it.
struct CodeSpec {
    status: StatusCode,
    description: &'static str,
    headers: &'static [ErrorHeader],
}

impl ErrorCode {
    pub const ALL: [Self; 25] = [
        Self::ValidationFailed,
        Self::MalformedJson,
        Self::InvalidId,
        Self::NotFound,
        Self::EmailTaken,
        Self::ExternalIdTaken,
        Self::IdTaken,
        Self::UnsupportedMediaType,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::InvalidCredentials,
        Self::UserDisabled,
        Self::PayloadTooLarge,
        Self::IdempotencyKeyReused,
        Self::IdempotencyKeyInProgress,
        Self::RateLimited,
        Self::TooManyFailures,
        Self::Busy,
        Self::Timeout,
        Self::Unavailable,
        Self::MigrationRequired,
        Self::PreconditionFailed,
        Self::PreconditionRequired,
        Self::BadRequest,
        Self::Internal,
    ];

    /// The one definition of each code.
    fn spec(self) -> CodeSpec {
        use ErrorHeader::*;
        let (status, description, headers): (StatusCode, &str, &[ErrorHeader]) = match self {
            Self::ValidationFailed => (
                StatusCode::BAD_REQUEST,
                "A field, query parameter or header breaks a rule, is missing, unknown, repeated \
                 or of the wrong type; `details` names each one.",
                &[],
            ),
            Self::MalformedJson => (
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON.",
                &[],
            ),
            Self::InvalidId => (
                StatusCode::BAD_REQUEST,
                "The id in the path is not 24 hexadecimal digits.",
                &[],
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "No user has this id, or no route matches the path.",
                &[],
            ),
            Self::EmailTaken => (
                StatusCode::CONFLICT,
                "Another user already has this email (compared after normalizing).",
                &[],
            ),
            Self::ExternalIdTaken => (
                StatusCode::CONFLICT,
                "Another user already has this `external_id`.",
                &[],
            ),
            Self::IdTaken => (
                StatusCode::CONFLICT,
                "A user with this id has another email (in `POST /user/import` results).",
                &[],
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The request body is not `application/json` in UTF-8.",
                &[],
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "The path exists, but not with this method; `Allow` lists the ones it takes.",
                &[Allow],
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "No valid API key in `Authorization: Bearer <key>`.",
                &[WwwAuthenticate],
            ),
            Self::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "The email and password do not match a user.",
                &[WwwAuthenticate],
            ),
            Self::UserDisabled => (
                StatusCode::FORBIDDEN,
                "The email and password match a user whose account is disabled.",
                &[],
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is over the operation's limit: 16 KiB, and 1 MiB for \
                 `POST /user/import`.",
                &[],
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "This `Idempotency-Key` was already used with a different request.",
                &[],
            ),
            Self::IdempotencyKeyInProgress => (
                StatusCode::CONFLICT,
                "A request with this `Idempotency-Key` is still being processed; retry after \
                 `Retry-After`.",
                &[RetryAfter],
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests from this client or API key; retry after `Retry-After`.",
                &[RetryAfter],
            ),
            Self::TooManyFailures => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts at this email's password; retry after `Retry-After`. \
                 No password was checked.",
                &[RetryAfter],
            ),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Password hashing is saturated; retry after `Retry-After`.",
                &[RetryAfter],
            ),
            Self::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The request ran past the server's deadline.",
                &[RetryAfter],
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database cannot be reached, or the service's indexes are not confirmed yet; \
                 retry after `Retry-After`.",
                &[RetryAfter],
            ),
            Self::MigrationRequired => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The user collection holds documents another service wrote (the Flask \
                 service's); an operator must run `user-api migrate` to adopt them.",
                &[],
            ),
            Self::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "`If-Match` does not name the user's current version; nothing changed. `ETag` \
                 holds the current one.",
                &[ETag],
            ),
            Self::PreconditionRequired => (
                StatusCode::PRECONDITION_REQUIRED,
                "The server requires `If-Match` on writes; send the `ETag` from a GET.",
                &[],
            ),
            Self::BadRequest => (
                StatusCode::BAD_REQUEST,
                "A request the server could not otherwise classify.",
                &[],
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected server error. The cause is logged, never returned.",
                &[],
            ),
        };
        CodeSpec {
            status,
            description,
            headers,
        }
    }

    pub fn status(self) -> StatusCode {
        self.spec().status
    }

    pub fn description(self) -> &'static str {
        self.spec().description
    }

    pub fn headers(self) -> &'static [ErrorHeader] {
        self.spec().headers
    }

    /// The code as it appears in `error`, such as `email_taken`.
    pub fn name(self) -> String {
        match self.to_json() {
            Some(Value::String(name)) => name,
            _ => String::new(),
        }
    }
}

impl ErrorHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::RetryAfter => header::RETRY_AFTER,
            Self::WwwAuthenticate => header::WWW_AUTHENTICATE,
            Self::ETag => header::ETAG,
            Self::Allow => header::ALLOW,
        }
    }

    fn meta(self, required: bool) -> MetaHeader {
        let (name, description, schema) = match self {
            Self::RetryAfter => (
                "Retry-After",
                "Seconds to wait before retrying.",
                MetaSchema {
                    format: Some("int32"),
                    minimum: Some(1.0),
                    ..MetaSchema::new("integer")
                },
            ),
            Self::WwwAuthenticate => (
                "WWW-Authenticate",
                "The scheme to authenticate with: `Bearer`.",
                MetaSchema::new("string"),
            ),
            Self::ETag => (
                "ETag",
                "The user's current version.",
                MetaSchema::new("string"),
            ),
            Self::Allow => (
                "Allow",
                "The methods the path takes.",
                MetaSchema::new("string"),
            ),
        };
        MetaHeader {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            required,
            deprecated: false,
            schema: MetaSchemaRef::Inline(Box::new(schema)),
        }
    }
}

/// One rejected field or parameter.
#[derive(Object, Serialize, Debug)]
pub struct FieldProblem {
    /// The field or parameter name, such as `email` or `limit`; `body` for the
    /// request body as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The body of every error response.
#[derive(Object, Serialize, Debug)]
pub struct ErrorEnvelope {
    pub data: Null,
    /// What went wrong, naming the offending field where there is one.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
    pub error: ErrorCode,
    /// Every rejected field, for `validation_failed`, `invalid_id`,
    /// `email_taken` and `external_id_taken`; absent otherwise.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldProblem>>,
}

/// `data` of an error envelope: always `null`.
#[derive(Debug, Clone, Copy)]
pub struct Null;

impl Type for Null {
    const IS_REQUIRED: bool = true;
    type RawValueType = ();
    type RawElementValueType = ();

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("null")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("Always `null` in an error."),
            nullable: true,
            ..MetaSchema::new("object")
        }))
    }

    fn as_raw_value(&self) -> Option<&()> {
        None
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a ()> + 'a> {
        Box::new(std::iter::empty())
    }
}

impl ToJSON for Null {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Null)
    }
}

impl Serialize for Null {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl ParseFromJSON for Null {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Null) | None => Ok(Null),
            Some(other) => Err(ParseError::expected_type(other)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(ValidationErrors),
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("id: {0}")]
    InvalidId(String),
    #[error("no user has id {0}")]
    UserNotFound(UserId),
    #[error("email: another user already has this email")]
    EmailTaken,
    #[error("external_id: another user already has this external id")]
    ExternalIdTaken,
    #[error("no route matches {method} {path}")]
    RouteNotFound { method: &'static str, path: String },
    #[error("{method} is not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed {
        method: &'static str,
        path: String,
        allow: String,
    },

    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("the email and password do not match a user")]
    InvalidCredentials,
    #[error("this user is disabled")]
    UserDisabled,
    #[error("too many failed attempts for this email; retry in {retry_after} s")]
    TooManyFailures { retry_after: u64 },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Idempotency-Key: this key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("Idempotency-Key: a request with this key is still in progress; retry shortly")]
    IdempotencyKeyInProgress,
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the server is busy hashing passwords; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error("the request did not finish within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    #[error(
        "the database holds users this service cannot serve yet; an operator must run \
         `user-api migrate`"
    )]
    MigrationRequired,
    #[error("If-Match: the user has changed; it is now at ETag \"{current}\"")]
    PreconditionFailed { current: i64 },
    #[error("If-Match: this server requires it on writes; send the ETag from a GET")]
    PreconditionRequired,
    #[error("{0}")]
    OtherClientError(String),
    #[error("internal server error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::InvalidId(_) => ErrorCode::InvalidId,
            Self::UserNotFound(_) | Self::RouteNotFound { .. } => ErrorCode::NotFound,
            Self::EmailTaken => ErrorCode::EmailTaken,
            Self::ExternalIdTaken => ErrorCode::ExternalIdTaken,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::UserDisabled => ErrorCode::UserDisabled,
            Self::TooManyFailures { .. } => ErrorCode::TooManyFailures,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            Self::IdempotencyKeyInProgress => ErrorCode::IdempotencyKeyInProgress,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Busy { .. } => ErrorCode::Busy,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::Unavailable => ErrorCode::Unavailable,
            Self::MigrationRequired => ErrorCode::MigrationRequired,
            Self::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            Self::PreconditionRequired => ErrorCode::PreconditionRequired,
            Self::OtherClientError(_) => ErrorCode::BadRequest,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    fn details(&self) -> Option<Vec<FieldProblem>> {
        let single = |field: &str, message: String| {
            vec![FieldProblem {
                field: field.to_owned(),
                message,
            }]
        };
        match self {
            Self::Validation(errors) => Some(
                errors
                    .errors()
                    .iter()
                    .map(|error| FieldProblem {
                        field: error.field.clone(),
                        message: error.message.clone(),
                    })
                    .collect(),
            ),
            Self::InvalidId(message) => Some(single("id", message.clone())),
            Self::EmailTaken => Some(single(
                "email",
                "another user already has this email".into(),
            )),
            Self::ExternalIdTaken => Some(single(
                "external_id",
                "another user already has this external id".into(),
            )),
            _ => None,
        }
    }

    /// The value of a header this error's code documents.
    fn header_value(&self, header: ErrorHeader) -> Option<String> {
        match (header, self) {
            (ErrorHeader::RetryAfter, Self::RateLimited { retry_after })
            | (ErrorHeader::RetryAfter, Self::TooManyFailures { retry_after })
            | (ErrorHeader::RetryAfter, Self::Busy { retry_after }) => {
                Some((*retry_after).max(1).to_string())
            }
            (ErrorHeader::RetryAfter, Self::Unavailable) => Some("2".into()),
            (ErrorHeader::RetryAfter, _) => Some("1".into()),
            (ErrorHeader::WwwAuthenticate, _) => Some("Bearer realm=\"user-api\"".into()),
            (ErrorHeader::ETag, Self::PreconditionFailed { current }) => {
                Some(super::conditional::etag(*current))
            }
            (ErrorHeader::Allow, Self::MethodNotAllowed { allow, .. }) => Some(allow.clone()),
            (ErrorHeader::ETag | ErrorHeader::Allow, _) => None,
        }
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            data: Null,
            message: self.to_string(),
            status_code: self.status().as_u16(),
            error: self.code(),
            details: self.details(),
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.code().status()
    }

    fn as_response(&self) -> Response {
        if let Self::Internal(source) = self {
            tracing::error!(error = %ErrorChain(source.as_ref()), "request failed");
        }
        let mut response = Json(self.envelope()).into_response();
        response.set_status(self.status());
        for &header in self.code().headers() {
            if let Some(value) = self.header_value(header).and_then(|v| v.parse().ok()) {
                response.headers_mut().insert(header.name(), value);
            }
        }
        response
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound(id) => Self::UserNotFound(id),
            UserError::EmailTaken => Self::EmailTaken,
            UserError::ExternalIdTaken => Self::ExternalIdTaken,
            UserError::InvalidMetadata(message) => {
                Self::Validation(ValidationErrors::single("metadata", message))
            }
            UserError::InvalidCredentials => Self::InvalidCredentials,
            UserError::Disabled => Self::UserDisabled,
            UserError::TooManyFailures { retry_after } => Self::TooManyFailures {
                retry_after: retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
            },
            UserError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            UserError::IdempotencyKeyInProgress => Self::IdempotencyKeyInProgress,
            UserError::Hashing(HashingError::Busy) => Self::Busy { retry_after: 1 },
            UserError::VersionMismatch { current } => Self::PreconditionFailed { current },
            UserError::Unavailable(_) => Self::Unavailable,
            UserError::MigrationRequired(_) => Self::MigrationRequired,
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// Turns any error that reached the edge of the app into the envelope. Errors
/// raised by poem or poem-openapi (no route, wrong method, wrong content type)
/// are classified here; the service's own errors render themselves.
/// `method` is the request's method as a label from a fixed set.
pub fn render(
    error: poem::Error,
    method: &'static str,
    path: &str,
    allow: Option<String>,
) -> Response {
    to_api_error(error, method, path, allow).as_response()
}

fn to_api_error(
    error: poem::Error,
    method: &'static str,
    path: &str,
    allow: Option<String>,
) -> ApiError {
    let error = match error.downcast::<ApiError>() {
        Ok(api_error) => return api_error,
        Err(error) => error,
    };
    if error.is::<NotFoundError>() {
        return ApiError::RouteNotFound {
            method,
            path: path.to_owned(),
        };
    }
    if error.is::<MethodNotAllowedError>() {
        return ApiError::MethodNotAllowed {
            method,
            path: path.to_owned(),
            allow: allow.unwrap_or_default(),
        };
    }
    if let Some(content_type) = error.downcast_ref::<ContentTypeError>() {
        let message = match content_type {
            ContentTypeError::NotSupported { content_type } => {
                match super::body::json_charset(content_type) {
                    Some(Some(charset)) => format!(
                        "Content-Type: charset `{charset}` is not supported; JSON bodies are \
                         UTF-8 (send application/json, or add charset=utf-8)"
                    ),
                    _ => format!(
                        "Content-Type `{content_type}` is not supported; send application/json"
                    ),
                }
            }
            ContentTypeError::ExpectContentType => {
                "the Content-Type header is missing; send application/json".to_owned()
            }
        };
        return ApiError::UnsupportedMediaType(message);
    }
    if let Some(param) = error.downcast_ref::<ParseParamError>() {
        return ValidationErrors::single(param.name, param.reason.clone()).into();
    }
    if let Some(param) = error.downcast_ref::<ParsePathError>() {
        return ValidationErrors::single(param.name, param.reason.clone()).into();
    }
    if let Some(payload) = error.downcast_ref::<ParseRequestPayloadError>() {
        return ApiError::MalformedJson(payload.reason.clone());
    }
    if let Some(ReadBodyError::PayloadTooLarge) = error.downcast_ref::<ReadBodyError>() {
        return ApiError::PayloadTooLarge {
            limit: super::body::MAX_BODY_BYTES,
        };
    }
    if error.status().is_client_error() {
        ApiError::OtherClientError(error.to_string())
    } else {
        ApiError::Internal(Box::new(error))
    }
}

/// An operation's error response: an [`ApiError`], documented in the spec
/// by the codes the operation `O` can answer with.
pub struct Failure<O>(ApiError, PhantomData<fn() -> O>);

impl<O: Documented> From<ApiError> for Failure<O> {
    fn from(error: ApiError) -> Self {
        debug_assert!(
            O::OPERATION.error_codes().contains(&error.code()),
            "{} answered {:?}, which its policy does not list",
            O::OPERATION.id,
            error.code()
        );
        Self(error, PhantomData)
    }
}

impl<O: Documented> From<ValidationErrors> for Failure<O> {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::from(errors).into()
    }
}

impl<O: Documented> From<UserError> for Failure<O> {
    fn from(error: UserError) -> Self {
        ApiError::from(error).into()
    }
}

impl<O> From<Failure<O>> for poem::Error {
    fn from(failure: Failure<O>) -> Self {
        failure.0.into()
    }
}

/// Response descriptions are `&'static str` in poem-openapi's model; each
/// distinct text is kept once.
fn intern(text: String) -> &'static str {
    static TEXTS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut texts = TEXTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = texts.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    texts.insert(leaked);
    leaked
}

/// The error responses of an operation that can answer with `codes`: one
/// per status, describing each code it stands for and the headers they
/// carry (required when every one of them carries it).
pub fn error_responses(codes: &[ErrorCode]) -> Vec<MetaResponse> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in codes {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(code);
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let description = codes
                .iter()
                .map(|code| format!("`{}`: {}", code.name(), code.description()))
                .collect::<Vec<_>>()
                .join("\n\n");
            let mut headers: Vec<ErrorHeader> = Vec::new();
            for header in codes.iter().flat_map(|code| code.headers()) {
                if !headers.contains(header) {
                    headers.push(*header);
                }
            }
            MetaResponse {
                description: intern(description),
                status: Some(status),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: ErrorEnvelope::schema_ref(),
                }],
                headers: headers
                    .into_iter()
                    .map(|header| {
                        let required = codes.iter().all(|code| code.headers().contains(&header));
                        header.meta(required)
                    })
                    .collect(),
            }
        })
        .collect()
}

impl<O: Documented> ApiResponse for Failure<O> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: error_responses(&O::OPERATION.error_codes()),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorEnvelope::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every kind.
    fn examples() -> Vec<ApiError> {
        vec![
            ValidationErrors::single("name", "must not be empty").into(),
            ApiError::MalformedJson("eof".into()),
            ApiError::InvalidId("bad".into()),
            ApiError::UserNotFound(UserId::generate()),
            ApiError::RouteNotFound {
                method: "GET",
                path: "/x".into(),
            },
            ApiError::EmailTaken,
            ApiError::ExternalIdTaken,
            ApiError::MethodNotAllowed {
                method: "PUT",
                path: "/ping".into(),
                allow: "GET, HEAD".into(),
            },
            ApiError::UnsupportedMediaType("text/plain".into()),
            ApiError::Unauthorized,
            ApiError::InvalidCredentials,
            ApiError::UserDisabled,
            ApiError::TooManyFailures { retry_after: 300 },
            ApiError::PayloadTooLarge { limit: 16 },
            ApiError::IdempotencyKeyReused,
            ApiError::IdempotencyKeyInProgress,
            ApiError::RateLimited { retry_after: 3 },
            ApiError::Busy { retry_after: 1 },
            ApiError::Timeout { seconds: 15 },
            ApiError::Unavailable,
            ApiError::MigrationRequired,
            ApiError::PreconditionFailed { current: 4 },
            ApiError::PreconditionRequired,
            ApiError::OtherClientError("odd".into()),
            ApiError::Internal("boom".into()),
        ]
    }

    #[test]
    fn every_code_has_an_example_and_is_listed_once() {
        let mut codes: HashSet<ErrorCode> = examples().iter().map(ApiError::code).collect();
        // Only ever an import item's outcome, never a response.
        codes.insert(ErrorCode::IdTaken);
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert_eq!(
            ErrorCode::ALL.iter().collect::<HashSet<_>>().len(),
            ErrorCode::ALL.len()
        );
    }

    #[test]
    fn responses_carry_exactly_the_documented_status_and_headers() {
        for error in examples() {
            let response = error.as_response();
            let code = error.code();
            assert_eq!(response.status(), code.status(), "{code:?}");
            for header in code.headers() {
                assert!(
                    response.headers().contains_key(header.name()),
                    "{code:?} lacks {:?}",
                    header.name()
                );
            }
            for header in [
                ErrorHeader::RetryAfter,
                ErrorHeader::WwwAuthenticate,
                ErrorHeader::ETag,
                ErrorHeader::Allow,
            ] {
                if response.headers().contains_key(header.name()) {
                    assert!(code.headers().contains(&header), "{code:?} {header:?}");
                }
            }
        }
    }

    #[test]
    fn a_header_is_required_only_when_every_code_of_the_status_sends_it() {
        let responses = error_responses(&[
            ErrorCode::EmailTaken,
            ErrorCode::IdempotencyKeyInProgress,
            ErrorCode::Unavailable,
        ]);
        let conflict = responses.iter().find(|r| r.status == Some(409)).unwrap();
        assert_eq!(conflict.headers.len(), 1);
        assert!(!conflict.headers[0].required);
        assert!(conflict.description.contains("`email_taken`"));
        let unavailable = responses.iter().find(|r| r.status == Some(503)).unwrap();
        assert!(unavailable.headers[0].required);
    }
}
