//! Password hashing and verification on tokio's blocking pool, so a hash
//! (tens to hundreds of milliseconds of CPU) never stalls the async workers
//! serving other requests. At most `concurrency` jobs run at once; a bounded
//! number wait, for a bounded time; past either bound the job is refused as
//! busy.
//!
//! A verification that fails takes no less than a floor: the time of a
//! bcrypt check at the configured cost, measured at startup, raised to the
//! slowest failed check seen since (up to [`MAX_FLOOR`]). So a wrong password
//! and an unknown email take the same time, whatever the stored hash's
//! format or cost. The padding is a sleep: it costs no CPU.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::{
    domain::{Password, StoredHash},
    metrics::Metrics,
    telemetry::RequestContext,
};

/// Failed verifications are not padded past this: a stored hash slower than
/// this to check still shows in the timing of its failures.
pub const MAX_FLOOR: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("every hashing slot is taken and the queue is full or too slow")]
    Busy,
    #[error("bcrypt failed")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("the hashing task did not finish")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Debug, Clone, Copy)]
pub struct HashingLimits {
    pub concurrency: usize,
    pub queue_max: usize,
    pub queue_wait: Duration,
}

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    limits: HashingLimits,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// Verified against when an email is unknown, so that answer takes as
    /// long as a wrong password does.
    dummy_hash: Arc<StoredHash>,
    /// The least time a failed verification takes, in nanoseconds.
    floor_nanos: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

/// Counts a job in the queue until it leaves it, however it leaves.
struct Queued<'a>(&'a PasswordHasher);

