//! Idempotent creates: a retry with the same `Idempotency-Key` and request,
//! from the same caller, answers with the user the first request created.

use sha2::{Digest, Sha256};

use super::{Created, UserError, UserService};
use crate::{
    domain::{Caller, IdempotencyKey, NewUser, User},
    store::{Claimed, IdempotencyRecord},
};

/// An idempotency key as the store keeps it: an id that includes the
/// caller, so two callers' keys never meet, and a fingerprint of the
/// request's normalized fields. Passwords are not in the fingerprint (a
/// fast digest of one would be easy to brute-force); retries are matched on
/// them with bcrypt instead.
pub(super) struct ScopedKey {
    pub(super) id: String,
    pub(super) fingerprint: String,
}

impl ScopedKey {
    fn new(caller: &Caller, key: &IdempotencyKey, user: &NewUser) -> Self {
        Self::with_fingerprint(caller, key, fingerprint_of(user))
    }

    pub(super) fn with_fingerprint(
        caller: &Caller,
        key: &IdempotencyKey,
        fingerprint: String,
    ) -> Self {
        Self {
            id: digest(&[&caller.scope(), key.as_str()]),
            fingerprint,
        }
    }
}

/// A create's normalized fields. The ones added over time join only when
/// set, so keys claimed before they existed still match their retries.
fn fingerprint_of(user: &NewUser) -> String {
    let metadata = serde_json::to_string(user.metadata.as_map()).unwrap_or_default();
    let mut parts = vec![user.name.as_str(), user.email.as_str()];
    if user.disabled {
        parts.push("disabled");
    }
    if !user.metadata.as_map().is_empty() {
        parts.extend(["metadata", &metadata]);
    }
    if let Some(external_id) = &user.external_id {
        parts.extend(["external_id", external_id.as_str()]);
    }
    digest(&parts)
}

/// SHA-256 over length-prefixed parts, as hex: no two lists of parts share
/// an input.
pub(super) fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl UserService {
    /// Creates the user at most once per key: the first request claims the
    /// key (a unique insert) with the user it is about to create; retries
    /// find the claim and answer with that user.
    pub(super) async fn create_once(
        &self,
        caller: &Caller,
        user: NewUser,
        key: &IdempotencyKey,
    ) -> Result<Created, UserError> {
        let key = ScopedKey::new(caller, key, &user);
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
            let created = User::new(&user);
            if !self
                .idempotency
                .claim_user(&key.id, &key.fingerprint, &created, &hash)
                .await?
            {
                continue;
            }
            return match self.store.insert(&created, &hash).await {
                Ok(()) => {
                    // If this fails the user still exists, and a retry finds
                    // it through the claim; the create itself succeeded.
                    if let Err(error) = self.idempotency.complete(&key.id).await {
                        tracing::warn!(error = %error, "could not mark an idempotency key done");
                    }
                    Ok(Created::New(created))
                }
                Err(error) => {
                    self.idempotency.release(&key.id, created.id).await?;
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
        key: &ScopedKey,
        claim: IdempotencyRecord,
    ) -> Result<Option<User>, UserError> {
        let Claimed::User {
            user: claimed,
            password_hash,
        } = &claim.claimed
        else {
            return Err(UserError::IdempotencyKeyReused);
        };
        let same_password = self
            .hasher
            .verify(user.password.secret(), password_hash.as_ref())
            .await?;
        if claim.fingerprint != key.fingerprint || !same_password {
            return Err(UserError::IdempotencyKeyReused);
        }
        if claim.completed {
            return Ok(Some(User::clone(claimed)));
        }
        if self.store.get(claimed.id).await?.is_some() {
            self.idempotency.complete(&claim.id).await?;
            return Ok(Some(User::clone(claimed)));
        }
        self.abandon_if_stale(&claim).await
    }

    /// A claim whose request died (it is older than two deadlines) is
    /// dropped, `None`, so a retry can take over; otherwise it is in
    /// progress.
    pub(super) async fn abandon_if_stale<T>(
        &self,
        claim: &IdempotencyRecord,
    ) -> Result<Option<T>, UserError> {
        if claim.age_ms > self.stale_claim.as_millis() as i64 {
            self.idempotency.abandon(claim).await?;
            return Ok(None);
        }
        Err(UserError::IdempotencyKeyInProgress)
    }
}
