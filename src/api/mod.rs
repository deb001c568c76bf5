//! The HTTP API: handlers, wire types, the spec and the error envelope.

mod auth;
pub(crate) mod body;
mod conditional;
mod dispatch;
mod edge;
mod errors;
mod fields;
mod health;
mod import;
mod limits;
mod operations;
mod paging;
mod routes;
mod spec;
mod users;
mod views;
mod yaml;

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use poem::{http::HeaderValue, Endpoint, Response};
use poem_openapi::{ContactObject, OpenApiService, Tags};

pub use auth::Authenticator;
pub use errors::{ApiError, ErrorCode};
pub use limits::RateLimits;
pub use paging::encode_cursor;
pub use spec::ApiSpec;

use dispatch::Dispatch;
use routes::RouteTable;

use crate::{metrics::Metrics, readiness::Readiness, service::UserService};

/// Everything the HTTP layer needs, built once at startup.
pub struct AppState {
    pub users: UserService,
    pub authenticator: Authenticator,
    pub limits: Arc<RateLimits>,
    pub request_timeout: Duration,
    pub cors_origins: Vec<HeaderValue>,
    pub require_if_match: bool,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Create, read, update, delete, list and verify users.
    Users,
    /// Liveness, readiness and metrics, for operators and load balancers.
    Operations,
}

/// Routes served beside the API, outside the spec.
const DOCUMENTATION_ROUTES: [&str; 3] = ["/openapi.json", "/openapi.yaml", "/docs"];

pub(crate) type Apis = (health::HealthApi, users::UserApi, import::ImportApi);

fn apis() -> Apis {
    (health::HealthApi, users::UserApi, import::ImportApi)
}

fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "User API", env!("CARGO_PKG_VERSION"))
        .description(include_str!("description.md"))
        .contact(ContactObject::new().name("user-api maintainers"))
}

/// The whole HTTP application: the API, its spec, Swagger UI at `/docs`, and
/// around all of it the limits, the deadline, the error envelope, CORS and
/// security headers.
pub fn app(state: AppState) -> impl Endpoint<Output = Response> {
    let service = openapi_service();
    let spec = ApiSpec::new(&service);
    let [json, yaml, docs] = DOCUMENTATION_ROUTES;
    let edge = edge::Edge {
        routes: RouteTable::new::<Apis>(&DOCUMENTATION_ROUTES),
        unmatched: "unmatched".into(),
        limits: state.limits,
        deadline: state.request_timeout,
        shared: Arc::new(Shared {
            users: state.users,
            authenticator: state.authenticator,
            readiness: state.readiness,
            metrics: state.metrics,
            conditional: users::ConditionalWrites {
                required: state.require_if_match,
            },
        }),
        dispatch: Dispatch::new(
            apis(),
            [
                Dispatch::get(json, spec.json_endpoint()),
                Dispatch::get(yaml, spec.yaml_endpoint()),
                Dispatch::get(docs, spec.swagger_ui_endpoint()),
            ],
        ),
    };
    edge::Finish::new(edge, state.cors_origins)
}

/// What the handlers share, in one value each request carries (extract it
/// with `Data<&Arc<Shared>>`).
pub(crate) struct Shared {
    pub users: UserService,
    pub authenticator: Authenticator,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    pub conditional: users::ConditionalWrites,
}

/// The template of the route that serves `path`, such as `/user/{id}`, as
/// logs, metrics and the spec name it.
pub fn route_template(path: &str) -> Option<String> {
    static ROUTES: LazyLock<RouteTable> =
        LazyLock::new(|| RouteTable::new::<Apis>(&DOCUMENTATION_ROUTES));
    ROUTES
        .matched(&poem::http::Method::GET, path)
        .template
        .map(|template| template.to_string())
}

/// `value` as YAML that YAML 1.1 and 1.2 parsers alike read back as
/// `value`: how the spec is written.
pub fn to_yaml(value: &serde_json::Value) -> String {
    yaml::to_string(value)
}

/// The spec as YAML, exactly as `user-api openapi` prints it.
pub fn openapi_yaml() -> String {
    ApiSpec::new(&openapi_service()).yaml().to_owned()
}
