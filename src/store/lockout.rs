//! Brute-force protection for `POST /user/verify`, kept in MongoDB so that
//! the limit holds across every instance: failed attempts are counted per
//! email (whether or not a user has it), and past a threshold the email is
//! locked out for a while.
//!
//! An attempt is reserved, atomically and before any password is checked,
//! by one find-and-modify whose pipeline counts it or refuses it: parallel
//! guesses cannot slip past the threshold between a check and a count. The
//! times are the database's (`$$NOW`), so instances with skewed clocks
//! agree. A success deletes the record. A TTL index removes records once
//! their window and lockout are over.

use std::{sync::Arc, time::Duration};

use mongodb::{
    bson::{doc, Bson, Document},
    options::{IndexOptions, ReturnDocument},
    Collection, Database, IndexModel,
};
use sha2::{Digest, Sha256};

use super::{error::is_namespace_missing, measured, StoreError};
use crate::{domain::EmailAddress, metrics::Metrics};

const COLLECTION: &str = "verify_failures";
const EXPIRY_INDEX: &str = "expire_when_over";
/// No lockout lasts longer than this, however often it doubled.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);

/// When attempts are refused.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Failures within the window after which the email is locked out; 0
    /// turns the protection off.
    pub threshold: u32,
    pub window: Duration,
    /// The first lockout's length; each further one within the window
    /// doubles it, up to [`MAX_LOCKOUT`].
    pub lockout: Duration,
}

/// Whether an attempt may check a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted: it may go ahead.
    Granted,
    /// The email is locked out for this much longer.
    Refused { retry_after: Duration },
}

#[derive(Clone)]
pub struct LockoutStore {
    records: Collection<Document>,
    policy: LockoutPolicy,
    metrics: Arc<Metrics>,
}

/// The record's key: a digest of the normalized email, so the collection
/// holds no addresses.
fn key(email: &EmailAddress) -> String {
    Sha256::digest(email.as_str().as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl LockoutStore {
    pub fn new(database: &Database, policy: LockoutPolicy, metrics: Arc<Metrics>) -> Self {
        Self {
            records: database.collection(COLLECTION),
            policy,
            metrics,
        }
    }

    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let expiry = IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(
                IndexOptions::builder()
                    .name(EXPIRY_INDEX.to_owned())
                    .expire_after(Duration::ZERO)
                    .build(),
            )
            .build();
        measured(
            &self.metrics,
            "lockout.create_index",
            self.records.create_index(expiry),
        )
        .await?;
        Ok(())
    }

    pub async fn indexes_present(&self) -> Result<bool, StoreError> {
        let names = measured(
            &self.metrics,
            "lockout.list_indexes",
            self.records.list_index_names(),
        )
        .await;
        match names {
            Ok(names) => Ok(names.iter().any(|name| name == EXPIRY_INDEX)),
            Err(StoreError::Database(error)) if is_namespace_missing(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Counts an attempt at `email`'s password, or refuses it while the
    /// email is locked out. One atomic operation; see the module's notes.
    pub async fn reserve(&self, email: &EmailAddress) -> Result<Reservation, StoreError> {
        if self.policy.threshold == 0 {
            return Ok(Reservation::Granted);
        }
        let pipeline = self.reservation();
        // Two first attempts can race to insert the record; the loser's
        // upsert fails on the unique _id and simply runs again.
        for _ in 0..3 {
            let reserve = self
                .records
                .find_one_and_update(doc! { "_id": key(email) }, pipeline.clone())
                .upsert(true)
                .return_document(ReturnDocument::After);
            match measured(&self.metrics, "lockout.reserve", reserve).await {
                Ok(Some(record)) => return Ok(reservation_of(&record)),
                Ok(None) => return Ok(Reservation::Granted),
                // A duplicate key: the other request's insert won.
                Err(StoreError::Duplicate(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Encoding(
            "could not reserve a verify attempt after three tries".into(),
        ))
    }

    /// Forgets `email`'s failures: a success, or an administrator's reset.
    pub async fn clear(&self, email: &EmailAddress) -> Result<(), StoreError> {
        let clear = self.records.delete_one(doc! { "_id": key(email) });
        measured(&self.metrics, "lockout.clear", clear).await?;
        Ok(())
    }

    /// The pipeline that counts or refuses one attempt. Times are numbers
    /// of milliseconds, `now` is the database's.
    fn reservation(&self) -> Vec<Document> {
        let millis = |duration: Duration| duration.as_millis() as i64;
        let window = millis(self.policy.window);
        let threshold = i64::from(self.policy.threshold);
        vec![
            doc! { "$set": { "_now": { "$toLong": "$$NOW" } } },
            doc! { "$set": {
                // The window starts at the first failure and lasts `window`.
                "_fresh": { "$lte": [
                    { "$add": [{ "$ifNull": ["$window_started", 0] }, window] }, "$_now",
                ] },
                "_locked": { "$gt": [{ "$ifNull": ["$locked_until", 0] }, "$_now"] },
            } },
            doc! { "$set": {
                "attempts": { "$cond": ["$_fresh", 0, { "$ifNull": ["$attempts", 0] }] },
                "lockouts": { "$cond": ["$_fresh", 0, { "$ifNull": ["$lockouts", 0] }] },
                "window_started": { "$cond": ["$_fresh", "$_now", "$window_started"] },
            } },
            doc! { "$set": {
                "_lock_now": { "$and": [
                    { "$not": ["$_locked"] }, { "$gte": ["$attempts", threshold] },
                ] },
            } },
            doc! { "$set": {
                "locked_until": { "$cond": [
                    "$_lock_now",
                    { "$add": ["$_now", { "$min": [
                        { "$multiply": [
                            millis(self.policy.lockout), { "$pow": [2, "$lockouts"] },
                        ] },
                        millis(MAX_LOCKOUT),
                    ] }] },
                    { "$ifNull": ["$locked_until", 0] },
                ] },
                "lockouts": { "$cond": ["$_lock_now", { "$add": ["$lockouts", 1] }, "$lockouts"] },
                "attempts": { "$cond": [
                    "$_lock_now", 0,
                    { "$cond": ["$_locked", "$attempts", { "$add": ["$attempts", 1] }] },
                ] },
                "refused": { "$or": ["$_locked", "$_lock_now"] },
            } },
            doc! { "$set": {
                "retry_after_ms": { "$cond": [
                    "$refused", { "$subtract": ["$locked_until", "$_now"] }, 0,
                ] },
                "expires_at": { "$toDate": { "$max": [
                    "$locked_until", { "$add": ["$window_started", window] },
                ] } },
            } },
            doc! { "$unset": ["_now", "_fresh", "_locked", "_lock_now"] },
        ]
    }
}

fn reservation_of(record: &Document) -> Reservation {
    if !record.get_bool("refused").unwrap_or(false) {
        return Reservation::Granted;
    }
    let retry_after_ms = match record.get("retry_after_ms") {
        Some(Bson::Int64(ms)) => *ms,
        Some(Bson::Int32(ms)) => i64::from(*ms),
        Some(Bson::Double(ms)) => *ms as i64,
        _ => 0,
    };
    Reservation::Refused {
        retry_after: Duration::from_millis(retry_after_ms.max(1) as u64),
    }
}
