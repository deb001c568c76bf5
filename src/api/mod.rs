//! The HTTP API: handlers, wire types, the spec and the error envelope.

mod auth;
mod body;
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
    http::{HeaderValue, Method},
    middleware::CatchPanic,
    Endpoint, EndpointExt, Response, Route,
};
use poem_openapi::{OpenApi, OpenApiService, Tags};

pub use auth::Authenticator;
pub use errors::{ApiError, ErrorCode};
pub use limits::RateLimits;
pub use spec::ApiSpec;

use crate::service::UserService;

/// Everything the HTTP layer needs, built once at startup.
pub struct AppState {
    pub users: UserService,
    pub authenticator: Authenticator,
    pub limits: Arc<RateLimits>,
    pub request_timeout: Duration,
    pub cors_origins: Vec<HeaderValue>,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Create, read, update, delete and list users.
    Users,
    /// Whether the service is up.
    Health,
}

type Apis = (health::HealthApi, users::UserApi);

fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (health::HealthApi, users::UserApi),
        "User API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("description.md"))
}

/// The whole HTTP application: the API, its spec, Swagger UI at `/docs`, and
/// around all of it the limits, the deadline, the error envelope, CORS and
/// security headers.
pub fn app(state: AppState) -> impl Endpoint<Output = Response> {
    let service = openapi_service();
    let spec = ApiSpec::new(&service);
    let edge = Arc::new(edge::Edge {
        allowed: AllowedMethods::from_spec::<Apis>(),
        limits: state.limits.clone(),
        authenticator: state.authenticator.clone(),
        deadline: state.request_timeout,
    });
    let routes = Route::new()
        .at("/openapi.json", spec.json_endpoint())
        .at("/openapi.yaml", spec.yaml_endpoint())
        .at("/docs", spec.swagger_ui_endpoint())
        .nest("/", service)
        .data(state.users)
        .data(state.authenticator)
        .data(state.limits)
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

/// Which methods each path template accepts, for the `Allow` header of 405s.
#[derive(Clone)]
struct AllowedMethods(std::sync::Arc<Vec<(Vec<String>, String)>>);

impl AllowedMethods {
    fn from_spec<T: OpenApi>() -> Self {
        let mut routes: Vec<(Vec<String>, Vec<Method>)> = Vec::new();
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

    /// The methods of the template that matches `path`, preferring literal
    /// segments over parameters, as the router does (`/user/verify` before
    /// `/user/{id}`).
    fn allow_header(&self, path: &str) -> Option<String> {
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
            .map(|(_, allow)| allow.clone())
    }
}
