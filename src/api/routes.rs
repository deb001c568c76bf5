//! The route templates the app serves and the methods each accepts: for the
//! `Allow` header of 405s, and to name routes in logs and metrics by their
//! template (`/user/{id}`), never by a raw id.

use std::sync::Arc;

use poem::http::Method;
use poem_openapi::OpenApi;

struct KnownRoute {
    segments: Vec<String>,
    /// The template as the spec writes it, such as `/user/{id}`.
    template: String,
    /// The methods it accepts, for `Allow`.
    allow: String,
}

#[derive(Clone)]
pub struct RouteTable(Arc<Vec<KnownRoute>>);

fn is_param(segment: &str) -> bool {
    segment.starts_with(':') || segment.starts_with('{')
}

impl RouteTable {
    /// The operations of `T`, plus `extra` paths served with GET only.
    pub fn new<T: OpenApi>(extra: &[&str]) -> Self {
        let mut routes: Vec<(String, Vec<Method>)> = extra
            .iter()
            .map(|path| ((*path).to_owned(), vec![Method::GET]))
            .collect();
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            let methods = path.operations.iter().map(|op| op.method.clone());
            match routes.iter_mut().find(|(known, _)| *known == path.path) {
                Some((_, known)) => known.extend(methods),
                None => routes.push((path.path, methods.collect())),
            }
        }
        let routes = routes
            .into_iter()
            .map(|(path, mut methods)| {
                if methods.contains(&Method::GET) {
                    methods.push(Method::HEAD);
                }
                let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
                let template = segments
                    .iter()
                    .map(|segment| match segment.strip_prefix(':') {
                        Some(name) => format!("{{{name}}}"),
                        None => segment.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let allow = methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                KnownRoute {
                    segments,
                    template,
                    allow,
                }
            })
            .collect();
        Self(Arc::new(routes))
    }

    /// The route that serves `path`, preferring literal segments over
    /// parameters, as the router does (`/user/verify` before `/user/{id}`).
    fn find(&self, path: &str) -> Option<&KnownRoute> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .filter(|route| {
                route.segments.len() == segments.len()
                    && route
                        .segments
                        .iter()
                        .zip(&segments)
                        .all(|(expected, actual)| is_param(expected) || expected == actual)
            })
            .min_by_key(|route| route.segments.iter().filter(|s| is_param(s)).count())
    }

    pub fn allow_header(&self, path: &str) -> Option<String> {
        self.find(path).map(|route| route.allow.clone())
    }

    /// The template serving `path`, such as `/user/{id}`.
    pub fn template(&self, path: &str) -> Option<&str> {
        self.find(path).map(|route| route.template.as_str())
    }
}
