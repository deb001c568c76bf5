//! Liveness, readiness and metrics: what operators and load balancers ask.

use std::sync::Arc;

use poem::{web::Data, Request};
use poem_openapi::{payload::PlainText, ApiResponse, Enum, Object, OpenApi};
use serde::Serialize;

use super::{
    views::{Json, PingData, PingEnvelope, Timestamp},
    ApiTags, Shared,
};
use crate::readiness::{DatabaseState, NotReady};

#[derive(ApiResponse)]
pub enum Pong {
    /// The process is up. The database is not consulted.
    #[oai(status = 200)]
    Ok(Json<PingEnvelope>),
}

/// Whether the database answered the last check.
#[derive(Enum, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DatabaseStatus {
    Up,
    Down,
    /// Not checked yet (the service just started).
    Unknown,
}

/// The last check of the database.
#[derive(Object, Serialize, Debug)]
pub struct DatabaseHealth {
    pub status: DatabaseStatus,
    /// How long the last successful check took, in milliseconds.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// When the last check ran.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
}

/// The service as a whole.
#[derive(Enum, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Ready to serve every request.
    Up,
    /// The database answers, but the service cannot serve every request yet.
    Degraded,
    /// The database does not answer, or has not been checked yet.
    Down,
}

/// Why the service is not ready: a stable code.
#[derive(Enum, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum NotReadyReason {
    /// The service has just started and not checked the database yet.
    NotChecked,
    /// The database does not answer.
    DatabaseUnreachable,
    /// The indexes the service relies on are being confirmed or created.
    IndexesPending,
    /// Creating an index failed (for example over duplicate emails); see
    /// the log.
    IndexesFailed,
    /// The user collection holds documents another service wrote; run
    /// `user-api migrate`.
    LegacyDocuments,
}

impl From<NotReady> for NotReadyReason {
    fn from(reason: NotReady) -> Self {
        match reason {
            NotReady::NotChecked => Self::NotChecked,
            NotReady::DatabaseUnreachable => Self::DatabaseUnreachable,
            NotReady::IndexesPending => Self::IndexesPending,
            NotReady::IndexesFailed => Self::IndexesFailed,
            NotReady::LegacyDocuments => Self::LegacyDocuments,
        }
    }
}

/// Readiness details.
#[derive(Object, Serialize, Debug)]
pub struct HealthData {
    /// `true` when the service can serve every request.
    pub ready: bool,
    pub status: ServiceStatus,
    /// Why the service is not ready; absent when it is.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<NotReadyReason>,
    pub database: DatabaseHealth,
    /// Whether the indexes the service relies on (a unique index on email)
    /// are confirmed. Until they are, writes answer 503.
    pub indexes_ready: bool,
    /// What the database driver or the index creation reported, for callers
    /// that send a valid API key (it names hosts, never credentials);
    /// absent otherwise, and when there is nothing to report.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Readiness in the standard envelope. Unlike errors, a 503 here still
/// carries `data`: the state that makes the service not ready.
#[derive(Object, Serialize, Debug)]
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
    /// Not ready: `data.reason` says why. Take this instance out of rotation
    /// until it is.
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
    /// 200 when the database answers, the indexes are in place and no
    /// foreign documents wait for migration; 503 with the reason in `data`
    /// otherwise. Reports the state found by a check that runs every few
    /// seconds in the background, so it answers at once. Public; with a
    /// valid API key it also says what the driver reported.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self, shared: Data<&Arc<Shared>>, request: &Request) -> Health {
        let (database, driver_error) = match shared.readiness.database() {
            DatabaseState::Unknown => (
                DatabaseHealth {
                    status: DatabaseStatus::Unknown,
                    latency_ms: None,
                    checked_at: None,
                },
                None,
            ),
            DatabaseState::Up {
                latency,
                checked_at,
            } => (
                DatabaseHealth {
                    status: DatabaseStatus::Up,
                    latency_ms: Some(latency.as_secs_f64() * 1000.0),
                    checked_at: Some(checked_at.into()),
                },
                None,
            ),
            DatabaseState::Down { error, checked_at } => (
                DatabaseHealth {
                    status: DatabaseStatus::Down,
                    latency_ms: None,
                    checked_at: Some(checked_at.into()),
                },
                Some(error),
            ),
        };
        let reason = shared.readiness.not_ready();
        let status = match reason {
            None => ServiceStatus::Up,
            Some(NotReady::NotChecked | NotReady::DatabaseUnreachable) => ServiceStatus::Down,
            Some(_) => ServiceStatus::Degraded,
        };
        let trusted = shared.authenticator.identify(request.headers()).is_ok();
        let detail = driver_error
            .or_else(|| shared.readiness.index_failure())
            .filter(|_| trusted);
        let ready = reason.is_none();
        let status_code = if ready { 200 } else { 503 };
        let envelope = HealthEnvelope {
            data: HealthData {
                ready,
                status,
                reason: reason.map(Into::into),
                database,
                indexes_ready: shared.readiness.indexes_ready(),
                detail,
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
    async fn metrics(&self, shared: Data<&Arc<Shared>>) -> Exposition {
        Exposition::Ok(PlainText(shared.metrics.render()))
    }
}
