//! `POST /user/import`: many users at once, with password hashes other
//! systems made or with passwords to hash, each item answered on its own.
//!
//! The request's shape is checked as a whole (400 for a malformed body, a
//! wrong type, an unknown field, an empty or oversized list). What an item
//! says is checked per item: a bad email fails that item, in `results`,
//! and the others go in.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{web::Data, Request};
use poem_openapi::{param::Header, ApiResponse, Enum, Object, OpenApi};
use serde::{Deserialize, Serialize};

use super::{
    auth::ApiKey,
    body::{request_body, JsonBody},
    errors::{ErrorCode, Failure, FieldProblem},
    fields::{idempotency_key, present, IdempotencyKeyRules, Raw, RawObject},
    operations::ImportUsers,
    views::Json,
    ApiTags, Shared,
};
use crate::{
    domain::{
        EmailAddress, ExternalId, FieldError, ImportFailure, ImportOutcome, ImportSecret,
        ImportUser, Metadata, Password, StoredHash, UserId, UserName, ValidationErrors,
    },
    service::{ImportItem, Imported},
};

/// Most users per request.
pub const MAX_USERS: usize = 1000;
/// Most items per request with a plaintext `password`: each takes a bcrypt
/// hash.
pub const MAX_PLAINTEXT: usize = 100;
/// Longest `ref`.
pub const MAX_REF_CHARS: usize = 64;

/// One user to import. Each field is checked per item: a value that breaks
/// a rule fails this item (in `results`, with `details`), never the others.
#[derive(Object, Deserialize)]
#[oai(rename = "ImportUser")]
#[serde(deny_unknown_fields)]
pub struct ImportItemRequest {
    /// Display name, under the same rules as `POST /user`.
    name: String,
    /// Email address, under the same rules as `POST /user`, and stored
    /// normalized the same way.
    email: String,
    /// A password to hash, under `POST /user`'s policy. Give exactly one of
    /// `password` and `password_hash`; at most 100 items of a request may
    /// carry a `password`.
    #[oai(write_only)]
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
    /// A hash another system made, kept as it is and replaced by bcrypt at
    /// the user's first successful verify: bcrypt (`$2a$`, `$2b$`, `$2y$`,
    /// cost 4 to 31), argon2id or argon2i (m ≤ 1048576 KiB, t ≤ 20, p ≤ 64),
    /// passlib `$pbkdf2-sha256$`, `$pbkdf2-sha512$` or `$pbkdf2$`, Werkzeug
    /// `pbkdf2:sha256:…` or `scrypt:…`, or Django `pbkdf2_sha256$…`;
    /// PBKDF2 at most 10,000,000 rounds, scrypt N ≤ 2^20.
    #[oai(write_only)]
    #[serde(default, deserialize_with = "present")]
    password_hash: Option<String>,
    /// The id to keep: 24 hexadecimal digits. A fresh one otherwise.
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
    /// When the user was created, RFC 3339, between 1970 and 2106. With an
    /// `id`, it must fall in the second the id's timestamp names. Default:
    /// the id's time, or now.
    #[serde(default, deserialize_with = "present")]
    created_at: Option<String>,
    /// The application's own data, under the same rules as `POST /user`'s
    /// `metadata` (checked per item).
    #[serde(default, deserialize_with = "present")]
    metadata: Option<RawObject>,
    /// The user's id in another system, under the same rules as `POST
    /// /user`'s `external_id`: unique, 1 to 255 characters.
    #[serde(default, deserialize_with = "present")]
    external_id: Option<String>,
    /// Your reference for this item, echoed in its result.
    #[oai(rename = "ref", validator(max_length = 64))]
    #[serde(rename = "ref", default, deserialize_with = "present")]
    reference: Option<String>,
}

/// Users to import.
#[derive(Object, Deserialize)]
pub struct ImportRequest {
    /// 1 to 1,000 users.
    #[oai(validator(min_items = 1, max_items = 1000))]
    users: Vec<ImportItemRequest>,
}

request_body!(ImportRequest, max_bytes = 1024 * 1024);

/// What became of one item.
#[derive(Enum, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// The user was stored.
    Created,
    /// A user with this id and email was already stored (a re-run).
    Existing,
    /// Not stored; `error` says why.
    Failed,
}

/// The result of one item, at its position in the request. A `failed` item
/// has an `error`: `validation_failed` (with `details`), `email_taken`,
/// `external_id_taken`, `id_taken`, or `busy` (hashing was saturated; send
/// the item again).
#[derive(Object, Serialize, Debug)]
pub struct ImportResult {
    /// The item's position in `users`, from 0.
    pub index: u32,
    /// The item's `ref`, when it had one.
    #[oai(rename = "ref", skip_serializing_if_is_none)]
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub status: ImportStatus,
    /// The user's id, for `created` and `existing`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    /// For `failed`: what went wrong.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `validation_failed`: every rejected field of the item.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldProblem>>,
}

