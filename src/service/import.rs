//! Bulk import: many users at once, with their own password hashes or with
//! passwords to hash, each with its own outcome. Items are independent: one
//! failing never affects another, and none is half-written.

use futures::{stream, StreamExt};

use super::{
    idempotency::{digest, ScopedKey},
    UserError, UserService,
};
use crate::{
    domain::{
        now_millis, Caller, IdempotencyKey, ImportFailure, ImportOutcome, ImportSecret, ImportUser,
        StoredHash, User, UserId, ValidationErrors,
    },
    hashing::{HashingError, PasswordHasher},
    store::{BatchOutcome, Claimed, IdempotencyRecord},
};

/// One item of an import request: a valid user, or why it is not one.
pub type ImportItem = Result<ImportUser, ValidationErrors>;

/// The outcome of an import.
#[derive(Debug)]
pub enum Imported {
    New(Vec<ImportOutcome>),
    /// A retry of an earlier request with the same idempotency key: what
    /// that request did.
    Replayed(Vec<ImportOutcome>),
}

/// An item ready to store: the user, its hash, and whether that hash was
/// made here from a plaintext password.
type Prepared = Result<(User, StoredHash, bool), ImportFailure>;

impl UserService {
    pub async fn import(
        &self,
        caller: &Caller,
        items: Vec<ImportItem>,
        key: Option<IdempotencyKey>,
    ) -> Result<Imported, UserError> {
        self.writable()?;
        let Some(key) = key else {
            let prepared = self.prepare(&items).await?;
            return Ok(Imported::New(self.store_items(prepared).await?));
        };
        let key = ScopedKey::with_fingerprint(caller, &key, fingerprint(&items));
        // A second round happens only after losing a race for the claim or
        // taking over an abandoned one.
        for _ in 0..2 {
            if let Some(claim) = self.idempotency.find(&key.id).await? {
                match self.replay_import(&items, &key, claim).await? {
                    Some(outcomes) => return Ok(Imported::Replayed(outcomes)),
                    None => continue,
                }
            }
            let prepared = self.prepare(&items).await?;
            let hashes: Vec<Option<StoredHash>> = prepared
                .iter()
                .map(|item| match item {
                    Ok((_, hash, true)) => Some(hash.clone()),
                    _ => None,
                })
                .collect();
            if !self
                .idempotency
                .claim_import(&key.id, &key.fingerprint, &hashes)
                .await?
            {
                continue;
            }
            let outcomes = self.store_items(prepared).await?;
            // If this fails, the users are stored all the same, and a retry
            // that takes the claim over finds them `existing`.
            if let Err(error) = self.idempotency.complete_import(&key.id, &outcomes).await {
                tracing::warn!(error = %error, "could not record an import's outcome");
            }
            return Ok(Imported::New(outcomes));
        }
        Err(UserError::IdempotencyKeyInProgress)
    }

    /// Hashes the plaintext passwords (as many at once as the hashing pool
    /// runs) and assembles each user.
    async fn prepare(&self, items: &[ImportItem]) -> Result<Vec<Prepared>, UserError> {
        let plaintexts: Vec<_> = items
            .iter()
            .map(|item| match item {
                Ok(ImportUser {
                    secret: ImportSecret::Password(password),
                    ..
                }) => Some(password.secret().clone()),
                _ => None,
            })
            .collect();
        let made = self.on_pool(plaintexts, |hasher, secret| async move {
            hasher.hash_secret(&secret).await
        });
        let made: Vec<Option<Result<StoredHash, HashingError>>> = made.await;
        items
            .iter()
            .zip(made)
            .map(|(item, made)| {
                let item = match item {
                    Ok(item) => item,
                    Err(errors) => return Ok(Err(ImportFailure::Invalid(errors.clone()))),
                };
                let (hash, hashed_here) = match (&item.secret, made) {
                    (ImportSecret::Hash(hash), _) => (hash.clone(), false),
                    (ImportSecret::Password(_), Some(Ok(hash))) => (hash, true),
                    (ImportSecret::Password(_), Some(Err(HashingError::Busy)) | None) => {
                        return Ok(Err(ImportFailure::Busy))
                    }
                    (ImportSecret::Password(_), Some(Err(error))) => return Err(error.into()),
                };
                Ok(Ok((user_of(item), hash, hashed_here)))
            })
            .collect()
    }

