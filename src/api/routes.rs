//! The route templates the app serves, the methods each accepts and the
//! operation behind each: for the policy the edge applies to a request, the
//! `Allow` header of 405s, and to name routes in logs and metrics by their
//! template (`/user/{id}`), never by a raw id.

use std::sync::Arc;

use poem::http::Method;
use poem_openapi::OpenApi;

use super::operations::{self, Operation};

/// A method a route accepts, and the operation that serves it (none for
/// the documentation routes).
type Served = (Method, Option<&'static Operation>);

struct KnownRoute {
    segments: Vec<String>,
    /// How many segments are parameters: the fewer, the more specific.
    params: usize,
    /// The template as the spec writes it, such as `/user/{id}`: shared, so
    /// labelling a request with it copies no text.
    template: Arc<str>,
    methods: Vec<Served>,
    /// The methods it accepts, for `Allow`.
    allow: String,
}

/// What the router knows about a request before it runs.
#[derive(Clone, Copy)]
pub struct Matched<'a> {
    /// The template of the route serving the path, if any.
    pub template: Option<&'a Arc<str>>,
    /// The operation serving the path with this method, if any.
    pub operation: Option<&'static Operation>,
    /// The route serves user data (some operation on it needs a key), so
    /// no answer on it may be cached.
    pub private: bool,
}

#[derive(Clone)]
pub struct RouteTable(Arc<Vec<KnownRoute>>);

fn is_param(segment: &str) -> bool {
    segment.starts_with(':') || segment.starts_with('{')
}

impl RouteTable {
    /// The operations of `T`, plus `extra` paths served with GET only.
    pub fn new<T: OpenApi>(extra: &[&str]) -> Self {
        let mut routes: Vec<(String, Vec<Served>)> = extra
            .iter()
            .map(|path| ((*path).to_owned(), vec![(Method::GET, None)]))
            .collect();
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            let methods = path.operations.iter().map(|op| {
                let operation = op.operation_id.and_then(operations::by_id);
                (op.method.clone(), operation)
            });
            match routes.iter_mut().find(|(known, _)| *known == path.path) {
                Some((_, known)) => known.extend(methods),
                None => routes.push((path.path, methods.collect())),
            }
        }
        let routes = routes
            .into_iter()
            .map(|(path, mut methods)| {
                if let Some(get) = methods.iter().find(|(method, _)| *method == Method::GET) {
                    methods.push((Method::HEAD, get.1));
                }
                let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
                let template = segments
                    .iter()
                    .map(|segment| match segment.strip_prefix(':') {
                        Some(name) => format!("{{{name}}}"),
                        None => segment.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("/")
                    .into();
                let params = segments.iter().filter(|s| is_param(s)).count();
                let allow = methods
                    .iter()
                    .map(|(method, _)| method.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                KnownRoute {
                    segments,
                    params,
                    template,
                    methods,
                    allow,
                }
            })
            .collect();
        Self(Arc::new(routes))
    }

    /// The route that serves `path`, preferring literal segments over
    /// parameters, as the router does (`/user/verify` before `/user/{id}`).
    fn find(&self, path: &str) -> Option<&KnownRoute> {
        // A route without parameters serves its own path only, and before
        // any with parameters: one comparison each, no splitting.
        let literal = self
            .0
            .iter()
            .find(|route| route.params == 0 && *route.template == *path);
        if literal.is_some() {
            return literal;
        }
        let count = path.split('/').count();
        self.0
            .iter()
            .filter(|route| {
                route.params > 0
                    && route.segments.len() == count
                    && route
                        .segments
                        .iter()
                        .zip(path.split('/'))
                        .all(|(expected, actual)| is_param(expected) || expected == actual)
            })
            .min_by_key(|route| route.params)
    }

    pub fn allow_header(&self, path: &str) -> Option<String> {
        self.find(path).map(|route| route.allow.clone())
    }

    /// The template and operation serving `method` on `path`.
    pub fn matched(&self, method: &Method, path: &str) -> Matched<'_> {
        let Some(route) = self.find(path) else {
            return Matched {
                template: None,
                operation: None,
                private: false,
            };
        };
        let operation = route
            .methods
            .iter()
            .find(|(known, _)| known == method)
            .and_then(|(_, operation)| *operation);
        Matched {
            template: Some(&route.template),
            operation,
            private: route
                .methods
                .iter()
                .any(|(_, operation)| operation.is_some_and(|op| op.authenticated)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Apis, DOCUMENTATION_ROUTES};

    #[test]
    fn literal_routes_win_over_parameters_and_nothing_else_matches() {
        let table = RouteTable::new::<Apis>(&DOCUMENTATION_ROUTES);
        let template = |method: Method, path: &str| {
            let matched = table.matched(&method, path);
            (
                matched.template.map(|template| template.to_string()),
                matched.operation.is_some(),
            )
        };
        // (method, path, the template naming it, whether an operation serves it)
        let served = [
            (Method::GET, "/ping", "/ping", true),
            (Method::GET, "/openapi.json", "/openapi.json", false),
            (Method::POST, "/user", "/user", true),
            (Method::POST, "/user/verify", "/user/verify", true),
            (Method::POST, "/user/import", "/user/import", true),
            // `verify` as an id: the literal route still names it, with no
            // operation for GET there.
            (Method::GET, "/user/verify", "/user/verify", false),
            (Method::GET, "/user/abc", "/user/{id}", true),
            (
                Method::DELETE,
                "/user/abc/lockout",
                "/user/{id}/lockout",
                true,
            ),
            // An empty id is still the `{id}` segment.
            (Method::GET, "/user/", "/user/{id}", true),
        ];
        for (method, path, expected, operation) in served {
            assert_eq!(
                template(method, path),
                (Some(expected.to_owned()), operation),
                "{path}"
            );
        }
        for path in [
            "/",
            "",
            "/pingx",
            "/user/a/b",
            "/user/a/lockout/x",
            "/users",
        ] {
            assert_eq!(template(Method::GET, path), (None, false), "{path}");
        }
    }
}
