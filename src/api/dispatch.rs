//! From a request to the endpoint that answers it: the operations' own
//! endpoints, called directly, rather than poem-openapi's service endpoint.
//!
//! poem-openapi serves an API as one endpoint: a `Route` of every path, and
//! around it a layer that parses the query string for its extractors, one
//! that turns the output into a response, and a box. Each is a future built
//! around the one inside it, moved as it is built and polled on every
//! request. A path without parameters (most of them, `/ping` and `/user`
//! among them) needs no router: it goes straight to its operation's
//! endpoint. A path with parameters still goes through a
//! `Route`, because only poem's router can give its handler the parameters,
//! but one holding just those paths, with no layers around it.

use std::collections::HashMap;

use futures::future::{self, BoxFuture};
use poem::{
    endpoint::{BoxEndpoint, DynEndpoint},
    error::MethodNotAllowedError,
    http::Method,
    Endpoint, EndpointExt, Request, Response, Route, RouteMethod,
};
use poem_openapi::{__private::UrlQuery, OpenApi};

/// A path's endpoints, by method.
type Methods = HashMap<Method, BoxEndpoint<'static>>;

pub struct Dispatch {
    /// The paths without parameters, the documentation's among them.
    exact: Vec<(String, Methods)>,
    /// The paths with parameters, and the 404 of every other path.
    router: BoxEndpoint<'static>,
}

impl Dispatch {
    /// The operations of `api`, and `extra` endpoints each served with GET
    /// at its exact path.
    pub fn new<T: OpenApi>(api: T, extra: impl IntoIterator<Item = (String, Methods)>) -> Self {
        let mut paths = HashMap::new();
        api.add_routes(&mut paths);
        for (path, methods) in extra {
            // Which would be served is up to the map: a mistake, found at
            // start-up.
            assert!(
                paths.insert(path.clone(), methods).is_none(),
                "{path} is served twice"
            );
        }
        let (exact, parameterised): (Vec<_>, Vec<_>) = paths
            .into_iter()
            .partition(|(path, _)| !path.contains([':', '{', '*']));
        let router = parameterised
            .into_iter()
            .fold(Route::new(), |route, (path, methods)| {
                let methods = methods
                    .into_iter()
                    .fold(RouteMethod::new(), |route, (method, endpoint)| {
                        route.method(method, endpoint)
                    });
                route.at(path, methods)
            })
            .boxed();
        Self { exact, router }
    }

    /// An endpoint served with GET at `path`, for [`Dispatch::new`]'s
    /// `extra`.
    pub fn get(path: &str, endpoint: impl Endpoint + 'static) -> (String, Methods) {
        let endpoint = endpoint.map_to_response().boxed();
        (path.to_owned(), HashMap::from([(Method::GET, endpoint)]))
    }

    /// Starts answering `request`, as poem-openapi's service would: its
    /// query string parsed for the operations' extractors, HEAD served by
    /// GET without the body, 405 for a method the path does not take, and
    /// 404 (from the router) for a path nothing serves.
    pub fn call(&self, mut request: Request) -> BoxFuture<'_, poem::Result<Response>> {
        // As poem-openapi does: a query string that does not parse is left
        // to each extractor to refuse.
        let query: Vec<(String, String)> = request.params().unwrap_or_default();
        request.extensions_mut().insert(UrlQuery(query));
        let path = request.uri().path();
        let Some((_, methods)) = self.exact.iter().find(|(known, _)| known == path) else {
            return DynEndpoint::call(&*self.router, request);
        };
        if let Some(endpoint) = methods.get(request.method()) {
            return DynEndpoint::call(&**endpoint, request);
        }
        match methods.get(&Method::GET) {
            Some(get) if request.method() == Method::HEAD => {
                request.set_method(Method::GET);
                let answer = DynEndpoint::call(&**get, request);
                Box::pin(async move {
                    let mut response = answer.await?;
                    response.set_body(());
                    Ok(response)
                })
            }
            _ => Box::pin(future::ready(Err(MethodNotAllowedError.into()))),
        }
    }
}
