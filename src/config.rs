//! Configuration, from the command line, the environment and `.env`.

use std::{ffi::OsString, net::IpAddr, time::Duration};

use clap::{builder::BoolishValueParser, ArgAction, Args, FromArgMatches, Parser, Subcommand};
use ipnet::IpNet;

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "user-api",
    version,
    about = "User management REST API on MongoDB, with Swagger UI at /docs.",
    after_help = "Every option can also be set through the environment variable shown, or in a \
                  .env file in the working directory. Real environment variables win over .env."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default when no command is given).
    Serve,
    /// Print the OpenAPI spec as YAML and exit. Needs no database.
    Openapi,
    /// Ask the service on HOST:PORT whether it is ready (GET /health); exit 0
    /// if so, 1 if not. For container health checks.
    Healthcheck,
    /// Adopt the users the Flask service wrote into MONGO_URI's database.
    /// Exit 0 when every document was migrated, 3 when some were listed as
    /// not migrated (see the report), 1 on an error.
    Migrate(crate::migrate::MigrateArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// MongoDB connection string. The database is the URI's path (`users`
    /// when the path is empty). Credentials in it are never logged.
    #[arg(
        long,
        env = "MONGO_URI",
        default_value = "mongodb://localhost:27017/users",
        hide_env_values = true
    )]
    pub mongo_uri: String,

    /// IP address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// TCP port to listen on; 0 picks a free one.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// bcrypt work factor for new password hashes (each step doubles the cost).
    #[arg(long, env = "BCRYPT_COST", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Log filter, in tracing's EnvFilter syntax, such as `info` or
    /// `user_api=debug,info`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGTERM or SIGINT, how long requests in flight may take to finish
    /// before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Refuse PUT, PATCH and DELETE without `If-Match` (428), so no client
    /// can overwrite a change it has not seen.
    #[arg(long, env = "REQUIRE_IF_MATCH", default_value_t = false, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub require_if_match: bool,

    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub security: SecurityConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,
}

impl Config {
    /// The configuration these command-line flags give, every other setting
    /// at its default: neither the environment nor `.env` is read. Tests
    /// start from it, so they run on the real defaults.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = Self::augment_args(clap::Command::new("user-api"))
            .mut_args(|arg| arg.env(None::<&'static str>));
        Self::from_arg_matches(&command.try_get_matches_from(flags)?)
    }
}

/// A command-line error in one line that names the setting as an operator
/// set it: `PORT (--port): invalid value 'eighty': invalid digit found in
/// string`.
pub fn explain(err: &clap::Error) -> String {
    use clap::{
        error::{ContextKind, ContextValue},
        CommandFactory,
    };
    let message = err.to_string();
    let first_line = message.lines().next().unwrap_or_default();
    let first_line = first_line.trim_start_matches("error: ");
    let Some(ContextValue::String(flag)) = err.get(ContextKind::InvalidArg) else {
        return first_line.to_owned();
    };
    let long = flag
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches("--");
    let command = Cli::command();
    let env = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) => format!("{env} (--{long}): {first_line}"),
        None => first_line.to_owned(),
    }
}

