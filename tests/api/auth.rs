use reqwest::{header::AUTHORIZATION, Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, OTHER_API_KEY, PASSWORD};

/// Every `/user` operation, with a body where it takes one. The id is
/// deliberately malformed: a caller without a key must not learn even that.
fn user_operations() -> Vec<(Method, &'static str, Option<serde_json::Value>)> {
    let body = json!({ "name": "Ada", "email": "ada@example.com", "password": PASSWORD });
    vec![
        (Method::POST, "/user", Some(body.clone())),
        (Method::GET, "/user", None),
        (Method::GET, "/user?limit=0", None),
        (Method::GET, "/user/not-an-id", None),
        (Method::GET, "/user/65a1b2c3d4e5f60718293a4b", None),
        (Method::PUT, "/user/not-an-id", Some(body.clone())),
        (
            Method::PATCH,
            "/user/65a1b2c3d4e5f60718293a4b",
            Some(json!({})),
        ),
        (Method::DELETE, "/user/65a1b2c3d4e5f60718293a4b", None),
        (
            Method::POST,
            "/user/verify",
            Some(json!({ "email": "ada@example.com", "password": PASSWORD })),
        ),
        (
            Method::POST,
            "/user/import",
            Some(json!({ "users": [body] })),
        ),
        (
            Method::DELETE,
            "/user/65a1b2c3d4e5f60718293a4b/lockout",
            None,
        ),
    ]
}

/// The list above is every operation the spec says needs a key, so a new
/// operation cannot go untested here.
#[tokio::test]
async fn the_list_covers_every_operation_that_needs_a_key() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json").await.body;
    let mut secured: Vec<(String, String)> = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if operation.get("security").is_some() {
                secured.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut listed: Vec<(String, String)> = user_operations()
        .into_iter()
        .map(|(method, path, _)| {
            let path = path.split('?').next().unwrap_or(path);
            let template = user_api::api::route_template(path).expect("a route");
            (method.to_string(), template)
        })
        .collect();
    secured.sort();
    listed.sort();
    listed.dedup();
    assert!(!secured.is_empty());
    assert_eq!(listed, secured);
}

#[tokio::test]
async fn every_user_operation_needs_a_valid_key() {
    // Every operation six times over: more keyless requests than the
    // budget for them allows (tested on its own in limits.rs).
    let app = TestApp::spawn_with(|config| config.limits.rate_limit_unauthenticated = 0).await;
    let credentials: [Option<&str>; 6] = [
        None,
        Some("Bearer wrong-key-0123456789abcdefghijklmnopq"),
        Some("Bearer"),
        Some("Basic dXNlcjpwYXNz"),
        Some("test-api-key-0123456789abcdefghijklmnop"),
        Some("Bearer test-api-key-0123456789abcdefghijklmno"),
    ];
    for (method, path, body) in user_operations() {
        for authorization in credentials {
            let mut request = app.anonymous(method.clone(), path);
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let reply = app.send(request).await;
            reply.assert_error(401, "unauthorized");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"user-api\""),
                "{method} {path}"
            );
        }
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn any_configured_key_works_and_the_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    for authorization in [
        format!("Bearer {OTHER_API_KEY}"),
        format!("bearer {OTHER_API_KEY}"),
        format!("BEARER  {OTHER_API_KEY}"),
    ] {
        let reply = app
            .send(
                app.anonymous(Method::GET, "/user")
                    .header(AUTHORIZATION, authorization),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

#[tokio::test]
async fn public_routes_stay_public() {
    let app = TestApp::spawn().await;
    for path in ["/ping", "/docs", "/openapi.json", "/openapi.yaml"] {
        let reply = app.send(app.anonymous(Method::GET, path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_spec_declares_the_bearer_scheme_on_every_user_operation() {
    let spec: serde_json::Value = serde_yaml::from_str(include_str!("../../openapi.yaml")).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["ApiKey"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"] == json!([{ "ApiKey": [] }]);
            assert_eq!(secured, path.starts_with("/user"), "{method} {path}");
            if secured {
                assert!(
                    operation["responses"]["401"].is_object(),
                    "{method} {path}: 401"
                );
            }
        }
    }
}
