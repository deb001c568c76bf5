use futures::future::join_all;
use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use serde_json::json;

use crate::helpers::{id, TestApp, PASSWORD};

#[tokio::test]
async fn put_replaces_the_profile_and_keeps_the_password_when_omitted() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let hash_before = app.stored_hash(id(&user)).await;

    let reply = app
        .put_user(
            id(&user),
            json!({ "name": " Ada King ", "email": "Countess@Example.com" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let updated = reply.data();
    assert_eq!(updated["id"], user["id"]);
    assert_eq!(updated["name"], "Ada King");
    assert_eq!(updated["email"], "countess@example.com");
    assert_eq!(updated["created_at"], user["created_at"]);
    assert_eq!(app.stored_hash(id(&user)).await, hash_before);
    assert_eq!(
        app.get(&format!("/user/{}", id(&user))).await.data(),
        updated
    );
}

#[tokio::test]
async fn put_with_a_password_changes_it() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let reply = app
        .put_user(
            id(&user),
            json!({ "name": "Ada", "email": "ada@example.com", "password": "Password@456" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let hash = app.stored_hash(id(&user)).await;
    assert!(bcrypt::verify("Password@456", &hash).unwrap());
    assert!(!bcrypt::verify(PASSWORD, &hash).unwrap());
}

#[tokio::test]
async fn put_requires_name_and_email() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    app.put_user(id(&user), json!({ "name": "Ada" }))
        .await
        .assert_invalid(&["email"]);
    app.put_user(id(&user), json!({ "password": "Password@456" }))
        .await
        .assert_invalid(&["name", "email"]);
    app.put_user(
        id(&user),
        json!({ "name": "Ada", "email": "ada@example.com", "password": null }),
    )
    .await
    .assert_invalid(&["password"]);
}

#[tokio::test]
async fn setting_your_own_email_again_is_not_a_conflict() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let reply = app
        .put_user(
            id(&user),
            json!({ "name": "Ada", "email": "ADA@example.com" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .patch_user(id(&user), json!({ "email": "ada@example.com" }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn taking_another_users_email_is_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_user("Ada", "ada@example.com").await;
    let bob = app.create_user("Bob", "bob@example.com").await;

    let reply = app
        .put_user(
            id(&bob),
            json!({ "name": "Robert", "email": "Ada@Example.com" }),
        )
        .await;
    reply.assert_error(409, "email_taken");
    let reply = app
        .patch_user(id(&bob), json!({ "email": "ada@example.com" }))
        .await;
    reply.assert_error(409, "email_taken");

    let stored = app.get(&format!("/user/{}", id(&bob))).await;
    assert_eq!(stored.data(), &bob);
}

#[tokio::test]
async fn writes_to_an_unknown_user_are_404() {
    let app = TestApp::spawn().await;
    let missing = "65a1b2c3d4e5f60718293a4b";
    app.put_user(
        missing,
        json!({ "name": "Ada", "email": "ada@example.com" }),
    )
    .await
    .assert_error(404, "not_found");
    app.patch_user(missing, json!({ "name": "Ada" }))
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn patch_changes_only_the_fields_given() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let hash_before = app.stored_hash(id(&user)).await;

    let reply = app
        .patch_user(id(&user), json!({ "name": "Ada King" }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.data()["name"], "Ada King");
    assert_eq!(reply.data()["email"], "ada@example.com");
    assert_eq!(app.stored_hash(id(&user)).await, hash_before);

    let reply = app
        .patch_user(id(&user), json!({ "password": "Password@789" }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.data()["name"], "Ada King");
    assert!(bcrypt::verify("Password@789", &app.stored_hash(id(&user)).await).unwrap());
}

#[tokio::test]
async fn patch_refuses_empty_null_unknown_and_invalid_fields() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let hash_before = app.stored_hash(id(&user)).await;

    app.patch_user(id(&user), json!({}))
        .await
        .assert_invalid(&["body"]);
    app.patch_user(id(&user), json!({ "name": null }))
        .await
        .assert_invalid(&["name"]);
    app.patch_user(
        id(&user),
        json!({ "name": "Ada", "updated_at": "2020-01-01T00:00:00Z" }),
    )
    .await
    .assert_invalid(&["updated_at"]);
    app.patch_user(id(&user), json!({ "password": "weakpassword" }))
        .await
        .assert_invalid(&["password"]);
    // One bad field rejects the whole patch: nothing is half-written.
    app.patch_user(id(&user), json!({ "name": "New Name", "email": "broken" }))
        .await
        .assert_invalid(&["email"]);
    app.put_user(
        id(&user),
        json!({ "name": "New Name", "email": "ok@example.com", "password": "weak" }),
    )
    .await
    .assert_invalid(&["password"]);

    assert_eq!(app.get(&format!("/user/{}", id(&user))).await.data(), &user);
    assert_eq!(app.stored_hash(id(&user)).await, hash_before);
}

#[tokio::test]
async fn writes_need_a_json_content_type() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    for method in [Method::PUT, Method::PATCH] {
        let reply = app
            .send(
                app.builder(method, &format!("/user/{}", id(&user)))
                    .header(CONTENT_TYPE, "text/plain")
                    .body(r#"{"name":"Ada","email":"ada@example.com"}"#),
            )
            .await;
        reply.assert_error(415, "unsupported_media_type");
    }
}

#[tokio::test]
async fn updated_at_moves_forward_on_every_update_and_created_at_never_changes() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let mut previous = user["updated_at"].as_str().unwrap().to_owned();
    for i in 0..5 {
        // The same value again still counts as an update.
        let reply = app.patch_user(id(&user), json!({ "name": "Ada" })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let data = reply.data();
        assert_eq!(data["created_at"], user["created_at"], "update {i}");
        let updated_at = data["updated_at"].as_str().unwrap().to_owned();
        assert!(
            updated_at > previous,
            "update {i}: {updated_at} after {previous}"
        );
        previous = updated_at;
    }
}

#[tokio::test]
async fn concurrent_updates_each_get_their_own_updated_at() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let path = format!("/user/{}", id(&user));
    let replies = join_all((0..10).map(|i| {
        app.request(
            Method::PATCH,
            &path,
            Some(json!({ "name": format!("Ada {i}") })),
        )
    }))
    .await;
    let mut stamps: Vec<String> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            reply.data()["updated_at"].as_str().unwrap().to_owned()
        })
        .collect();
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 10, "{stamps:?}");
}
