//! Persistence in MongoDB. Everything the service stores goes through here.

mod batch;
mod error;
mod idempotency;
mod legacy;
mod lockout;
mod users;

pub use batch::BatchOutcome;
pub use error::{Duplicate, StoreError};
pub use idempotency::{Claimed, IdempotencyRecord, IdempotencyStore};
pub use legacy::{Markers, Source, SourceDocument, SourceId, SourceLocation, TextField};
pub use lockout::{LockoutPolicy, LockoutStore, Reservation, MAX_LOCKOUT};
pub use users::{UserStore, UserUpdate, Written, COLLECTION as USERS_COLLECTION};

use std::{future::IntoFuture, time::Instant};

use crate::metrics::Metrics;

/// Runs one database operation, recording its latency and any failure.
async fn measured<T>(
    metrics: &Metrics,
    operation: &'static str,
    work: impl IntoFuture<Output = mongodb::error::Result<T>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = work.into_future().await;
    metrics.observe_database(operation, result.is_err(), started.elapsed());
    result.map_err(StoreError::from)
}
