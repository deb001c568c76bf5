//! Builds the application: connects to MongoDB (without waiting for it),
//! binds the listener and hands back something tests can run too.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use mongodb::{
    options::{Acknowledgment, ClientOptions, WriteConcern},
    Client, Database,
};
use poem::{
    endpoint::BoxEndpoint,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    EndpointExt, Response, Server,
};

use crate::{
    api::{self, AppState, Authenticator, RateLimits},
    config::Config,
    hashing::{HashingError, HashingLimits, PasswordHasher},
    metrics::Metrics,
    readiness,
    service::UserService,
    store::{IdempotencyStore, LockoutPolicy, LockoutStore, UserStore},
};

const DEFAULT_DATABASE: &str = "users";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("MONGO_URI is not a valid MongoDB connection string")]
    InvalidMongoUri(#[source] mongodb::error::Error),
    #[error("cannot prepare password hashing")]
    Hashing(#[source] HashingError),
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
}

pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    app: BoxEndpoint<'static, Response>,
    shutdown_grace: Duration,
}

impl Application {
    /// Everything but the database must be right for this to succeed; a
    /// database that does not answer yet is waited for in the background.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let authenticator =
            Authenticator::from_config(&config.security).map_err(StartupError::Config)?;
        if authenticator.is_disabled() {
            tracing::warn!("AUTH_DISABLED=true: /user is open to anyone who can reach this port");
        }
        let cors_origins = cors_origins(&config.security.cors_origins)?;
        let metrics = Arc::new(Metrics::default());

        let limits = &config.limits;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hashing = HashingLimits {
            concurrency: limits.hash_concurrency.map_or(cores, |n| n as usize),
            queue_max: limits.hash_queue_max as usize,
            queue_wait: Duration::from_millis(limits.hash_queue_wait_ms),
        };
        let hasher = PasswordHasher::new(config.bcrypt_cost, hashing, metrics.clone())
            .await
            .map_err(StartupError::Hashing)?;

        let (database, hosts) = connect(config).await?;
        tracing::info!(hosts = %hosts.join(","), database = database.name(), "using MongoDB");
        let store = UserStore::new(&database, metrics.clone());
        let idempotency = IdempotencyStore::new(&database, metrics.clone());
        let lockout = LockoutStore::new(
            &database,
            LockoutPolicy {
                threshold: limits.lockout_threshold,
                window: Duration::from_secs(limits.lockout_window_secs),
                lockout: Duration::from_secs(limits.lockout_secs),
            },
            metrics.clone(),
        );
        let readiness = readiness::watch(store.clone(), idempotency.clone(), lockout.clone()).await;

        let request_timeout = Duration::from_millis(limits.request_timeout_ms);
        // A claimed idempotency key whose user has not appeared after two
        // deadlines belongs to a request that is surely gone.
        let users = UserService::new(
            store,
            idempotency,
            lockout,
            hasher,
            readiness.clone(),
            request_timeout * 2,
        );
        let app = api::app(AppState {
            users,
            authenticator,
            limits: RateLimits::new(config),
            request_timeout,
            cors_origins,
            require_if_match: config.require_if_match,
            readiness,
            metrics,
        })
        .boxed();

        let address = SocketAddr::new(config.host, config.port);
        let acceptor = TcpListener::bind(address)
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|local| local.as_socket_addr().map(SocketAddr::port))
            .unwrap_or(config.port);
        Ok(Self {
            acceptor,
            port,
            app,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops accepting connections
    /// and lets requests in flight finish, for up to the grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(self.shutdown_grace))
            .await
    }
}

/// A handle on the database `MONGO_URI` names and the hosts it points at,
/// sorted. Nothing is sent to the server yet.
pub async fn connect(config: &Config) -> Result<(Database, Vec<String>), StartupError> {
    let tuning = &config.database;
    let mut options = ClientOptions::parse(&config.mongo_uri)
        .await
        .map_err(StartupError::InvalidMongoUri)?;
    let millis = Duration::from_millis;
    options
        .server_selection_timeout
        .get_or_insert(millis(tuning.server_selection_timeout_ms));
    options
        .connect_timeout
        .get_or_insert(millis(tuning.connect_timeout_ms));
    options.max_pool_size.get_or_insert(tuning.max_pool_size);
    options.min_pool_size.get_or_insert(tuning.min_pool_size);
    options
        .app_name
        .get_or_insert_with(|| "user-api".to_owned());
    // A 2xx means the write is on a majority of nodes and in their journals.
    options.write_concern.get_or_insert_with(|| {
        WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .build()
    });
    let mut hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
    hosts.sort();
    let database = options
        .default_database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    let client = Client::with_options(options).map_err(StartupError::InvalidMongoUri)?;
    Ok((client.database(&database), hosts))
}

/// Parses CORS_ORIGINS: each an origin like `https://admin.example.com`.
fn cors_origins(origins: &[String]) -> Result<Vec<poem::http::HeaderValue>, StartupError> {
    origins
        .iter()
        .map(|origin| origin.trim())
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let bare = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match bare {
                Some(host) if !host.is_empty() && !host.contains('/') => origin
                    .parse()
                    .map_err(|_| format!("CORS_ORIGINS: `{origin}` is not a valid header value")),
                _ => Err(format!(
                    "CORS_ORIGINS: `{origin}` is not an origin like https://app.example.com"
                )),
            }
            .map_err(StartupError::Config)
        })
        .collect()
}
