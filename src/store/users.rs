use std::sync::Arc;

use chrono::{DateTime as ChronoDateTime, Utc};
use futures::TryStreamExt;
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, DateTime, Document},
    options::{IndexOptions, ReturnDocument},
    Collection, Database, IndexModel,
};
use serde::{Deserialize, Serialize};

use super::{error::is_namespace_missing, measured, StoreError};
use crate::{
    domain::{
        fold_name, EmailAddress, ExternalId, Metadata, Order, Precondition, StoredHash, User,
        UserId, UserName, UserQuery,
    },
    metrics::Metrics,
};

/// The collection the service keeps its users in.
pub const COLLECTION: &str = "users";
pub(super) const EMAIL_INDEX: &str = "email_unique";
pub(super) const EXTERNAL_ID_INDEX: &str = "external_id_unique";
const NAME_INDEX: &str = "name_folded";

/// A user as stored. Reads project the hash away, except the one that checks
/// credentials, so it is optional here. (The fields are spelled out: bson's
/// dates and ids do not survive `#[serde(flatten)]`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UserDocument {
    #[serde(rename = "_id")]
    id: ObjectId,
    name: String,
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    created_at: DateTime,
    updated_at: DateTime,
    version: i64,
    /// Absent in documents written before accounts could be disabled.
    #[serde(default)]
    disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_verified_at: Option<DateTime>,
    /// The name as searches compare it ([`fold_name`]); written with every
    /// name, backfilled for documents from before searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_folded: Option<String>,
    #[serde(default)]
    metadata: Document,
    /// Absent, never null, when the user has none: the unique index is
    /// partial on strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
}

/// Metadata as BSON. It was checked to hold nothing BSON cannot (numbers
/// past 64 bits are refused), so this cannot fail in practice; an empty
/// document stands in if it did.
pub(super) fn metadata_document(metadata: &Metadata) -> Document {
    mongodb::bson::to_document(metadata.as_map()).unwrap_or_default()
}

fn metadata_of(document: Document) -> Metadata {
    match Bson::Document(document).into_relaxed_extjson() {
        serde_json::Value::Object(map) => Metadata::from_stored(map),
        _ => Metadata::default(),
    }
}

pub(super) fn to_bson_time(time: ChronoDateTime<Utc>) -> DateTime {
    DateTime::from_millis(time.timestamp_millis())
}

pub(super) fn from_bson_time(time: DateTime) -> ChronoDateTime<Utc> {
    ChronoDateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or_default()
}

impl UserDocument {
    pub(super) fn new(user: &User, password_hash: Option<&StoredHash>) -> Self {
        Self {
            id: user.id.object_id(),
            name: user.name.clone(),
            email: user.email.clone(),
            password_hash: password_hash.map(|hash| hash.as_str().to_owned()),
            created_at: to_bson_time(user.created_at),
            updated_at: to_bson_time(user.updated_at),
            version: user.version,
            disabled: user.disabled,
            last_verified_at: user.last_verified_at.map(to_bson_time),
            name_folded: Some(fold_name(&user.name)),
            metadata: metadata_document(&user.metadata),
            external_id: user.external_id.as_ref().map(|id| id.as_str().to_owned()),
        }
    }

    pub(super) fn take_hash(&mut self) -> Option<String> {
        self.password_hash.take()
    }

