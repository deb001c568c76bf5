//! The `user-api` binary itself: its commands, its configuration and its
//! configuration errors, and what it writes to its logs.

use std::{
    collections::BTreeMap,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    helpers::{mongo_uri, API_KEY},
    process::{empty_dir, refusing_address, user_api, Server},
};

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

/// Each setting `--help` documents: its environment variable and its
/// default as shown there (`None` when it shows none).
fn help_settings() -> BTreeMap<String, Option<String>> {
    let output = run(user_api().arg("--help"));
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let mut settings = BTreeMap::new();
    // Each option's block starts with its flag, indented by six spaces.
    for block in help.split("\n      --").skip(1) {
        let Some((_, env)) = block.split_once("[env: ") else {
            continue;
        };
        let env: String = env.chars().take_while(|c| !"=]".contains(*c)).collect();
        let default = block
            .split_once("[default: ")
            .map(|(_, rest)| rest.split(']').next().unwrap_or_default().to_owned());
        settings.insert(env, default);
    }
    settings
}

/// The README's configuration table: each variable and its default when
/// the table gives it as a value (in backticks), `None` when in words.
fn readme_settings() -> BTreeMap<String, Option<String>> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("README has a Configuration section");
    section
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `")?.split('|');
            let variable = cells.next()?.trim().trim_end_matches('`').to_owned();
            let default = cells.next()?.trim();
            let value = default
                .strip_prefix('`')
                .and_then(|value| value.strip_suffix('`'))
                .map(str::to_owned);
            Some((variable, value))
        })
        .collect()
}

#[test]
fn help_and_the_readme_document_every_setting_alike() {
    let help = help_settings();
    let readme = readme_settings();
    assert!(help.len() >= 25, "{help:?}");
    assert_eq!(
        help.keys().collect::<Vec<_>>(),
        readme.keys().collect::<Vec<_>>(),
        "--help and README's configuration table list different settings"
    );
    for (variable, default) in &readme {
        assert_eq!(
            &help[variable], default,
            "{variable}: --help and README give different defaults"
        );
    }
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

/// Every setting has values that stop the process at once, with one line
/// that names the setting as the operator wrote it.
#[test]
fn every_invalid_setting_stops_startup_with_a_one_line_reason() {
    let invalid: &[(&str, &[&str])] = &[
        ("MONGO_URI", &["postgres://localhost/users", "mongodb://"]),
        ("HOST", &["not an ip", "localhost"]),
        ("PORT", &["eighty", "70000", "-1"]),
        ("BCRYPT_COST", &["3", "32", "twelve"]),
        ("RUST_LOG", &["user_api=loud"]),
        ("LOG_FORMAT", &["xml"]),
        ("SHUTDOWN_GRACE_SECS", &["-1", "soon"]),
        ("REQUIRE_IF_MATCH", &["maybe"]),
        ("MONGO_SERVER_SELECTION_TIMEOUT_MS", &["0", "3s"]),
        ("MONGO_CONNECT_TIMEOUT_MS", &["0", "-5"]),
        ("MONGO_MAX_POOL_SIZE", &["0", "many"]),
        ("MONGO_MIN_POOL_SIZE", &["-1", "51"]),
        (
            "API_KEYS",
            &["too-short", "has spaces in it 0123456789abcdefghijklmnop"],
        ),
        ("AUTH_DISABLED", &["maybe"]),
        ("TRUSTED_PROXIES", &["10.0.0.0/99", "proxy.internal"]),
        (
            "CORS_ORIGINS",
            &["admin.example.com", "https://a.example/path"],
        ),
        ("RATE_LIMIT_WRITES", &["-1", "lots"]),
        ("RATE_LIMIT_VERIFY", &["-1"]),
        ("RATE_LIMIT_UNAUTHENTICATED", &["1.5"]),
        ("LOCKOUT_THRESHOLD", &["-1"]),
        ("LOCKOUT_WINDOW_SECS", &["0"]),
        ("LOCKOUT_SECS", &["0", "3601"]),
        ("HASH_CONCURRENCY", &["0", "-2"]),
        ("HASH_QUEUE_MAX", &["-1"]),
        ("HASH_QUEUE_WAIT_MS", &["soon"]),
        ("REQUEST_TIMEOUT_MS", &["0"]),
        ("HEADER_READ_TIMEOUT_MS", &["0", "10s"]),
        ("MAX_CONNECTIONS", &["0", "-1", "unlimited"]),
    ];
    let covered: Vec<&str> = invalid.iter().map(|(variable, _)| *variable).collect();
    for variable in help_settings().keys() {
        assert!(
            covered.contains(&variable.as_str()),
            "no invalid value is tried for {variable}"
        );
    }
    let (_refusing, dead) = refusing_address();
    for (variable, values) in invalid {
        for value in *values {
            // A valid database address that answers nothing: a setting the
            // service took would leave it running, and the run would fail.
            let output = run(user_api()
                .env("MONGO_URI", format!("mongodb://{dead}/users"))
                .env("PORT", "0")
                .env(variable, value));
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(
                !output.status.success(),
                "{variable}={value} was accepted: {stderr}"
            );
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "{variable}={value}: {stderr}"
            );
            assert!(
                stderr.starts_with(&format!("user-api: {variable}"))
                    || stderr.contains(&format!(" {variable} ")),
                "{variable}={value} is not named: {stderr}"
            );
        }
    }
}

