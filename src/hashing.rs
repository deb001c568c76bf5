//! bcrypt hashing on tokio's blocking pool, so a hash (tens to hundreds of
//! milliseconds of CPU) never stalls the async workers serving other requests.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Span;

use crate::domain::{Password, PasswordHash};

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("bcrypt failed")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("the hashing task did not finish")]
    Task(#[from] tokio::task::JoinError),
    #[error("the hashing pool is closed")]
    Closed(#[from] tokio::sync::AcquireError),
}

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// One permit per concurrent hash: more would only queue on the CPU.
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(cost: u32, concurrency: usize) -> Self {
        Self {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    pub async fn hash(&self, password: Password) -> Result<PasswordHash, HashingError> {
        let _permit = self.permits.acquire().await?;
        let cost = self.cost;
        let span = Span::current();
        // `Password` holds at most 72 bytes, all of which bcrypt uses: only the
        // terminating NUL falls outside its 72-byte key. (The crate's
        // `non_truncating_hash` counts that NUL and so refuses 72 bytes.)
        let hash = tokio::task::spawn_blocking(move || {
            span.in_scope(|| bcrypt::hash(password.expose(), cost))
        })
        .await??;
        Ok(PasswordHash::new(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_the_configured_cost() {
        let hasher = PasswordHasher::new(4, 1);
        let password = Password::parse("Password@123".into()).unwrap();
        let hash = hasher.hash(password).await.unwrap();
        assert!(hash.as_str().starts_with("$2b$04$"), "{}", hash.as_str());
        assert!(bcrypt::verify("Password@123", hash.as_str()).unwrap());
        assert!(!bcrypt::verify("Password@124", hash.as_str()).unwrap());
    }

    #[tokio::test]
    async fn all_72_bytes_count() {
        let hasher = PasswordHasher::new(4, 1);
        let base = format!("Aa1!{}", "x".repeat(67));
        let full = format!("{base}y");
        assert_eq!(full.len(), 72);
        let hash = hasher
            .hash(Password::parse(full.clone()).unwrap())
            .await
            .unwrap();
        assert!(bcrypt::verify(&full, hash.as_str()).unwrap());
        assert!(!bcrypt::verify(format!("{base}z"), hash.as_str()).unwrap());
    }
}
