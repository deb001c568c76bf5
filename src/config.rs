//! Configuration, from the command line, the environment and `.env`.

use std::net::IpAddr;

use clap::{Parser, Subcommand};

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
}