/// `.env` in the working directory fills in what the environment leaves
/// unset; a real environment variable wins.
#[tokio::test]
async fn real_environment_variables_win_over_dot_env() {
    let dir = empty_dir();
    std::fs::write(
        dir.join(".env"),
        "BCRYPT_COST=3\nPORT=eighty\nLOG_FORMAT=json\n",
    )
    .unwrap();
    // From .env alone, the invalid cost stops startup ...
    let output = run(user_api().current_dir(&dir).env("PORT", "0"));
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).starts_with("user-api: BCRYPT_COST"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // ... and with the environment overriding both bad values, .env's
    // LOG_FORMAT still applies.
    let (server, _) = Server::start(|command| {
        command
            .current_dir(&dir)
            .env("BCRYPT_COST", "4")
            .env("RUST_LOG", "info");
    })
    .await;
    let logs = server.logs();
    let first = logs.lines().next().unwrap_or_default();
    let line: serde_json::Value = serde_json::from_str(first)
        .unwrap_or_else(|_| panic!("LOG_FORMAT=json from .env did not apply:\n{logs}"));
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["message"].is_string(), "{line}");
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
    let (_refusing, dead) = refusing_address();
    let dead = dead.port();
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

/// Credentials in MONGO_URI appear neither in the log, even at `trace`, nor
/// in `/health`, with or without an API key: not when the database is
/// unreachable, and not when it refuses them.
#[tokio::test]
async fn database_credentials_never_reach_the_logs_or_health() {
    let (_refusing, dead) = refusing_address();
    let live = mongo_uri().trim_start_matches("mongodb://").to_owned();
    for address in [dead.to_string(), live] {
        let (server, base) = Server::start(|command| {
            command.env(
                "MONGO_URI",
                format!("mongodb://dbadmin:Hunter2-Db-Pa55@{address}/users?authSource=admin"),
            );
        })
        .await;
        let client = reqwest::Client::new();
        let public = client.get(format!("{base}/health")).send().await.unwrap();
        let public = public.text().await.unwrap();
        let keyed = client
            .get(format!("{base}/health"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Give the background check time to log what it found.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let logs = server.logs();
        assert!(logs.contains("using MongoDB"), "{logs}");
        for (what, text) in [
            ("public /health", &public),
            ("keyed /health", &keyed),
            ("the log", &logs),
        ] {
            for secret in ["Hunter2-Db-Pa55", "dbadmin"] {
                assert!(
                    !text.contains(secret),
                    "{what} for {address} names `{secret}`:\n{text}"
                );
            }
        }
    }
}
