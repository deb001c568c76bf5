//! Reading the collection another service wrote, for `user-api migrate`, and
//! the bookkeeping that lets an interrupted migration resume: a marker
//! document per target, and the rename that moves the old documents aside
//! when they sit where this service keeps its own.

use futures::{Stream, TryStreamExt};
use mongodb::{
    bson::{doc, Bson, DateTime, Document},
    options::ClientOptions,
    Client, Collection, Database,
};
use serde::{Deserialize, Serialize};

use super::{users::UserDocument, StoreError};
use crate::domain::{User, UserId};

/// The `_id` of a source document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceId {
    ObjectId(UserId),
    /// A string, as the Flask service stored `str(ObjectId())`.
    Text(String),
    /// Anything else, as BSON would print it.
    Other(String),
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ObjectId(id) => write!(f, "{id}"),
            Self::Text(text) | Self::Other(text) => f.write_str(text),
        }
    }
}

/// A field of a source document: a string, or why it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextField {
    Text(String),
    Missing,
    /// Present with another BSON type, named here.
    NotText(String),
}

/// One document of the source collection, as far as a migration needs it.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    pub id: SourceId,
    pub name: TextField,
    pub email: TextField,
    /// The Flask service's `password`: a hash.
    pub password: TextField,
    /// Set when the document is already in this service's format (it has a
    /// version): the user and its hash, to carry over as they are.
    pub current: Option<(User, String)>,
    /// Fields the Flask service did not write, which are not carried over
    /// (they stay in the source).
    pub other_fields: Vec<String>,
}

fn text_field(document: &Document, name: &str) -> TextField {
    match document.get(name) {
        Some(Bson::String(text)) => TextField::Text(text.clone()),
        None => TextField::Missing,
        Some(other) => TextField::NotText(format!("{:?}", other.element_type())),
    }
}

fn source_id(id: Option<&Bson>) -> SourceId {
    match id {
        Some(Bson::ObjectId(id)) => SourceId::ObjectId(UserId::from(*id)),
        Some(Bson::String(text)) => SourceId::Text(text.clone()),
        Some(other) => SourceId::Other(other.to_string()),
        None => SourceId::Other("(none)".into()),
    }
}

impl From<Document> for SourceDocument {
    fn from(document: Document) -> Self {
        const FLASK_FIELDS: [&str; 4] = ["_id", "name", "email", "password"];
        let current = document
            .contains_key("version")
            .then(|| mongodb::bson::from_document::<UserDocument>(document.clone()).ok())
            .flatten()
            .and_then(UserDocument::into_parts);
        let other_fields = if current.is_some() {
            Vec::new()
        } else {
            document
                .keys()
                .filter(|key| !FLASK_FIELDS.contains(&key.as_str()))
                .cloned()
                .collect()
        };
        Self {
            id: source_id(document.get("_id")),
            name: text_field(&document, "name"),
            email: text_field(&document, "email"),
            password: text_field(&document, "password"),
            current,
            other_fields,
        }
    }
}

/// Where a migration reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The hosts, as the URI names them, sorted.
    pub hosts: Vec<String>,
    pub database: String,
    pub collection: String,
}

/// The collection another service wrote.
pub struct Source {
    documents: Collection<Document>,
}

impl Source {
    /// A collection of `database`, through its own client.
    pub fn in_database(database: &Database, collection: &str) -> Self {
        Self {
            documents: database.collection(collection),
        }
    }

    /// Connects to `uri`, whose path names the database, and names the
    /// collection; nothing is read yet.
    pub async fn connect(uri: &str, collection: &str) -> Result<(Self, SourceLocation), String> {
        let options = ClientOptions::parse(uri)
            .await
            .map_err(|error| format!("--from is not a valid MongoDB connection string: {error}"))?;
        let database = options.default_database.clone().ok_or_else(|| {
            "--from must name the source database in its path, such as mongodb://host/users"
                .to_owned()
        })?;
        let mut hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
        hosts.sort();
        let client = Client::with_options(options).map_err(|error| error.to_string())?;
        let source = Self {
            documents: client.database(&database).collection(collection),
        };
        let location = SourceLocation {
            hosts,
            database,
            collection: collection.to_owned(),
        };
        Ok((source, location))
    }

    /// The same client and database, another collection.
    pub fn sibling(&self, collection: &str) -> Self {
        Self {
            documents: self
                .documents
                .client()
                .database(self.documents.namespace().db.as_str())
                .collection(collection),
        }
    }

    pub fn name(&self) -> String {
        self.documents.name().to_owned()
    }

