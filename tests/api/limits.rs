use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{wait_until, Reply, TestApp, API_KEY, OTHER_API_KEY, PASSWORD};

fn new_user(i: usize) -> serde_json::Value {
    json!({ "name": format!("User {i}"), "email": format!("user{i}@example.com"), "password": PASSWORD })
}

#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    reply.assert_error(429, "rate_limited");
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
}

#[tokio::test]
async fn writes_are_limited_per_client_and_recover_after_the_window() {
    let app = TestApp::spawn_with(|config| {
        config.limits.rate_limit_writes = 3;
        config.limits.rate_limit_window = Duration::from_secs(1);
    })
    .await;
    for i in 0..3 {
        assert_eq!(app.post_user(new_user(i)).await.status, StatusCode::CREATED);
    }
    let limited = app.post_user(new_user(3)).await;
    assert_rate_limited(&limited);
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 1
    );
    // Each kind of write draws from the same budget; reads do not.
    assert_rate_limited(&app.delete_user("65a1b2c3d4e5f60718293a4b").await);
    assert_eq!(app.get("/user").await.status, StatusCode::OK);
    assert_eq!(app.stored_count().await, 3);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.post_user(new_user(4)).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_forged_forwarded_for_does_not_dodge_the_limit() {
    let app = TestApp::spawn_with(|config| config.limits.rate_limit_writes = 2).await;
    for i in 0..4 {
        let reply = app
            .send(
                app.builder(Method::POST, "/user")
                    .header("x-forwarded-for", format!("203.0.113.{i}"))
                    .json(&new_user(i)),
            )
            .await;
        if i < 2 {
            assert_eq!(reply.status, StatusCode::CREATED);
        } else {
            assert_rate_limited(&reply);
        }
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_and_each_key_has_its_budget() {
    let app = TestApp::spawn_with(|config| {
        config.limits.rate_limit_writes = 2;
        config.security.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let post = |client_ip: &str, key: &str, i: usize| {
        app.send(
            app.anonymous(Method::POST, "/user")
                .bearer_auth(key)
                .header("x-forwarded-for", format!("{client_ip}, 127.0.0.1"))
                .json(&new_user(i)),
        )
    };
    // Two clients, one key: the key's budget runs out though neither
    // client's does.
    assert_eq!(
        post("198.51.100.1", API_KEY, 0).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        post("198.51.100.2", API_KEY, 1).await.status,
        StatusCode::CREATED
    );
    assert_rate_limited(&post("198.51.100.3", API_KEY, 2).await);
    // Another key from a fresh client is fine, until that client is spent.
    assert_eq!(
        post("198.51.100.4", OTHER_API_KEY, 3).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        post("198.51.100.4", OTHER_API_KEY, 4).await.status,
        StatusCode::CREATED
    );
    assert_rate_limited(&post("198.51.100.4", OTHER_API_KEY, 5).await);
    assert_eq!(app.stored_count().await, 4);
}

/// Through two proxies, the client is the nearest address no proxy is
/// trusted for: whatever a client writes at the left of X-Forwarded-For,
/// and however the hops are split across header fields, it is counted as
/// itself.
#[tokio::test]
async fn through_several_proxies_a_forged_leftmost_entry_changes_nothing() {
    let app = TestApp::spawn_with(|config| {
        config.limits.rate_limit_writes = 2;
        config.security.trusted_proxies = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    // client → proxy 10.0.0.2 → proxy 127.0.0.1 → service: each proxy
    // appends the address it saw.
    let post = |forwarded: Vec<String>, i: usize| {
        let mut builder = app.builder(Method::POST, "/user").json(&new_user(i));
        for field in forwarded {
            builder = builder.header("x-forwarded-for", field);
        }
        app.send(builder)
    };
    let forged = |i: usize| format!("203.0.113.{i}, 198.51.100.7, 10.0.0.2");
    assert_eq!(post(vec![forged(0)], 0).await.status, StatusCode::CREATED);
    assert_eq!(
        post(
            vec!["203.0.113.1".into(), "198.51.100.7, 10.0.0.2".into()],
            1
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_rate_limited(&post(vec![forged(2)], 2).await);
    assert_rate_limited(&post(vec!["198.51.100.7".into(), "10.0.0.2".into()], 3).await);
    // Another client behind the same proxies has its own budget (and a key
    // of its own: the first key's budget is spent too).
    let other = app
        .send(
            app.anonymous(Method::POST, "/user")
                .bearer_auth(OTHER_API_KEY)
                .header("x-forwarded-for", "203.0.113.0, 198.51.100.8, 10.0.0.2")
                .json(&new_user(4)),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
    assert_eq!(app.stored_count().await, 3);
}

/// One client spraying many accounts is stopped by its own budget; one
/// account guessed at from many clients is the lockout's job (lifecycle.rs).
#[tokio::test]
async fn verify_is_limited_per_client() {
    let app = TestApp::spawn_with(|config| {
        config.limits.rate_limit_verify = 3;
        config.security.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let attempt = |client_ip: &str, email: &str| {
        app.send(
            app.builder(Method::POST, "/user/verify")
                .header("x-forwarded-for", client_ip.to_owned())
                .json(&json!({ "email": email, "password": "Password@000" })),
        )
    };
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        attempt("192.0.2.9", email)
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_rate_limited(&attempt("192.0.2.9", "d@example.com").await);
    attempt("192.0.2.10", "d@example.com")
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn bodies_over_16_kib_are_413_before_parsing() {
    let app = TestApp::spawn().await;
    let oversized = format!(r#"{{"name": "{}"}}"#, "a".repeat(16 * 1024));
    for (method, path) in [
        (Method::POST, "/user"),
        (Method::PUT, "/user/65a1b2c3d4e5f60718293a4b"),
        (Method::PATCH, "/user/65a1b2c3d4e5f60718293a4b"),
        (Method::POST, "/user/verify"),
    ] {
        let reply = app
            .send(
                app.builder(method, path)
                    .header(CONTENT_TYPE, "application/json")
                    .body(oversized.clone()),
            )
            .await;
        reply.assert_error(413, "payload_too_large");
    }
    // Exactly 16 KiB is read and parsed (and here found wanting).
    let body =
        json!({ "name": "Ada", "email": "ada@example.com", "password": PASSWORD }).to_string();
    let padded = format!("{body}{}", " ".repeat(16 * 1024 - body.len()));
    assert_eq!(padded.len(), 16 * 1024);
    let reply = app
        .send(
            app.builder(Method::POST, "/user")
                .header(CONTENT_TYPE, "application/json")
                .body(padded),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

/// A chunked body declares no length; reading stops at the limit anyway.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let chunk = "a".repeat(4096);
    let mut request = format!(
        "POST /user HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..5 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    // The server may answer and close before reading everything we sent.
    let _ = stream.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"payload_too_large\""), "{response}");
}

/// Hash jobs started so far (each records its wait for a slot) and jobs
/// waiting for one now.
async fn hash_jobs(app: &TestApp) -> (f64, f64) {
    let started = app.metric("password_hash_wait_seconds_count").await;
    let waiting = app.metric("password_hash_queue_depth").await;
    (started.unwrap_or(0.0), waiting.unwrap_or(0.0))
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_and_reads_keep_working() {
    let app = Arc::new(
        TestApp::spawn_with(|config| {
            config.bcrypt_cost = 13;
            config.limits.hash_concurrency = Some(1);
            config.limits.hash_queue_max = 1;
        })
        .await,
    );
    let create = |i: usize| {
        let app = app.clone();
        tokio::spawn(async move { app.post_user(new_user(i)).await })
    };
    // One create hashes, a second waits for the one slot: the queue is full.
    let running = create(0);
    wait_until("the first create to hash", 20, || async {
        hash_jobs(&app).await.0 == 1.0
    })
    .await;
    let queued = create(1);
    wait_until("the second create to queue", 20, || async {
        hash_jobs(&app).await.1 == 1.0
    })
    .await;
    // Every further create is refused at once, and a read is answered, all
    // before the first create has finished hashing.
    for i in 2..6 {
        let reply = app.post_user(new_user(i)).await;
        reply.assert_error(503, "busy");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    let read = app.get("/user").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert!(!running.is_finished(), "the first create was still hashing");
    assert_eq!(hash_jobs(&app).await, (1.0, 1.0), "and the second waiting");

    for create in [running, queued] {
        let reply = create.await.unwrap();
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    assert_eq!(app.stored_count().await, 2);
}

#[tokio::test]
async fn waiting_too_long_for_a_hashing_slot_answers_503() {
    let app = Arc::new(
        TestApp::spawn_with(|config| {
            config.bcrypt_cost = 13;
            config.limits.hash_concurrency = Some(1);
            config.limits.hash_queue_wait_ms = 1;
        })
        .await,
    );
    let running = {
        let app = app.clone();
        tokio::spawn(async move { app.post_user(new_user(0)).await })
    };
    wait_until("the first create to hash", 20, || async {
        hash_jobs(&app).await.0 == 1.0
    })
    .await;
    // Each of these waits 1 ms for the slot the first create holds.
    let replies = join_all((1..4).map(|i| app.post_user(new_user(i)))).await;
    assert!(!running.is_finished(), "the first create was still hashing");
    for reply in replies {
        reply.assert_error(503, "busy");
    }
    let reply = running.await.unwrap();
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/ping"),
        (Method::GET, "/docs"),
        (Method::GET, "/user"),
        (Method::GET, "/user/bad"),
        (Method::GET, "/nope"),
        (Method::DELETE, "/ping"),
    ] {
        let reply = app.send(app.builder(method.clone(), path)).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{method} {path}"
        );
        let no_store = reply.header("cache-control") == Some("no-store");
        assert_eq!(no_store, path.starts_with("/user"), "{method} {path}");
    }
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_listed() {
    let closed = TestApp::spawn().await;
    let reply = closed
        .send(
            closed
                .builder(Method::GET, "/user")
                .header("origin", "https://admin.example.com"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("access-control-allow-origin").is_none());

    let open = TestApp::spawn_with(|config| {
        config.security.cors_origins = vec!["https://admin.example.com".into()];
    })
    .await;
    let preflight = open
        .send(
            open.anonymous(Method::OPTIONS, "/user")
                .header("origin", "https://admin.example.com")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
        )
        .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    let allowed = open
        .send(
            open.builder(Method::GET, "/user")
                .header("origin", "https://admin.example.com"),
        )
        .await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    // A page can read every response header the spec documents, and the
    // request id.
    let spec = open.get("/openapi.json").await.body;
    let mut documented: Vec<String> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|path| path.as_object().unwrap().values())
        .flat_map(|operation| operation["responses"].as_object().unwrap().values())
        .filter_map(|response| response["headers"].as_object())
        .flat_map(|headers| headers.keys().map(|name| name.to_ascii_lowercase()))
        .chain(["x-request-id".to_owned()])
        .collect();
    documented.sort();
    documented.dedup();
    assert!(documented.contains(&"etag".to_owned()), "{documented:?}");
    let mut exposed: Vec<String> = allowed
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    exposed.sort();
    assert_eq!(exposed, documented);
    let other = open
        .send(
            open.builder(Method::GET, "/user")
                .header("origin", "https://evil.example.net"),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(other.header("access-control-allow-origin").is_none());
}

/// An IPv6 client can pick any address in its /64; the limit counts the /64.
#[tokio::test]
async fn ipv6_addresses_of_one_64_share_a_budget() {
    let app = TestApp::spawn_with(|config| {
        config.limits.rate_limit_writes = 2;
        config.security.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let post = |client_ip: &str, i: usize| {
        app.send(
            app.builder(Method::POST, "/user")
                .header("x-forwarded-for", client_ip.to_owned())
                .json(&new_user(i)),
        )
    };
    assert_eq!(post("2001:db8:0:1::1", 0).await.status, StatusCode::CREATED);
    assert_eq!(post("2001:db8:0:1::2", 1).await.status, StatusCode::CREATED);
    assert_rate_limited(&post("2001:db8:0:1:ffff::3", 2).await);
    // Another /64, with another API key (the first key's budget is spent too).
    let other = app
        .send(
            app.anonymous(Method::POST, "/user")
                .bearer_auth(OTHER_API_KEY)
                .header("x-forwarded-for", "2001:db8:0:2::1")
                .json(&new_user(3)),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
}

/// Requests without a valid key draw from their own budget: behind one NAT
/// address, a stranger's keyless flood cannot spend a real client's writes
/// or verifies.
#[tokio::test]
async fn unauthenticated_requests_have_their_own_budget() {
    let app = TestApp::spawn_with(|config| {
        config.limits.rate_limit_verify = 3;
        config.limits.rate_limit_writes = 3;
        config.limits.rate_limit_unauthenticated = 6;
    })
    .await;
    for _ in 0..6 {
        let keyless = app
            .send(
                app.anonymous(Method::POST, "/user/verify")
                    .json(&json!({ "email": "a@example.com", "password": PASSWORD })),
            )
            .await;
        keyless.assert_error(401, "unauthorized");
    }
    let flooded = app
        .send(app.anonymous(Method::POST, "/user").json(&new_user(0)))
        .await;
    assert_rate_limited(&flooded);
    // The keyed client behind the same address still has all its budget.
    for i in 0..3 {
        assert_eq!(app.post_user(new_user(i)).await.status, StatusCode::CREATED);
    }
    app.request(
        Method::POST,
        "/user/verify",
        Some(json!({ "email": "user0@example.com", "password": PASSWORD })),
    )
    .await
    .assert_status_only(200);
}
