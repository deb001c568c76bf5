use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;

#[tokio::test]
async fn ping_answers_in_the_envelope() {
    let app = TestApp::spawn().await;
    let reply = app.get("/ping").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        serde_json::json!({ "data": { "status": "ok" }, "message": "pong", "status_code": 200 })
    );
}

#[tokio::test]
async fn an_unknown_route_is_404_in_the_envelope() {
    let app = TestApp::spawn().await;
    for path in [
        "/nope",
        "/users",
        "/user/65a1b2c3d4e5f60718293a4b/extra",
        "/",
    ] {
        let reply = app.get(path).await;
        reply.assert_error(404, "not_found");
        assert!(reply.message().contains(path), "{}", reply.text);
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let cases = [
        (Method::DELETE, "/user", "POST, GET, HEAD"),
        (Method::PUT, "/user", "POST, GET, HEAD"),
        (
            Method::POST,
            "/user/65a1b2c3d4e5f60718293a4b",
            "GET, PUT, PATCH, DELETE, HEAD",
        ),
        (Method::POST, "/ping", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let reply = app.request(method.clone(), path, None).await;
        reply.assert_error(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        assert!(reply.message().contains(method.as_str()), "{}", reply.text);
    }
}

/// HEAD is answered as GET is, status and headers, on every kind of route:
/// one without parameters, the spec, one with a query string and one with
/// a path parameter (hyper sends no body for it, and the client reads
/// none). A route without GET refuses it.
#[tokio::test]
async fn head_is_served_for_get_routes() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Head Request", "head@example.com").await;
    let id = crate::helpers::id(&user);
    for path in [
        "/ping".to_owned(),
        "/openapi.json".to_owned(),
        "/user?limit=1".to_owned(),
        "/user?limit=0".to_owned(),
        format!("/user/{id}"),
        "/user/65a1b2c3d4e5f60718293a4b".to_owned(),
    ] {
        let get = app.get(&path).await;
        let head = app.request(Method::HEAD, &path, None).await;
        assert_eq!(head.status, get.status, "{path}");
        assert!(!get.text.is_empty(), "{path}");
        for name in ["content-type", "etag", "link", "cache-control"] {
            assert_eq!(head.header(name), get.header(name), "{path}: {name}");
        }
    }
    let verify = app.request(Method::HEAD, "/user/verify", None).await;
    assert_eq!(verify.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(verify.header("allow"), Some("POST"));
}

/// hyper accepts any token as a method. A made-up one is refused like any
/// method a route does not take, and is counted and logged as `other`:
/// nothing a client sends as a method becomes a metric label (which would
/// grow /metrics, and memory, without bound) or is echoed back.
#[tokio::test]
async fn made_up_methods_are_refused_and_never_become_labels() {
    let app = TestApp::spawn().await;
    let long = "M".repeat(2_000);
    for i in 0..200 {
        let method = Method::from_bytes(format!("X{i}{long}").as_bytes()).unwrap();
        for (path, status, code) in [
            ("/user", 405, "method_not_allowed"),
            ("/ping", 405, "method_not_allowed"),
            ("/nowhere", 404, "not_found"),
        ] {
            let reply = app.send(app.anonymous(method.clone(), path)).await;
            reply.assert_error(status, code);
            assert!(!reply.text.contains(&long), "the method is echoed");
            assert!(reply.message().contains("other"), "{}", reply.text);
        }
    }
    let scrape = app.send(app.anonymous(Method::GET, "/metrics")).await;
    assert!(
        !scrape.text.contains(&long[..100]),
        "a method became a label"
    );
    assert!(
        scrape.text.len() < 32 * 1024,
        "/metrics grew to {} bytes",
        scrape.text.len()
    );
    assert!(
        scrape
            .text
            .contains(r#"http_requests_total{method="other",route="/user",status="405"} 200"#),
        "{}",
        scrape.text
    );
}
