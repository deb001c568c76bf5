//! The HTTP API: handlers, wire types, the spec and the error envelope.

mod body;
mod errors;
mod fields;
mod health;
mod paging;
mod spec;
mod users;
mod views;

use poem::{
    http::Method, middleware::CatchPanic, Endpoint, EndpointExt, IntoResponse, Request, Response,
    Route,
};
use poem_openapi::{OpenApi, OpenApiService, Tags};

pub use errors::{ApiError, ErrorCode};
pub use spec::ApiSpec;

use crate::service::UserService;

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
/// the error envelope around all of it.
pub fn app(users: UserService) -> impl Endpoint<Output = Response> {
    let service = openapi_service();
    let spec = ApiSpec::new(&service);
    let allowed = AllowedMethods::from_spec::<Apis>();
    Route::new()
        .at("/openapi.json", spec.json_endpoint())
        .at("/openapi.yaml", spec.yaml_endpoint())
        .at("/docs", spec.swagger_ui_endpoint())
        .nest("/", service)
        .data(users)
        .around(move |endpoint, request: Request| {
            let allowed = allowed.clone();
            async move {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                Ok(match endpoint.call(request).await {
                    Ok(response) => response.into_response(),
                    Err(error) => {
                        errors::render(error, &method, &path, allowed.allow_header(&path))
                    }
                })
            }
        })
        .with(CatchPanic::new().with_handler(|_| {
            let error = ApiError::Internal("a request handler panicked".into());
            poem::error::ResponseError::as_response(&error)
        }))
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

    fn allow_header(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0.iter().find_map(|(template, allow)| {
            let matches = template.len() == segments.len()
                && template.iter().zip(&segments).all(|(expected, actual)| {
                    expected.starts_with(':') || expected.starts_with('{') || expected == actual
                });
            matches.then(|| allow.clone())
        })
    }
}
