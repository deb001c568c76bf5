//! Integration tests: the real app on a real port, against a real database
//! (started by `./scripts/test`), one fresh database per test.

mod cli;
mod create;
mod helpers;
mod list;
mod read_delete;
mod routing;
mod spec;
mod update;
