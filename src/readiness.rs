//! Whether the service can do its job: the database answers, the indexes it
//! relies on exist, and it holds no documents another service wrote. A
//! background task keeps this current, retrying with backoff while the
//! database is away, so the service starts, and recovers, without a restart.
//!
//! The indexes are confirmed on every check, not once: a database restored
//! from a backup, or a dropped index, must stop writes (which would let two
//! users share an email) until the index is back.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock, Weak,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::{
    store::{IdempotencyStore, LockoutStore, StoreError, UserStore},
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

/// Why the service is not ready, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The service has just started and not checked yet.
    NotChecked,
    DatabaseUnreachable,
    /// The indexes are being confirmed or created.
    IndexesPending,
    /// Creating an index failed, for example over duplicate emails.
    IndexesFailed,
    /// The user collection holds documents another service wrote; `user-api
    /// migrate` adopts them.
    LegacyDocuments,
}

#[derive(Default)]
pub struct Readiness {
    database: RwLock<Option<DatabaseState>>,
    indexes: AtomicBool,
    /// The last index failure, to report.
    index_failure: RwLock<Option<String>>,
    legacy: AtomicBool,
    /// The database has been looked at for foreign documents at least once,
    /// so `legacy` says whether it holds some.
    legacy_known: AtomicBool,
}

/// How often the database is checked while it answers.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Retry delays while it does not: doubling up to this.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(8);

impl Readiness {
    pub fn database(&self) -> DatabaseState {
        self.database
            .read()
            .ok()
            .and_then(|state| state.clone())
            .unwrap_or(DatabaseState::Unknown)
    }

    /// Whether writes may go ahead: the unique indexes are confirmed, and no
    /// document of another service's makes uniqueness uncertain.
    pub fn writable(&self) -> bool {
        self.indexes.load(Ordering::SeqCst) && !self.legacy.load(Ordering::SeqCst)
    }

    /// Whether the database has been looked at for foreign documents yet:
    /// until it has, a user that is not found may be one of them.
    pub fn legacy_known(&self) -> bool {
        self.legacy_known.load(Ordering::SeqCst)
    }

    pub fn indexes_ready(&self) -> bool {
        self.indexes.load(Ordering::SeqCst)
    }

    /// Why the service is not ready, or `None` when it is.
    pub fn not_ready(&self) -> Option<NotReady> {
        match self.database() {
            DatabaseState::Unknown => return Some(NotReady::NotChecked),
            DatabaseState::Down { .. } => return Some(NotReady::DatabaseUnreachable),
            DatabaseState::Up { .. } => {}
        }
        if self.legacy.load(Ordering::SeqCst) {
            Some(NotReady::LegacyDocuments)
        } else if self.indexes_ready() {
            None
        } else if self.index_failure().is_some() {
            Some(NotReady::IndexesFailed)
        } else {
            Some(NotReady::IndexesPending)
        }
    }

    /// Why the last attempt to create the indexes failed, if it did.
    pub fn index_failure(&self) -> Option<String> {
        self.index_failure.read().ok().and_then(|f| f.clone())
    }

    fn record(&self, state: DatabaseState) {
        if let Ok(mut current) = self.database.write() {
            *current = Some(state);
        }
    }

    fn record_index_failure(&self, failure: Option<String>) {
        if let Ok(mut current) = self.index_failure.write() {
            *current = failure;
        }
    }
}

/// Why a check found the database unusable.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// It took the connection but did not answer: a hung server, or a
    /// proxy with nothing behind it. The driver has no time limit of its own
    /// for a command on a connection it already holds.
    #[error("the database did not answer a ping within {} ms", .0.as_millis())]
    NoAnswer(Duration),
}

struct Checker {
    users: UserStore,
    idempotency: IdempotencyStore,
    lockout: LockoutStore,
    /// How long a ping may take before the database counts as down.
    ping_limit: Duration,
    /// Whether the collection is known to hold no foreign documents since
    /// the database last came up. Looking costs a collection scan when there
    /// are none, so it is done once per time the database comes up, and
    /// again on every check while there are some (each then stops at the
    /// first one).
    legacy_free: AtomicBool,
}

