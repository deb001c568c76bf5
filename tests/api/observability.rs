use std::{
    collections::HashMap,
    process::Command,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{fresh_database, mongo_uri, sample, wait_until, TestApp, API_KEY, PASSWORD},
    process::Server,
};

#[tokio::test]
async fn request_ids_round_trip_or_are_made_up() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.builder(Method::GET, "/user")
                .header("x-request-id", "abc-123.XYZ:9"),
        )
        .await;
    assert_eq!(reply.header("x-request-id"), Some("abc-123.XYZ:9"));

    for unsafe_id in ["has space", &"x".repeat(129), "quote\"d"] {
        let reply = app
            .send(
                app.builder(Method::GET, "/ping")
                    .header("x-request-id", unsafe_id),
            )
            .await;
        let given = reply.header("x-request-id").unwrap();
        assert_ne!(given, unsafe_id);
        assert_eq!(given.len(), 36, "{given}");
    }
    // Errors carry it too.
    let reply = app
        .send(
            app.anonymous(Method::GET, "/user")
                .header("x-request-id", "r1"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("x-request-id"), Some("r1"));
}

/// Parses OpenMetrics text with the Prometheus project's reference parser
/// (Python `prometheus_client`), returning every sample as
/// `(name, labels, value)`.
fn parse_openmetrics(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let python = std::env::var("TEST_PYTHON").expect(
        "TEST_PYTHON is not set. Run the suite with ./scripts/test, which installs the tools.",
    );
    let parser = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = [
    [s.name, s.labels, s.value]
    for family in text_string_to_metric_families(sys.stdin.read())
    for s in family.samples
]
print(json.dumps(samples))
"#;
    let mut child = Command::new(python)
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "/metrics is not valid OpenMetrics: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = user["id"].as_str().unwrap();
    for _ in 0..3 {
        app.get(&format!("/user/{id}")).await;
    }
    app.get("/user/65a1b2c3d4e5f60718293a4b").await;

    let scrape = app.send(app.anonymous(Method::GET, "/metrics")).await;
    assert_eq!(
        scrape.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(!scrape.text.contains(id), "metrics must not carry raw ids");
    let samples = parse_openmetrics(&scrape.text);
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples.iter().find_map(|(sample, sample_labels, value)| {
            let matches = sample == name
                && labels
                    .iter()
                    .all(|(k, v)| sample_labels.get(*k).map(String::as_str) == Some(*v));
            matches.then_some(*value)
        })
    };
    let get_user = [
        ("method", "GET"),
        ("route", "/user/{id}"),
        ("status", "200"),
    ];
    assert_eq!(value("http_requests_total", &get_user), Some(3.0));
    assert_eq!(
        value("http_request_duration_seconds_count", &get_user),
        Some(3.0)
    );
    let missing = [
        ("method", "GET"),
        ("route", "/user/{id}"),
        ("status", "404"),
    ];
    assert_eq!(value("http_requests_total", &missing), Some(1.0));
    let created = [("method", "POST"), ("route", "/user"), ("status", "201")];
    assert_eq!(value("http_requests_total", &created), Some(1.0));
    let insert = [("operation", "users.insert")];
    assert_eq!(
        value("db_operation_duration_seconds_count", &insert),
        Some(1.0)
    );
    assert_eq!(
        value("db_operation_errors_total", &insert),
        None,
        "no insert failed"
    );
    assert_eq!(value("password_hash_queue_depth", &[]), Some(0.0));
    assert_eq!(value("password_hash_wait_seconds_count", &[]), Some(1.0));
}

