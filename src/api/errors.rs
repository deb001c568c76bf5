//! Every error the service returns, and the one place that turns each into
//! the JSON envelope: `{"data": null, "message", "status_code", "error",
//! "details"}`.

use std::{borrow::Cow, error::Error as StdError, marker::PhantomData};

use poem::{
    error::{MethodNotAllowedError, NotFoundError, ReadBodyError, ResponseError},
    http::{header, HeaderName, Method, StatusCode},
    IntoResponse, Response,
};
use poem_openapi::{
    error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError},
    payload::Json,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
    ApiResponse, Enum, Object,
};
use serde_json::Value;

use crate::{
    domain::{UserId, ValidationErrors},
    hashing::HashingError,
    service::UserError,
    telemetry::ErrorChain,
};

/// A stable, machine-readable error code. New codes may be added; clients
/// should treat an unknown code by its HTTP status.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field or parameter failed validation; `details` lists each one.
    ValidationFailed,
    /// The request body is not valid JSON.
    MalformedJson,
    /// The id in the path is not 24 hexadecimal digits.
    InvalidId,
    /// No user has this id, or no route matches the path.
    NotFound,
    /// Another user already has this email.
    EmailTaken,
    /// The request body is not `application/json`.
    UnsupportedMediaType,
    /// The path exists but not with this method; see the `Allow` header.
    MethodNotAllowed,
    /// No API key, or not a valid one, in `Authorization: Bearer <key>`.
    Unauthorized,
    /// `POST /user/verify`: the email and password do not match a user.
    InvalidCredentials,
    /// The request body is over 16 KiB.
    PayloadTooLarge,
    /// The `Idempotency-Key` was already used with a different request.
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still being processed.
    IdempotencyKeyInProgress,
    /// Too many requests; retry after `Retry-After` seconds.
    RateLimited,
    /// Password hashing is saturated; retry after `Retry-After` seconds.
    Busy,
    /// The request took longer than the server's deadline.
    Timeout,
    /// The database cannot be reached right now; retry after `Retry-After`.
    Unavailable,
    /// `If-Match` names a version the user is no longer at; `ETag` has the
    /// current one.
    PreconditionFailed,
    /// The server requires `If-Match` on writes (REQUIRE_IF_MATCH).
    PreconditionRequired,
    /// A request the server could not otherwise classify.
    BadRequest,
    /// An unexpected server error. Details are logged, never returned.
    Internal,
}

