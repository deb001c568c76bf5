//! What every request passes through before and after its handler: rate
//! limits, the deadline, the error envelope, CORS and security headers.

use std::{sync::Arc, time::Duration};

use poem::{
    http::{header, HeaderValue, Method},
    middleware::Cors,
    Endpoint, EndpointExt, IntoResponse, Request, Response,
};

use super::{
    auth::Authenticator,
    errors::{self, ApiError},
    limits::{Budget, RateLimits},
    AllowedMethods,
};

/// Request and response headers a browser client may use across origins.
const CORS_REQUEST_HEADERS: [&str; 3] = ["authorization", "content-type", "idempotency-key"];
const CORS_RESPONSE_HEADERS: [&str; 4] = ["location", "link", "retry-after", "idempotent-replayed"];

pub struct Edge {
    pub allowed: AllowedMethods,
    pub limits: Arc<RateLimits>,
    pub authenticator: Authenticator,
    pub deadline: Duration,
}

impl Edge {
    /// Runs a request through the limits and the deadline, and turns any
    /// error into the envelope.
    pub async fn handle<E: Endpoint>(
        self: Arc<Self>,
        endpoint: Arc<E>,
        request: Request,
    ) -> poem::Result<Response> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = match self.serve(endpoint.as_ref(), request, &method, &path).await {
            Ok(response) => response,
            Err(error) => errors::render(error, &method, &path, self.allowed.allow_header(&path)),
        };
        Ok(response)
    }

    async fn serve<E: Endpoint>(
        &self,
        endpoint: &E,
        request: Request,
        method: &Method,
        path: &str,
    ) -> poem::Result<Response> {
        let budget = Budget::of(method, path);
        let caller = match budget {
            Budget::Write => self.authenticator.identify(request.headers()).ok(),
            _ => None,
        };
        self.limits.charge(budget, &request, caller)?;
        match tokio::time::timeout(self.deadline, endpoint.call(request)).await {
            Ok(result) => result.map(IntoResponse::into_response),
            Err(_elapsed) => Err(ApiError::Timeout {
                seconds: self.deadline.as_secs_f64().ceil() as u64,
            }
            .into()),
        }
    }
}

/// Sends requests from an allowed origin through CORS and the rest straight
/// on (a browser then refuses the cross-origin response), and stamps the
/// security headers on every response.
pub fn finish<E>(app: E, cors_origins: Vec<HeaderValue>) -> impl Endpoint<Output = Response>
where
    E: Endpoint<Output = Response> + 'static,
{
    let app = Arc::new(app);
    let with_cors = (!cors_origins.is_empty()).then(|| {
        let cors = Cors::new()
            .allow_origins(cors_origins.clone())
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(CORS_REQUEST_HEADERS)
            .expose_headers(CORS_RESPONSE_HEADERS)
            .max_age(600);
        Arc::new(app.clone().with(cors))
    });
    poem::endpoint::make(move |request: Request| {
        let app = app.clone();
        let with_cors = with_cors.clone();
        let allowed = request
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| cors_origins.contains(origin));
        async move {
            let path = request.uri().path().to_owned();
            let mut response = match with_cors.filter(|_| allowed) {
                Some(with_cors) => with_cors.get_response(request).await,
                None => app.get_response(request).await,
            };
            secure(&mut response, &path);
            Ok::<_, poem::Error>(response)
        }
    })
}

fn secure(response: &mut Response, path: &str) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path == "/user" || path.starts_with("/user/") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
