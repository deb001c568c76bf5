use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, Reply, TestApp};

async fn write(
    app: &TestApp,
    method: Method,
    id: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = app.builder(method, &format!("/user/{id}"));
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    app.send(request).await
}

async fn get_if_none_match(app: &TestApp, id: &str, tag: &str) -> Reply {
    app.send(
        app.builder(Method::GET, &format!("/user/{id}"))
            .header("if-none-match", tag),
    )
    .await
}

#[tokio::test]
async fn every_write_moves_the_version_and_the_etag() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = id(&user);

    let read = app.get(&format!("/user/{id}")).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.data()["version"], 1);

    let patched = app.patch_user(id, json!({ "name": "Ada King" })).await;
    assert_eq!(patched.header("etag"), Some("\"2\""));
    assert_eq!(patched.data()["version"], 2);
    let put = app
        .put_user(id, json!({ "name": "Ada", "email": "ada@example.com" }))
        .await;
    assert_eq!(put.header("etag"), Some("\"3\""));
    assert_eq!(
        app.get(&format!("/user/{id}")).await.header("etag"),
        Some("\"3\"")
    );
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = id(&user);

    let first = write(
        &app,
        Method::PATCH,
        id,
        Some("\"1\""),
        Some(json!({ "name": "First" })),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    for (method, body) in [
        (Method::PATCH, Some(json!({ "name": "Second" }))),
        (
            Method::PUT,
            Some(json!({ "name": "Second", "email": "second@example.com" })),
        ),
        (Method::DELETE, None),
    ] {
        let stale = write(&app, method.clone(), id, Some("\"1\""), body).await;
        stale.assert_error(412, "precondition_failed");
        assert_eq!(stale.header("etag"), Some("\"2\""), "{method}");
    }
    let now = app.get(&format!("/user/{id}")).await;
    assert_eq!(now.data()["name"], "First");
    assert_eq!(now.data()["version"], 2);

    // A list of tags matches if any does; a weak tag never does.
    let listed = write(
        &app,
        Method::PATCH,
        id,
        Some("\"7\", \"2\""),
        Some(json!({ "name": "Third" })),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    write(
        &app,
        Method::PATCH,
        id,
        Some("W/\"3\""),
        Some(json!({ "name": "Weak" })),
    )
    .await
    .assert_error(412, "precondition_failed");
    let deleted = write(&app, Method::DELETE, id, Some("\"3\""), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn of_two_writers_with_the_same_etag_exactly_one_wins() {
    let app = TestApp::spawn().await;
    for round in 0..5 {
        let user = app
            .create_user("Ada", &format!("ada{round}@example.com"))
            .await;
        let id = id(&user);
        let tag = app
            .get(&format!("/user/{id}"))
            .await
            .header("etag")
            .unwrap()
            .to_owned();
        let replies = join_all(["Alice", "Bob"].map(|name| {
            write(
                &app,
                Method::PUT,
                id,
                Some(&tag),
                Some(json!({ "name": name, "email": format!("ada{round}@example.com") })),
            )
        }))
        .await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, [200, 412], "round {round}");
        let winner = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
        let stored = app.get(&format!("/user/{id}")).await;
        assert_eq!(stored.data()["name"], winner.data()["name"]);
        assert_eq!(stored.data()["version"], 2);
    }
}

#[tokio::test]
async fn if_match_star_means_exists() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let reply = write(
        &app,
        Method::PATCH,
        id(&user),
        Some("*"),
        Some(json!({ "name": "Ada K" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let missing = "65a1b2c3d4e5f60718293a4b";
    write(
        &app,
        Method::PATCH,
        missing,
        Some("*"),
        Some(json!({ "name": "x" })),
    )
    .await
    .assert_error(404, "not_found");
    write(&app, Method::DELETE, missing, Some("\"1\""), None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_malformed_if_match_is_400() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    for tag in ["1", "\"1", "\"1\" \"2\""] {
        write(
            &app,
            Method::PATCH,
            id(&user),
            Some(tag),
            Some(json!({ "name": "x" })),
        )
        .await
        .assert_invalid(&["If-Match"]);
    }
    assert_eq!(
        app.get(&format!("/user/{}", id(&user))).await.data()["version"],
        1
    );
}

#[tokio::test]
async fn if_none_match_answers_304_when_nothing_changed() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = id(&user);
    for tag in ["\"1\"", "W/\"1\"", "\"0\", \"1\"", "*"] {
        let reply = get_if_none_match(&app, id, tag).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(reply.text.is_empty());
        assert_eq!(reply.header("etag"), Some("\"1\""));
    }
    app.patch_user(id, json!({ "name": "Ada K" })).await;
    let changed = get_if_none_match(&app, id, "\"1\"").await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.data()["name"], "Ada K");
    get_if_none_match(&app, id, "nope")
        .await
        .assert_invalid(&["If-None-Match"]);
}

#[tokio::test]
async fn strict_mode_requires_if_match_on_writes() {
    let app = TestApp::spawn_with(|config| config.require_if_match = true).await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = id(&user);
    for (method, body) in [
        (Method::PATCH, Some(json!({ "name": "x" }))),
        (
            Method::PUT,
            Some(json!({ "name": "x", "email": "ada@example.com" })),
        ),
        (Method::DELETE, None),
    ] {
        let reply = write(&app, method, id, None, body).await;
        reply.assert_error(428, "precondition_required");
    }
    let reply = write(
        &app,
        Method::PATCH,
        id,
        Some("\"1\""),
        Some(json!({ "name": "Ada K" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = write(&app, Method::DELETE, id, Some("*"), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

/// A condition the framework cannot read as text (a byte past ASCII) used
/// to be dropped, and the write went ahead unconditioned.
#[tokio::test]
async fn an_unreadable_condition_is_400_and_nothing_changes() {
    use reqwest::header::HeaderValue;

    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let path = format!("/user/{}", id(&user));
    let unreadable = HeaderValue::from_bytes(b"\"999\" \xe9").unwrap();
    let patch = app
        .send(
            app.builder(Method::PATCH, &path)
                .header("if-match", unreadable.clone())
                .json(&json!({ "name": "Changed" })),
        )
        .await;
    patch.assert_invalid(&["If-Match"]);
    let delete = app
        .send(
            app.builder(Method::DELETE, &path)
                .header("if-match", unreadable.clone()),
        )
        .await;
    delete.assert_invalid(&["If-Match"]);
    let get = app
        .send(
            app.builder(Method::GET, &path)
                .header("if-none-match", unreadable),
        )
        .await;
    get.assert_invalid(&["If-None-Match"]);
    let after = app.get(&path).await;
    assert_eq!(after.status, StatusCode::OK, "the user is still there");
    assert_eq!(after.data()["version"], 1, "and unchanged");
}

/// Strong comparison is the exact text of the tag; several If-Match fields
/// are one list.
#[tokio::test]
async fn if_match_compares_text_and_reads_every_field() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let path = format!("/user/{}", id(&user));
    for lookalike in ["\"+1\"", "\"01\"", "\"1.0\""] {
        let reply = app
            .send(
                app.builder(Method::PATCH, &path)
                    .header("if-match", lookalike)
                    .json(&json!({ "name": "Changed" })),
            )
            .await;
        reply.assert_error(412, "precondition_failed");
    }
    let both = app
        .send(
            app.builder(Method::PATCH, &path)
                .header("if-match", "\"7\"")
                .header("if-match", "\"1\"")
                .json(&json!({ "name": "Changed" })),
        )
        .await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.text);
    assert_eq!(both.data()["version"], 2);
}
