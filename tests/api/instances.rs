//! Three instances of the binary on one database, as behind a load
//! balancer: uniqueness, idempotent retries, conditional writes and the
//! brute-force lockout hold across them, and a rolling restart under load
//! loses no acknowledged write.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{fresh_database, mongo_uri, wait_until, API_KEY, PASSWORD},
    process::Server,
};

/// Starts one instance on `database`, with the write and verify rate
/// limits off (one test client sends everything) and `extra` settings.
async fn instance(database: &str, extra: &[(&str, &str)]) -> (Server, String) {
    let uri = format!("{}/{database}", mongo_uri());
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let (server, base) = Server::start(move |command| {
        command
            .env("MONGO_URI", uri)
            .env("RUST_LOG", "info")
            .env("RATE_LIMIT_WRITES", "0")
            .env("RATE_LIMIT_VERIFY", "0")
            .envs(extra);
    })
    .await;
    let client = Client::new();
    wait_until("the instance to be ready", 30, || async {
        let health = client.get(format!("{base}/health")).send().await;
        health.is_ok_and(|reply| reply.status() == StatusCode::OK)
    })
    .await;
    (server, base)
}

async fn three(extra: &[(&str, &str)]) -> (Vec<Server>, Vec<String>) {
    let database = fresh_database();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let (server, base) = instance(&database, extra).await;
        servers.push(server);
        bases.push(base);
    }
    (servers, bases)
}

fn user(email: &str) -> Value {
    json!({ "name": "Ada", "email": email, "password": PASSWORD })
}