    /// Whether this collection is `database`'s `collection` reached through
    /// another connection string (`localhost` for `127.0.0.1`, another
    /// member of the replica set): its first document is there, the same,
    /// and so many documents. Reads only. An empty collection says no.
    pub async fn is_seen_as(
        &self,
        database: &Database,
        collection: &str,
    ) -> Result<bool, StoreError> {
        if self.documents.namespace().db != database.name() || self.documents.name() != collection {
            return Ok(false);
        }
        let Some(first) = self
            .documents
            .find_one(doc! {})
            .sort(doc! { "_id": 1 })
            .await?
        else {
            return Ok(false);
        };
        let Some(id) = first.get("_id") else {
            return Ok(false);
        };
        let theirs = database.collection::<Document>(collection);
        let there = theirs.find_one(doc! { "_id": id.clone() }).await?;
        // A copy elsewhere that has diverged (more or fewer documents) is
        // not taken for this one; an identical copy would migrate the same.
        Ok(there.as_ref() == Some(&first)
            && theirs.count_documents(doc! {}).await?
                == self.documents.count_documents(doc! {}).await?)
    }

    pub async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.documents.estimated_document_count().await?)
    }

    /// Whether any document lacks a version, that is, was not written by this
    /// service.
    pub async fn has_foreign(&self) -> Result<bool, StoreError> {
        let found = self
            .documents
            .find_one(doc! { "version": { "$exists": false } })
            .projection(doc! { "_id": 1 })
            .await?;
        Ok(found.is_some())
    }

    /// Every document's id and email, in `_id` order: the first pass, which
    /// finds emails that collide.
    pub async fn emails(
        &self,
    ) -> Result<impl Stream<Item = Result<(SourceId, TextField), StoreError>>, StoreError> {
        let cursor = self
            .documents
            .find(doc! {})
            .projection(doc! { "email": 1 })
            .sort(doc! { "_id": 1 })
            .await?;
        Ok(cursor
            .map_ok(|document| {
                (
                    source_id(document.get("_id")),
                    text_field(&document, "email"),
                )
            })
            .map_err(StoreError::from))
    }

    /// Every document, in `_id` order.
    pub async fn documents(
        &self,
    ) -> Result<impl Stream<Item = Result<SourceDocument, StoreError>>, StoreError> {
        let cursor = self.documents.find(doc! {}).sort(doc! { "_id": 1 }).await?;
        Ok(cursor
            .map_ok(SourceDocument::from)
            .map_err(StoreError::from))
    }

    /// Renames this collection to `to` in the same database: one atomic
    /// command, so the documents are either all here or all there.
    pub async fn rename_to(&self, to: &str) -> Result<(), StoreError> {
        let namespace = self.documents.namespace();
        let admin = self.documents.client().database("admin");
        admin
            .run_command(doc! {
                "renameCollection": format!("{}.{}", namespace.db, namespace.coll),
                "to": format!("{}.{to}", namespace.db),
            })
            .await?;
        Ok(())
    }

    pub async fn exists(&self) -> Result<bool, StoreError> {
        let namespace = self.documents.namespace();
        let names = self
            .documents
            .client()
            .database(&namespace.db)
            .list_collection_names()
            .filter(doc! { "name": &namespace.coll })
            .await?;
        Ok(!names.is_empty())
    }
}

const MARKERS: &str = "migrations";

/// How far a migration into a collection got, kept in the target database
/// so that a migration interrupted at any point resumes where it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    /// The target collection.
    #[serde(rename = "_id")]
    pub target: String,
    /// Where the documents were moved aside to (same-database migrations).
    pub moved_to: String,
    pub done: bool,
    pub started_at: DateTime,
}

pub struct Markers {
    markers: Collection<Marker>,
}

impl Markers {
    pub fn new(database: &Database) -> Self {
        Self {
            markers: database.collection(MARKERS),
        }
    }

    pub async fn find(&self, target: &str) -> Result<Option<Marker>, StoreError> {
        Ok(self.markers.find_one(doc! { "_id": target }).await?)
    }

    /// Records, before anything moves, where the documents will go.
    pub async fn begin(&self, target: &str, moved_to: &str) -> Result<Marker, StoreError> {
        let marker = Marker {
            target: target.to_owned(),
            moved_to: moved_to.to_owned(),
            done: false,
            started_at: DateTime::now(),
        };
        self.markers
            .replace_one(doc! { "_id": target }, &marker)
            .upsert(true)
            .await?;
        Ok(marker)
    }

    pub async fn finish(&self, target: &str) -> Result<(), StoreError> {
        self.markers
            .update_one(doc! { "_id": target }, doc! { "$set": { "done": true } })
            .await?;
        Ok(())
    }
}

impl UserDocument {
    /// The user and its hash, if the document has one.
    fn into_parts(mut self) -> Option<(User, String)> {
        let hash = self.take_hash()?;
        Some((self.into_user(), hash))
    }
}
