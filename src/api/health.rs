//! Liveness, readiness and metrics: what operators and load balancers ask.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    payload::{Json, PlainText},
    ApiResponse, Enum, Object, OpenApi,
};

use super::{
    views::{PingData, PingEnvelope, Timestamp},
    ApiTags,
};
use crate::{
    metrics::Metrics,
    readiness::{DatabaseState, Readiness},
};

#[derive(ApiResponse)]
pub enum Pong {
    /// The process is up. The database is not consulted.
    #[oai(status = 200)]
    Ok(Json<PingEnvelope>),
}

/// Whether the database answered the last check.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum DatabaseStatus {
    Up,
    Down,
    /// Not checked yet (the service just started).
    Unknown,
}

/// The last check of the database.
#[derive(Object, Debug)]
pub struct DatabaseHealth {
    pub status: DatabaseStatus,
    /// How long the last successful check took, in milliseconds.
    #[oai(skip_serializing_if_is_none)]
    pub latency_ms: Option<f64>,
    /// When the last check ran.
    #[oai(skip_serializing_if_is_none)]
    pub checked_at: Option<Timestamp>,
    /// Why the last check failed.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// Readiness details.
#[derive(Object, Debug)]
pub struct HealthData {
    /// `true` when the service can serve every request: the database answers
    /// and its indexes are in place.
    pub ready: bool,
    pub database: DatabaseHealth,
    /// Whether the indexes the service relies on (a unique index on email)
    /// are confirmed. Until they are, writes answer 503.
    pub indexes_ready: bool,
}

/// Readiness in the standard envelope. Unlike errors, a 503 here still
/// carries `data`: the state that makes the service not ready.
#[derive(Object, Debug)]
pub struct HealthEnvelope {
    pub data: HealthData,
    /// `ready` or `not ready`.
    pub message: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}

#[derive(ApiResponse)]
pub enum Health {
    /// Ready to serve.
    #[oai(status = 200)]
    Ready(Json<HealthEnvelope>),
    /// Not ready: the database does not answer, or its indexes are not
    /// confirmed yet. Take this instance out of rotation until it is.
    #[oai(status = 503)]
    NotReady(
        Json<HealthEnvelope>,
        /// Seconds before it is worth asking again.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

#[derive(ApiResponse)]
pub enum Exposition {
    /// Metrics in the OpenMetrics text format, which Prometheus scrapes.
    #[oai(
        status = 200,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness check
    ///
    /// Answers as long as the process is serving requests, without touching
    /// the database: restart the process only if this fails.
    #[oai(path = "/ping", method = "get", operation_id = "ping")]
    async fn ping(&self) -> Pong {
        Pong::Ok(Json(PingEnvelope {
            data: PingData {
                status: "ok".to_owned(),
            },
            message: "pong".to_owned(),
            status_code: 200,
        }))
    }

    /// Readiness check
    ///
    /// 200 when the database answers and the indexes are in place, 503 (with
    /// the reason in `data`) otherwise. Reports the state found by a check
    /// that runs every few seconds in the background, so it answers at once.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self, readiness: Data<&Arc<Readiness>>) -> Health {
        let database = match readiness.database() {
            DatabaseState::Unknown => DatabaseHealth {
                status: DatabaseStatus::Unknown,
                latency_ms: None,
                checked_at: None,
                error: None,
            },
            DatabaseState::Up {
                latency,
                checked_at,
            } => DatabaseHealth {
                status: DatabaseStatus::Up,
                latency_ms: Some(latency.as_secs_f64() * 1000.0),
                checked_at: Some(checked_at.into()),
                error: None,
            },
            DatabaseState::Down { error, checked_at } => DatabaseHealth {
                status: DatabaseStatus::Down,
                latency_ms: None,
                checked_at: Some(checked_at.into()),
                error: Some(error),
            },
        };
        let ready = readiness.is_ready();
        let status_code = if ready { 200 } else { 503 };
        let envelope = HealthEnvelope {
            data: HealthData {
                ready,
                database,
                indexes_ready: readiness.indexes_ready(),
            },
            message: if ready { "ready" } else { "not ready" }.to_owned(),
            status_code,
        };
        if ready {
            Health::Ready(Json(envelope))
        } else {
            Health::NotReady(Json(envelope), 2)
        }
    }

    /// Prometheus metrics
    ///
    /// Request counts and latency by route template and status, database
    /// errors and latency by operation, and the password-hashing queue.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, metrics: Data<&Arc<Metrics>>) -> Exposition {
        Exposition::Ok(PlainText(metrics.render()))
    }
}
