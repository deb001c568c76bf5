//! `POST /user/verify` against every common password-hash format, each made
//! by its reference library at test time, and the upgrade to bcrypt.

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::TestApp,
    reference::{self, Scheme},
};

/// Stores a user whose password hash another system made, as an import or
/// a migration leaves it.
pub async fn insert_with_hash(app: &TestApp, email: &str, hash: &str) -> String {
    let id = ObjectId::new();
    let now = DateTime::now();
    app.db
        .collection::<Document>("users")
        .insert_one(doc! {
            "_id": id, "name": "Imported", "email": email, "password_hash": hash,
            "created_at": now, "updated_at": now, "version": 1_i64,
        })
        .await
        .unwrap();
    id.to_hex()
}

#[tokio::test]
async fn every_common_format_verifies_then_becomes_bcrypt() {
    let app = TestApp::spawn().await;
    let password = "Zoë's Pass#1 ü";
    let requests: Vec<(Scheme, &str)> = Scheme::ALL.iter().map(|s| (*s, password)).collect();
    let hashes = reference::hashes(&requests);
    for (scheme, hash) in Scheme::ALL.iter().zip(&hashes) {
        let email = format!("{scheme:?}@example.com").to_lowercase();
        let id = insert_with_hash(&app, &email, hash).await;

        app.verify(&email, "Zoë's Pass#1 u")
            .await
            .assert_error(401, "invalid_credentials");
        assert_eq!(
            &app.stored_hash(&id).await,
            hash,
            "{scheme:?}: a failed verify changes nothing"
        );

        let reply = app.verify(&email, password).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{scheme:?} {hash}: {}",
            reply.text
        );
        assert_eq!(reply.data()["id"], id);
        let upgraded = app.stored_hash(&id).await;
        assert!(
            upgraded.starts_with("$2b$04$"),
            "{scheme:?}: {hash} became {upgraded}"
        );
        assert!(bcrypt::verify(password, &upgraded).unwrap(), "{scheme:?}");
        let again = app.verify(&email, password).await;
        assert_eq!(again.status, StatusCode::OK, "{scheme:?}");
        assert_eq!(
            app.stored_hash(&id).await,
            upgraded,
            "{scheme:?}: upgraded once"
        );
    }
}

/// bcrypt repeats its key cyclically, so `Abcdef1!` followed by NUL and the
/// same again would match `Abcdef1!`. No attempt containing NUL matches.
#[tokio::test]
async fn an_attempt_containing_nul_never_matches() {
    let app = TestApp::spawn().await;
    let reply = app
        .post_user(json!({ "name": "Ada", "email": "ada@example.com", "password": "Abcdef1!" }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    app.verify("ada@example.com", "Abcdef1!\u{0}Abcdef1!")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        app.verify("ada@example.com", "Abcdef1!").await.status,
        StatusCode::OK
    );
    let with_nul = app
        .post_user(
            json!({ "name": "Bob", "email": "bob@example.com", "password": "Abcdef1!\u{0}x" }),
        )
        .await;
    with_nul.assert_invalid(&["password"]);
}

/// A user's hash that no format recognizes (a Flask-era client could store
/// anything) never verifies, and never answers 500.
#[tokio::test]
async fn an_unusable_stored_hash_is_a_plain_401() {
    let app = TestApp::spawn().await;
    insert_with_hash(&app, "odd@example.com", "Password@123").await;
    app.verify("odd@example.com", "Password@123")
        .await
        .assert_error(401, "invalid_credentials");
}

/// A verify that fails takes the same time whatever the stored hash's
/// format and cost, and whether the user exists: users hashed at bcrypt
/// cost 4 with the service now at cost 10, and users brought in with every
/// other format, against an unknown email. Each failure is padded to a floor no
/// lower than the slowest failure seen; the lower bound is what this test
/// holds each answer to, and the spread between kinds is bounded loosely,
/// as timing on a shared machine allows.
#[tokio::test]
async fn a_failed_verify_takes_the_same_time_whatever_the_hash() {
    use std::time::{Duration, Instant};

    let database = crate::helpers::fresh_database();
    let old = TestApp::spawn_on(&database, |_| {}).await;
    old.create_user("Old", "old@example.com").await;
    // Six failures for each of fifteen kinds: more than the per-address
    // verify budget, which is not what this test is about.
    let app = TestApp::spawn_on(&database, |config| {
        config.bcrypt_cost = 10;
        config.limits.rate_limit_verify = 0;
    })
    .await;
    let schemes = Scheme::ALL;
    let requests: Vec<(Scheme, &str)> = schemes.iter().map(|s| (*s, "Right#Pass1")).collect();
    let mut emails = vec![
        "old@example.com".to_owned(),
        "nobody@example.com".to_owned(),
    ];
    for (scheme, hash) in schemes.iter().zip(reference::hashes(&requests)) {
        let email = format!("{scheme:?}@example.com").to_lowercase();
        insert_with_hash(&app, &email, &hash).await;
        emails.push(email);
    }
    let app = &app;
    let attempt = |email: String| async move {
        let started = Instant::now();
        app.verify(&email, "Wrong#Pass1")
            .await
            .assert_error(401, "invalid_credentials");
        started.elapsed()
    };
    // One failure of each kind first: the floor rises to the slowest.
    for email in &emails {
        attempt(email.clone()).await;
    }
    let floor = Duration::from_secs_f64(metric(app, "password_verify_floor_seconds").await);
    assert!(floor >= Duration::from_millis(5), "{floor:?}");
    let dummy_before = metric(app, "password_verifications_total{format=\"dummy\"}").await;
    let mut medians = Vec::new();
    for email in &emails {
        let mut times = Vec::new();
        for _ in 0..5 {
            times.push(attempt(email.clone()).await);
        }
        for time in &times {
            assert!(
                *time >= floor,
                "{email}: {time:?} is under the floor {floor:?}"
            );
        }
        times.sort();
        medians.push((email.clone(), times[2]));
    }
    let dummy_after = metric(app, "password_verifications_total{format=\"dummy\"}").await;
    assert_eq!(
        dummy_after - dummy_before,
        5.0,
        "an unknown email costs one dummy check each"
    );
    let slowest = medians.iter().map(|(_, t)| *t).max().unwrap();
    let fastest = medians.iter().map(|(_, t)| *t).min().unwrap();
    assert!(
        slowest.as_secs_f64() / fastest.as_secs_f64() < 2.0,
        "failed verifies differ by kind: {medians:?}"
    );
}

/// A sample's value from /metrics, which must have it.
async fn metric(app: &TestApp, sample: &str) -> f64 {
    app.metric(sample)
        .await
        .unwrap_or_else(|| panic!("{sample} is not in /metrics"))
}
