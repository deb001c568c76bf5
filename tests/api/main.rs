//! Integration tests: the real app on a real port, against a real database
//! (started by `./scripts/test`), one fresh database per test.

mod auth;
mod cli;
mod concurrency;
mod connections;
mod create;
mod flask;
mod hashes;
mod helpers;
mod idempotency;
mod import;
mod instances;
mod legacy;
mod lifecycle;
mod limits;
mod list;
mod migrate;
mod observability;
mod outage;
mod process;
mod read_delete;
mod reference;
mod routing;
mod search;
mod spec;
mod update;
mod verify;
