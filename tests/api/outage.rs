//! A database that dies and comes back, as a real process on real storage.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use mongodb::bson::{doc, oid::ObjectId};
use mongodb::options::{ClientOptions, ServerAddress};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use user_api::config::Config;

use crate::{
    helpers::{fresh_database, mongo_uri, Reply, TestApp, PASSWORD},
    process::Database,
};

async fn health(app: &TestApp) -> Reply {
    app.send(app.anonymous(Method::GET, "/health")).await
}

async fn wait_for_health(app: &TestApp, status: StatusCode, within: Duration) -> Reply {
    let deadline = Instant::now() + within;
    loop {
        let reply = health(app).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "/health stayed {}: {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_service_rides_out_a_database_crash() {
    let mut database = Database::start().await;
    let uri = database.uri();
    let app = TestApp::spawn_with(|config| {
        config.mongo_uri = uri;
        config.database.server_selection_timeout_ms = 1_500;
    })
    .await;
    let ready = wait_for_health(&app, StatusCode::OK, Duration::from_secs(10)).await;
    assert_eq!(ready.data()["database"]["status"], "up");
    assert!(ready.data()["database"]["latency_ms"].as_f64().unwrap() >= 0.0);

    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let user = app
            .create_user(&format!("Before {i}"), &format!("before{i}@example.com"))
            .await;
        acknowledged.push(user["id"].as_str().unwrap().to_owned());
    }

    let errors =
        |operation: &str| format!("db_operation_errors_total{{operation=\"{operation}\"}}");
    assert_eq!(app.metric(&errors("users.get")).await, None);
    assert_eq!(app.metric(&errors("users.list")).await, None);
    assert_eq!(app.metric(&errors("lockout.reserve")).await, None);

    database.kill();

    // Every database-backed request fails fast, with 503 and Retry-After;
    // verify never skips its lockout check.
    let one = format!("/user/{}", acknowledged[0]);
    for (method, path, body) in [
        (Method::GET, one.clone(), None),
        (Method::GET, "/user".to_owned(), None),
        (
            Method::POST,
            "/user".to_owned(),
            Some(json!({ "name": "During", "email": "during@example.com", "password": PASSWORD })),
        ),
        (
            Method::PUT,
            one.clone(),
            Some(json!({ "name": "During", "email": "before0@example.com" })),
        ),
        (
            Method::PATCH,
            one.clone(),
            Some(json!({ "name": "During" })),
        ),
        (Method::DELETE, one.clone(), None),
        (
            Method::POST,
            "/user/verify".to_owned(),
            Some(json!({ "email": "before0@example.com", "password": PASSWORD })),
        ),
    ] {
        let started = Instant::now();
        let reply = app.request(method.clone(), &path, body).await;
        let took = started.elapsed();
        reply.assert_error(503, "unavailable");
        assert!(reply.header("retry-after").is_some());
        assert!(
            took < Duration::from_millis(2_500),
            "{method} {path} took {took:?}"
        );
    }
    // Each failed operation is counted: the one GET of a user, the one
    // list; verify failed at its lockout check, before any lookup.
    assert_eq!(app.metric(&errors("users.get")).await, Some(1.0));
    assert_eq!(app.metric(&errors("users.list")).await, Some(1.0));
    assert_eq!(app.metric(&errors("lockout.reserve")).await, Some(1.0));
    assert_eq!(app.metric(&errors("users.credentials")).await, None);
    let unavailable = "http_requests_total{method=\"GET\",route=\"/user/{id}\",status=\"503\"}";
    assert_eq!(app.metric(unavailable).await, Some(1.0));

    // Liveness stays up while readiness goes down.
    let down = wait_for_health(
        &app,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(down.data()["database"]["status"], "down");
    assert_eq!(down.body["data"]["ready"], false);
    assert!(down.header("retry-after").is_some());
    assert_eq!(
        app.send(app.anonymous(Method::GET, "/ping")).await.status,
        StatusCode::OK
    );

    // The database comes back on the same storage; the service recovers by
    // itself.
    database.restart().await;
    wait_for_health(&app, StatusCode::OK, Duration::from_secs(30)).await;

    for id in &acknowledged {
        let reply = app.get(&format!("/user/{id}")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "user {id} was acknowledged but is gone"
        );
        assert_eq!(
            reply.data()["version"],
            1,
            "a write during the outage happened"
        );
    }
    let failed = app.get("/user?email=during@example.com").await;
    assert_eq!(failed.data(), &json!([]), "a create that failed exists");
    app.create_user("After", "after@example.com").await;
}

#[tokio::test]
async fn the_service_starts_before_its_database_and_writes_wait_for_the_indexes() {
    let mut database = Database::start().await;
    let uri = database.uri();
    database.kill();

    let app = TestApp::spawn_with(|config| {
        config.mongo_uri = uri;
        config.database.server_selection_timeout_ms = 500;
    })
    .await;
    let reply = health(&app).await;
    reply.assert_status_only(503);
    assert_eq!(reply.data()["indexes_ready"], false);
    app.post_user(json!({ "name": "Early", "email": "early@example.com", "password": PASSWORD }))
        .await
        .assert_error(503, "unavailable");

    database.restart().await;
    let ready = wait_for_health(&app, StatusCode::OK, Duration::from_secs(30)).await;
    assert_eq!(ready.data()["indexes_ready"], true);
    app.create_user("Later", "later@example.com").await;
    app.post_user(json!({ "name": "Twin", "email": "LATER@example.com", "password": PASSWORD }))
        .await
        .assert_error(409, "email_taken");
}

/// A proxy to the test database that passes the driver's handshakes and
/// heartbeats through but holds back, answering nothing, client messages
/// that name `command` (the readiness check sends `ping` first, then `find`
/// to look for foreign documents), until `release` is sent. With
/// `only_first`, later such messages pass.
struct HeldBack {
    port: u16,
    release: watch::Sender<bool>,
}

async fn hold_back(command: &str, only_first: bool) -> HeldBack {
    let options = ClientOptions::parse(mongo_uri()).await.unwrap();
    let upstream = match &options.hosts[0] {
        ServerAddress::Tcp { host, port } => format!("{host}:{}", port.unwrap_or(27017)),
        other => panic!("the test database is not on TCP: {other}"),
    };
    let name = format!("{command}\0").into_bytes();
    let held_one = Arc::new(AtomicBool::new(false));
    let (release, released) = watch::channel(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            });
            let (name, held_one, mut released) = (name.clone(), held_one.clone(), released.clone());
            tokio::spawn(async move {
                // Each wire-protocol message starts with its length.
                let mut length = [0; 4];
                while from_client.read_exact(&mut length).await.is_ok() {
                    let mut message = length.to_vec();
                    message.resize(i32::from_le_bytes(length) as usize, 0);
                    if from_client.read_exact(&mut message[4..]).await.is_err() {
                        return;
                    }
                    let names = message.windows(name.len()).any(|window| window == name);
                    if names && !(only_first && held_one.swap(true, Ordering::SeqCst)) {
                        let _ = released.wait_for(|released| *released).await;
                    }
                    if to_server.write_all(&message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    HeldBack { port, release }
}

/// An app on a fresh database behind `proxy`.
async fn behind(proxy: &HeldBack, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let uri = format!(
        "mongodb://127.0.0.1:{}/{}?directConnection=true",
        proxy.port,
        fresh_database()
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        TestApp::spawn_with(|config| {
            config.mongo_uri = uri;
            adjust(config);
        }),
    )
    .await
    .expect("the service opens its port within 30 s")
}

/// Before the first look for foreign documents, a user that is not found
/// may be one of the Flask service's: 503, not 404. Writes wait for the
/// indexes: 503.
async fn refuses_until_checked(app: &TestApp) {
    app.get("/user/65a1b2c3d4e5f60718293a4b")
        .await
        .assert_error(503, "unavailable");
    app.post_user(json!({ "name": "Early", "email": "early@example.com", "password": PASSWORD }))
        .await
        .assert_error(503, "unavailable");
}

/// A database that takes connections but does not answer a ping (a hung
/// server) counts as down once the ping has taken twice the server
/// selection timeout, as an unreachable one does; and the service recovers
/// on its own once the database answers again.
#[tokio::test]
async fn a_database_that_does_not_answer_counts_as_down_until_it_does() {
    let proxy = hold_back("ping", false).await;
    let app = behind(&proxy, |config| {
        config.database.server_selection_timeout_ms = 1_000;
    })
    .await;
    assert_eq!(app.get("/ping").await.status, StatusCode::OK);
    // With a key, /health says what the check found.
    let reply = app.get("/health").await;
    reply.assert_status_only(503);
    assert_eq!(
        reply.data()["reason"],
        "database_unreachable",
        "{}",
        reply.text
    );
    let detail = reply.data()["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("did not answer a ping"), "{}", reply.text);
    refuses_until_checked(&app).await;

    proxy.release.send(true).unwrap();
    wait_for_health(&app, StatusCode::OK, Duration::from_secs(30)).await;
    app.get("/user/65a1b2c3d4e5f60718293a4b")
        .await
        .assert_error(404, "not_found");
    app.create_user("Later", "later@example.com").await;
}

/// A first check that does not finish (here its look for foreign documents,
/// as on a large collection of a busy database) does not keep the port
/// closed: the service opens it after the first check's wait, says in
/// `/health` that it is not ready, and refuses writes meanwhile.
#[tokio::test]
async fn a_first_check_that_does_not_finish_does_not_keep_the_port_closed() {
    let proxy = hold_back("find", true).await;
    let app = behind(&proxy, |_| {}).await;
    assert_eq!(app.get("/ping").await.status, StatusCode::OK);
    let reply = health(&app).await;
    reply.assert_status_only(503);
    assert_eq!(reply.data()["reason"], "indexes_pending", "{}", reply.text);
    assert_eq!(reply.data()["database"]["status"], "up", "{}", reply.text);
    refuses_until_checked(&app).await;
}

/// The database comes back empty (a restore, a new cluster): the service
/// must not trust the indexes it confirmed before. It recreates them before
/// any write goes through, so two users still cannot share an email.
#[tokio::test]
async fn a_database_that_comes_back_empty_gets_its_indexes_again() {
    let mut database = Database::start().await;
    let uri = database.uri();
    let app = TestApp::spawn_with(|config| {
        config.mongo_uri = uri;
        config.database.server_selection_timeout_ms = 1_000;
    })
    .await;
    wait_for_health(&app, StatusCode::OK, Duration::from_secs(10)).await;
    app.create_user("Before", "before@example.com").await;

    database.kill();
    wait_for_health(
        &app,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(15),
    )
    .await;
    database.restart_empty().await;
    wait_for_health(&app, StatusCode::OK, Duration::from_secs(30)).await;

    app.create_user("Same", "same@example.com").await;
    app.post_user(json!({ "name": "Twin", "email": "SAME@example.com", "password": PASSWORD }))
        .await
        .assert_error(409, "email_taken");
    let count = app
        .get("/user?email=same@example.com")
        .await
        .data()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count, 1);
}

/// An index dropped behind the service's back is noticed within a check or
/// two; writes wait while it cannot be rebuilt, and /health says why.
#[tokio::test]
async fn a_dropped_index_stops_writes_until_it_is_back() {
    use mongodb::bson::Document;

    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let users = app.db.collection::<Document>("users");
    users.drop_index("email_unique").await.unwrap();
    // While the index is gone, something writes a second Ada directly.
    let mut twin = users
        .find_one(doc! { "email": "ada@example.com" })
        .await
        .unwrap()
        .unwrap();
    twin.insert("_id", ObjectId::new());
    users.insert_one(&twin).await.unwrap();

    let failed = wait_for_health(
        &app,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(failed.data()["reason"], "indexes_failed");
    assert_eq!(failed.data()["indexes_ready"], false);
    app.post_user(json!({ "name": "Bob", "email": "bob@example.com", "password": PASSWORD }))
        .await
        .assert_error(503, "unavailable");

    users
        .delete_one(doc! { "_id": twin.get_object_id("_id").unwrap() })
        .await
        .unwrap();
    wait_for_health(&app, StatusCode::OK, Duration::from_secs(10)).await;
    app.post_user(json!({ "name": "Ada", "email": "ADA@example.com", "password": PASSWORD }))
        .await
        .assert_error(409, "email_taken");
    assert_eq!(
        app.get(&format!("/user/{}", user["id"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
}