    pub(super) fn into_user(self) -> User {
        User {
            id: UserId::from(self.id),
            name: self.name,
            email: self.email,
            created_at: from_bson_time(self.created_at),
            updated_at: from_bson_time(self.updated_at),
            version: self.version,
            disabled: self.disabled,
            last_verified_at: self.last_verified_at.map(from_bson_time),
            metadata: metadata_of(self.metadata),
            external_id: self.external_id.and_then(|id| ExternalId::parse(&id).ok()),
        }
    }
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserUpdate {
    pub name: Option<UserName>,
    pub email: Option<EmailAddress>,
    pub password_hash: Option<StoredHash>,
    pub disabled: Option<bool>,
    /// The whole object.
    pub metadata: Option<Metadata>,
    /// `Some(None)` removes it.
    pub external_id: Option<Option<ExternalId>>,
}

/// How a conditional write went.
#[derive(Debug)]
pub enum Written<T> {
    Done(T),
    /// No user has this id.
    Missing,
    /// The user exists at another version than expected; nothing changed.
    Conflict {
        current: i64,
    },
}

#[derive(Clone)]
pub struct UserStore {
    pub(super) users: Collection<UserDocument>,
    pub(super) metrics: Arc<Metrics>,
}

fn without_hash() -> Document {
    doc! { "password_hash": 0 }
}

/// The smallest ObjectId of a second: every id made in it or later is at
/// least this.
fn first_id_of_second(seconds: i64) -> ObjectId {
    let seconds = u32::try_from(seconds.max(0)).unwrap_or(u32::MAX);
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

/// The conditions on `_id` in `filter`, made if there are none yet.
fn id_condition(filter: &mut Document) -> &mut Document {
    if !filter.contains_key("_id") {
        filter.insert("_id", Document::new());
    }
    match filter.get_mut("_id") {
        Some(Bson::Document(conditions)) => conditions,
        _ => unreachable!("the _id condition was just made a document"),
    }
}

/// The filter for a query's every condition but its cursor. Creation
/// bounds become a range of ids, which the `_id` index answers (ids start
/// with their creation second), refined by the exact time.
fn filter_of(query: &UserQuery) -> Document {
    let mut filter = Document::new();
    if let Some(email) = &query.email {
        filter.insert("email", email.as_str());
    }
    match query.disabled {
        Some(true) => {
            filter.insert("disabled", true);
        }
        // Documents written before accounts could be disabled have no field.
        Some(false) => {
            filter.insert("disabled", doc! { "$ne": true });
        }
        None => {}
    }
    if let Some(external_id) = &query.external_id {
        filter.insert("external_id", external_id.as_str());
    }
    if let Some(q) = &query.q {
        // Anchored, case-sensitive prefixes of normalized fields: an index
        // range scan each.
        filter.insert(
            "$or",
            vec![
                doc! { "email": { "$regex": format!("^{}", regex::escape(q.email_prefix())) } },
                doc! { "name_folded": { "$regex": format!("^{}", regex::escape(q.name_prefix())) } },
            ],
        );
    }
    if let Some(ids) = &query.ids {
        let ids: Vec<ObjectId> = ids.iter().map(UserId::object_id).collect();
        id_condition(&mut filter).insert("$in", ids);
    }
    let mut created = Document::new();
    if let Some(after) = query.created_after {
        id_condition(&mut filter).insert("$gte", first_id_of_second(after.timestamp()));
        created.insert("$gt", to_bson_time(after));
    }
    if let Some(before) = query.created_before {
        id_condition(&mut filter).insert("$lt", first_id_of_second(before.timestamp() + 1));
        created.insert("$lt", to_bson_time(before));
    }
    if !created.is_empty() {
        filter.insert("created_at", created);
    }
    filter
}

/// The filter for "this user, if the precondition holds". A document this
/// service did not write (no version) is never a target: it is left whole
/// for `user-api migrate`.
fn target(id: UserId, precondition: &Precondition) -> Document {
    let mut filter = doc! { "_id": id.object_id(), "version": { "$exists": true } };
    if let Precondition::OneOf(versions) = precondition {
        filter.insert("version", doc! { "$in": versions.clone() });
    }
    filter
}

impl UserStore {
    pub fn new(database: &Database, metrics: Arc<Metrics>) -> Self {
        Self {
            users: database.collection(COLLECTION),
            metrics,
        }
    }

    /// Creates the indexes the service relies on. Idempotent.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let named = |name: &str| IndexOptions::builder().name(name.to_owned());
        let email = IndexModel::builder()
            .keys(doc! { "email": 1 })
            .options(named(EMAIL_INDEX).unique(true).build())
            .build();
        // Unique among the users that have one.
        let external_id = IndexModel::builder()
            .keys(doc! { "external_id": 1 })
            .options(
                named(EXTERNAL_ID_INDEX)
                    .unique(true)
                    .partial_filter_expression(doc! { "external_id": { "$type": "string" } })
                    .build(),
            )
            .build();
        // Prefix searches of names.
        let name = IndexModel::builder()
            .keys(doc! { "name_folded": 1 })
            .options(named(NAME_INDEX).build())
            .build();
        measured(
            &self.metrics,
            "users.create_index",
            self.users.create_indexes([email, external_id, name]),
        )
        .await?;
        self.backfill_folded_names().await
    }

    /// Gives documents written before name searches their folded name.
    async fn backfill_folded_names(&self) -> Result<(), StoreError> {
        let documents = self.users.clone_with_type::<Document>();
        loop {
            let find = documents
                .find(doc! { "version": { "$exists": true }, "name_folded": { "$exists": false } })
                .projection(doc! { "name": 1 })
                .limit(1000);
            let batch: Vec<Document> = measured(&self.metrics, "users.backfill", async {
                find.await?.try_collect().await
            })
            .await?;
            if batch.is_empty() {
                return Ok(());
            }
            for document in batch {
                let name = document.get_str("name").unwrap_or_default();
                let fill = documents.update_one(
                    doc! { "_id": document.get("_id"), "name_folded": { "$exists": false } },
                    doc! { "$set": { "name_folded": fold_name(name) } },
                );
                measured(&self.metrics, "users.backfill", fill).await?;
            }
        }
    }

    /// Whether the indexes [`UserStore::ensure_indexes`] makes are there.
    pub async fn indexes_present(&self) -> Result<bool, StoreError> {
        let names = measured(
            &self.metrics,
            "users.list_indexes",
            self.users.list_index_names(),
        )
        .await;
        match names {
            Ok(names) => Ok([EMAIL_INDEX, EXTERNAL_ID_INDEX, NAME_INDEX]
                .iter()
                .all(|index| names.iter().any(|name| name == index))),
            // No collection yet, so no index either.
            Err(StoreError::Database(error)) if is_namespace_missing(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The id of some document this service did not write (it has no
    /// version), if there is one.
    pub async fn find_foreign(&self) -> Result<Option<String>, StoreError> {
        let documents = self.users.clone_with_type::<Document>();
        let find = documents
            .find_one(doc! { "version": { "$exists": false } })
            .projection(doc! { "_id": 1 });
        let found = measured(&self.metrics, "users.find_foreign", find).await?;
        Ok(found.and_then(|document| document.get("_id").map(ToString::to_string)))
    }

    /// Inserts `user` exactly as given, so the caller already holds what was
    /// stored and nothing is read back. The unique email index, not a prior
    /// lookup, decides who wins a race.
    pub async fn insert(&self, user: &User, password_hash: &StoredHash) -> Result<(), StoreError> {
        let document = UserDocument::new(user, Some(password_hash));
        measured(
            &self.metrics,
            "users.insert",
            self.users.insert_one(&document),
        )
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let find = self
            .users
            .find_one(doc! { "_id": id.object_id() })
            .projection(without_hash());
        let found = measured(&self.metrics, "users.get", find).await?;
        Ok(found.map(UserDocument::into_user))
    }

    /// The user with this email and their password hash: the one read that
    /// fetches a hash, for checking credentials. A hash that does not parse
    /// comes back as the reason it does not.
    pub async fn credentials(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<(User, Result<StoredHash, String>)>, StoreError> {
        let find = self.users.find_one(doc! { "email": email.as_str() });
        let Some(mut document) = measured(&self.metrics, "users.credentials", find).await? else {
            return Ok(None);
        };
        let hash = match document.take_hash() {
            Some(text) => StoredHash::parse(&text),
            None => Err("there is no password hash".to_owned()),
        };
        Ok(Some((document.into_user(), hash)))
    }

    /// Up to `limit` users matching `query`, after its cursor, in `_id`
    /// (creation) order either way. Every range on `_id` (the cursor, the
    /// creation bounds) is answered from the `_id` index, so a deep page
    /// costs what the first one does: nothing is skipped.
    pub async fn list(&self, query: &UserQuery, limit: u32) -> Result<Vec<User>, StoreError> {
        let mut filter = filter_of(query);
        if let Some(after) = query.after {
            let beyond = match query.order {
                Order::OldestFirst => "$gt",
                Order::NewestFirst => "$lt",
            };
            id_condition(&mut filter).insert(beyond, after.object_id());
        }
        let direction = match query.order {
            Order::OldestFirst => 1,
            Order::NewestFirst => -1,
        };
        let find = self
            .users
            .find(filter)
            .projection(without_hash())
            .sort(doc! { "_id": direction })
            .limit(i64::from(limit));
        let documents: Vec<UserDocument> = measured(&self.metrics, "users.list", async {
            find.await?.try_collect().await
        })
        .await?;
        Ok(documents.into_iter().map(UserDocument::into_user).collect())
    }

    /// How many users match `query`'s filters, whatever its cursor.
    pub async fn count(&self, query: &UserQuery) -> Result<u64, StoreError> {
        let count = self.users.count_documents(filter_of(query));
        measured(&self.metrics, "users.count", count).await
    }

    /// Applies `update` in one atomic find-and-modify, if the precondition
    /// holds, and returns the new state. The version goes up by one, and
    /// `updated_at` always moves forward, by at least a millisecond, even
    /// when two writes share a clock tick.
    pub async fn update(
        &self,
        id: UserId,
        update: UserUpdate,
        precondition: &Precondition,
    ) -> Result<Written<User>, StoreError> {
        // A pipeline update reads `$`-prefixed strings as field paths, and a
        // bcrypt hash starts with `$`, so every value goes in as a literal.
        let mut set = Document::new();
        if let Some(name) = &update.name {
            set.insert("name", doc! { "$literal": name.as_str() });
            set.insert("name_folded", doc! { "$literal": fold_name(name.as_str()) });
        }
        if let Some(email) = &update.email {
            set.insert("email", doc! { "$literal": email.as_str() });
        }
        if let Some(hash) = &update.password_hash {
            set.insert("password_hash", doc! { "$literal": hash.as_str() });
        }
        if let Some(disabled) = update.disabled {
            set.insert("disabled", doc! { "$literal": disabled });
        }
        if let Some(metadata) = &update.metadata {
            set.insert("metadata", doc! { "$literal": metadata_document(metadata) });
        }
        let mut unset = Vec::new();
        match &update.external_id {
            Some(Some(external_id)) => {
                set.insert("external_id", doc! { "$literal": external_id.as_str() });
            }
            Some(None) => unset.push("external_id"),
            None => {}
        }
        set.insert(
            "updated_at",
            doc! { "$max": [ { "$literal": DateTime::now() }, { "$add": ["$updated_at", 1] } ] },
        );
        set.insert("version", doc! { "$add": ["$version", 1] });
        let mut pipeline = vec![doc! { "$set": set }];
        if !unset.is_empty() {
            pipeline.push(doc! { "$unset": unset });
        }
        let modify = self
            .users
            .find_one_and_update(target(id, precondition), pipeline)
            .projection(without_hash())
            .return_document(ReturnDocument::After);
        match measured(&self.metrics, "users.update", modify).await? {
            Some(user) => Ok(Written::Done(user.into_user())),
            None => self.why_not_written(id).await,
        }
    }

    /// Deletes a user if the precondition holds.
    pub async fn delete(
        &self,
        id: UserId,
        precondition: &Precondition,
    ) -> Result<Written<()>, StoreError> {
        let delete = self.users.delete_one(target(id, precondition));
        let result = measured(&self.metrics, "users.delete", delete).await?;
        if result.deleted_count == 1 {
            Ok(Written::Done(()))
        } else {
            self.why_not_written(id).await
        }
    }

    /// After a conditional write matched nothing: was the user missing, or
    /// at another version? (The write itself was atomic; this only explains.)
    async fn why_not_written<T>(&self, id: UserId) -> Result<Written<T>, StoreError> {
        Ok(match self.get(id).await? {
            Some(user) => Written::Conflict {
                current: user.version,
            },
            None => Written::Missing,
        })
    }

    /// Records a successful verify: `last_verified_at` is now, the version
    /// moves (the representation changed), and, when `upgraded` is given, it
    /// replaces `old` as the hash unless the password changed since `old`
    /// was read. One write; `updated_at` stays, as no profile field changed.
    /// `None` when the user is gone.
    pub async fn record_verified(
        &self,
        id: UserId,
        old: &StoredHash,
        upgraded: Option<&StoredHash>,
    ) -> Result<Option<User>, StoreError> {
        let mut set = doc! {
            "last_verified_at": { "$literal": DateTime::now() },
            "version": { "$add": ["$version", 1] },
        };
        if let Some(new) = upgraded {
            set.insert(
                "password_hash",
                doc! { "$cond": [
                    { "$eq": ["$password_hash", { "$literal": old.as_str() }] },
                    { "$literal": new.as_str() },
                    "$password_hash",
                ] },
            );
        }
        let record = self
            .users
            .find_one_and_update(
                doc! { "_id": id.object_id(), "version": { "$exists": true } },
                vec![doc! { "$set": set }],
            )
            .projection(without_hash())
            .return_document(ReturnDocument::After);
        let user = measured(&self.metrics, "users.record_verified", record).await?;
        Ok(user.map(UserDocument::into_user))
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let admin = self.users.client().database("admin");
        measured(&self.metrics, "ping", admin.run_command(doc! { "ping": 1 })).await?;
        Ok(())
    }
}