/// MongoDB driver settings. Options written in MONGO_URI's query string
/// (such as `maxPoolSize`) take precedence over these.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// How long an operation may wait to find a usable server: while the
    /// database is down, requests fail after this with 503. A readiness
    /// ping that takes twice as long counts as the database being down.
    #[arg(long, env = "MONGO_SERVER_SELECTION_TIMEOUT_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub server_selection_timeout_ms: u64,

    /// How long opening a connection may take.
    #[arg(long, env = "MONGO_CONNECT_TIMEOUT_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout_ms: u64,

    /// Most connections kept to each server.
    #[arg(long, env = "MONGO_MAX_POOL_SIZE", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pool_size: u32,

    /// Connections kept open even when idle.
    #[arg(long, env = "MONGO_MIN_POOL_SIZE", default_value_t = 0)]
    pub min_pool_size: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SecurityConfig {
    /// Comma-separated API keys, each at least 32 characters of token68
    /// (letters, digits, `-._~+/`, trailing `=`). Callers of `/user` send one as
    /// `Authorization: Bearer <key>`. Required unless AUTH_DISABLED=true.
    #[arg(long, env = "API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,

    /// Serve `/user` without authentication. Only for local experiments; a
    /// warning is logged at startup.
    #[arg(long, env = "AUTH_DISABLED", default_value_t = false, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub auth_disabled: bool,

    /// Comma-separated IPs or CIDR ranges of reverse proxies whose
    /// `X-Forwarded-For` is believed. Empty: the socket peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Comma-separated origins allowed to call the API from a browser, such as
    /// `https://admin.example.com`. Empty: CORS is off.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// POST, PUT, PATCH and DELETE requests per minute, per client IP and per
    /// API key. 0 disables the limit.
    #[arg(long, env = "RATE_LIMIT_WRITES", default_value_t = 600)]
    pub rate_limit_writes: u32,

    /// `POST /user/verify` requests per minute per client IP. 0 disables it.
    #[arg(long, env = "RATE_LIMIT_VERIFY", default_value_t = 60)]
    pub rate_limit_verify: u32,

    /// Requests to `/user` without a valid API key per minute per client IP,
    /// counted apart from the keyed budgets above. 0 disables it.
    #[arg(long, env = "RATE_LIMIT_UNAUTHENTICATED", default_value_t = 60)]
    pub rate_limit_unauthenticated: u32,

    /// Failed `POST /user/verify` attempts for one email (counted in MongoDB,
    /// across every instance, whether or not a user has the email) after
    /// which its attempts answer 429 for a while. 0 disables the lockout.
    #[arg(long, env = "LOCKOUT_THRESHOLD", default_value_t = 10)]
    pub lockout_threshold: u32,

    /// The period, in seconds, over which failed attempts are counted.
    #[arg(long, env = "LOCKOUT_WINDOW_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lockout_window_secs: u64,

    /// How long, in seconds, a lockout lasts; it doubles for each further
    /// lockout within the window, up to 3600.
    #[arg(long, env = "LOCKOUT_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lockout_secs: u64,

    /// The period the rate limits above count over. Not configurable from
    /// outside ("per minute"); tests shorten it.
    #[arg(skip = Duration::from_secs(60))]
    pub rate_limit_window: Duration,

    /// bcrypt jobs that run at once. Default: the number of CPU cores.
    #[arg(long, env = "HASH_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    pub hash_concurrency: Option<u32>,

    /// bcrypt jobs that may wait for a free slot; more are refused with 503.
    #[arg(long, env = "HASH_QUEUE_MAX", default_value_t = 1024)]
    pub hash_queue_max: u32,

    /// How long a bcrypt job may wait for a slot before it is refused with 503.
    #[arg(long, env = "HASH_QUEUE_WAIT_MS", default_value_t = 10_000)]
    pub hash_queue_wait_ms: u64,

    /// Deadline for a whole request; past it the answer is 503.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// How long a client may take to send a request's head (line and
    /// headers), from connecting or from its previous response; past it the
    /// connection is closed, whatever it sent by then. Idle keep-alive
    /// connections (HTTP/1.1 and HTTP/2) close after it too, and so does one
    /// whose client stops reading a response for as long.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub header_read_timeout_ms: u64,

    /// Connections served at once; past it, each new connection replaces the
    /// one idle longest. Default: the file-descriptor limit less 128.
    #[arg(long, env = "MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
}

/// An IP address (a single host) or a CIDR range.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is neither an IP address nor a CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_alone_give_the_documented_defaults() {
        let config = Config::from_flags(["user-api", "--bcrypt-cost", "5"]).unwrap();
        assert_eq!(config.bcrypt_cost, 5);
        assert_eq!(config.port, 8000);
        assert_eq!(config.mongo_uri, "mongodb://localhost:27017/users");
        assert_eq!(config.limits.rate_limit_window, Duration::from_secs(60));
        assert!(Config::from_flags(["user-api", "--bcrypt-cost", "3"]).is_err());
    }
}
