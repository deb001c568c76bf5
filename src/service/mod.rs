//! What the API does with users, independent of HTTP: hash passwords, then
//! read and write through the store. It takes and returns domain types only.

mod idempotency;
mod import;

pub use import::{ImportItem, Imported};

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    domain::{
        Caller, EmailAddress, IdempotencyKey, MetadataChange, NewUser, Precondition,
        ProfileChanges, StoredHash, User, UserId, UserQuery, BCRYPT_MAX_BYTES,
    },
    hashing::{HashingError, PasswordHasher},
    readiness::{NotReady, Readiness},
    store::{
        Duplicate, IdempotencyStore, LockoutStore, Reservation, StoreError, UserStore, UserUpdate,
        Written,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user has id {0}")]
    NotFound(UserId),
    #[error("another user already has this email")]
    EmailTaken,
    #[error("another user already has this external id")]
    ExternalIdTaken,
    /// A merge of metadata would break its limits.
    #[error("metadata: {0}")]
    InvalidMetadata(String),
    #[error("the email and password do not match a user")]
    InvalidCredentials,
    #[error("the user is disabled")]
    Disabled,
    #[error("too many failed attempts for this email; retry in {retry_after:?}")]
    TooManyFailures { retry_after: Duration },
    #[error("this idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyKeyInProgress,
    #[error("the user is at version {current}, not an expected one")]
    VersionMismatch { current: i64 },
    /// The database cannot be reached, or cannot take writes safely yet
    /// (its indexes are not confirmed).
    #[error("the database is unavailable")]
    Unavailable(#[source] Option<StoreError>),
    /// The user collection holds documents another service wrote, which
    /// `user-api migrate` must adopt first.
    #[error("the database holds documents this service cannot read yet")]
    MigrationRequired(#[source] Option<StoreError>),
    #[error("the user store failed")]
    Store(#[source] StoreError),
    #[error("password hashing failed")]
    Hashing(#[from] HashingError),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Duplicate(Duplicate::Email) => Self::EmailTaken,
            StoreError::Duplicate(Duplicate::ExternalId) => Self::ExternalIdTaken,
            unavailable @ StoreError::Unavailable(_) => Self::Unavailable(Some(unavailable)),
            unreadable @ StoreError::Unreadable(_) => Self::MigrationRequired(Some(unreadable)),
            other => Self::Store(other),
        }
    }
}

/// A page of users and, when more follow, the id to continue after.
#[derive(Debug)]
pub struct Page {
    pub users: Vec<User>,
    pub next_after: Option<UserId>,
    /// Every user matching the filters, when the query asked.
    pub total: Option<u64>,
}

/// The outcome of a create.
#[derive(Debug)]
pub enum Created {
    New(User),
    /// A retry of an earlier request with the same idempotency key: the user
    /// that request created, as it was created.
    Replayed(User),
}

#[derive(Clone)]
pub struct UserService {
    store: UserStore,
    idempotency: IdempotencyStore,
    lockout: LockoutStore,
    hasher: PasswordHasher,
    readiness: Arc<Readiness>,
    /// After this long, a claimed key whose user never appeared belongs to a
    /// request that died; a retry may take it over.
    stale_claim: Duration,
}

impl UserService {
    pub fn new(
        store: UserStore,
        idempotency: IdempotencyStore,
        lockout: LockoutStore,
        hasher: PasswordHasher,
        readiness: Arc<Readiness>,
        stale_claim: Duration,
    ) -> Self {
        Self {
            store,
            idempotency,
            lockout,
            hasher,
            readiness,
            stale_claim,
        }
    }

    /// Writes that set an email need the unique index in place first, and
    /// no document of another service's that could share it.
    fn writable(&self) -> Result<(), UserError> {
        match self.readiness.not_ready() {
            _ if self.readiness.writable() => Ok(()),
            Some(NotReady::LegacyDocuments) => Err(UserError::MigrationRequired(None)),
            _ => Err(UserError::Unavailable(None)),
        }
    }

    /// Creates a user. With an idempotency key, a retry of the same request
    /// by the same caller answers with the user the first one created.
    pub async fn create(
        &self,
        caller: &Caller,
        user: NewUser,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, UserError> {
        self.writable()?;
        match key {
            None => {
                let hash = self.hasher.hash(&user.password).await?;
                let created = User::new(&user);
                self.store.insert(&created, &hash).await?;
                Ok(Created::New(created))
            }
            Some(key) => self.create_once(caller, user, &key).await,
        }
    }

    pub async fn get(&self, id: UserId) -> Result<User, UserError> {
        match self.store.get(id).await? {
            Some(user) => Ok(user),
            None => Err(self.not_found(id)),
        }
    }

    /// No user has `id`; unless the database still holds users of another
    /// service (or has not been looked at for them yet), one of which may be
    /// it.
    fn not_found(&self, id: UserId) -> UserError {
        match self.readiness.not_ready() {
            Some(NotReady::LegacyDocuments) => UserError::MigrationRequired(None),
            // Not looked for yet (the service has just started): unknown.
            _ if !self.readiness.legacy_known() => UserError::Unavailable(None),
            _ => UserError::NotFound(id),
        }
    }

    /// The result of a conditional write, as the caller needs it.
    fn written<T>(&self, id: UserId, outcome: Written<T>) -> Result<T, UserError> {
        match outcome {
            Written::Done(value) => Ok(value),
            Written::Missing => Err(self.not_found(id)),
            Written::Conflict { current } => Err(UserError::VersionMismatch { current }),
        }
    }

    pub async fn list(&self, query: &UserQuery) -> Result<Page, UserError> {
        // One extra row tells whether another page follows, without a count.
        let limit = query.limit as usize;
        let mut users = self.store.list(query, query.limit + 1).await?;
        let more = users.len() > limit;
        users.truncate(limit);
        let next_after = more.then(|| users.last().map(|user| user.id)).flatten();
        let total = if query.include_total {
            Some(self.store.count(query).await?)
        } else {
            None
        };
        Ok(Page {
            users,
            next_after,
            total,
        })
    }

    pub async fn update(
        &self,
        id: UserId,
        changes: ProfileChanges,
        precondition: &Precondition,
    ) -> Result<User, UserError> {
        self.writable()?;
        let password_hash = match &changes.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let mut update = UserUpdate {
            name: changes.name,
            email: changes.email,
            password_hash,
            disabled: changes.disabled,
            metadata: None,
            external_id: changes.external_id,
        };
        let merge = match changes.metadata {
            None => None,
            Some(MetadataChange::Replace(metadata)) => {
                update.metadata = Some(metadata);
                None
            }
            Some(MetadataChange::Merge(merge)) => Some(merge),
        };
        let Some(merge) = merge else {
            let outcome = self.store.update(id, update, precondition).await?;
            return self.written(id, outcome);
        };
        // A merge is computed here, on the version just read, and written
        // only if the user is still at it, so that the merged object can be
        // held to its limits. Without If-Match, a concurrent write means
        // reading again; with it, the caller's condition decides.
        for _ in 0..5 {
            let current = self.get(id).await?;
            if let Precondition::OneOf(versions) = precondition {
                if !versions.contains(&current.version) {
                    return Err(UserError::VersionMismatch {
                        current: current.version,
                    });
                }
            }
            update.metadata = Some(
                current
                    .metadata
                    .merged(&merge)
                    .map_err(UserError::InvalidMetadata)?,
            );
            let at_read = Precondition::OneOf(vec![current.version]);
            match self.store.update(id, update.clone(), &at_read).await? {
                Written::Conflict { .. } if *precondition == Precondition::Unconditional => {
                    continue
                }
                outcome => return self.written(id, outcome),
            }
        }
        Err(UserError::Unavailable(None))
    }

    pub async fn delete(&self, id: UserId, precondition: &Precondition) -> Result<(), UserError> {
        let outcome = self.store.delete(id, precondition).await?;
        self.written(id, outcome)
    }

    /// The user whose email and password these are, in Keycloak's order,
    /// so an account's state never shows to someone without its password:
    ///
    /// 1. An email locked out after too many failures is refused at once,
    ///    with no password checked. The attempt is counted (reserved) before
    ///    the check, so parallel guesses cannot pass the threshold.
    /// 2. An unknown email or a wrong password is `InvalidCredentials`; both
    ///    cost the same work and take the same time.
    /// 3. The right password clears the failures; a disabled user is then
    ///    `Disabled`.
    /// 4. Otherwise the user is returned with `last_verified_at` set, in the
    ///    same write as an upgrade of the hash to bcrypt at the configured
    ///    cost, when it needs one.
    pub async fn verify(
        &self,
        email: &EmailAddress,
        attempt: &SecretString,
    ) -> Result<User, UserError> {
        if let Reservation::Refused { retry_after } = self.lockout.reserve(email).await? {
            return Err(UserError::TooManyFailures { retry_after });
        }
        let found = self.store.credentials(email).await?;
        let found = found.and_then(|(user, hash)| match hash {
            Ok(hash) => Some((user, hash)),
            Err(reason) => {
                tracing::warn!(user = %user.id, reason, "a stored password hash cannot be used");
                None
            }
        });
        let matched = self
            .hasher
            .verify(attempt, found.as_ref().map(|(_, hash)| hash))
            .await?;
        let Some((user, hash)) = found.filter(|_| matched) else {
            return Err(UserError::InvalidCredentials);
        };
        self.lockout.clear(email).await?;
        if user.disabled {
            return Err(UserError::Disabled);
        }
        let upgraded = self.upgraded_hash(&hash, attempt).await;
        match self
            .store
            .record_verified(user.id, &hash, upgraded.as_ref())
            .await?
        {
            Some(user) => Ok(user),
            // Deleted in the meantime.
            None => Err(UserError::InvalidCredentials),
        }
    }

    /// Forgets the failed verify attempts at the email of user `id`.
    pub async fn clear_lockout(&self, id: UserId) -> Result<(), UserError> {
        let user = self.get(id).await?;
        let email = EmailAddress::normalize(&user.email).map_err(|_| UserError::NotFound(id))?;
        Ok(self.lockout.clear(&email).await?)
    }

    /// bcrypt at the configured cost of the password that just verified,
    /// when `hash` is another format or weaker; `None` otherwise, and when
    /// hashing fails (the old hash still verifies). bcrypt would keep only
    /// 72 bytes of a longer password (one an imported hash allowed), so
    /// such a hash stays as it is.
    async fn upgraded_hash(
        &self,
        hash: &StoredHash,
        password: &SecretString,
    ) -> Option<StoredHash> {
        if !self.hasher.needs_upgrade(hash) || password.expose_secret().len() > BCRYPT_MAX_BYTES {
            return None;
        }
        self.hasher
            .hash_secret(password)
            .await
            .map_err(|error| tracing::warn!(error = %error, "could not rehash a password"))
            .ok()
    }
}
