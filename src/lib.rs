//! user-api: a user management REST API on MongoDB.
//!
//! Requests flow one way: [`api`] (HTTP and wire types) parses input into
//! [`domain`] types, [`service`] applies them, and [`store`] persists them.

pub mod api;
pub mod config;
pub mod domain;
pub mod hashing;
pub mod metrics;
pub mod migrate;
pub mod probe;
pub mod readiness;
pub mod server;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod test_support;
