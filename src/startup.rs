//! Builds the application: connects to MongoDB (without waiting for it),
//! binds the listener and hands back something tests can run too.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use mongodb::{
    options::{Acknowledgment, ClientOptions, WriteConcern},
    Client, Database,
};
use poem::{endpoint::BoxEndpoint, EndpointExt, Response};
use tokio::net::TcpListener;

use crate::{
    api::{self, AppState, Authenticator, RateLimits},
    config::Config,
    hashing::{HashingError, HashingLimits, PasswordHasher},
    metrics::Metrics,
    readiness,
    server::{self, ConnectionLimits},
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
    listener: TcpListener,
    port: u16,
    app: BoxEndpoint<'static, Response>,
    connections: ConnectionLimits,
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
        // A ping gets twice what finding a server may take, so a database
        // that is down is reported as the driver sees it.
        let readiness = readiness::watch(
            store.clone(),
            idempotency.clone(),
            lockout.clone(),
            Duration::from_millis(config.database.server_selection_timeout_ms) * 2,
        )
        .await;

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
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        let port = listener
            .local_addr()
            .map_or(config.port, |local| local.port());
        let connections = ConnectionLimits {
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            max_connections: connection_cap(limits.max_connections),
        };
        Ok(Self {
            listener,
            port,
            app,
            connections,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops accepting connections
    /// and lets requests in flight finish, for up to the grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        server::serve(
            self.listener,
            Arc::new(self.app),
            self.connections,
            shutdown,
            self.shutdown_grace,
        )
        .await
    }
}

/// `MAX_CONNECTIONS`, or the default the file-descriptor limit allows;
/// logged either way, as an operator sizing `ulimit -n` needs to know.
fn connection_cap(configured: Option<u32>) -> usize {
    let (default, limit) = server::default_max_connections();
    let limit = limit.map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string());
    match configured {
        Some(cap) => {
            tracing::info!(
                "serving at most {cap} connections at once (MAX_CONNECTIONS; \
                 file-descriptor limit {limit})"
            );
            cap as usize
        }
        None => {
            tracing::info!(
                "serving at most {default} connections at once (the file-descriptor \
                 limit {limit} less {}; set MAX_CONNECTIONS to change it)",
                server::RESERVED_DESCRIPTORS
            );
            default
        }
    }
}

/// The driver options for `MONGO_URI`, with this service's settings filling
/// in what the URI's query string leaves out: the URI wins where it says
/// something.
pub async fn client_options(config: &Config) -> Result<ClientOptions, StartupError> {
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
    let max_pool_size = *options.max_pool_size.get_or_insert(tuning.max_pool_size);
    let min_pool_size = *options.min_pool_size.get_or_insert(tuning.min_pool_size);
    if min_pool_size > max_pool_size {
        return Err(StartupError::Config(format!(
            "MONGO_MIN_POOL_SIZE: {min_pool_size} connections kept open is more than the \
             {max_pool_size} MONGO_MAX_POOL_SIZE allows (either may come from MONGO_URI)"
        )));
    }
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
    Ok(options)
}

/// A handle on the database `MONGO_URI` names and the hosts it points at,
/// sorted. Nothing is sent to the server yet.
pub async fn connect(config: &Config) -> Result<(Database, Vec<String>), StartupError> {
    let options = client_options(config).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(uri: &str, flags: &[&str]) -> Config {
        let mut all = vec!["user-api", "--mongo-uri", uri];
        all.extend_from_slice(flags);
        Config::from_flags(all).unwrap()
    }

    #[tokio::test]
    async fn the_uri_wins_and_the_settings_fill_in_the_rest() {
        let uri = "mongodb://127.0.0.1:27017/users?serverSelectionTimeoutMS=250&maxPoolSize=7\
                   &w=1&journal=false";
        let flags = [
            "--server-selection-timeout-ms",
            "5000",
            "--max-pool-size",
            "80",
            "--connect-timeout-ms",
            "1234",
            "--min-pool-size",
            "2",
        ];
        let options = client_options(&config(uri, &flags)).await.unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(options.max_pool_size, Some(7));
        assert_eq!(options.connect_timeout, Some(Duration::from_millis(1234)));
        assert_eq!(options.min_pool_size, Some(2));
        let write_concern = options.write_concern.unwrap();
        assert_eq!(write_concern.w, Some(Acknowledgment::Nodes(1)));
        assert_eq!(write_concern.journal, Some(false));
    }

    #[tokio::test]
    async fn writes_default_to_a_journaled_majority() {
        let config = config("mongodb://127.0.0.1:27017/accounts", &[]);
        let options = client_options(&config).await.unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(3_000))
        );
        assert_eq!(options.max_pool_size, Some(50));
        let (database, hosts) = connect(&config).await.unwrap();
        assert_eq!(database.name(), "accounts");
        assert_eq!(hosts, ["127.0.0.1:27017"]);
        let write_concern = database.write_concern().unwrap();
        assert_eq!(write_concern.w, Some(Acknowledgment::Majority));
        assert_eq!(write_concern.journal, Some(true));
    }

    #[tokio::test]
    async fn more_idle_connections_than_the_pool_holds_is_refused() {
        for (uri, flags) in [
            (
                "mongodb://127.0.0.1:27017/users",
                &["--min-pool-size", "60"],
            ),
            (
                "mongodb://127.0.0.1:27017/users?minPoolSize=60",
                &["--max-pool-size", "50"],
            ),
        ] {
            let refused = client_options(&config(uri, flags)).await.unwrap_err();
            assert!(
                refused.to_string().contains("MONGO_MIN_POOL_SIZE"),
                "{refused}"
            );
        }
    }
}
