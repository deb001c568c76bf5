//! `/user`: create, list, read, replace, patch, delete and verify users.

use std::sync::Arc;

use poem::{web::Data, Request};
use poem_openapi::{
    param::{Header, Path, Query},
    ApiResponse, Object, OpenApi,
};
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    auth::ApiKey,
    body::{request_body, JsonBody},
    conditional::{
        etag, header_list, not_modified, precondition, IfMatchRules, IF_MATCH, IF_NONE_MATCH,
    },
    errors::{ApiError, Failure},
    fields::{
        idempotency_key, present, AttemptRules, EmailLookupRules, EmailRules, ExternalIdRules,
        IdempotencyKeyRules, NameRules, PasswordRules, Raw, RawNullable, RawObject, UserIdRules,
    },
    operations::{
        ClearLockout, CreateUser, DeleteUser, GetUser, ListUsers, PatchUser, ReplaceUser,
        VerifyUser,
    },
    paging::{
        decode_cursor, encode_cursor, next_page_url, parse_flag, parse_ids, parse_limit,
        parse_sort, parse_time, CursorRules, FlagRules, IdListRules, LimitRules, SearchRules,
        SortRules, TimeRules,
    },
    views::{Json, PageInfo, UserEnvelope, UserListEnvelope},
    ApiTags, Shared,
};
use crate::{
    domain::{
        EmailAddress, ExternalId, Metadata, MetadataChange, NewUser, Password, Precondition,
        ProfileChanges, SearchPrefix, User, UserId, UserName, UserQuery, ValidationErrors,
    },
    service::Created,
};

/// A new user.
#[derive(Object, Deserialize)]
pub struct CreateUserRequest {
    name: Raw<NameRules>,
    email: Raw<EmailRules>,
    #[oai(write_only)]
    password: Raw<PasswordRules>,
    /// Create the account switched off: its credentials are refused (403
    /// `user_disabled` once checked). Default `false`.
    #[serde(default, deserialize_with = "present")]
    disabled: Option<bool>,
    /// Default `{}`.
    #[serde(default, deserialize_with = "present")]
    metadata: Option<RawObject>,
    #[serde(default, deserialize_with = "present")]
    external_id: Option<RawNullable<ExternalIdRules>>,
}

request_body!(CreateUserRequest);

/// Parses a metadata object, or names what is wrong with it.
fn parse_metadata(errors: &mut ValidationErrors, raw: RawObject) -> Option<Metadata> {
    errors.check("metadata", Metadata::parse(raw.0))
}

/// `None` when absent; `Some(None)` for `null`, which removes it.
fn parse_external_id(
    errors: &mut ValidationErrors,
    raw: Option<RawNullable<ExternalIdRules>>,
) -> Option<Option<ExternalId>> {
    match raw.map(RawNullable::into_option) {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => errors
            .check("external_id", ExternalId::parse(raw.as_str()))
            .map(Some),
    }
}

