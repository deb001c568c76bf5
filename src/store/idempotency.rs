//! Idempotency keys for `POST /user`, kept in MongoDB so they survive
//! restarts and hold across replicas. A TTL index removes them after 24 h.

use std::{sync::Arc, time::Duration};

use mongodb::{
    bson::{doc, DateTime},
    options::IndexOptions,
    Collection, Database, IndexModel,
};
use serde::{Deserialize, Serialize};

use super::{
    error::{is_duplicate_key, is_namespace_missing},
    measured,
    users::UserDocument,
    StoreError,
};
use crate::{
    domain::{StoredHash, User, UserId},
    metrics::Metrics,
};

const COLLECTION: &str = "idempotency_keys";
const EXPIRY_INDEX: &str = "expire_after_24h";
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What the first request with a key claimed, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordDocument {
    #[serde(rename = "_id")]
    id: String,
    fingerprint: String,
    password_hash: String,
    user: UserDocument,
    completed: bool,
    created_at: DateTime,
}

/// What the first request with a key claimed: the user it was creating,
/// and how to recognise a retry of that same request.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// A digest of the caller and the key; never the key itself.
    pub id: String,
    /// A digest of the request's fields other than the password.
    pub fingerprint: String,
    /// bcrypt hash of the request's password, to recognise it in a retry
    /// without keeping anything weaker than the user's own hash.
    pub password_hash: Option<StoredHash>,
    /// The user as created: the body a replay answers with.
    pub user: User,
    /// Whether the user is known to be stored.
    pub completed: bool,
    /// Milliseconds since the claim was made.
    pub age_ms: i64,
}

impl From<RecordDocument> for IdempotencyRecord {
    fn from(record: RecordDocument) -> Self {
        Self {
            id: record.id,
            fingerprint: record.fingerprint,
            password_hash: StoredHash::parse(&record.password_hash).ok(),
            user: record.user.into_user(),
            completed: record.completed,
            age_ms: DateTime::now().timestamp_millis() - record.created_at.timestamp_millis(),
        }
    }
}

#[derive(Clone)]
pub struct IdempotencyStore {
    records: Collection<RecordDocument>,
    metrics: Arc<Metrics>,
}

impl IdempotencyStore {
    pub fn new(database: &Database, metrics: Arc<Metrics>) -> Self {
        Self {
            records: database.collection(COLLECTION),
            metrics,
        }
    }

    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let expiry = IndexModel::builder()
            .keys(doc! { "created_at": 1 })
            .options(
                IndexOptions::builder()
                    .name(EXPIRY_INDEX.to_owned())
                    .expire_after(KEY_LIFETIME)
                    .build(),
            )
            .build();
        measured(
            &self.metrics,
            "idempotency.create_index",
            self.records.create_index(expiry),
        )
        .await?;
        Ok(())
    }

    /// Whether the TTL index is there.
    pub async fn indexes_present(&self) -> Result<bool, StoreError> {
        let names = measured(
            &self.metrics,
            "idempotency.list_indexes",
            self.records.list_index_names(),
        )
        .await;
        match names {
            Ok(names) => Ok(names.iter().any(|name| name == EXPIRY_INDEX)),
            Err(StoreError::Database(error)) if is_namespace_missing(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The live record for `id`. Expired records count as absent even
    /// before the TTL monitor (which runs about once a minute) removes them.
    pub async fn find(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let oldest = DateTime::from_millis(
            DateTime::now().timestamp_millis() - KEY_LIFETIME.as_millis() as i64,
        );
        let find = self
            .records
            .find_one(doc! { "_id": id, "created_at": { "$gt": oldest } });
        let found = measured(&self.metrics, "idempotency.find", find).await?;
        Ok(found.map(IdempotencyRecord::from))
    }

    /// Claims the key for `record`; `false` when another request holds it.
    pub async fn claim(
        &self,
        id: &str,
        fingerprint: &str,
        user: &User,
        password_hash: &StoredHash,
    ) -> Result<bool, StoreError> {
        let record = RecordDocument {
            id: id.to_owned(),
            fingerprint: fingerprint.to_owned(),
            password_hash: password_hash.as_str().to_owned(),
            user: UserDocument::new(user, None),
            completed: false,
            created_at: DateTime::now(),
        };
        let insert = async {
            match self.records.insert_one(&record).await {
                Ok(_) => Ok(true),
                Err(error) if is_duplicate_key(&error) => Ok(false),
                Err(error) => Err(error),
            }
        };
        measured(&self.metrics, "idempotency.claim", insert).await
    }

    pub async fn complete(&self, id: &str) -> Result<(), StoreError> {
        let complete = self
            .records
            .update_one(doc! { "_id": id }, doc! { "$set": { "completed": true } });
        measured(&self.metrics, "idempotency.complete", complete).await?;
        Ok(())
    }

    /// Gives the key back after the create it guarded failed, so a retry can
    /// try again.
    pub async fn release(&self, id: &str, user: UserId) -> Result<(), StoreError> {
        let release = self
            .records
            .delete_one(doc! { "_id": id, "user._id": user.object_id(), "completed": false });
        measured(&self.metrics, "idempotency.release", release).await?;
        Ok(())
    }

    /// Drops a claim whose request died before creating its user, unless
    /// someone else already replaced it.
    pub async fn abandon(&self, stale: &IdempotencyRecord) -> Result<(), StoreError> {
        let abandon = self.records.delete_one(doc! {
            "_id": &stale.id,
            "user._id": stale.user.id.object_id(),
            "completed": false,
        });
        measured(&self.metrics, "idempotency.abandon", abandon).await?;
        Ok(())
    }
}
