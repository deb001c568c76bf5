//! Whether the service can do its job: the database answers and the indexes
//! it relies on exist. A background task keeps this current, retrying with
//! backoff while the database is away, so the service starts, and recovers,
//! without a restart.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock, Weak,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::{
    store::{IdempotencyStore, StoreError, UserStore},
    telemetry::ErrorChain,
};

/// What the last check of the database found.
#[derive(Debug, Clone)]
pub enum DatabaseState {
    /// Not checked yet.
    Unknown,
    Up {
        latency: Duration,
        checked_at: DateTime<Utc>,
    },
    Down {
        /// The driver's description of the failure; it names hosts, never
        /// credentials.
        error: String,
        checked_at: DateTime<Utc>,
    },
}

pub struct Readiness {
    database: RwLock<DatabaseState>,
    indexes: AtomicBool,
}

/// How often the database is checked while it answers.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Retry delays while it does not: doubling up to this.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(8);

impl Readiness {
    fn new() -> Self {
        Self {
            database: RwLock::new(DatabaseState::Unknown),
            indexes: AtomicBool::new(false),
        }
    }

    pub fn database(&self) -> DatabaseState {
        self.database
            .read()
            .map(|state| state.clone())
            .unwrap_or(DatabaseState::Unknown)
    }

    /// Whether the unique email index is known to exist. Writes wait for it:
    /// without it, two users could get the same email.
    pub fn indexes_ready(&self) -> bool {
        self.indexes.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        self.indexes_ready() && matches!(self.database(), DatabaseState::Up { .. })
    }

    fn record(&self, state: DatabaseState) {
        if let Ok(mut current) = self.database.write() {
            *current = state;
        }
    }
}

struct Checker {
    users: UserStore,
    idempotency: IdempotencyStore,
}

impl Checker {
    /// Pings the database and, once it answers, makes sure of the indexes.
    async fn check(&self, readiness: &Readiness) -> Result<(), StoreError> {
        let started = Instant::now();
        let outcome = self.users.ping().await;
        let checked_at = Utc::now();
        match outcome {
            Ok(()) => readiness.record(DatabaseState::Up {
                latency: started.elapsed(),
                checked_at,
            }),
            Err(error) => {
                readiness.record(DatabaseState::Down {
                    error: ErrorChain(&error).to_string(),
                    checked_at,
                });
                return Err(error);
            }
        }
        if !readiness.indexes_ready() {
            self.users.ensure_indexes().await?;
            self.idempotency.ensure_indexes().await?;
            readiness.indexes.store(true, Ordering::SeqCst);
            tracing::info!("database indexes are in place");
        }
        Ok(())
    }
}

/// Checks the database once, now, then keeps checking in the background for
/// as long as the returned handle is alive.
pub async fn watch(users: UserStore, idempotency: IdempotencyStore) -> Arc<Readiness> {
    let readiness = Arc::new(Readiness::new());
    let checker = Checker { users, idempotency };
    let first = checker.check(&readiness).await;
    if let Err(error) = &first {
        tracing::warn!(
            error = %ErrorChain(error),
            "the database is unreachable; serving anyway and retrying in the background"
        );
    }
    tokio::spawn(keep_checking(
        checker,
        Arc::downgrade(&readiness),
        first.is_ok(),
    ));
    readiness
}

async fn keep_checking(checker: Checker, readiness: Weak<Readiness>, mut healthy: bool) {
    let mut retry = FIRST_RETRY;
    loop {
        tokio::time::sleep(if healthy { CHECK_EVERY } else { retry }).await;
        let Some(readiness) = readiness.upgrade() else {
            return;
        };
        match checker.check(&readiness).await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("the database answers again");
                }
                healthy = true;
                retry = FIRST_RETRY;
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(error = %ErrorChain(&error), "the database stopped answering");
                }
                healthy = false;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}
