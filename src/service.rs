//! What the API does with users, independent of HTTP: hash passwords, then
//! read and write through the store.

use std::{sync::Arc, time::Duration};

use mongodb::bson::DateTime;
use secrecy::SecretString;

use crate::{
    domain::{EmailAddress, NewUser, ProfileChanges, UserId},
    hashing::{HashingError, PasswordHasher},
    readiness::Readiness,
    store::{
        Expected, IdempotencyRecord, IdempotencyStore, ListQuery, StoreError, UserRecord,
        UserStore, UserUpdate, Written,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user has id {0}")]
    NotFound(UserId),
    #[error("another user already has this email")]
    EmailTaken,
    #[error("the email and password do not match a user")]
    InvalidCredentials,
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
    #[error("the user store failed")]
    Store(#[source] StoreError),
    #[error("password hashing failed")]
    Hashing(#[from] HashingError),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            unavailable @ StoreError::Unavailable(_) => Self::Unavailable(Some(unavailable)),
            other => Self::Store(other),
        }
    }
}

/// The result of a conditional write, as the caller needs it.
fn written<T>(id: UserId, outcome: Written<T>) -> Result<T, UserError> {
    match outcome {
        Written::Done(value) => Ok(value),
        Written::Missing => Err(UserError::NotFound(id)),
        Written::Conflict { current } => Err(UserError::VersionMismatch { current }),
    }
}

/// A page of users and, when more follow, the id to continue after.
#[derive(Debug)]
pub struct Page {
    pub users: Vec<UserRecord>,
    pub next_after: Option<UserId>,
}

/// The outcome of a create.
#[derive(Debug)]
pub enum Created {
    New(UserRecord),
    /// A retry of an earlier request with the same idempotency key: the user
    /// that request created, as it was created.
    Replayed(UserRecord),
}

/// An idempotency key as the service sees it: an id that already includes
/// the caller, and a fingerprint of the request's non-secret fields.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub id: String,
    pub fingerprint: String,
}