    /// Runs `job` for every `Some` input, as many at once as the hashing
    /// pool runs, and gives the results back in order.
    async fn on_pool<I, T, F, Fut>(&self, inputs: Vec<Option<I>>, job: F) -> Vec<Option<T>>
    where
        F: Fn(PasswordHasher, I) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let jobs: Vec<_> = inputs
            .into_iter()
            .map(|input| {
                let run = input.map(|input| job(self.hasher.clone(), input));
                async move {
                    match run {
                        Some(run) => Some(run.await),
                        None => None,
                    }
                }
            })
            .collect();
        stream::iter(jobs)
            .buffered(self.hasher.concurrency())
            .collect()
            .await
    }

    /// Writes the prepared users in one batch and says what became of each.
    async fn store_items(&self, prepared: Vec<Prepared>) -> Result<Vec<ImportOutcome>, UserError> {
        let ready: Vec<(User, StoredHash)> = prepared
            .iter()
            .filter_map(|item| item.as_ref().ok())
            .map(|(user, hash, _)| (user.clone(), hash.clone()))
            .collect();
        let mut written = self.store.insert_batch(&ready).await?.into_iter();
        let mut users = ready.into_iter();
        Ok(prepared
            .into_iter()
            .map(|item| match item {
                Err(failure) => ImportOutcome::Failed(failure),
                Ok(_) => {
                    let id = users.next().map(|(user, _)| user.id);
                    match (written.next(), id) {
                        (Some(BatchOutcome::Created), Some(id)) => ImportOutcome::Created(id),
                        (Some(BatchOutcome::AlreadyThere), Some(id)) => ImportOutcome::Existing(id),
                        (Some(BatchOutcome::IdTaken), _) => {
                            ImportOutcome::Failed(ImportFailure::IdTaken)
                        }
                        (Some(BatchOutcome::ExternalIdTaken), _) => {
                            ImportOutcome::Failed(ImportFailure::ExternalIdTaken)
                        }
                        _ => ImportOutcome::Failed(ImportFailure::EmailTaken),
                    }
                }
            })
            .collect())
    }

    /// The answer to a retry: what the first request did, when this is the
    /// same request; `None` when its claim was abandoned and dropped.
    async fn replay_import(
        &self,
        items: &[ImportItem],
        key: &ScopedKey,
        claim: IdempotencyRecord,
    ) -> Result<Option<Vec<ImportOutcome>>, UserError> {
        let Claimed::Import {
            password_hashes,
            outcomes,
        } = &claim.claimed
        else {
            return Err(UserError::IdempotencyKeyReused);
        };
        if claim.fingerprint != key.fingerprint || password_hashes.len() != items.len() {
            return Err(UserError::IdempotencyKeyReused);
        }
        // Every plaintext password must be the one hashed the first time.
        let pairs: Vec<_> = items
            .iter()
            .zip(password_hashes)
            .map(|(item, hash)| match (item, hash) {
                (
                    Ok(ImportUser {
                        secret: ImportSecret::Password(password),
                        ..
                    }),
                    Some(hash),
                ) => Some((password.secret().clone(), hash.clone())),
                _ => None,
            })
            .collect();
        let checks = self.on_pool(pairs, |hasher, (secret, hash)| async move {
            hasher.verify(&secret, Some(&hash)).await
        });
        for check in checks.await.into_iter().flatten() {
            if !check? {
                return Err(UserError::IdempotencyKeyReused);
            }
        }
        match outcomes {
            Some(outcomes) if claim.completed => Ok(Some(outcomes.clone())),
            _ => self.abandon_if_stale(&claim).await,
        }
    }
}

/// The user an import item describes: its id (or a fresh one at its
/// creation second), its creation time (from the id, or now).
fn user_of(item: &ImportUser) -> User {
    let id = item
        .id
        .or_else(|| item.created_at.and_then(UserId::generate_at))
        .unwrap_or_else(UserId::generate);
    let created_at = item
        .created_at
        .or_else(|| item.id.map(|id| id.created_at()))
        .unwrap_or_else(now_millis);
    User {
        id,
        name: item.name.as_str().to_owned(),
        email: item.email.as_str().to_owned(),
        created_at,
        updated_at: created_at,
        version: 1,
        disabled: false,
        last_verified_at: None,
        metadata: item.metadata.clone(),
        external_id: item.external_id.clone(),
    }
}

/// What makes two import requests the same request: every item's fields
/// once normalized, but plaintext passwords (matched with bcrypt instead),
/// and every invalid item's problems.
fn fingerprint(items: &[ImportItem]) -> String {
    let mut parts: Vec<String> = vec!["import".into()];
    for item in items {
        match item {
            Ok(user) => {
                parts.push(user.name.as_str().into());
                parts.push(user.email.as_str().into());
                parts.push(match &user.secret {
                    ImportSecret::Password(_) => "password".into(),
                    ImportSecret::Hash(hash) => hash.as_str().into(),
                });
                parts.push(user.id.map(|id| id.to_string()).unwrap_or_default());
                parts.push(
                    user.created_at
                        .map(|time| time.timestamp_millis().to_string())
                        .unwrap_or_default(),
                );
                parts.push(serde_json::to_string(user.metadata.as_map()).unwrap_or_default());
                parts.push(
                    user.external_id
                        .as_ref()
                        .map(|id| id.as_str().to_owned())
                        .unwrap_or_default(),
                );
            }
            Err(errors) => parts.push(format!("invalid: {errors}")),
        }
    }
    digest(&parts.iter().map(String::as_str).collect::<Vec<_>>())
}
