//! The `user-api` binary itself: its commands, its configuration errors and
//! what it writes to its logs.

use std::{
    io::Read,
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::helpers::{fresh_database, mongo_uri, API_KEY};

const SETTINGS: [&str; 16] = [
    "MONGO_URI",
    "HOST",
    "PORT",
    "BCRYPT_COST",
    "RUST_LOG",
    "API_KEYS",
    "AUTH_DISABLED",
    "TRUSTED_PROXIES",
    "CORS_ORIGINS",
    "RATE_LIMIT_WRITES",
    "RATE_LIMIT_VERIFY",
    "LOCKOUT_THRESHOLD",
    "HASH_CONCURRENCY",
    "HASH_QUEUE_MAX",
    "HASH_QUEUE_WAIT_MS",
    "REQUEST_TIMEOUT_MS",
];

/// The binary, run from an empty directory so no `.env` applies, with none of
/// the configuration variables inherited, and an API key.
pub fn user_api() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_user-api"));
    command.current_dir(std::env::temp_dir());
    for var in SETTINGS {
        command.env_remove(var);
    }
    command.env("API_KEYS", API_KEY);
    command
}

/// Runs the binary to completion; it must finish within 20 s.
fn run(command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(Duration::from_secs(20)) {
        Ok(output) => output.expect("the binary's output is readable"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the binary did not exit within 20 s");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn openapi_prints_the_committed_spec_without_a_database() {
    let output = run(user_api()
        .arg("openapi")
        .env("MONGO_URI", "mongodb://127.0.0.1:1/unreachable"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8(output.stdout).unwrap() == include_str!("../../openapi.yaml"),
        "`user-api openapi` differs from openapi.yaml"
    );
}

#[test]
fn help_documents_every_setting() {
    let output = run(user_api().arg("--help"));
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for var in ["MONGO_URI", "HOST", "PORT", "BCRYPT_COST", "RUST_LOG"] {
        assert!(
            help.contains(&format!("[env: {var}")),
            "--help lacks {var}:\n{help}"
        );
    }
    assert!(help.contains("openapi"), "{help}");
}

/// Invalid settings stop the process at once with a one-line reason.
#[test]
fn invalid_configuration_exits_with_a_one_line_reason() {
    for (var, value, mentions) in [
        ("PORT", "eighty", "port"),
        ("PORT", "70000", "port"),
        ("BCRYPT_COST", "3", "bcrypt-cost"),
        ("BCRYPT_COST", "32", "bcrypt-cost"),
        ("HOST", "not an ip", "host"),
        ("MONGO_URI", "postgres://localhost/users", "MONGO_URI"),
        ("RUST_LOG", "user_api=loud", "RUST_LOG"),
        ("API_KEYS", "too-short", "at least 32"),
        (
            "API_KEYS",
            "has spaces in it 0123456789abcdefghijklmnop",
            "API_KEYS",
        ),
        ("AUTH_DISABLED", "maybe", "auth-disabled"),
        ("TRUSTED_PROXIES", "10.0.0.0/99", "trusted-proxies"),
        ("CORS_ORIGINS", "admin.example.com", "CORS_ORIGINS"),
        ("RATE_LIMIT_WRITES", "-1", "rate-limit-writes"),
        ("HASH_CONCURRENCY", "0", "hash-concurrency"),
        ("REQUEST_TIMEOUT_MS", "0", "request-timeout-ms"),
    ] {
        let output = run(user_api().env(var, value));
        assert!(!output.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{var}={value}: {stderr}"
        );
        assert!(stderr.contains(mentions), "{var}={value}: {stderr}");
    }
}

#[test]
fn without_api_keys_the_service_refuses_to_start() {
    let output = run(user_api().env_remove("API_KEYS"));
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("API_KEYS is not set"), "{stderr}");
    assert!(stderr.contains("AUTH_DISABLED=true"), "{stderr}");

    let both = run(user_api().env("AUTH_DISABLED", "true"));
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
}

/// Without a database the service still starts: it says so within seconds,
/// answers liveness, reports not ready, and keeps trying.
#[tokio::test]
async fn an_unreachable_database_is_reported_within_seconds() {
    let dead = free_port();
    let started = Instant::now();
    let (server, base) = Server::start(|command| {
        command.env("MONGO_URI", format!("mongodb://127.0.0.1:{dead}/users"));
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        reqwest::get(format!("{base}/ping")).await.unwrap().status(),
        200
    );
    // Anyone learns that it is down and why, as a stable code ...
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 503);
    let health = health.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(body["data"]["status"], "down", "{health}");
    assert_eq!(body["data"]["reason"], "database_unreachable", "{health}");
    assert_eq!(body["data"]["database"]["status"], "down", "{health}");
    assert!(
        !health.contains(&dead.to_string()),
        "public /health names hosts: {health}"
    );
    assert!(body["data"].get("detail").is_none(), "{health}");
    // ... and a caller with an API key, what the driver said.
    let keyed: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/health"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        keyed["data"]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{dead}")),
        "{keyed}"
    );
    let port = base.rsplit(':').next().unwrap().to_owned();
    let probe = run(user_api().arg("healthcheck").env("PORT", &port));
    assert_eq!(probe.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&probe.stderr).contains("not ready: HTTP/1.1 503"));
    let logs = server.logs();
    assert!(
        logs.contains("the database is unreachable; serving anyway and retrying in the background"),
        "{logs}"
    );
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

