//! Idempotency keys for `POST /user` and `POST /user/import`, kept in
//! MongoDB so they survive restarts and hold across replicas. A TTL index
//! removes them after 24 h.

use std::{sync::Arc, time::Duration};

use mongodb::{
    bson::{doc, oid::ObjectId, DateTime},
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
    domain::{
        FieldError, ImportFailure, ImportOutcome, StoredHash, User, UserId, ValidationErrors,
    },
    metrics::Metrics,
};

const COLLECTION: &str = "idempotency_keys";
const EXPIRY_INDEX: &str = "expire_after_24h";
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What the first request with a key claimed, as stored. A create keeps the
/// user and its password's hash; an import, its plaintext passwords' hashes
/// and, once done, its outcomes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordDocument {
    #[serde(rename = "_id")]
    id: String,
    fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<UserDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    import: Option<ImportDocument>,
    completed: bool,
    created_at: DateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImportDocument {
    password_hashes: Vec<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcomes: Option<Vec<OutcomeDocument>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutcomeDocument {
    /// `created`, `existing` or a failure: `invalid`, `email_taken`,
    /// `id_taken`, `busy`.
    outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    details: Vec<(String, String)>,
}

impl From<&ImportOutcome> for OutcomeDocument {
    fn from(outcome: &ImportOutcome) -> Self {
        let (outcome, id, details) = match outcome {
            ImportOutcome::Created(id) => ("created", Some(id.object_id()), Vec::new()),
            ImportOutcome::Existing(id) => ("existing", Some(id.object_id()), Vec::new()),
            ImportOutcome::Failed(ImportFailure::Invalid(errors)) => (
                "invalid",
                None,
                errors
                    .errors()
                    .iter()
                    .map(|error| (error.field.clone(), error.message.clone()))
                    .collect(),
            ),
            ImportOutcome::Failed(ImportFailure::EmailTaken) => ("email_taken", None, Vec::new()),
            ImportOutcome::Failed(ImportFailure::IdTaken) => ("id_taken", None, Vec::new()),
            ImportOutcome::Failed(ImportFailure::ExternalIdTaken) => {
                ("external_id_taken", None, Vec::new())
            }
            ImportOutcome::Failed(ImportFailure::Busy) => ("busy", None, Vec::new()),
        };
        Self {
            outcome: outcome.to_owned(),
            id,
            details,
        }
    }
}

impl OutcomeDocument {
    fn into_outcome(self) -> Option<ImportOutcome> {
        let id = self.id.map(UserId::from);
        Some(match self.outcome.as_str() {
            "created" => ImportOutcome::Created(id?),
            "existing" => ImportOutcome::Existing(id?),
            "invalid" => {
                let mut errors = ValidationErrors::default();
                for (field, message) in self.details {
                    errors.push(FieldError::new(field, message));
                }
                ImportOutcome::Failed(ImportFailure::Invalid(errors))
            }
            "email_taken" => ImportOutcome::Failed(ImportFailure::EmailTaken),
            "id_taken" => ImportOutcome::Failed(ImportFailure::IdTaken),
            "external_id_taken" => ImportOutcome::Failed(ImportFailure::ExternalIdTaken),
            "busy" => ImportOutcome::Failed(ImportFailure::Busy),
            _ => return None,
        })
    }
}

/// What a claim was for.
#[derive(Debug, Clone)]
pub enum Claimed {
    /// A create: the user as created (the body a replay answers with), and a
    /// bcrypt hash of its password, to recognise it in a retry without
    /// keeping anything weaker than the user's own hash.
    User {
        user: Box<User>,
        password_hash: Option<StoredHash>,
    },
    /// An import: the bcrypt hash of each item's plaintext password (none
    /// for items with a hash), and the outcomes once it is done.
    Import {
        password_hashes: Vec<Option<StoredHash>>,
        outcomes: Option<Vec<ImportOutcome>>,
    },
    /// A record this version cannot read; it is never replayed.
    Unknown,
}

/// What the first request with a key claimed, and how to recognise a retry
/// of that same request.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// A digest of the caller and the key; never the key itself.
    pub id: String,
    /// A digest of the request's fields other than passwords.
    pub fingerprint: String,
    pub claimed: Claimed,
    /// Whether the work it guarded is known to be done.
    pub completed: bool,
    /// Milliseconds since the claim was made.
    pub age_ms: i64,
    claimed_at: DateTime,
}