/// What an import did.
#[derive(Object, Serialize, Debug)]
pub struct ImportSummary {
    pub created: u32,
    pub existing: u32,
    pub failed: u32,
    /// One result per item, in the request's order.
    pub results: Vec<ImportResult>,
}

/// An import's summary in the standard envelope.
#[derive(Object, Serialize, Debug)]
pub struct ImportEnvelope {
    pub data: ImportSummary,
    /// What happened, for humans.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}

#[derive(ApiResponse)]
pub enum ImportedUsers {
    /// The import ran; `data.results` says what became of each item.
    #[oai(status = 200)]
    Ok(
        Json<ImportEnvelope>,
        /// `true` when this answer replays an earlier request with the same
        /// `Idempotency-Key`; absent otherwise.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

/// Checks the parts of a request the schema states: how many users, and
/// each `ref`'s length.
fn check_shape(request: &ImportRequest) -> Result<(), ValidationErrors> {
    let count = request.users.len();
    if !(1..=MAX_USERS).contains(&count) {
        return Err(ValidationErrors::single(
            "users",
            format!("must hold 1 to {MAX_USERS} users (got {count})"),
        ));
    }
    let mut errors = ValidationErrors::default();
    for (index, item) in request.users.iter().enumerate() {
        if let Some(reference) = &item.reference {
            if reference.chars().count() > MAX_REF_CHARS {
                errors.push(FieldError::new(
                    format!("users[{index}].ref"),
                    format!("must be at most {MAX_REF_CHARS} characters"),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// One item as a user to import, or every problem it has. `plaintexts`
/// counts the items with a password so far.
fn parse_item(item: &ImportItemRequest, plaintexts: &mut usize) -> ImportItem {
    let mut errors = ValidationErrors::default();
    let name = errors.check("name", UserName::parse(&item.name));
    let email = errors.check("email", EmailAddress::parse(&item.email));
    let secret = match (&item.password, &item.password_hash) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "password_hash",
                "give either password or password_hash, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new(
                "password",
                "give a password, or a password_hash",
            ));
            None
        }
        (Some(password), None) => {
            *plaintexts += 1;
            if *plaintexts > MAX_PLAINTEXT {
                errors.push(FieldError::new(
                    "password",
                    format!(
                        "at most {MAX_PLAINTEXT} items of a request may carry a plaintext \
                         password; send password_hash, or split the import"
                    ),
                ));
                None
            } else {
                errors
                    .check("password", Password::parse(password.clone()))
                    .map(ImportSecret::Password)
            }
        }
        (None, Some(hash)) => errors
            .check("password_hash", StoredHash::parse(hash))
            .map(ImportSecret::Hash),
    };
    let id = item
        .id
        .as_deref()
        .and_then(|raw| errors.check("id", UserId::parse(raw)));
    let created_at = item
        .created_at
        .as_deref()
        .and_then(|raw| errors.check("created_at", parse_created_at(raw, id)));
    let metadata = match &item.metadata {
        Some(raw) => errors.check("metadata", Metadata::parse(raw.0.clone())),
        None => Some(Metadata::default()),
    };
    let external_id = item
        .external_id
        .as_deref()
        .and_then(|raw| errors.check("external_id", ExternalId::parse(raw)));
    match (name, email, secret, metadata) {
        (Some(name), Some(email), Some(secret), Some(metadata)) if errors.is_empty() => {
            Ok(ImportUser {
                name,
                email,
                secret,
                id,
                created_at,
                metadata,
                external_id,
            })
        }
        _ => Err(errors),
    }
}

/// An RFC 3339 time an ObjectId can carry, in the second `id` names if
/// there is one.
fn parse_created_at(raw: &str, id: Option<UserId>) -> Result<DateTime<Utc>, String> {
    let time = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| "must be an RFC 3339 time, such as 2021-03-04T05:06:07.000Z".to_owned())?
        .with_timezone(&Utc);
    let time = DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time);
    if UserId::generate_at(time).is_none() {
        return Err("must be between 1970 and 2106".into());
    }
    if let Some(id) = id {
        if id.created_at().timestamp() != time.timestamp() {
            return Err(format!(
                "must fall in the second the id names ({}), so that ids keep creation order",
                id.created_at().to_rfc3339()
            ));
        }
    }
    Ok(time)
}

fn result(index: usize, reference: Option<String>, outcome: ImportOutcome) -> ImportResult {
    let mut result = ImportResult {
        index: index as u32,
        reference,
        status: ImportStatus::Failed,
        id: None,
        error: None,
        message: None,
        details: None,
    };
    let failure = match outcome {
        ImportOutcome::Created(id) => {
            result.status = ImportStatus::Created;
            result.id = Some(id.to_string());
            return result;
        }
        ImportOutcome::Existing(id) => {
            result.status = ImportStatus::Existing;
            result.id = Some(id.to_string());
            return result;
        }
        ImportOutcome::Failed(failure) => failure,
    };
    let (code, message) = match &failure {
        ImportFailure::Invalid(errors) => (ErrorCode::ValidationFailed, errors.to_string()),
        ImportFailure::EmailTaken => (
            ErrorCode::EmailTaken,
            "email: another user already has this email".to_owned(),
        ),
        ImportFailure::IdTaken => (
            ErrorCode::IdTaken,
            "id: a user with this id has another email".to_owned(),
        ),
        ImportFailure::ExternalIdTaken => (
            ErrorCode::ExternalIdTaken,
            "external_id: another user already has this external id".to_owned(),
        ),
        ImportFailure::Busy => (
            ErrorCode::Busy,
            "the server was busy hashing passwords; send this item again".to_owned(),
        ),
    };
    result.error = Some(code);
    result.message = Some(message);
    if let ImportFailure::Invalid(errors) = failure {
        result.details = Some(
            errors
                .errors()
                .iter()
                .map(|error| FieldProblem {
                    field: error.field.clone(),
                    message: error.message.clone(),
                })
                .collect(),
        );
    }
    result
}

pub struct ImportApi;

#[OpenApi(tag = "ApiTags::Users")]
impl ImportApi {
    /// Import users
    ///
    /// Stores up to 1,000 users in one request, each with a password hash
    /// another system made (bcrypt, argon2, PBKDF2 in passlib's, Werkzeug's
    /// or Django's notation, Werkzeug's scrypt) or a password to hash (at
    /// most 100 per request). Each item is answered in `data.results`:
    /// `created`, `existing` (the same id and email are already stored, so
    /// re-running a batch is safe) or `failed` with the reason. Items are
    /// independent: one failing never affects another. The body may be up
    /// to 1 MiB, and the request may take four times the usual deadline.
    #[oai(path = "/user/import", method = "post", operation_id = "importUsers")]
    async fn import(
        &self,
        auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        request: &Request,
        /// As for `POST /user`: a retry with the same key and body within 24
        /// hours returns the first response, with `Idempotent-Replayed: true`.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<Raw<IdempotencyKeyRules>>>,
        body: JsonBody<ImportRequest>,
    ) -> Result<ImportedUsers, Failure<ImportUsers>> {
        let body = body.0;
        check_shape(&body)?;
        let key = idempotency_key(request)?;
        let mut plaintexts = 0;
        let items: Vec<ImportItem> = body
            .users
            .iter()
            .map(|item| parse_item(item, &mut plaintexts))
            .collect();
        let (outcomes, replayed) = match shared.users.import(&auth.0, items, key).await? {
            Imported::New(outcomes) => (outcomes, None),
            Imported::Replayed(outcomes) => (outcomes, Some(true)),
        };
        let results: Vec<ImportResult> = body
            .users
            .into_iter()
            .zip(outcomes)
            .enumerate()
            .map(|(index, (item, outcome))| result(index, item.reference, outcome))
            .collect();
        let count = |status| results.iter().filter(|r| r.status == status).count() as u32;
        let summary = ImportSummary {
            created: count(ImportStatus::Created),
            existing: count(ImportStatus::Existing),
            failed: count(ImportStatus::Failed),
            results,
        };
        let message = format!(
            "{} created, {} existing, {} failed.",
            summary.created, summary.existing, summary.failed
        );
        Ok(ImportedUsers::Ok(
            Json(ImportEnvelope {
                data: summary,
                message,
                status_code: 200,
            }),
            replayed,
        ))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::{registry::Registry, types::Type};

    use super::*;
    use crate::domain::hash_limits;

    /// `password_hash`'s description states the limits the parser enforces.
    #[test]
    fn the_documented_hash_limits_are_the_enforced_ones() {
        let mut registry = Registry::new();
        ImportItemRequest::register(&mut registry);
        let schema = &registry.schemas["ImportUser"];
        let (_, field) = schema
            .properties
            .iter()
            .find(|(name, _)| *name == "password_hash")
            .unwrap();
        let poem_openapi::registry::MetaSchemaRef::Inline(field) = field else {
            panic!("an inline schema");
        };
        let description = field.description.unwrap();
        let thousands = |n: u32| {
            let digits = n.to_string();
            let mut grouped = String::new();
            for (i, digit) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(digit);
            }
            grouped
        };
        for stated in [
            format!("m ≤ {} KiB", hash_limits::ARGON2_MEMORY_KIB),
            format!("t ≤ {}", hash_limits::ARGON2_PASSES),
            format!("p ≤ {}", hash_limits::ARGON2_LANES),
            format!("at most {} rounds", thousands(hash_limits::PBKDF2_ROUNDS)),
            format!("N ≤ 2^{}", hash_limits::SCRYPT_LOG_N),
            format!(
                "cost {} to {}",
                hash_limits::BCRYPT_COST.start(),
                hash_limits::BCRYPT_COST.end()
            ),
        ] {
            assert!(description.contains(&stated), "{stated} in {description}");
        }
    }
}