impl<'a> Queued<'a> {
    fn join(hasher: &'a PasswordHasher) -> Option<Self> {
        if hasher.waiting.fetch_add(1, Ordering::SeqCst) >= hasher.limits.queue_max {
            hasher.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        hasher.metrics.set_hash_queue_depth(hasher.queue_depth());
        Some(Self(hasher))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.set_hash_queue_depth(self.0.queue_depth());
    }
}

/// What a verification found, and when its work began.
struct Checked {
    matched: bool,
    started: Instant,
    took: Duration,
}

impl PasswordHasher {
    /// Builds the hasher: makes its dummy hash at `cost` (once, here) and
    /// takes the time that took as the first floor for failed checks.
    pub async fn new(
        cost: u32,
        limits: HashingLimits,
        metrics: Arc<Metrics>,
    ) -> Result<Self, HashingError> {
        let (dummy_hash, took) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let hash = bcrypt::hash("not a real password, only here for timing", cost);
            (hash, started.elapsed())
        })
        .await?;
        let hasher = Self {
            cost,
            limits,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            dummy_hash: Arc::new(StoredHash::from_bcrypt(dummy_hash?, cost)),
            floor_nanos: Arc::new(AtomicU64::new(0)),
            metrics,
        };
        hasher.raise_floor(took);
        Ok(hasher)
    }

    pub async fn hash(&self, password: &Password) -> Result<StoredHash, HashingError> {
        self.hash_secret(password.secret()).await
    }

    /// Hashes a password with bcrypt at the configured cost. The secret is
    /// at most 72 bytes: a new password by policy, or one that verified
    /// against bcrypt, or is checked by the caller.
    pub async fn hash_secret(&self, secret: &SecretString) -> Result<StoredHash, HashingError> {
        let cost = self.cost;
        let secret = secret.clone();
        // At most 72 bytes, all of which bcrypt uses: only the terminating NUL
        // falls outside its 72-byte key. (The crate's `non_truncating_hash`
        // counts that NUL and so refuses 72 bytes.)
        let hash = self
            .run(move || bcrypt::hash(secret.expose_secret(), cost))
            .await??;
        Ok(StoredHash::from_bcrypt(hash, cost))
    }

    /// Whether `attempt` matches `stored`. With no hash (unknown account) it
    /// checks against the dummy hash and answers `false`. An attempt
    /// containing NUL never matches: C-based hashers stop at it, so it could
    /// only ever match a prefix. A failed check takes at least the floor.
    pub async fn verify(
        &self,
        attempt: &SecretString,
        stored: Option<&StoredHash>,
    ) -> Result<bool, HashingError> {
        let usable = !attempt.expose_secret().contains('\0');
        let real = stored.filter(|_| usable).cloned();
        let target = real
            .clone()
            .map_or_else(|| self.dummy_hash.clone(), Arc::new);
        let format = if real.is_some() {
            target.format()
        } else {
            "dummy"
        };
        let attempt = attempt.clone();
        let checked = self
            .run(move || {
                let started = Instant::now();
                let matched = target.verify(attempt.expose_secret().as_bytes());
                Checked {
                    matched,
                    started,
                    took: started.elapsed(),
                }
            })
            .await?;
        self.metrics.count_password_verification(format);
        let matched = checked.matched && real.is_some();
        if !matched {
            self.raise_floor(checked.took);
            tokio::time::sleep_until((checked.started + self.floor()).into()).await;
        }
        Ok(matched)
    }

    /// Whether `hash` should be replaced by bcrypt at the configured cost.
    pub fn needs_upgrade(&self, hash: &StoredHash) -> bool {
        hash.needs_upgrade(self.cost)
    }

    /// The least time a failed verification takes now.
    pub fn floor(&self) -> Duration {
        Duration::from_nanos(self.floor_nanos.load(Ordering::Relaxed))
    }

    fn raise_floor(&self, took: Duration) {
        let nanos = took.min(MAX_FLOOR).as_nanos() as u64;
        let previous = self.floor_nanos.fetch_max(nanos, Ordering::Relaxed);
        self.metrics
            .set_verify_floor(Duration::from_nanos(previous.max(nanos)));
    }

    /// How many jobs run at once.
    pub fn concurrency(&self) -> usize {
        self.limits.concurrency.max(1)
    }

    /// Jobs waiting for a slot right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit = self.acquire().await?;
        let request = RequestContext::current();
        // The permit moves into the job: a slot stays taken while the hash
        // runs, even if the request that asked for it has gone away.
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match request {
                Some(request) => request.sync_scope(job),
                None => job(),
            }
        })
        .await?)
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, HashingError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.observe_hash_wait(Duration::ZERO);
                return Ok(permit);
            }
            Err(TryAcquireError::Closed) => return Err(HashingError::Busy),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _queued = Queued::join(self).ok_or(HashingError::Busy)?;
        let started = Instant::now();
        let permit =
            tokio::time::timeout(self.limits.queue_wait, self.permits.clone().acquire_owned())
                .await;
        self.metrics.observe_hash_wait(started.elapsed());
        match permit {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(HashingError::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, queue_max: usize, wait_ms: u64) -> HashingLimits {
        HashingLimits {
            concurrency,
            queue_max,
            queue_wait: Duration::from_millis(wait_ms),
        }
    }

    async fn hasher_with(cost: u32, limits: HashingLimits) -> PasswordHasher {
        PasswordHasher::new(cost, limits, Arc::default())
            .await
            .unwrap()
    }

    async fn hasher() -> PasswordHasher {
        hasher_with(4, limits(1, 8, 10_000)).await
    }

    fn password(text: &str) -> Password {
        Password::parse(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_use_the_configured_cost() {
        let hasher = hasher().await;
        let hash = hasher.hash(&password("Password@123")).await.unwrap();
        assert!(hash.as_str().starts_with("$2b$04$"), "{}", hash.as_str());
        let right = SecretString::from("Password@123");
        let wrong = SecretString::from("Password@124");
        assert!(hasher.verify(&right, Some(&hash)).await.unwrap());
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn all_72_bytes_count() {
        let hasher = hasher().await;
        let base = format!("Aa1!{}", "x".repeat(67));
        let full = format!("{base}y");
        assert_eq!(full.len(), 72);
        let hash = hasher.hash(&password(&full)).await.unwrap();
        assert!(bcrypt::verify(&full, hash.as_str()).unwrap());
        assert!(!bcrypt::verify(format!("{base}z"), hash.as_str()).unwrap());
    }

    #[tokio::test]
    async fn an_attempt_over_72_bytes_never_matches_bcrypt() {
        let hasher = hasher().await;
        let full = format!("Aa1!{}", "x".repeat(68));
        let hash = hasher.hash(&password(&full)).await.unwrap();
        // bcrypt alone would accept this: it ignores bytes past the 72nd.
        let longer = SecretString::from(format!("{full}extra"));
        assert!(bcrypt::verify(longer.expose_secret(), hash.as_str()).unwrap());
        assert!(!hasher.verify(&longer, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_attempt_with_nul_never_matches() {
        let hasher = hasher().await;
        let hash = hasher.hash(&password("Abcdef1!")).await.unwrap();
        // bcrypt repeats the key cyclically; after a NUL the repetition
        // lines up with the stored password's.
        let trick = SecretString::from("Abcdef1!\0Abcdef1!");
        assert!(!hasher.verify(&trick, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_never_matches() {
        let hasher = hasher().await;
        let attempt = SecretString::from("not a real password, only here for timing");
        assert!(!hasher.verify(&attempt, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_failure_takes_at_least_the_floor_and_raises_it() {
        let hasher = hasher().await;
        let floor = hasher.floor();
        assert!(floor > Duration::ZERO);
        let started = Instant::now();
        let wrong = SecretString::from("Password@124");
        assert!(!hasher.verify(&wrong, None).await.unwrap());
        assert!(started.elapsed() >= floor);
        hasher.raise_floor(Duration::from_millis(40));
        assert!(hasher.floor() >= Duration::from_millis(40));
        let started = Instant::now();
        assert!(!hasher.verify(&wrong, None).await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(40));
        hasher.raise_floor(Duration::from_secs(60));
        assert_eq!(hasher.floor(), MAX_FLOOR);
    }

    #[tokio::test]
    async fn knows_when_a_hash_should_be_upgraded() {
        let hasher = hasher_with(5, limits(1, 8, 10_000)).await;
        let old = StoredHash::parse(&bcrypt::hash("Password@123", 4).unwrap()).unwrap();
        let current = StoredHash::parse(&bcrypt::hash("Password@123", 5).unwrap()).unwrap();
        assert!(hasher.needs_upgrade(&old));
        assert!(!hasher.needs_upgrade(&current));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let hasher = hasher_with(4, limits(1, 1, 10_000)).await;
        let slot = hasher.permits.clone().acquire_owned().await.unwrap();
        let queued = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&password("Password@123")).await })
        };
        while hasher.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            hasher.hash(&password("Password@123")).await,
            Err(HashingError::Busy)
        ));
        drop(slot);
        assert!(queued.await.unwrap().is_ok());
        assert_eq!(hasher.queue_depth(), 0);
    }

    #[tokio::test]
    async fn waiting_too_long_is_refused() {
        let hasher = hasher_with(4, limits(1, 8, 50)).await;
        let _slot = hasher.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            hasher.hash(&password("Password@123")).await,
            Err(HashingError::Busy)
        ));
        assert_eq!(hasher.queue_depth(), 0);
    }
}