impl Checker {
    /// Pings the database and, once it answers, looks for foreign documents
    /// and makes sure of the indexes.
    async fn check(&self, readiness: &Readiness) -> Result<(), CheckError> {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.ping_limit, self.users.ping()).await {
            Ok(answered) => answered.map_err(CheckError::from),
            Err(_elapsed) => Err(CheckError::NoAnswer(self.ping_limit)),
        };
        let checked_at = Utc::now();
        if let Err(error) = outcome {
            readiness.record(DatabaseState::Down {
                error: ErrorChain(&error).to_string(),
                checked_at,
            });
            // Whatever comes back may be another database: confirm again.
            readiness.indexes.store(false, Ordering::SeqCst);
            self.legacy_free.store(false, Ordering::SeqCst);
            return Err(error);
        }
        readiness.record(DatabaseState::Up {
            latency: started.elapsed(),
            checked_at,
        });
        if !self.legacy_free.load(Ordering::SeqCst) {
            self.look_for_legacy_documents(readiness).await?;
        }
        Ok(self.confirm_indexes(readiness).await?)
    }

    async fn look_for_legacy_documents(&self, readiness: &Readiness) -> Result<(), StoreError> {
        let found = self.users.find_foreign().await?;
        let was = readiness.legacy.swap(found.is_some(), Ordering::SeqCst);
        match &found {
            Some(id) if !was => tracing::error!(
                example_id = %id,
                "the users collection holds documents this service did not write (from the \
                 Flask service?); run `user-api migrate` to adopt them. Until then writes answer \
                 503 and /health reports legacy_documents"
            ),
            None if was => tracing::info!("no foreign documents remain; the migration is done"),
            _ => {}
        }
        self.legacy_free.store(found.is_none(), Ordering::SeqCst);
        readiness.legacy_known.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn confirm_indexes(&self, readiness: &Readiness) -> Result<(), StoreError> {
        if self.users.indexes_present().await?
            && self.idempotency.indexes_present().await?
            && self.lockout.indexes_present().await?
        {
            readiness.indexes.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let was_ready = readiness.indexes.swap(false, Ordering::SeqCst);
        if was_ready {
            tracing::warn!(
                "an index the service relies on is missing; writes wait until it is back"
            );
        }
        let created = async {
            self.users.ensure_indexes().await?;
            self.idempotency.ensure_indexes().await?;
            self.lockout.ensure_indexes().await
        }
        .await;
        match created {
            Ok(()) => {
                readiness.record_index_failure(None);
                readiness.indexes.store(true, Ordering::SeqCst);
                tracing::info!("database indexes are in place");
                Ok(())
            }
            Err(error @ StoreError::Unavailable(_)) => Err(error),
            Err(error) => {
                let reason = ErrorChain(&error).to_string();
                if readiness.index_failure().as_deref() != Some(reason.as_str()) {
                    tracing::error!(error = %reason, "cannot create the database indexes");
                }
                readiness.record_index_failure(Some(reason));
                Ok(())
            }
        }
    }
}

/// How long start-up waits for the first check before it serves anyway. A
/// database that answers is checked well within it. One that accepts
/// connections but does not answer (or a first look for foreign documents
/// that is slow on a busy one) must not keep the port closed: until the
/// check is done, `/health` answers 503 and says why, and writes answer 503
/// `unavailable`.
const FIRST_CHECK_WAIT: Duration = Duration::from_secs(5);

/// Checks the database once, now, waiting up to [`FIRST_CHECK_WAIT`] for
/// the outcome; then keeps checking in the background for as long as the
/// returned handle is alive. A ping that takes longer than `ping_limit`
/// counts as the database being down.
pub async fn watch(
    users: UserStore,
    idempotency: IdempotencyStore,
    lockout: LockoutStore,
    ping_limit: Duration,
) -> Arc<Readiness> {
    let readiness = Arc::new(Readiness::default());
    let checker = Checker {
        users,
        idempotency,
        lockout,
        ping_limit,
        legacy_free: AtomicBool::new(false),
    };
    let (checked, first_check) = oneshot::channel();
    tokio::spawn(keep_checking(checker, Arc::downgrade(&readiness), checked));
    match tokio::time::timeout(FIRST_CHECK_WAIT, first_check).await {
        Ok(Ok(())) => {}
        // Only a panic in the check ends the task before it reports.
        Ok(Err(_gone)) => tracing::error!(
            "the database check stopped; /health will not report the database's state"
        ),
        Err(_elapsed) => tracing::warn!(
            "the database has not finished its first check within {} s; serving anyway \
             (refusing writes until it is done) and finishing it in the background",
            FIRST_CHECK_WAIT.as_secs_f64()
        ),
    }
    readiness
}

/// Checks now, says so on `checked`, then checks again and again, until the
/// service is gone.
async fn keep_checking(checker: Checker, readiness: Weak<Readiness>, checked: oneshot::Sender<()>) {
    // Held for this check only, so the task ends once the service is gone.
    let first = match readiness.upgrade() {
        Some(current) => checker.check(&current).await,
        None => return,
    };
    if let Err(error) = &first {
        tracing::warn!(
            error = %ErrorChain(error),
            "the database is unreachable; serving anyway and retrying in the background"
        );
    }
    // Start-up may have stopped waiting already.
    let _ = checked.send(());
    let mut healthy = first.is_ok();
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