/// One rejected field or parameter.
#[derive(Object, Debug)]
pub struct FieldProblem {
    /// The field or parameter name, such as `email` or `limit`; `body` for the
    /// request body as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The body of every error response.
#[derive(Object, Debug)]
pub struct ErrorEnvelope {
    pub data: Null,
    /// What went wrong, naming the offending field where there is one.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
    pub error: ErrorCode,
    /// Every rejected field, for `validation_failed`, `invalid_id` and
    /// `email_taken`; absent otherwise.
    #[oai(skip_serializing_if_is_none)]
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
    #[error("no route matches {method} {path}")]
    RouteNotFound { method: Method, path: String },
    #[error("{method} is not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: String,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("the email and password do not match a user")]
    InvalidCredentials,
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
    #[error("If-Match: the user has changed; it is now at ETag \"{current}\"")]
    PreconditionFailed { current: i64 },
    #[error("If-Match: this server requires it on writes; send the ETag from a GET")]
    PreconditionRequired,
    #[error("{1}")]
    OtherClientError(StatusCode, String),
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
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            Self::IdempotencyKeyInProgress => ErrorCode::IdempotencyKeyInProgress,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Busy { .. } => ErrorCode::Busy,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::Unavailable => ErrorCode::Unavailable,
            Self::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            Self::PreconditionRequired => ErrorCode::PreconditionRequired,
            Self::OtherClientError(..) => ErrorCode::BadRequest,
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
            _ => None,
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
        match self {
            Self::Validation(_) | Self::MalformedJson(_) | Self::InvalidId(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UserNotFound(_) | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::EmailTaken | Self::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } | Self::Timeout { .. } | Self::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::OtherClientError(status, _) => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        if let Self::Internal(source) = self {
            tracing::error!(error = %ErrorChain(source.as_ref()), "request failed");
        }
        let mut response = Json(self.envelope()).into_response();
        response.set_status(self.status());
        for (name, value) in self.headers() {
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl ApiError {
    fn headers(&self) -> Vec<(HeaderName, String)> {
        let retry_after = |seconds: u64| vec![(header::RETRY_AFTER, seconds.max(1).to_string())];
        match self {
            Self::MethodNotAllowed { allow, .. } => vec![(header::ALLOW, allow.clone())],
            Self::Unauthorized | Self::InvalidCredentials => vec![(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"user-api\"".to_owned(),
            )],
            Self::RateLimited {
                retry_after: seconds,
            }
            | Self::Busy {
                retry_after: seconds,
            } => retry_after(*seconds),
            Self::Timeout { .. } | Self::IdempotencyKeyInProgress => retry_after(1),
            Self::Unavailable => retry_after(2),
            Self::PreconditionFailed { current } => {
                vec![(header::ETAG, super::conditional::etag(*current))]
            }
            _ => Vec::new(),
        }
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
            UserError::InvalidCredentials => Self::InvalidCredentials,
            UserError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            UserError::IdempotencyKeyInProgress => Self::IdempotencyKeyInProgress,
            UserError::Hashing(HashingError::Busy) => Self::Busy { retry_after: 1 },
            UserError::VersionMismatch { current } => Self::PreconditionFailed { current },
            UserError::Unavailable(_) => Self::Unavailable,
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// Turns any error that reached the edge of the app into the envelope. Errors
/// raised by poem or poem-openapi (no route, wrong method, wrong content type)
/// are classified here; the service's own errors render themselves.
pub fn render(error: poem::Error, method: &Method, path: &str, allow: Option<String>) -> Response {
    to_api_error(error, method, path, allow).as_response()
}

fn to_api_error(
    error: poem::Error,
    method: &Method,
    path: &str,
    allow: Option<String>,
) -> ApiError {
    let error = match error.downcast::<ApiError>() {
        Ok(api_error) => return api_error,
        Err(error) => error,
    };
    if error.is::<NotFoundError>() {
        return ApiError::RouteNotFound {
            method: method.clone(),
            path: path.to_owned(),
        };
    }
    if error.is::<MethodNotAllowedError>() {
        return ApiError::MethodNotAllowed {
            method: method.clone(),
            path: path.to_owned(),
            allow: allow.unwrap_or_default(),
        };
    }
    if let Some(content_type) = error.downcast_ref::<ContentTypeError>() {
        let message = match content_type {
            ContentTypeError::NotSupported { content_type } => {
                format!("Content-Type `{content_type}` is not supported; send application/json")
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
    let status = error.status();
    if status.is_client_error() {
        ApiError::OtherClientError(status, error.to_string())
    } else {
        ApiError::Internal(Box::new(error))
    }
}

/// The error statuses an operation documents, each described once here.
pub trait ErrorStatuses: Send + Sync + 'static {
    const STATUSES: &'static [u16];
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => {
            "The request is invalid: a field or parameter fails validation (`validation_failed`, \
             with `details`), the body is not JSON (`malformed_json`) or the id is not 24 hex \
             digits (`invalid_id`). The message names the field."
        }
        401 => {
            "No valid API key in `Authorization: Bearer <key>` (`unauthorized`); for \
             `POST /user/verify`, also an email and password that do not match \
             (`invalid_credentials`)."
        }
        404 => "No user has this id (`not_found`).",
        409 => {
            "Another user already has this email (`email_taken`), or, for `POST /user`, a request \
             with the same `Idempotency-Key` is still in progress (`idempotency_key_in_progress`, \
             with `Retry-After`)."
        }
        412 => {
            "`If-Match` does not name the user's current version (`precondition_failed`); \
             nothing was changed. `ETag` holds the current version."
        }
        413 => "The request body is over 16 KiB (`payload_too_large`).",
        415 => "The request body is not `application/json` (`unsupported_media_type`).",
        422 => {
            "The `Idempotency-Key` was already used with a different request \
             (`idempotency_key_reused`)."
        }
        428 => {
            "The server requires `If-Match` on writes (`precondition_required`); send the `ETag` \
             of a GET."
        }
        429 => "Too many requests from this client, key or for this account (`rate_limited`).",
        500 => "Unexpected server error (`internal`). The cause is logged, never returned.",
        503 => {
            "Temporarily unable to answer: the database is unreachable (`unavailable`), password \
             hashing is saturated (`busy`) or the request ran past the server's deadline \
             (`timeout`)."
        }
        _ => "Error.",
    }
}

/// Headers that come with an error status.
fn documented_headers(status: u16) -> Vec<MetaHeader> {
    let header = |name: &str, description: &str, required: bool, schema: MetaSchema| MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required,
        deprecated: false,
        schema: MetaSchemaRef::Inline(Box::new(schema)),
    };
    let retry_after = |required| {
        header(
            "Retry-After",
            "Seconds to wait before retrying.",
            required,
            MetaSchema {
                format: Some("int32"),
                minimum: Some(1.0),
                ..MetaSchema::new("integer")
            },
        )
    };
    match status {
        401 => vec![header(
            "WWW-Authenticate",
            "The scheme to authenticate with: `Bearer`.",
            true,
            MetaSchema::new("string"),
        )],
        409 => vec![retry_after(false)],
        412 => vec![header(
            "ETag",
            "The user's current version.",
            true,
            MetaSchema::new("string"),
        )],
        429 | 503 => vec![retry_after(true)],
        _ => Vec::new(),
    }
}

/// An operation's error response: an [`ApiError`] whose possible statuses,
/// `S`, are listed in the spec.
pub struct Failure<S>(ApiError, PhantomData<fn() -> S>);

impl<S> From<ApiError> for Failure<S> {
    fn from(error: ApiError) -> Self {
        Self(error, PhantomData)
    }
}

impl<S> From<ValidationErrors> for Failure<S> {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::from(errors).into()
    }
}

impl<S> From<UserError> for Failure<S> {
    fn from(error: UserError) -> Self {
        ApiError::from(error).into()
    }
}

impl<S> From<Failure<S>> for poem::Error {
    fn from(failure: Failure<S>) -> Self {
        failure.0.into()
    }
}

impl<S: ErrorStatuses> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&status| MetaResponse {
                    description: describe(status),
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ErrorEnvelope::schema_ref(),
                    }],
                    headers: documented_headers(status),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorEnvelope::register(registry);
    }
}
