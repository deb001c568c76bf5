//! Persistence in MongoDB. Everything the service stores goes through here.

mod error;
mod idempotency;
mod users;

pub use error::StoreError;
pub use idempotency::{IdempotencyRecord, IdempotencyStore};
pub use users::{ListQuery, UserStore, UserUpdate, Written};

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
