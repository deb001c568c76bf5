//! What every request passes through before and after its handler: a
//! request id carried by every line it logs, rate limits, the deadline, the
//! error envelope, the access log and metrics, CORS and security headers.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{
    future::{BoxFuture, Either},
    FutureExt,
};
use poem::{
    endpoint::{BoxEndpoint, DynEndpoint},
    http::{header, HeaderName, HeaderValue, Method},
    middleware::Cors,
    Endpoint, EndpointExt, Request, Response,
};

use super::{
    dispatch::Dispatch,
    errors::{self, ApiError},
    limits::RateLimits,
    operations::{Budget, Operation},
    routes::RouteTable,
    Shared,
};
use crate::telemetry::RequestContext;

/// Request and response headers a browser client may use across origins.
const CORS_REQUEST_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "x-request-id",
];
const CORS_RESPONSE_HEADERS: [&str; 7] = [
    "location",
    "link",
    "etag",
    "retry-after",
    "idempotent-replayed",
    "www-authenticate",
    "x-request-id",
];

/// A static name: not parsed for every request.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The API behind its edge: every request passes through here on its way
/// to the spec, Swagger UI or the API's own router.
///
/// One endpoint, not a stack of middleware: a future is built by copying
/// each layer's inline into the one above it, and a generic layer's future
/// holds its inner one (often twice over), and the request with it. A
/// stack of layers around the API's futures made each request copy tens of
/// kilobytes as it began (see the README's Performance section). So the
/// edge contains a handler's panic itself, and calls the endpoint
/// [`Dispatch`] picks through its box, whose future is boxed already.
pub struct Edge {
    pub routes: RouteTable,
    /// The route label of requests no route serves.
    pub unmatched: Arc<str>,
    pub limits: Arc<RateLimits>,
    pub deadline: Duration,
    /// What the handlers share, put in each request for them to extract.
    pub shared: Arc<Shared>,
    /// The operations, the spec and Swagger UI.
    pub dispatch: Dispatch,
}

impl Endpoint for Edge {
    type Output = Response;

    /// Runs a request as itself (its id, method and route on every line it
    /// logs), through the limits and the deadline; turns any error into the
    /// envelope; logs and counts it.
    ///
    /// Not an `async fn`: what comes before the handler runs as the call is
    /// made, so the future holds the handler's (boxed) future and what the
    /// access line needs, not the request too. Every future layer that
    /// holds the request is copied whole when the connection boxes it.
    /// So the call itself charges the rate limits and starts the deadline
    /// (it must be made on a Tokio runtime), and the future it returns is
    /// meant to be polled at once, as the server and poem's CORS do.
    fn call(&self, request: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let started = Instant::now();
        let method = method_label(request.method());
        // Shares the request's buffer: no copy of the path.
        let uri = request.uri().clone();
        let matched = self.routes.matched(request.method(), uri.path());
        let context = RequestContext {
            request_id: request_id(&request),
            method,
            route: matched.template.unwrap_or(&self.unmatched).clone(),
        };
        // Every line logged while serving the request names it: those of
        // the checks before its handler, its handler's, then its error's
        // (if any) and its access line.
        let handler = context
            .clone()
            .sync_scope(|| self.begin(request, matched.operation, started));
        let handler = context.clone().scope(match handler {
            Ok(handler) => Either::Left(handler),
            Err(refused) => Either::Right(std::future::ready(Err(refused))),
        });
        async move {
            let served = handler.await;
            let RequestContext {
                request_id, route, ..
            } = context.clone();
            context.sync_scope(|| {
                let mut response = match served {
                    Ok(response) => response,
                    Err(error) => {
                        let allow = self.routes.allow_header(uri.path());
                        errors::render(error, method, uri.path(), allow)
                    }
                };
                response.headers_mut().insert(REQUEST_ID, request_id);
                if matched.private {
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                let status = response.status().as_u16();
                let elapsed = started.elapsed();
                tracing::info!(
                    target: "access",
                    status,
                    // In whole microseconds: `0.042`, not `0.042317891`.
                    latency_ms = micros(elapsed) as f64 / 1000.0,
                    "{method} {route} {status}"
                );
                self.shared
                    .metrics
                    .observe_request(method, &route, status, elapsed);
                Ok(response)
            })
        }
    }
}

impl Edge {
    /// Authenticates an operation that needs a key, first: a request
    /// without a valid one is answered 401 here, drawing only from the
    /// budget of unauthenticated requests (so it cannot spend the budget of
    /// the real clients behind the same address). Then the rate limits;
    /// then the handler begins, which finds the caller in the request,
    /// under the deadline.
    fn begin(
        &self,
        mut request: Request,
        operation: Option<&Operation>,
        started: Instant,
    ) -> poem::Result<impl Future<Output = poem::Result<Response>> + Send + '_> {
        let caller = match operation.filter(|operation| operation.authenticated) {
            Some(_) => match self.shared.authenticator.identify(request.headers()) {
                Ok(caller) => Some(caller),
                Err(unauthorized) => {
                    self.limits.charge_unauthenticated(&request)?;
                    return Err(unauthorized.into());
                }
            },
            None => None,
        };
        let budget = operation.map_or(Budget::Free, |operation| operation.budget);
        self.limits.charge(budget, &request, caller)?;
        let extensions = request.extensions_mut();
        extensions.insert(self.shared.clone());
        if let Some(caller) = caller {
            extensions.insert(caller);
        }
        let deadline = self.deadline * operation.map_or(1, |operation| operation.deadline_factor);
        let handler = contain_panics(|| self.dispatch.call(request));
        // From when the request was taken up (no second look at the clock).
        let due = tokio::time::Instant::from_std(started) + deadline;
        Ok(
            tokio::time::timeout_at(due, handler).map(move |finished| match finished {
                Ok(result) => result,
                Err(_elapsed) => Err(ApiError::Timeout {
                    seconds: deadline.as_secs_f64().ceil() as u64,
                }
                .into()),
            }),
        )
    }
}