impl CreateUserRequest {
    fn into_domain(self) -> Result<NewUser, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = errors.check("name", UserName::parse(self.name.as_str()));
        let email = errors.check("email", EmailAddress::parse(self.email.as_str()));
        let password = errors.check("password", Password::parse(self.password.into_string()));
        let metadata = match self.metadata {
            Some(raw) => parse_metadata(&mut errors, raw),
            None => Some(Metadata::default()),
        };
        let external_id = parse_external_id(&mut errors, self.external_id).flatten();
        match (name, email, password, metadata) {
            (Some(name), Some(email), Some(password), Some(metadata)) if errors.is_empty() => {
                Ok(NewUser {
                    name,
                    email,
                    password,
                    disabled: self.disabled.unwrap_or(false),
                    metadata,
                    external_id,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A user's full profile. Omit `password`, `disabled`, `metadata` or
/// `external_id` to keep the current one.
#[derive(Object, Deserialize)]
pub struct ReplaceUserRequest {
    name: Raw<NameRules>,
    email: Raw<EmailRules>,
    #[oai(write_only)]
    #[serde(default, deserialize_with = "present")]
    password: Option<Raw<PasswordRules>>,
    /// Switch the account off (`true`) or on again (`false`).
    #[serde(default, deserialize_with = "present")]
    disabled: Option<bool>,
    /// Replaces the whole object.
    #[serde(default, deserialize_with = "present")]
    metadata: Option<RawObject>,
    #[serde(default, deserialize_with = "present")]
    external_id: Option<RawNullable<ExternalIdRules>>,
}

request_body!(ReplaceUserRequest);

/// The fields to change; at least one.
#[derive(Object, Deserialize)]
pub struct PatchUserRequest {
    #[serde(default, deserialize_with = "present")]
    name: Option<Raw<NameRules>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Raw<EmailRules>>,
    #[oai(write_only)]
    #[serde(default, deserialize_with = "present")]
    password: Option<Raw<PasswordRules>>,
    /// Switch the account off (`true`) or on again (`false`).
    #[serde(default, deserialize_with = "present")]
    disabled: Option<bool>,
    /// Merged into the current object, key by key at the top level: a key
    /// set to `null` is removed, any other value replaces the key's value
    /// whole (nested objects are not merged). The result is held to the
    /// same limits.
    #[serde(default, deserialize_with = "present")]
    metadata: Option<RawObject>,
    #[serde(default, deserialize_with = "present")]
    external_id: Option<RawNullable<ExternalIdRules>>,
}

request_body!(PatchUserRequest, min_properties = 1);

/// The fields of a replace or patch, as they arrived; `None` is absent.
struct RawChanges {
    name: Option<Raw<NameRules>>,
    email: Option<Raw<EmailRules>>,
    password: Option<Raw<PasswordRules>>,
    disabled: Option<bool>,
    /// Replaced whole (`PUT`) or merged (`PATCH`).
    metadata: Option<(RawObject, bool)>,
    external_id: Option<RawNullable<ExternalIdRules>>,
}

impl From<ReplaceUserRequest> for RawChanges {
    fn from(body: ReplaceUserRequest) -> Self {
        Self {
            name: Some(body.name),
            email: Some(body.email),
            password: body.password,
            disabled: body.disabled,
            metadata: body.metadata.map(|raw| (raw, false)),
            external_id: body.external_id,
        }
    }
}

impl From<PatchUserRequest> for RawChanges {
    fn from(body: PatchUserRequest) -> Self {
        Self {
            name: body.name,
            email: body.email,
            password: body.password,
            disabled: body.disabled,
            metadata: body.metadata.map(|raw| (raw, true)),
            external_id: body.external_id,
        }
    }
}

impl RawChanges {
    /// Parses whichever fields are present, collecting every problem.
    fn into_domain(self) -> Result<ProfileChanges, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let metadata = self.metadata.and_then(|(raw, merge)| {
            let parsed = if merge {
                Metadata::parse_merge(raw.0)
            } else {
                Metadata::parse(raw.0).map(MetadataChange::Replace)
            };
            errors.check("metadata", parsed)
        });
        let changes = ProfileChanges {
            name: self
                .name
                .and_then(|raw| errors.check("name", UserName::parse(raw.as_str()))),
            email: self
                .email
                .and_then(|raw| errors.check("email", EmailAddress::parse(raw.as_str()))),
            password: self
                .password
                .and_then(|raw| errors.check("password", Password::parse(raw.into_string()))),
            disabled: self.disabled,
            metadata,
            external_id: parse_external_id(&mut errors, self.external_id),
        };
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

/// Credentials to check.
#[derive(Object, Deserialize)]
pub struct VerifyRequest {
    email: Raw<EmailLookupRules>,
    #[oai(write_only)]
    password: Raw<AttemptRules>,
}

request_body!(VerifyRequest);

fn parse_id(raw: &Raw<UserIdRules>) -> Result<UserId, ApiError> {
    UserId::parse(raw.as_str()).map_err(ApiError::InvalidId)
}

#[derive(ApiResponse)]
pub enum CreatedUser {
    /// The user was created, or this is a retry of the request that created
    /// it (same `Idempotency-Key` and body). `Location` is its URL.
    #[oai(status = 201)]
    Created(
        Json<UserEnvelope>,
        #[oai(header = "Location")] String,
        /// The new user's version, for a later `If-Match`.
        #[oai(header = "ETag")]
        String,
        /// `true` when this answer replays an earlier request with the same
        /// `Idempotency-Key`; absent otherwise.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

#[derive(ApiResponse)]
pub enum Listed {
    /// A page of users. When more follow, `page.next` holds the cursor and
    /// `Link` the URL of the next page (`rel="next"`).
    #[oai(status = 200)]
    Ok(
        Json<UserListEnvelope>,
        #[oai(header = "Link")] Option<String>,
    ),
}

// Built once per request and moved once: its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum Fetched {
    /// The user.
    #[oai(status = 200)]
    Ok(
        Json<UserEnvelope>,
        /// The user's version, for `If-Match` and `If-None-Match`.
        #[oai(header = "ETag")]
        String,
    ),
    /// `If-None-Match` names the current version: the copy the client has
    /// is current. No body.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum Updated {
    /// The updated user.
    #[oai(status = 200)]
    Ok(
        Json<UserEnvelope>,
        /// The user's new version, for the next `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum Verified {
    /// The email and password match this user.
    #[oai(status = 200)]
    Ok(Json<UserEnvelope>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// The user was deleted. No body.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum LockoutCleared {
    /// The lockout was cleared: the user may verify again at once. No body.
    #[oai(status = 204)]
    NoContent,
}

/// Whether writes must carry `If-Match` (REQUIRE_IF_MATCH).
#[derive(Clone, Copy)]
pub struct ConditionalWrites {
    pub required: bool,
}

impl ConditionalWrites {
    fn precondition(&self, request: &Request) -> Result<Precondition, ApiError> {
        precondition(header_list(request, IF_MATCH)?.as_deref(), self.required)
    }
}

fn updated(user: User) -> Updated {
    let tag = etag(user.version);
    Updated::Ok(Json(UserEnvelope::new(user, "User updated.", 200)), tag)
}

const LIST_PARAMETERS: [&str; 11] = [
    "limit",
    "after",
    "email",
    "disabled",
    "q",
    "created_after",
    "created_before",
    "sort",
    "id",
    "external_id",
    "include_total",
];

pub struct UserApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UserApi {
    /// Create a user
    ///
    /// Validates the fields, hashes the password with bcrypt and stores the
    /// user. Emails are unique regardless of case: a second user with the same
    /// address gets 409. Send an `Idempotency-Key` to make retries safe.
    #[oai(path = "/user", method = "post", operation_id = "createUser")]
    async fn create(
        &self,
        auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        request: &Request,
        /// A unique key per logical create, such as a UUID. A retry with the
        /// same key and body within 24 hours returns the first response (with
        /// `Idempotent-Replayed: true`) instead of creating another user; the
        /// same key with a different body is refused with 422.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<Raw<IdempotencyKeyRules>>>,
        body: JsonBody<CreateUserRequest>,
    ) -> Result<CreatedUser, Failure<CreateUser>> {
        let user = body.0.into_domain()?;
        let key = idempotency_key(request)?;
        let (user, replayed) = match shared.users.create(&auth.0, user, key).await? {
            Created::New(user) => (user, None),
            Created::Replayed(user) => (user, Some(true)),
        };
        let location = format!("/user/{}", user.id);
        let tag = etag(user.version);
        Ok(CreatedUser::Created(
            Json(UserEnvelope::new(user, "User created.", 201)),
            location,
            tag,
            replayed,
        ))
    }

    /// Verify a user's credentials
    ///
    /// In this order, so an account's state never shows to someone without
    /// its password: an email locked out after too many failed attempts
    /// answers 429 (`too_many_failures`, with `Retry-After`) with no password
    /// checked; a wrong password and an unknown email answer the same 401
    /// (`invalid_credentials`), in the same time; the right password of a
    /// disabled user answers 403 (`user_disabled`); otherwise 200 with the
    /// user, its `last_verified_at` set. Failed attempts are counted per
    /// email across every instance; a success clears them. A hash in another
    /// format, or weaker than configured, is replaced by bcrypt on success.
    #[oai(path = "/user/verify", method = "post", operation_id = "verifyUser")]
    async fn verify(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        body: JsonBody<VerifyRequest>,
    ) -> Result<Verified, Failure<VerifyUser>> {
        let body = body.0;
        let email = EmailAddress::normalize(body.email.as_str())
            .map_err(|message| ValidationErrors::single("email", message))?;
        let attempt = SecretString::from(body.password.into_string());
        let user = shared.users.verify(&email, &attempt).await?;
        Ok(Verified::Ok(Json(UserEnvelope::new(
            user,
            "Credentials verified.",
            200,
        ))))
    }

    /// Clear a user's lockout
    ///
    /// Forgets the failed `POST /user/verify` attempts at this user's email,
    /// lifting a lockout at once.
    #[oai(
        path = "/user/:id/lockout",
        method = "delete",
        operation_id = "clearLockout"
    )]
    async fn clear_lockout(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        /// The user's id.
        id: Path<Raw<UserIdRules>>,
    ) -> Result<LockoutCleared, Failure<ClearLockout>> {
        shared.users.clear_lockout(parse_id(&id)?).await?;
        Ok(LockoutCleared::NoContent)
    }

    /// List and find users
    ///
    /// Returns users in creation order (`sort=-created`: newest first), one
    /// page at a time. Follow `page.next` (or the `Link` header, which keeps
    /// every filter) until it is absent to visit every matching user exactly
    /// once. The filters (`email`, `q`, `created_after`, `created_before`,
    /// `id`, `external_id`, `disabled`) combine with one another. Unknown
    /// query parameters are refused.
    #[oai(path = "/user", method = "get", operation_id = "listUsers")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        request: &Request,
        /// Page size, 1 to 200.
        limit: Query<Option<Raw<LimitRules>>>,
        /// Cursor from the previous page.
        after: Query<Option<Raw<CursorRules>>>,
        /// Only the user with this email (compared after normalizing).
        email: Query<Option<Raw<EmailLookupRules>>>,
        /// Only disabled users (`true`) or only enabled ones (`false`).
        disabled: Query<Option<Raw<FlagRules>>>,
        /// Users whose name or email starts with this.
        q: Query<Option<Raw<SearchRules>>>,
        /// Users created strictly after this time.
        created_after: Query<Option<Raw<TimeRules>>>,
        /// Users created strictly before this time.
        created_before: Query<Option<Raw<TimeRules>>>,
        /// The order of creation: `created` (oldest first) or `-created`.
        sort: Query<Option<Raw<SortRules>>>,
        /// Only these users: up to 100 comma-separated ids.
        id: Query<Option<Raw<IdListRules>>>,
        /// Only the user with this external id (compared exactly).
        external_id: Query<Option<Raw<ExternalIdRules>>>,
        /// Also count every user matching the filters, in `page.total`. It
        /// counts, so it costs a pass over the matches.
        include_total: Query<Option<Raw<FlagRules>>>,
    ) -> Result<Listed, Failure<ListUsers>> {
        let mut errors = ValidationErrors::default();
        reject_unknown_parameters(request, &mut errors);
        let query = UserQuery {
            limit: errors
                .check("limit", parse_limit(limit.0.as_ref().map(Raw::as_str)))
                .unwrap_or_default(),
            after: after
                .0
                .and_then(|raw| errors.check("after", decode_cursor(raw.as_str()))),
            email: email
                .0
                .and_then(|raw| errors.check("email", EmailAddress::normalize(raw.as_str()))),
            disabled: disabled
                .0
                .and_then(|raw| errors.check("disabled", parse_flag(raw.as_str()))),
            q: q.0
                .and_then(|raw| errors.check("q", SearchPrefix::parse(raw.as_str()))),
            created_after: created_after
                .0
                .and_then(|raw| errors.check("created_after", parse_time(raw.as_str()))),
            created_before: created_before
                .0
                .and_then(|raw| errors.check("created_before", parse_time(raw.as_str()))),
            order: sort
                .0
                .and_then(|raw| errors.check("sort", parse_sort(raw.as_str())))
                .unwrap_or_default(),
            ids: id
                .0
                .and_then(|raw| errors.check("id", parse_ids(raw.as_str()))),
            external_id: external_id
                .0
                .and_then(|raw| errors.check("external_id", ExternalId::parse(raw.as_str()))),
            include_total: include_total
                .0
                .and_then(|raw| errors.check("include_total", parse_flag(raw.as_str())))
                .unwrap_or(false),
        };
        if !errors.is_empty() {
            return Err(errors.into());
        }

        let page = shared.users.list(&query).await?;
        let link = page
            .next_after
            .map(|next| format!("<{}>; rel=\"next\"", next_page_url(&query, next)));
        let limit = query.limit;
        let count = page.users.len();
        Ok(Listed::Ok(
            Json(UserListEnvelope {
                data: page.users.into_iter().map(Into::into).collect(),
                message: format!("{count} user(s)."),
                status_code: 200,
                page: PageInfo {
                    limit,
                    next: page.next_after.map(encode_cursor),
                    total: page.total,
                },
            }),
            link,
        ))
    }

    /// Get a user
    ///
    /// The `ETag` header carries the user's version. Send it back in
    /// `If-None-Match` to get 304 when nothing changed, or in `If-Match` to
    /// make a write conditional.
    #[oai(path = "/user/:id", method = "get", operation_id = "getUser")]
    async fn get(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        /// The user's id.
        id: Path<Raw<UserIdRules>>,
        /// Entity tags the client already has: 304 if the user is at one.
        #[oai(name = "If-None-Match")]
        _if_none_match: Header<Option<Raw<IfMatchRules>>>,
        request: &Request,
    ) -> Result<Fetched, Failure<GetUser>> {
        let id = parse_id(&id)?;
        let if_none_match = header_list(request, IF_NONE_MATCH)?;
        let user = shared.users.get(id).await?;
        let tag = etag(user.version);
        if not_modified(if_none_match.as_deref(), user.version)? {
            return Ok(Fetched::NotModified(tag));
        }
        Ok(Fetched::Ok(
            Json(UserEnvelope::new(user, "User found.", 200)),
            tag,
        ))
    }

    /// Replace a user's profile
    ///
    /// Sets `name` and `email`, and the password when one is given. Setting
    /// the email a user already has is not a conflict. With `If-Match`, the
    /// change applies only if the user is still at that version.
    #[oai(path = "/user/:id", method = "put", operation_id = "replaceUser")]
    #[allow(clippy::too_many_arguments)]
    async fn replace(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        /// The user's id.
        id: Path<Raw<UserIdRules>>,
        /// Apply only if the user is at one of these versions (`*`: any).
        #[oai(name = "If-Match")]
        _if_match: Header<Option<Raw<IfMatchRules>>>,
        request: &Request,
        body: JsonBody<ReplaceUserRequest>,
    ) -> Result<Updated, Failure<ReplaceUser>> {
        let id = parse_id(&id)?;
        let precondition = shared.conditional.precondition(request)?;
        let changes = RawChanges::from(body.0).into_domain()?;
        let user = shared.users.update(id, changes, &precondition).await?;
        Ok(updated(user))
    }

    /// Change some of a user's fields
    ///
    /// Sets only the fields present; at least one is required. With
    /// `If-Match`, the change applies only if the user is still at that
    /// version.
    #[oai(path = "/user/:id", method = "patch", operation_id = "patchUser")]
    #[allow(clippy::too_many_arguments)]
    async fn patch(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        /// The user's id.
        id: Path<Raw<UserIdRules>>,
        /// Apply only if the user is at one of these versions (`*`: any).
        #[oai(name = "If-Match")]
        _if_match: Header<Option<Raw<IfMatchRules>>>,
        request: &Request,
        body: JsonBody<PatchUserRequest>,
    ) -> Result<Updated, Failure<PatchUser>> {
        let id = parse_id(&id)?;
        let precondition = shared.conditional.precondition(request)?;
        let changes = RawChanges::from(body.0).into_domain()?;
        let user = shared.users.update(id, changes, &precondition).await?;
        Ok(updated(user))
    }

    /// Delete a user
    ///
    /// With `If-Match`, only if the user is still at that version.
    #[oai(path = "/user/:id", method = "delete", operation_id = "deleteUser")]
    async fn delete(
        &self,
        _auth: ApiKey,
        shared: Data<&Arc<Shared>>,
        /// The user's id.
        id: Path<Raw<UserIdRules>>,
        /// Delete only if the user is at one of these versions (`*`: any).
        #[oai(name = "If-Match")]
        _if_match: Header<Option<Raw<IfMatchRules>>>,
        request: &Request,
    ) -> Result<Deleted, Failure<DeleteUser>> {
        let id = parse_id(&id)?;
        let precondition = shared.conditional.precondition(request)?;
        shared.users.delete(id, &precondition).await?;
        Ok(Deleted::NoContent)
    }
}

fn reject_unknown_parameters(request: &Request, errors: &mut ValidationErrors) {
    let query = request.uri().query().unwrap_or_default();
    let names: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    for (name, _) in names {
        if !LIST_PARAMETERS.contains(&name.as_str()) {
            errors.push(crate::domain::FieldError::new(
                name,
                format!(
                    "unknown query parameter; allowed are {}",
                    LIST_PARAMETERS.join(", ")
                ),
            ));
        }
    }
}
