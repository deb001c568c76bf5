//! The `user-api` binary itself: its commands, its configuration errors and
//! what it writes to its logs.

use std::{
    io::Read,
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use mongodb::bson::oid::ObjectId;
use serde_json::json;

use crate::helpers::mongo_uri;

/// The binary, run from an empty directory so no `.env` applies, with none of
/// the configuration variables inherited.
fn user_api() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_user-api"));
    command.current_dir(std::env::temp_dir());
    for var in ["MONGO_URI", "HOST", "PORT", "BCRYPT_COST", "RUST_LOG"] {
        command.env_remove(var);
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
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
fn an_unreachable_database_is_reported_within_seconds() {
    let dead = free_port();
    let started = Instant::now();
    let output = run(user_api()
        .env("MONGO_URI", format!("mongodb://127.0.0.1:{dead}/users"))
        .env("PORT", "0"));
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot use MongoDB at 127.0.0.1:{dead}")),
        "{stderr}"
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Neither the password nor its hash reaches the log, even at `trace`.
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let port = free_port();
    let database = format!("test_{}", ObjectId::new().to_hex());
    let mut server = Server(
        user_api()
            .env("MONGO_URI", format!("{}/{database}", mongo_uri()))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("BCRYPT_COST", "4")
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/ping")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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

    server.0.kill().unwrap();
    let mut logs = String::new();
    server
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    server
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("listening"), "expected some logs:\n{logs}");
    for secret in ["Secret#Horse", "$2b$", "password_hash"] {
        assert!(
            !logs.contains(secret),
            "the log contains `{secret}`:\n{logs}"
        );
    }
}
