use std::sync::Arc;

use futures::TryStreamExt;
use mongodb::{
    bson::{doc, oid::ObjectId, DateTime, Document},
    options::{IndexOptions, ReturnDocument},
    Collection, Database, IndexModel,
};
use serde::{Deserialize, Serialize};

use super::{measured, StoreError};
use crate::{
    domain::{EmailAddress, PasswordHash, UserId, UserName},
    metrics::Metrics,
};

const COLLECTION: &str = "users";
const EMAIL_INDEX: &str = "email_unique";

/// A user as read: every read projects the password hash away, so it never
/// leaves the database on a read path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub name: String,
    pub email: String,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    /// Starts at 1 and goes up by one with every write.
    pub version: i64,
}

impl UserRecord {
    /// A user about to be created now.
    pub fn new(id: UserId, name: &UserName, email: &EmailAddress) -> Self {
        let now = DateTime::now();
        Self {
            id: id.object_id(),
            name: name.as_str().to_owned(),
            email: email.as_str().to_owned(),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

/// A user as stored, hash included. Only ever written whole; reads project
/// the hash away, except the one that checks credentials. (The fields are
/// spelled out: bson's dates and ids do not survive `#[serde(flatten)]`.)
#[derive(Serialize, Deserialize)]
struct UserDocument {
    #[serde(rename = "_id")]
    id: ObjectId,
    name: String,
    email: String,
    password_hash: String,
    created_at: DateTime,
    updated_at: DateTime,
    version: i64,
}

impl UserDocument {
    fn new(user: &UserRecord, password_hash: &PasswordHash) -> Self {
        Self {
            id: user.id,
            name: user.name.clone(),
            email: user.email.clone(),
            password_hash: password_hash.as_str().to_owned(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            version: user.version,
        }
    }

    fn split(self) -> (UserRecord, String) {
        let user = UserRecord {
            id: self.id,
            name: self.name,
            email: self.email,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        };
        (user, self.password_hash)
    }
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub name: Option<UserName>,
    pub email: Option<EmailAddress>,
    pub password_hash: Option<PasswordHash>,
}

/// A write's precondition on the stored version: `None` writes whatever the
/// version is; otherwise the version must be one of these.
pub type Expected = Option<Vec<i64>>;

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

/// One page of users in `_id` (creation) order.
#[derive(Debug)]
pub struct ListQuery {
    pub email: Option<EmailAddress>,
    pub after: Option<UserId>,
    pub limit: u32,
}

#[derive(Clone)]
pub struct UserStore {
    users: Collection<UserRecord>,
    metrics: Arc<Metrics>,
}

fn without_hash() -> Document {
    doc! { "password_hash": 0 }
}

/// The filter for "this user, at one of these versions".
fn target(id: UserId, expected: &Expected) -> Document {
    let mut filter = doc! { "_id": id.object_id() };
    if let Some(versions) = expected {
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
        let email = IndexModel::builder()
            .keys(doc! { "email": 1 })
            .options(
                IndexOptions::builder()
                    .name(EMAIL_INDEX.to_owned())
                    .unique(true)
                    .build(),
            )
            .build();
        measured(
            &self.metrics,
            "users.create_index",
            self.users.create_index(email),
        )
        .await?;
        Ok(())
    }

    /// Inserts `user` exactly as given, so the caller already holds what was
    /// stored and nothing is read back. The unique email index, not a prior
    /// lookup, decides who wins a race.
    pub async fn insert(
        &self,
        user: &UserRecord,
        password_hash: &PasswordHash,
    ) -> Result<(), StoreError> {
        let document = UserDocument::new(user, password_hash);
        let users = self.users.clone_with_type::<UserDocument>();
        measured(&self.metrics, "users.insert", users.insert_one(&document)).await?;
        Ok(())
    }

    pub async fn get(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let find = self
            .users
            .find_one(doc! { "_id": id.object_id() })
            .projection(without_hash());
        measured(&self.metrics, "users.get", find).await
    }

    /// The user with this email and their password hash: the one read that
    /// fetches a hash, for checking credentials.
    pub async fn credentials(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<(UserRecord, String)>, StoreError> {
        let users = self.users.clone_with_type::<UserDocument>();
        let find = users.find_one(doc! { "email": email.as_str() });
        let document = measured(&self.metrics, "users.credentials", find).await?;
        Ok(document.map(UserDocument::split))
    }

    /// Up to `limit` users after the cursor, in `_id` order. The range on `_id`
    /// is answered from the `_id` index, so a deep page costs what the first
    /// one does: nothing is skipped.
    pub async fn list(&self, query: ListQuery) -> Result<Vec<UserRecord>, StoreError> {
        let mut filter = Document::new();
        if let Some(email) = &query.email {
            filter.insert("email", email.as_str());
        }
        if let Some(after) = query.after {
            filter.insert("_id", doc! { "$gt": after.object_id() });
        }
        let find = self
            .users
            .find(filter)
            .projection(without_hash())
            .sort(doc! { "_id": 1 })
            .limit(i64::from(query.limit));
        measured(&self.metrics, "users.list", async {
            find.await?.try_collect().await
        })
        .await
    }

    /// Applies `update` in one atomic find-and-modify, if the user is at an
    /// expected version, and returns the new state. The version goes up by
    /// one, and `updated_at` always moves forward, by at least a millisecond,
    /// even when two writes share a clock tick.
    pub async fn update(
        &self,
        id: UserId,
        update: UserUpdate,
        expected: &Expected,
    ) -> Result<Written<UserRecord>, StoreError> {
        // A pipeline update reads `$`-prefixed strings as field paths, and a
        // bcrypt hash starts with `$`, so every value goes in as a literal.
        let mut set = Document::new();
        if let Some(name) = &update.name {
            set.insert("name", doc! { "$literal": name.as_str() });
        }
        if let Some(email) = &update.email {
            set.insert("email", doc! { "$literal": email.as_str() });
        }
        if let Some(hash) = &update.password_hash {
            set.insert("password_hash", doc! { "$literal": hash.as_str() });
        }
        set.insert(
            "updated_at",
            doc! { "$max": [ { "$literal": DateTime::now() }, { "$add": ["$updated_at", 1] } ] },
        );
        set.insert("version", doc! { "$add": ["$version", 1] });
        let modify = self
            .users
            .find_one_and_update(target(id, expected), vec![doc! { "$set": set }])
            .projection(without_hash())
            .return_document(ReturnDocument::After);
        match measured(&self.metrics, "users.update", modify).await? {
            Some(user) => Ok(Written::Done(user)),
            None => self.why_not_written(id).await,
        }
    }

    /// Deletes a user if it is at an expected version.
    pub async fn delete(&self, id: UserId, expected: &Expected) -> Result<Written<()>, StoreError> {
        let delete = self.users.delete_one(target(id, expected));
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

    /// Swaps in a stronger hash of the same password, unless the password
    /// changed since `old` was read. Not a change to the user as others see
    /// it: neither `updated_at` nor the version moves.
    pub async fn upgrade_hash(
        &self,
        id: UserId,
        old: &str,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let upgrade = self.users.update_one(
            doc! { "_id": id.object_id(), "password_hash": old },
            doc! { "$set": { "password_hash": new.as_str() } },
        );
        let result = measured(&self.metrics, "users.upgrade_hash", upgrade).await?;
        Ok(result.modified_count == 1)
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let admin = self.users.client().database("admin");
        measured(&self.metrics, "ping", admin.run_command(doc! { "ping": 1 })).await?;
        Ok(())
    }
}
