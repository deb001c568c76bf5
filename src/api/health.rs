//! Liveness.

use poem_openapi::{payload::Json, ApiResponse, OpenApi};

use super::{
    views::{PingData, PingEnvelope},
    ApiTags,
};

#[derive(ApiResponse)]
pub enum Pong {
    /// The process is up. The database is not consulted.
    #[oai(status = 200)]
    Ok(Json<PingEnvelope>),
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness check
    ///
    /// Answers as long as the process is serving requests, without touching
    /// the database.
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
}