fn parse_hash(text: Option<String>) -> Option<StoredHash> {
    text.and_then(|text| StoredHash::parse(&text).ok())
}

impl From<RecordDocument> for IdempotencyRecord {
    fn from(record: RecordDocument) -> Self {
        let claimed = match (record.user, record.import) {
            (Some(user), _) => Claimed::User {
                user: Box::new(user.into_user()),
                password_hash: parse_hash(record.password_hash),
            },
            (None, Some(import)) => Claimed::Import {
                password_hashes: import.password_hashes.into_iter().map(parse_hash).collect(),
                outcomes: import.outcomes.and_then(|outcomes| {
                    outcomes
                        .into_iter()
                        .map(OutcomeDocument::into_outcome)
                        .collect()
                }),
            },
            (None, None) => Claimed::Unknown,
        };
        Self {
            id: record.id,
            fingerprint: record.fingerprint,
            claimed,
            completed: record.completed,
            age_ms: DateTime::now().timestamp_millis() - record.created_at.timestamp_millis(),
            claimed_at: record.created_at,
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

    /// Claims the key for the create of `user`; `false` when another
    /// request holds it.
    pub async fn claim_user(
        &self,
        id: &str,
        fingerprint: &str,
        user: &User,
        password_hash: &StoredHash,
    ) -> Result<bool, StoreError> {
        self.claim(RecordDocument {
            id: id.to_owned(),
            fingerprint: fingerprint.to_owned(),
            password_hash: Some(password_hash.as_str().to_owned()),
            user: Some(UserDocument::new(user, None)),
            import: None,
            completed: false,
            created_at: DateTime::now(),
        })
        .await
    }

    /// Claims the key for an import; `false` when another request holds it.
    pub async fn claim_import(
        &self,
        id: &str,
        fingerprint: &str,
        password_hashes: &[Option<StoredHash>],
    ) -> Result<bool, StoreError> {
        let password_hashes = password_hashes
            .iter()
            .map(|hash| hash.as_ref().map(|hash| hash.as_str().to_owned()))
            .collect();
        self.claim(RecordDocument {
            id: id.to_owned(),
            fingerprint: fingerprint.to_owned(),
            password_hash: None,
            user: None,
            import: Some(ImportDocument {
                password_hashes,
                outcomes: None,
            }),
            completed: false,
            created_at: DateTime::now(),
        })
        .await
    }

    async fn claim(&self, record: RecordDocument) -> Result<bool, StoreError> {
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

    /// Records what an import did, for its replays.
    pub async fn complete_import(
        &self,
        id: &str,
        outcomes: &[ImportOutcome],
    ) -> Result<(), StoreError> {
        let outcomes: Vec<OutcomeDocument> = outcomes.iter().map(OutcomeDocument::from).collect();
        let outcomes = mongodb::bson::to_bson(&outcomes)
            .map_err(|error| StoreError::Encoding(error.to_string()))?;
        let complete = self.records.update_one(
            doc! { "_id": id },
            doc! { "$set": { "completed": true, "import.outcomes": outcomes } },
        );
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

    /// Drops a claim whose request died before finishing, unless someone
    /// else already replaced it.
    pub async fn abandon(&self, stale: &IdempotencyRecord) -> Result<(), StoreError> {
        let abandon = self.records.delete_one(doc! {
            "_id": &stale.id,
            "created_at": stale.claimed_at,
            "completed": false,
        });
        measured(&self.metrics, "idempotency.abandon", abandon).await?;
        Ok(())
    }
}
