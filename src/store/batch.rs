//! Many users written at once, each with its own outcome: for imports and
//! for `user-api migrate`. A user whose id or email is taken is reported as
//! such and never half-written; the others go in.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::{
    bson::{doc, oid::ObjectId, Document},
    error::ErrorKind,
};

use super::{error::DUPLICATE_KEY, measured, users::UserDocument, StoreError, UserStore};
use crate::domain::{StoredHash, User};

/// What became of one user of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    Created,
    /// A user with this id and this email is already stored: a re-run.
    AlreadyThere,
    /// Another user (another id) has this email.
    EmailTaken,
    /// A user with this id has another email.
    IdTaken,
    /// Another user has this external id.
    ExternalIdTaken,
}

impl UserStore {
    /// Inserts every user it can, in one round trip, and says what became of
    /// each, in order.
    pub async fn insert_batch(
        &self,
        users: &[(User, StoredHash)],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let documents: Vec<UserDocument> = users
            .iter()
            .map(|(user, hash)| UserDocument::new(user, Some(hash)))
            .collect();
        let insert = self.users.insert_many(&documents).ordered(false);
        let mut outcomes = vec![BatchOutcome::Created; users.len()];
        let failed: Vec<usize> = match measured(&self.metrics, "users.insert_batch", insert).await {
            Ok(_) => return Ok(outcomes),
            Err(StoreError::Database(error)) => duplicates(&error)?,
            Err(other) => return Err(other),
        };
        let conflicts: Vec<&User> = failed.iter().map(|&i| &users[i].0).collect();
        for (i, outcome) in failed.iter().zip(self.classify(&conflicts).await?) {
            outcomes[*i] = outcome.unwrap_or(BatchOutcome::EmailTaken);
        }
        Ok(outcomes)
    }

    /// What inserting each of `users` would meet among the service's users
    /// (documents another service wrote are not users yet): `None` where
    /// nothing is in the way. Two or three queries, whatever the number of
    /// users.
    pub async fn classify(&self, users: &[&User]) -> Result<Vec<Option<BatchOutcome>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<ObjectId> = users.iter().map(|user| user.id.object_id()).collect();
        let emails: Vec<&str> = users.iter().map(|user| user.email.as_str()).collect();
        let external_ids: Vec<&str> = users
            .iter()
            .filter_map(|user| user.external_id.as_ref().map(|id| id.as_str()))
            .collect();
        let documents = self.users.clone_with_type::<Document>();
        let by_id = documents
            .find(doc! { "_id": { "$in": ids }, "version": { "$exists": true } })
            .projection(doc! { "email": 1 });
        let by_id: HashMap<ObjectId, String> = measured(&self.metrics, "users.classify", async {
            by_id.await?.try_collect::<Vec<Document>>().await
        })
        .await?
        .into_iter()
        .filter_map(|found| {
            let id = found.get_object_id("_id").ok()?;
            Some((id, found.get_str("email").unwrap_or_default().to_owned()))
        })
        .collect();
        let by_email = documents
            .find(doc! { "email": { "$in": emails }, "version": { "$exists": true } })
            .projection(doc! { "email": 1 });
        let by_email: HashMap<String, String> = measured(&self.metrics, "users.classify", async {
            by_email.await?.try_collect::<Vec<Document>>().await
        })
        .await?
        .into_iter()
        .filter_map(|found| {
            let email = found.get_str("email").ok()?.to_owned();
            Some((email, found.get("_id")?.to_string()))
        })
        .collect();
        let by_external_id: HashMap<String, ObjectId> = if external_ids.is_empty() {
            HashMap::new()
        } else {
            let find = documents
                .find(
                    doc! { "external_id": { "$in": external_ids }, "version": { "$exists": true } },
                )
                .projection(doc! { "external_id": 1 });
            measured(&self.metrics, "users.classify", async {
                find.await?.try_collect::<Vec<Document>>().await
            })
            .await?
            .into_iter()
            .filter_map(|found| {
                Some((
                    found.get_str("external_id").ok()?.to_owned(),
                    found.get_object_id("_id").ok()?,
                ))
            })
            .collect()
        };
        Ok(users
            .iter()
            .map(|user| match by_id.get(&user.id.object_id()) {
                Some(email) if *email == user.email => Some(BatchOutcome::AlreadyThere),
                Some(_) => Some(BatchOutcome::IdTaken),
                None if by_email.contains_key(&user.email) => Some(BatchOutcome::EmailTaken),
                None => user
                    .external_id
                    .as_ref()
                    .and_then(|id| by_external_id.get(id.as_str()))
                    .filter(|owner| **owner != user.id.object_id())
                    .map(|_| BatchOutcome::ExternalIdTaken),
            })
            .collect())
    }
}

/// The positions of the documents an unordered insert refused as
/// duplicates; any other failure is an error.
fn duplicates(error: &mongodb::error::Error) -> Result<Vec<usize>, StoreError> {
    let ErrorKind::InsertMany(failure) = error.kind.as_ref() else {
        return Err(StoreError::Database(error.clone()));
    };
    if failure.write_concern_error.is_some() {
        return Err(StoreError::Database(error.clone()));
    }
    let write_errors = failure.write_errors.as_deref().unwrap_or_default();
    if write_errors.iter().any(|e| e.code != DUPLICATE_KEY) {
        return Err(StoreError::Database(error.clone()));
    }
    Ok(write_errors.iter().map(|e| e.index).collect())
}
