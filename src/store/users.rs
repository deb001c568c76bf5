use futures::TryStreamExt;
use mongodb::{
    bson::{doc, oid::ObjectId, DateTime, Document},
    error::{ErrorKind, WriteFailure},
    options::{IndexOptions, ReturnDocument},
    Collection, Database, IndexModel,
};
use serde::{Deserialize, Serialize};

use crate::domain::{EmailAddress, PasswordHash, UserId, UserName};

const COLLECTION: &str = "users";
const EMAIL_INDEX: &str = "email_unique";
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another user already has this email")]
    EmailTaken,
    #[error("database error")]
    Database(#[from] mongodb::error::Error),
}

/// A user as stored, hash included. Only ever written whole; reads project
/// the hash away, except the one that checks credentials.
/// (Fields are spelled out: bson's dates and ids do not survive
/// `#[serde(flatten)]`.)
#[derive(Serialize, Deserialize)]
struct UserDocument {
    #[serde(rename = "_id")]
    id: ObjectId,
    name: String,
    email: String,
    password_hash: String,
    created_at: DateTime,
    updated_at: DateTime,
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
        }
    }

    fn split(self) -> (UserRecord, String) {
        let user = UserRecord {
            id: self.id,
            name: self.name,
            email: self.email,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        (user, self.password_hash)
    }
}

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
        }
    }
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub name: Option<UserName>,
    pub email: Option<EmailAddress>,
    pub password_hash: Option<PasswordHash>,
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
}

fn without_hash() -> Document {
    doc! { "password_hash": 0 }
}

impl UserStore {
    pub fn new(database: &Database) -> Self {
        Self {
            users: database.collection(COLLECTION),
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
        self.users.create_index(email).await?;
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
        self.users
            .clone_with_type::<UserDocument>()
            .insert_one(&document)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The user with this email and their password hash: the one read that
    /// fetches a hash, for checking credentials.
    pub async fn credentials(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<(UserRecord, String)>, StoreError> {
        let document = self
            .users
            .clone_with_type::<UserDocument>()
            .find_one(doc! { "email": email.as_str() })
            .await?;
        Ok(document.map(UserDocument::split))
    }

    /// Swaps in a stronger hash of the same password, unless the password
    /// changed since `old` was read. Not a profile change: `updated_at` stays.
    pub async fn upgrade_hash(
        &self,
        id: UserId,
        old: &str,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let result = self
            .users
            .update_one(
                doc! { "_id": id.object_id(), "password_hash": old },
                doc! { "$set": { "password_hash": new.as_str() } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    pub async fn get(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users
            .find_one(doc! { "_id": id.object_id() })
            .projection(without_hash())
            .await?)
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
        let cursor = self
            .users
            .find(filter)
            .projection(without_hash())
            .sort(doc! { "_id": 1 })
            .limit(i64::from(query.limit))
            .await?;
        Ok(cursor.try_collect().await?)
    }

    /// Applies `update` in one atomic find-and-modify and returns the new state,
    /// or `None` when no user has this id. `updated_at` always moves forward,
    /// by at least a millisecond, even when two writes share a clock tick.
    pub async fn update(
        &self,
        id: UserId,
        update: UserUpdate,
    ) -> Result<Option<UserRecord>, StoreError> {
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
        self.users
            .find_one_and_update(doc! { "_id": id.object_id() }, vec![doc! { "$set": set }])
            .projection(without_hash())
            .return_document(ReturnDocument::After)
            .await
            .map_err(classify)
    }

    /// Deletes a user; `false` when no user has this id.
    pub async fn delete(&self, id: UserId) -> Result<bool, StoreError> {
        let result = self
            .users
            .delete_one(doc! { "_id": id.object_id() })
            .await?;
        Ok(result.deleted_count == 1)
    }
}

/// Maps a duplicate key on the only unique index, email, to its own error.
fn classify(error: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&error) {
        StoreError::EmailTaken
    } else {
        StoreError::Database(error)
    }
}

pub(super) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    let code = match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    };
    code == Some(DUPLICATE_KEY)
}
