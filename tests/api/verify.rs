use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{fresh_database, TestApp, PASSWORD};

#[tokio::test]
async fn matching_credentials_return_the_user() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let reply = app.verify("  ADA@example.com ", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let verified = reply.data();
    for field in [
        "id",
        "name",
        "email",
        "created_at",
        "updated_at",
        "disabled",
    ] {
        assert_eq!(verified[field], user[field], "{field}");
    }
    // The verify is recorded: a change to the representation, so the
    // version moves; not to the profile, so updated_at stays.
    assert_eq!(verified["version"], 2);
    let at = verified["last_verified_at"].as_str().unwrap();
    assert!(at >= user["created_at"].as_str().unwrap(), "{at}");
    assert_eq!(
        app.get(&format!("/user/{}", user["id"].as_str().unwrap()))
            .await
            .data(),
        verified
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.create_user("Ada", "ada@example.com").await;

    let wrong = app.verify("ada@example.com", "Password@124").await;
    let unknown = app.verify("nobody@example.com", PASSWORD).await;
    for reply in [&wrong, &unknown] {
        reply.assert_error(401, "invalid_credentials");
        assert!(reply.header("www-authenticate").is_some());
    }
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn only_the_exact_password_matches() {
    let app = TestApp::spawn().await;
    let long = format!("Password@1{}", "x".repeat(62));
    assert_eq!(long.len(), 72);
    let reply = app
        .post_user(json!({ "name": "Ada", "email": "ada@example.com", "password": long }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    assert_eq!(
        app.verify("ada@example.com", &long).await.status,
        StatusCode::OK
    );
    // bcrypt alone ignores what follows byte 72; the service does not.
    for attempt in [
        format!("{long}y"),
        long[..71].to_owned(),
        String::new(),
        long.to_uppercase(),
    ] {
        app.verify("ada@example.com", &attempt)
            .await
            .assert_error(401, "invalid_credentials");
    }
}

#[tokio::test]
async fn the_body_is_validated_like_any_other() {
    let app = TestApp::spawn().await;
    app.request(
        Method::POST,
        "/user/verify",
        Some(json!({ "email": "ada@example.com" })),
    )
    .await
    .assert_invalid(&["password"]);
    app.request(
        Method::POST,
        "/user/verify",
        Some(json!({ "email": "not-an-email", "password": PASSWORD })),
    )
    .await
    .assert_invalid(&["email"]);
    app.request(
        Method::POST,
        "/user/verify",
        Some(json!({ "email": "ada@example.com", "password": PASSWORD, "name": "x" })),
    )
    .await
    .assert_invalid(&["name"]);
}

#[tokio::test]
async fn a_weaker_hash_is_upgraded_on_a_successful_verify() {
    let database = fresh_database();
    let old = TestApp::spawn_on(&database, |_| {}).await;
    let user = old.create_user("Ada", "ada@example.com").await;
    let id = user["id"].as_str().unwrap();
    assert!(old.stored_hash(id).await.starts_with("$2b$04$"));

    // The operator raises BCRYPT_COST; the next successful verify rehashes.
    let new = TestApp::spawn_on(&database, |config| config.bcrypt_cost = 5).await;
    new.verify("ada@example.com", "Password@999")
        .await
        .assert_error(401, "invalid_credentials");
    assert!(
        new.stored_hash(id).await.starts_with("$2b$04$"),
        "a failed verify changes nothing"
    );

    let reply = new.verify("ada@example.com", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK);
    let upgraded = new.stored_hash(id).await;
    assert!(upgraded.starts_with("$2b$05$"), "{upgraded}");
    assert!(bcrypt::verify(PASSWORD, &upgraded).unwrap());
    // Not a profile change: only the verify's own record moved.
    let fetched = new.get(&format!("/user/{id}")).await;
    assert_eq!(fetched.data()["updated_at"], user["updated_at"]);
    assert_eq!(fetched.data()["name"], user["name"]);
    assert!(fetched.data()["last_verified_at"].is_string());
    assert_eq!(
        new.verify("ada@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}