#[tokio::test]
async fn twenty_creates_of_one_email_across_instances_make_one_user() {
    let (_servers, bases) = three(&[]).await;
    let client = Client::new();
    let replies = join_all((0..20).map(|i| {
        let request = client
            .post(format!("{}/user", bases[i % 3]))
            .bearer_auth(API_KEY)
            .json(&user("ada@example.com"));
        async move {
            let reply = request.send().await.unwrap();
            let status = reply.status();
            (status, reply.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let created: Vec<&Value> = replies
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    for (status, body) in &replies {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["error"], "email_taken");
        }
    }
    let listed: Value = client
        .get(format!("{}/user?email=ada%40example.com", bases[2]))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["data"][0]["id"], created[0]["data"]["id"]);
}

#[tokio::test]
async fn a_retry_on_another_instance_replays_the_first_answer() {
    let (_servers, bases) = three(&[]).await;
    let client = Client::new();
    let create = |base: &str| {
        client
            .post(format!("{base}/user"))
            .bearer_auth(API_KEY)
            .header("idempotency-key", "retry-elsewhere-1")
            .json(&user("grace@example.com"))
            .send()
    };
    let first = create(&bases[0]).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    for base in &bases[1..] {
        let retry = create(base).await.unwrap();
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(retry.json::<Value>().await.unwrap(), first);
    }
}

#[tokio::test]
async fn two_instances_racing_the_same_if_match_let_one_write_through() {
    let (_servers, bases) = three(&[]).await;
    let client = Client::new();
    let created: Value = client
        .post(format!("{}/user", bases[0]))
        .bearer_auth(API_KEY)
        .json(&user("alan@example.com"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    // Many rounds, so the two requests really do overlap in some.
    for round in 0..10 {
        let read = client
            .get(format!("{}/user/{id}", bases[2]))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let tag = read.headers()["etag"].to_str().unwrap().to_owned();
        let put = |base: &str, name: String| {
            client
                .put(format!("{base}/user/{id}"))
                .bearer_auth(API_KEY)
                .header("if-match", &tag)
                .json(&json!({ "name": name, "email": "alan@example.com" }))
                .send()
        };
        let (a, b) = tokio::join!(
            put(&bases[0], format!("A{round}")),
            put(&bases[1], format!("B{round}"))
        );
        let mut statuses = [a.unwrap().status(), b.unwrap().status()];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "round {round}"
        );
    }
}

#[tokio::test]
async fn the_lockout_counts_failures_on_every_instance() {
    let (_servers, bases) = three(&[("LOCKOUT_THRESHOLD", "3")]).await;
    let client = Client::new();
    client
        .post(format!("{}/user", bases[0]))
        .bearer_auth(API_KEY)
        .json(&user("ada@example.com"))
        .send()
        .await
        .unwrap();
    let verify = |base: &str, password: &str| {
        client
            .post(format!("{base}/user/verify"))
            .bearer_auth(API_KEY)
            .json(&json!({ "email": "ada@example.com", "password": password }))
            .send()
    };
    // One failure on each instance: three in all.
    for base in &bases {
        let reply = verify(base, "Password@999").await.unwrap();
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked out everywhere, even with the right password.
    for base in &bases {
        let reply = verify(base, PASSWORD).await.unwrap();
        assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["error"], "too_many_failures");
    }
}

/// What the client saw during the rolling restart.
#[derive(Default)]
struct Observed {
    acknowledged: Vec<String>,
    server_errors: Vec<String>,
    requests: usize,
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_no_acknowledged_write() {
    let database = fresh_database();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let (server, base) = instance(&database, &[]).await;
        servers.push(Some(server));
        bases.push(base);
    }
    // The instances the load balancer sends to: all but the one restarting.
    let up: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(bases.clone()));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let done = Arc::new(AtomicBool::new(false));
    let load = (0..4).map(|worker| {
        let (up, observed, done) = (up.clone(), observed.clone(), done.clone());
        tokio::spawn(async move {
            let client = Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let mut n = 0_usize;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let base = {
                    let up = up.lock().unwrap();
                    up[n % up.len()].clone()
                };
                let email = format!("rolling-{worker}-{n}@example.com");
                let reply = client
                    .post(format!("{base}/user"))
                    .bearer_auth(API_KEY)
                    .json(&user(&email))
                    .send()
                    .await;
                let reply = match reply {
                    Ok(reply) if reply.status() == StatusCode::CREATED => {
                        // Read it back at once, from the next instance.
                        let location = reply.headers()["location"].to_str().unwrap().to_owned();
                        let other = {
                            let up = up.lock().unwrap();
                            up[(n + 1) % up.len()].clone()
                        };
                        let read = client
                            .get(format!("{other}{location}"))
                            .bearer_auth(API_KEY)
                            .send()
                            .await;
                        let mut seen = observed.lock().unwrap();
                        seen.requests += 1;
                        seen.acknowledged.push(location);
                        match read {
                            Ok(read) if read.status().is_server_error() => seen
                                .server_errors
                                .push(format!("{} reading from {other}", read.status())),
                            Ok(read) => assert_eq!(read.status(), StatusCode::OK),
                            Err(_) => {}
                        }
                        continue;
                    }
                    other => other,
                };
                let mut seen = observed.lock().unwrap();
                seen.requests += 1;
                match reply {
                    Ok(reply) if reply.status().is_server_error() => seen
                        .server_errors
                        .push(format!("{} from {base}", reply.status())),
                    Ok(reply) => panic!("unexpected {} from {base}", reply.status()),
                    // The connection was refused or cut: not acknowledged,
                    // so not counted; it is what a load balancer retries.
                    Err(_) => {}
                }
            }
        })
    });
    let load: Vec<_> = load.collect();
    let client = Client::new();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        up.lock().unwrap().retain(|base| *base != bases[i]);
        // SIGTERM, then wait for it to exit: requests in flight finish.
        let logs = servers[i].take().unwrap().logs();
        assert!(logs.contains("shutting down"), "{logs}");
        let (server, base) = instance(&database, &[]).await;
        servers[i] = Some(server);
        bases[i] = base.clone();
        up.lock().unwrap().push(base);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }

    let observed = std::mem::take(&mut *observed.lock().unwrap());
    assert!(
        observed.server_errors.is_empty(),
        "{:?}",
        observed.server_errors
    );
    assert!(
        observed.acknowledged.len() > 20,
        "only {} of {} creates were acknowledged",
        observed.acknowledged.len(),
        observed.requests
    );
    let distinct: HashSet<&String> = observed.acknowledged.iter().collect();
    assert_eq!(distinct.len(), observed.acknowledged.len());
    for base in &bases {
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    // Every acknowledged user is there, read from any instance.
    for (n, location) in observed.acknowledged.iter().enumerate() {
        let reply = client
            .get(format!("{}{location}", bases[n % 3]))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{location}");
    }
}
