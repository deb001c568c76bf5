//! The HTTP API: handlers, wire types, the spec and the error envelope.

mod auth;
mod body;
mod conditional;
mod edge;
mod errors;
mod fields;
mod health;
mod limits;
mod paging;
mod spec;
mod users;
mod views;

use std::{sync::Arc, time::Duration};

use poem::{
    get,
    http::{HeaderValue, Method},
    middleware::CatchPanic,
    Endpoint, EndpointExt, Response, Route,
};
use poem_openapi::{ContactObject, OpenApi, OpenApiService, Tags};

pub use auth::Authenticator;
pub use errors::{ApiError, ErrorCode};
pub use limits::RateLimits;
pub use paging::encode_cursor;
pub use spec::ApiSpec;

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

type Apis = (health::HealthApi, users::UserApi);

fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (health::HealthApi, users::UserApi),
        "User API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("description.md"))
    .contact(ContactObject::new().name("user-api maintainers"))
}

/// The whole HTTP application: the API, its spec, Swagger UI at `/docs`, and
/// around all of it the limits, the deadline, the error envelope, CORS and
/// security headers.
pub fn app(state: AppState) -> impl Endpoint<Output = Response> {
    let service = openapi_service();
    let spec = ApiSpec::new(&service);
    let edge = Arc::new(edge::Edge {
        routes: AllowedMethods::from_spec::<Apis>(),
        limits: state.limits.clone(),
        authenticator: state.authenticator.clone(),
        deadline: state.request_timeout,
        metrics: state.metrics.clone(),
    });
    let [json, yaml, docs] = DOCUMENTATION_ROUTES;
    let routes = Route::new()
        .at(json, get(spec.json_endpoint()))
        .at(yaml, get(spec.yaml_endpoint()))
        .at(docs, get(spec.swagger_ui_endpoint()))
        .nest("/", service)
        .data(state.users)
        .data(state.authenticator)
        .data(state.limits)
        .data(state.readiness)
        .data(state.metrics)
        .data(users::ConditionalWrites {
            required: state.require_if_match,
        })
        .with(CatchPanic::new().with_handler(|_| {
            let error = ApiError::Internal("a request handler panicked".into());
            poem::error::ResponseError::as_response(&error)
        }))
        .around(move |endpoint, request| edge.clone().handle(endpoint, request));
    edge::finish(routes, state.cors_origins)
}

/// The spec as YAML, exactly as `user-api openapi` prints it.
pub fn openapi_yaml() -> String {
    ApiSpec::new(&openapi_service()).yaml().to_owned()
}

/// The route templates the app serves and the methods each accepts: for the
/// `Allow` header of 405s, and to name routes in logs and metrics without
/// the raw ids in their paths.
#[derive(Clone)]
struct AllowedMethods(std::sync::Arc<Vec<(Vec<String>, String)>>);

impl AllowedMethods {
    fn from_spec<T: OpenApi>() -> Self {
        let mut routes: Vec<(Vec<String>, Vec<Method>)> = DOCUMENTATION_ROUTES
            .iter()
            .map(|path| {
                (
                    path.split('/').map(str::to_owned).collect(),
                    vec![Method::GET],
                )
            })
            .collect();
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            let segments: Vec<String> = path.path.split('/').map(str::to_owned).collect();
            let methods = path.operations.iter().map(|op| op.method.clone());
            match routes
                .iter_mut()
                .find(|(existing, _)| *existing == segments)
            {
                Some((_, known)) => known.extend(methods),
                None => routes.push((segments, methods.collect())),
            }
        }
        let routes = routes
            .into_iter()
            .map(|(segments, mut methods)| {
                if methods.contains(&Method::GET) {
                    methods.push(Method::HEAD);
                }
                let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
                (segments, allow.join(", "))
            })
            .collect();
        Self(std::sync::Arc::new(routes))
    }

    /// The template that matches `path`, preferring literal segments over
    /// parameters, as the router does (`/user/verify` before `/user/{id}`).
    fn route(&self, path: &str) -> Option<&(Vec<String>, String)> {
        let segments: Vec<&str> = path.split('/').collect();
        let is_param = |segment: &String| segment.starts_with(':') || segment.starts_with('{');
        self.0
            .iter()
            .filter(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(expected, actual)| is_param(expected) || expected == actual)
            })
            .min_by_key(|(template, _)| template.iter().filter(|segment| is_param(segment)).count())
    }

    fn allow_header(&self, path: &str) -> Option<String> {
        self.route(path).map(|(_, allow)| allow.clone())
    }

    /// The route template serving `path`, such as `/user/{id}`.
    fn template(&self, path: &str) -> Option<String> {
        self.route(path).map(|(template, _)| {
            template
                .iter()
                .map(|segment| match segment.strip_prefix(':') {
                    Some(name) => format!("{{{name}}}"),
                    None => segment.clone(),
                })
                .collect::<Vec<_>>()
                .join("/")
        })
    }
}
