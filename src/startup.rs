//! Builds the application: connects to MongoDB, makes sure the indexes
//! exist, binds the listener and hands back something tests can run too.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use mongodb::{options::ClientOptions, Client, Database};
use poem::{
    endpoint::BoxEndpoint,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    EndpointExt, Response, Server,
};

use crate::{
    api::{self, AppState, Authenticator, RateLimits},
    config::Config,
    hashing::{HashingError, HashingLimits, PasswordHasher},
    service::UserService,
    store::{IdempotencyStore, StoreError, UserStore},
};

/// Bound on finding a usable server, so a missing database is reported in
/// seconds rather than after the driver's 30-second default. A
/// `serverSelectionTimeoutMS` in the URI takes precedence.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_DATABASE: &str = "users";
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("cannot prepare password hashing")]
    Hashing(#[source] HashingError),
    #[error("MONGO_URI is not a valid MongoDB connection string")]
    InvalidMongoUri(#[source] mongodb::error::Error),
    #[error("cannot use MongoDB at {hosts}")]
    Database {
        hosts: String,
        #[source]
        source: StoreError,
    },
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
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let authenticator =
            Authenticator::from_config(&config.security).map_err(StartupError::Config)?;
        if authenticator.is_disabled() {
            tracing::warn!("AUTH_DISABLED=true: /user is open to anyone who can reach this port");
        }
        let cors_origins = cors_origins(&config.security.cors_origins)?;

        let (database, hosts) = connect(&config.mongo_uri).await?;
        tracing::info!(%hosts, database = database.name(), "connecting to MongoDB");
        let store = UserStore::new(&database);
        let idempotency = IdempotencyStore::new(&database);
        let indexes = async {
            store.ensure_indexes().await?;
            idempotency.ensure_indexes().await
        };
        indexes
            .await
            .map_err(|source| StartupError::Database { hosts, source })?;

        let limits = &config.limits;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hashing = HashingLimits {
            concurrency: limits.hash_concurrency.map_or(cores, |n| n as usize),
            queue_max: limits.hash_queue_max as usize,
            queue_wait: Duration::from_millis(limits.hash_queue_wait_ms),
        };
        let hasher = PasswordHasher::new(config.bcrypt_cost, hashing)
            .await
            .map_err(StartupError::Hashing)?;
        let request_timeout = Duration::from_millis(limits.request_timeout_ms);
        // A claimed idempotency key whose user has not appeared after two
        // deadlines belongs to a request that is surely gone.
        let users = UserService::new(store, idempotency, hasher, request_timeout * 2);
        let app = api::app(AppState {
            users,
            authenticator,
            limits: RateLimits::new(config),
            request_timeout,
            cors_origins,
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
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(SHUTDOWN_GRACE))
            .await
    }
}

/// A database handle and, for messages, the hosts it points at.
async fn connect(uri: &str) -> Result<(Database, String), StartupError> {
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(StartupError::InvalidMongoUri)?;
    options
        .server_selection_timeout
        .get_or_insert(SERVER_SELECTION_TIMEOUT);
    options
        .app_name
        .get_or_insert_with(|| "user-api".to_owned());
    let hosts = options
        .hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
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