impl Server {
    /// Starts the binary on a fresh database with `RUST_LOG=trace` and waits
    /// until it answers.
    pub async fn start(adjust: impl FnOnce(&mut Command)) -> (Self, String) {
        let port = free_port();
        let mut command = user_api();
        command
            .env("MONGO_URI", format!("{}/{}", mongo_uri(), fresh_database()))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("BCRYPT_COST", "4")
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        adjust(&mut command);
        let server = Self(command.spawn().expect("the binary starts"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/ping")).await.is_err() {
            assert!(Instant::now() < deadline, "the server did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (server, base)
    }

    /// Stops the server and returns everything it wrote.
    pub fn logs(mut self) -> String {
        let _ = self.0.kill();
        let mut logs = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        self.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        logs
    }
}

#[tokio::test]
async fn auth_disabled_opens_user_and_says_so() {
    let (server, base) = Server::start(|command| {
        command.env_remove("API_KEYS").env("AUTH_DISABLED", "true");
    })
    .await;
    let listed = reqwest::get(format!("{base}/user")).await.unwrap();
    assert_eq!(listed.status(), 200);
    let port = base.rsplit(':').next().unwrap().to_owned();
    let probe = run(user_api().arg("healthcheck").env("PORT", &port));
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let logs = server.logs();
    assert!(
        logs.contains("WARN") && logs.contains("AUTH_DISABLED=true"),
        "expected a warning:\n{logs}"
    );
}

/// Neither a password, its hash nor an API key reaches the log, even at
/// `trace`.
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let (server, base) = Server::start(|_| {}).await;
    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {API_KEY}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();

    let created: serde_json::Value = client
        .post(format!("{base}/user"))
        .json(&json!({ "name": "Ada", "email": "ada@example.com", "password": "Secret#Horse1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["data"]["id"].as_str().unwrap();
    let patched = client
        .patch(format!("{base}/user/{id}"))
        .json(&json!({ "password": "Secret#Horse2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let refused = client
        .post(format!("{base}/user"))
        .json(&json!({ "name": "Bob", "email": "ada@example.com", "password": "Secret#Horse3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);

    for password in ["Secret#Horse2", "Secret#Horse9"] {
        client
            .post(format!("{base}/user/verify"))
            .json(&json!({ "email": "ada@example.com", "password": password }))
            .send()
            .await
            .unwrap();
    }
    let wrong_key = reqwest::Client::new()
        .get(format!("{base}/user"))
        .bearer_auth("a-wrong-key-that-must-not-be-logged-either")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);

    let logs = server.logs();
    assert!(logs.contains("listening"), "expected some logs:\n{logs}");
    for secret in [
        "Secret#Horse",
        "$2b$",
        "password_hash",
        API_KEY,
        "a-wrong-key",
    ] {
        assert!(
            !logs.contains(secret),
            "the log contains `{secret}`:\n{logs}"
        );
    }
}
