//! Persistence in MongoDB. Everything the service stores goes through here.

mod users;

pub use users::{ListQuery, StoreError, UserRecord, UserStore, UserUpdate};