/// The handler `start` begins, with a panic in it (or in beginning it)
/// turned into an internal error: answered 500 in the envelope and logged,
/// like any other, rather than a dropped connection.
fn contain_panics<'a>(
    start: impl FnOnce() -> BoxFuture<'a, poem::Result<Response>>,
) -> impl Future<Output = poem::Result<Response>> + 'a {
    fn panicked() -> poem::Result<Response> {
        Err(ApiError::Internal("a request handler panicked".into()).into())
    }
    match std::panic::catch_unwind(AssertUnwindSafe(start)) {
        Ok(handler) => Either::Left(
            AssertUnwindSafe(handler)
                .catch_unwind()
                .map(|caught| caught.unwrap_or_else(|_panic| panicked())),
        ),
        Err(_panic) => Either::Right(std::future::ready(panicked())),
    }
}

/// `elapsed` in whole microseconds (as many as a `u64` holds).
fn micros(elapsed: Duration) -> u64 {
    elapsed
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(elapsed.subsec_micros()))
}

/// The request's method from a fixed set, those RFC 9110 defines and
/// PATCH, or `other`: nothing a client sends as a method (hyper accepts any
/// token) becomes a label, a log field, a message or a map key. No route
/// takes another method, so such a request is answered 405 or 404.
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ]
    .iter()
    .find(|known| *known == method)
    .map_or("other", Method::as_str)
}

/// The caller's `X-Request-Id` when it is short and plain enough to log
/// safely, otherwise a fresh one (a random UUID, from a generator seeded
/// once per thread: no system call per request).
fn request_id(request: &Request) -> HeaderValue {
    let safe = |id: &&HeaderValue| {
        let id = id.as_bytes();
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_CHARS
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    match request.headers().get(&REQUEST_ID).filter(safe) {
        Some(id) => id.clone(),
        None => {
            let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
        }
    }
}

/// Sends requests from an allowed origin through CORS and the rest straight
/// on (a browser then refuses the cross-origin response), and stamps the
/// security headers on every response.
pub struct Finish<E> {
    app: Arc<E>,
    /// `app` behind CORS, when origins are allowed.
    with_cors: Option<BoxEndpoint<'static, Response>>,
    cors_origins: Vec<HeaderValue>,
}

impl<E: Endpoint<Output = Response> + 'static> Finish<E> {
    pub fn new(app: E, cors_origins: Vec<HeaderValue>) -> Self {
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
            app.clone().with(cors).boxed()
        });
        Self {
            app,
            with_cors,
            cors_origins,
        }
    }
}

impl<E: Endpoint<Output = Response>> Endpoint for Finish<E> {
    type Output = Response;

    /// Not an `async fn`, for the reason [`Edge::call`] gives.
    fn call(&self, request: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let allowed = request
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| self.cors_origins.contains(origin));
        let response = match self.with_cors.as_ref().filter(|_| allowed) {
            Some(with_cors) => Either::Left(DynEndpoint::call(&**with_cors, request)),
            // Straight to the edge, not through `Arc`'s forwarding (which
            // would hold the request again).
            None => Either::Right(self.app.as_ref().call(request)),
        };
        // The edge answers every error itself; CORS may refuse a preflight.
        response.map(|answered| {
            let mut response = answered.unwrap_or_else(|error| error.into_response());
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;
    use serde_json::Value;

    use super::*;

    async fn answer(
        start: impl FnOnce() -> BoxFuture<'static, poem::Result<Response>>,
    ) -> (StatusCode, String) {
        let response = match contain_panics(start).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        let status = response.status();
        (status, response.into_body().into_string().await.unwrap())
    }

    fn assert_internal_error(status: StatusCode, body: &str) {
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status_code"], 500, "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        assert!(!body.to_string().contains("a handler bug"), "{body}");
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_500_in_the_envelope() {
        let (status, body) = answer(|| Box::pin(async { panic!("a handler bug") })).await;
        assert_internal_error(status, &body);
    }

    #[tokio::test]
    async fn a_handler_that_panics_as_it_begins_is_answered_500_in_the_envelope() {
        let (status, body) = answer(|| panic!("a handler bug")).await;
        assert_internal_error(status, &body);
    }

    #[tokio::test]
    async fn a_handler_that_does_not_panic_is_answered_as_it_answers() {
        let (status, body) = answer(|| {
            Box::pin(async { Ok(Response::builder().status(StatusCode::CREATED).body("made")) })
        })
        .await;
        assert_eq!((status, body.as_str()), (StatusCode::CREATED, "made"));
    }
}