#[derive(Clone)]
pub struct UserService {
    store: UserStore,
    idempotency: IdempotencyStore,
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
        hasher: PasswordHasher,
        readiness: Arc<Readiness>,
        stale_claim: Duration,
    ) -> Self {
        Self {
            store,
            idempotency,
            hasher,
            readiness,
            stale_claim,
        }
    }

    /// Writes that set an email need the unique index in place first.
    fn writable(&self) -> Result<(), UserError> {
        if self.readiness.indexes_ready() {
            Ok(())
        } else {
            Err(UserError::Unavailable(None))
        }
    }

    pub async fn create(
        &self,
        user: NewUser,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, UserError> {
        self.writable()?;
        match key {
            None => {
                let hash = self.hasher.hash(&user.password).await?;
                let record = UserRecord::new(UserId::generate(), &user.name, &user.email);
                self.store.insert(&record, &hash).await?;
                Ok(Created::New(record))
            }
            Some(key) => self.create_once(user, key).await,
        }
    }

    /// Creates the user at most once per key: the first request claims the
    /// key (a unique insert) with the user it is about to create; retries
    /// find the claim and answer with that user.
    async fn create_once(&self, user: NewUser, key: IdempotencyKey) -> Result<Created, UserError> {
        // A second round happens only after losing a race for the claim or
        // taking over an abandoned one.
        for _ in 0..2 {
            if let Some(claim) = self.idempotency.find(&key.id).await? {
                match self.replay(&user, &key, claim).await? {
                    Some(created) => return Ok(Created::Replayed(created)),
                    None => continue,
                }
            }
            let hash = self.hasher.hash(&user.password).await?;
            let record = UserRecord::new(UserId::generate(), &user.name, &user.email);
            if !self
                .idempotency
                .claim(&key.id, &key.fingerprint, &record, &hash)
                .await?
            {
                continue;
            }
            return match self.store.insert(&record, &hash).await {
                Ok(()) => {
                    // If this fails the user still exists, and a retry finds
                    // it through the claim; the create itself succeeded.
                    if let Err(error) = self.idempotency.complete(&key.id).await {
                        tracing::warn!(error = %error, "could not mark an idempotency key done");
                    }
                    Ok(Created::New(record))
                }
                Err(error) => {
                    self.idempotency
                        .release(&key.id, UserId::from(record.id))
                        .await?;
                    Err(error.into())
                }
            };
        }
        Err(UserError::IdempotencyKeyInProgress)
    }

    /// The answer to a retry: the original user when the request matches the
    /// claim, `None` when the claim was abandoned and has been dropped.
    async fn replay(
        &self,
        user: &NewUser,
        key: &IdempotencyKey,
        claim: IdempotencyRecord,
    ) -> Result<Option<UserRecord>, UserError> {
        let same_password = self
            .hasher
            .verify(user.password.secret(), Some(&claim.password_hash))
            .await?;
        if claim.fingerprint != key.fingerprint || !same_password {
            return Err(UserError::IdempotencyKeyReused);
        }
        if claim.completed {
            return Ok(Some(claim.user));
        }
        if self.store.get(UserId::from(claim.user.id)).await?.is_some() {
            self.idempotency.complete(&claim.id).await?;
            return Ok(Some(claim.user));
        }
        let age = DateTime::now().timestamp_millis() - claim.created_at.timestamp_millis();
        if age > self.stale_claim.as_millis() as i64 {
            self.idempotency.abandon(&claim).await?;
            return Ok(None);
        }
        Err(UserError::IdempotencyKeyInProgress)
    }

    pub async fn get(&self, id: UserId) -> Result<UserRecord, UserError> {
        self.store.get(id).await?.ok_or(UserError::NotFound(id))
    }

    pub async fn list(
        &self,
        email: Option<EmailAddress>,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Page, UserError> {
        // One extra row tells whether another page follows, without a count.
        let mut users = self
            .store
            .list(ListQuery {
                email,
                after,
                limit: limit + 1,
            })
            .await?;
        let more = users.len() > limit as usize;
        users.truncate(limit as usize);
        let next_after = more
            .then(|| users.last().map(|user| UserId::from(user.id)))
            .flatten();
        Ok(Page { users, next_after })
    }

    pub async fn update(
        &self,
        id: UserId,
        changes: ProfileChanges,
        expected: &Expected,
    ) -> Result<UserRecord, UserError> {
        self.writable()?;
        let password_hash = match &changes.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let update = UserUpdate {
            name: changes.name,
            email: changes.email,
            password_hash,
        };
        written(id, self.store.update(id, update, expected).await?)
    }

    pub async fn delete(&self, id: UserId, expected: &Expected) -> Result<(), UserError> {
        written(id, self.store.delete(id, expected).await?)
    }

    /// The user whose email and password these are. An unknown email costs
    /// the same bcrypt work as a wrong password, so timing does not tell
    /// them apart. A hash made at a lower cost than configured is upgraded.
    pub async fn verify(
        &self,
        email: &EmailAddress,
        attempt: &SecretString,
    ) -> Result<UserRecord, UserError> {
        let found = self.store.credentials(email).await?;
        let matched = self
            .hasher
            .verify(attempt, found.as_ref().map(|(_, hash)| hash.as_str()))
            .await?;
        let Some((user, hash)) = found.filter(|_| matched) else {
            return Err(UserError::InvalidCredentials);
        };
        if self.hasher.needs_rehash(&hash) {
            self.upgrade_hash(&user, &hash, attempt).await;
        }
        Ok(user)
    }

    /// Best effort: a failure leaves the old hash, which still verifies.
    async fn upgrade_hash(&self, user: &UserRecord, old: &str, password: &SecretString) {
        let upgraded = match self.hasher.hash_secret(password).await {
            Ok(new) => {
                self.store
                    .upgrade_hash(UserId::from(user.id), old, &new)
                    .await
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not rehash a password");
                return;
            }
        };
        if let Err(error) = upgraded {
            tracing::warn!(error = %error, "could not store a rehashed password");
        }
    }
}
