//! Persistence in MongoDB. Everything the service stores goes through here.

mod idempotency;
mod users;

pub use idempotency::{IdempotencyRecord, IdempotencyStore};
pub use users::{ListQuery, StoreError, UserRecord, UserStore, UserUpdate};