/// JSON log lines parse; each request gets one access line naming its route
/// template, never the raw id or query string, and carrying the request id.
#[tokio::test]
async fn json_logs_parse_and_access_lines_name_route_templates() {
    let (server, base) = Server::start(|command| {
        command.env("LOG_FORMAT", "json").env("RUST_LOG", "info");
    })
    .await;
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/user"))
        .bearer_auth(API_KEY)
        .header("x-request-id", "create-1")
        .json(&json!({ "name": "Ada", "email": "ada@example.com", "password": "Secret#Horse1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    client
        .get(format!("{base}/user/{id}"))
        .bearer_auth(API_KEY)
        .header("x-request-id", "read-1")
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/user?email=ada%40example.com"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let made_up = format!("MADEUP{}", "Q".repeat(500));
    let refused = client
        .request(
            Method::from_bytes(made_up.as_bytes()).unwrap(),
            format!("{base}/user"),
        )
        .header("x-request-id", "made-up-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);

    let logs = server.logs();
    assert!(!logs.contains("MADEUP"), "a made-up method reached the log");
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|line| line["target"] == "access")
        .collect();
    let by_request: HashMap<&str, &Value> = access
        .iter()
        .filter_map(|line| Some((line["span"]["request_id"].as_str()?, *line)))
        .collect();
    let create = by_request["create-1"];
    assert_eq!(create["span"]["route"], "/user");
    assert_eq!(create["status"], 201);
    let read = by_request["read-1"];
    assert_eq!(read["span"]["route"], "/user/{id}");
    assert_eq!(read["span"]["method"], "GET");
    assert!(read["latency_ms"].as_f64().is_some());
    let other = by_request["made-up-1"];
    assert_eq!(other["span"]["method"], "other");
    assert_eq!(other["status"], 405);
    for line in &access {
        let text = line.to_string();
        assert!(!text.contains(&id), "{text}");
        assert!(
            !text.contains("ada%40") && !text.contains("ada@example.com"),
            "{text}"
        );
    }
    assert!(!logs.contains("Secret#Horse"));
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let (mut server, base) = Server::start(|command| {
        command
            .env("RUST_LOG", "info")
            .env("BCRYPT_COST", "12")
            .env("HASH_CONCURRENCY", "1");
    })
    .await;
    let client = reqwest::Client::new();
    let creates: Vec<_> = (0..4)
        .map(|i| {
            let request = client
                .post(format!("{base}/user"))
                .bearer_auth(API_KEY)
                .json(&json!({ "name": "Ada", "email": format!("ada{i}@example.com"), "password": PASSWORD }))
                .send();
            tokio::spawn(request)
        })
        .collect();
    // With one hashing slot, a job waiting means another is hashing: four
    // creates are in flight, and three still have their hashing ahead.
    wait_until("creates to queue for hashing", 20, || async {
        let scrape = client.get(format!("{base}/metrics")).send().await;
        let text = match scrape {
            Ok(scrape) => scrape.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        sample(&text, "password_hash_queue_depth").is_some_and(|depth| depth >= 1.0)
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for create in creates {
        let reply = create
            .await
            .unwrap()
            .expect("a request in flight is answered");
        assert_eq!(reply.status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        reqwest::get(format!("{base}/ping")).await.is_err(),
        "it stopped listening"
    );
    let logs = server.logs();
    assert!(logs.contains("shutting down"), "{logs}");
}

/// Log lines leave the request path through a bounded buffer: with
/// standard output blocked (a pipe nobody reads once the server has said
/// where it listens), every request is still answered, and the lines that
/// no longer fit are dropped and counted, never waited for.
#[tokio::test]
async fn a_blocked_stdout_never_stalls_requests_and_drops_are_counted() {
    use std::io::{BufRead, BufReader};

    use futures::{stream, StreamExt};

    let mut child = crate::process::user_api()
        .env("MONGO_URI", format!("{}/{}", mongo_uri(), fresh_database()))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _stop = KillOnDrop(&mut child);
    let mut stdout = BufReader::new(_stop.0.stdout.take().unwrap());
    let port = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server exited"
        );
        if let Some(port) = crate::process::listening_port(&line) {
            break port;
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let dropped = |metrics: &str| sample(metrics, "log_lines_dropped_total");
    let metrics = || async {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap();
        text.text().await.unwrap()
    };
    assert_eq!(dropped(&metrics().await), Some(0.0));

    // The pipe holds 64 KiB and the buffer 2 MiB: some ten thousand access
    // lines fill both.
    let mut answered = 0;
    while dropped(&metrics().await) == Some(0.0) {
        assert!(
            answered < 60_000,
            "no line was dropped after {answered} requests"
        );
        let statuses: Vec<u16> = stream::iter(0..2_000)
            .map(|_| async {
                let reply = client.get(format!("{base}/ping")).send().await.unwrap();
                reply.status().as_u16()
            })
            .buffer_unordered(32)
            .collect()
            .await;
        assert!(statuses.iter().all(|status| *status == 200));
        answered += statuses.len();
    }
    let after = dropped(&metrics().await).unwrap();
    assert!(after > 0.0);
    // Still answering at once, and still counting.
    let reply = client.get(format!("{base}/ping")).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(dropped(&metrics().await).unwrap() > after);
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
