use futures::future::join_all;
use mongodb::bson::{doc, Document};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{fresh_database, mongo_uri, Reply, TestApp, API_KEY, OTHER_API_KEY, PASSWORD},
    process::Server,
};

fn ada() -> Value {
    json!({ "name": "Ada", "email": "ada@example.com", "password": PASSWORD })
}

async fn create(app: &TestApp, key: &str, body: Value) -> Reply {
    app.send(
        app.builder(Method::POST, "/user")
            .header("idempotency-key", key)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_retry_returns_the_original_201_without_a_second_user() {
    let app = TestApp::spawn().await;
    let first = create(&app, "key-1", ada()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(first.header("idempotent-replayed").is_none());

    // Even after the user changed, the replay is the original answer.
    let id = first.data()["id"].as_str().unwrap().to_owned();
    app.patch_user(&id, json!({ "name": "Ada King" })).await;

    let retry = create(
        &app,
        "key-1",
        json!({ "name": " Ada ", "email": "ADA@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    assert_eq!(
        create(&app, "key-1", ada()).await.status,
        StatusCode::CREATED
    );
    for body in [
        json!({ "name": "Bob", "email": "ada@example.com", "password": PASSWORD }),
        json!({ "name": "Ada", "email": "bob@example.com", "password": PASSWORD }),
        json!({ "name": "Ada", "email": "ada@example.com", "password": "Password@124" }),
    ] {
        let reply = create(&app, "key-1", body).await;
        reply.assert_error(422, "idempotency_key_reused");
        assert!(
            reply.message().starts_with("Idempotency-Key:"),
            "{}",
            reply.text
        );
    }
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn concurrent_retries_create_exactly_one_user() {
    let app = TestApp::spawn().await;
    let replies = join_all((0..8).map(|_| create(&app, "key-race", ada()))).await;
    let created: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert!(!created.is_empty());
    for reply in &created {
        assert_eq!(reply.data(), created[0].data());
    }
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        reply.assert_error(409, "idempotency_key_in_progress");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    assert_eq!(app.stored_count().await, 1);
    // Once the first finished, a retry is a plain replay.
    let late = create(&app, "key-race", ada()).await;
    assert_eq!(late.status, StatusCode::CREATED);
    assert_eq!(late.data(), created[0].data());
}

#[tokio::test]
async fn a_failed_create_does_not_use_up_the_key() {
    let app = TestApp::spawn().await;
    app.create_user("Taken", "ada@example.com").await;
    create(&app, "key-1", ada())
        .await
        .assert_error(409, "email_taken");
    create(&app, "key-1", ada())
        .await
        .assert_error(409, "email_taken");
    // The email is freed, and the same key now creates the user.
    let taken = app.get("/user?email=ada@example.com").await;
    app.delete_user(taken.data()[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(
        create(&app, "key-1", ada()).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn keys_belong_to_one_api_key() {
    let app = TestApp::spawn().await;
    assert_eq!(
        create(&app, "shared", ada()).await.status,
        StatusCode::CREATED
    );
    let bob = json!({ "name": "Bob", "email": "bob@example.com", "password": PASSWORD });
    let reply = app
        .send(
            app.anonymous(Method::POST, "/user")
                .bearer_auth(OTHER_API_KEY)
                .header("idempotency-key", "shared")
                .json(&bob),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert!(reply.header("idempotent-replayed").is_none());
    assert_eq!(app.stored_count().await, 2);
}

/// A create through the binary at `base`, with an idempotency key.
async fn create_at(base: &str, key: &str) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/user"))
        .bearer_auth(API_KEY)
        .header("idempotency-key", key)
        .json(&ada())
        .send()
        .await
        .expect("the service answers");
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, replayed, response.json().await.unwrap())
}

#[tokio::test]
async fn keys_survive_a_restart_and_expire_through_a_ttl_index() {
    let database = fresh_database();
    let uri = format!("{}/{database}", mongo_uri());
    let (before, base) = Server::start(|command| {
        command.env("MONGO_URI", &uri);
    })
    .await;
    let (status, replayed, first) = create_at(&base, "key-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);
    // The process ends (killed, as a crash would end it) and another starts
    // on the same database.
    before.logs();
    let (_after, base) = Server::start(|command| {
        command.env("MONGO_URI", &uri);
    })
    .await;
    let (status, replayed, retry) = create_at(&base, "key-1").await;
    assert_eq!(status, StatusCode::CREATED, "{retry}");
    assert_eq!(retry, first);
    assert_eq!(replayed.as_deref(), Some("true"));

    let after = TestApp::spawn_on(&database, |_| {}).await;
    assert_eq!(after.stored_count().await, 1);
    let mut indexes = after
        .db
        .collection::<Document>("idempotency_keys")
        .list_indexes()
        .await
        .unwrap();
    let mut ttl = None;
    while indexes.advance().await.unwrap() {
        let index = indexes.deserialize_current().unwrap();
        if index.keys == doc! { "created_at": 1 } {
            ttl = index.options.and_then(|options| options.expire_after);
        }
    }
    assert_eq!(ttl, Some(std::time::Duration::from_secs(24 * 60 * 60)));
    // The record holds digests and a bcrypt hash, never the key or password.
    let record = after
        .db
        .collection::<Document>("idempotency_keys")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap()
        .to_string();
    assert!(
        !record.contains("key-1") && !record.contains(PASSWORD),
        "{record}"
    );
}

#[tokio::test]
async fn a_malformed_key_is_400() {
    let app = TestApp::spawn().await;
    for key in ["", &"k".repeat(256), "has space", "naïve"] {
        let reply = app
            .send(
                app.builder(Method::POST, "/user")
                    .header("idempotency-key", key.as_bytes())
                    .json(&ada()),
            )
            .await;
        reply.assert_invalid(&["Idempotency-Key"]);
    }
    assert_eq!(app.stored_count().await, 0);
}
