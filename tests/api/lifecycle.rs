//! Account lifecycle: disabled users, the verify order, and brute-force
//! lockout counted in MongoDB across instances.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{fresh_database, id, Reply, TestApp, PASSWORD};

/// A sample's value from /metrics, 0 when it has none yet.
async fn checks(app: &TestApp, format: &str) -> f64 {
    app.metric(&format!(
        "password_verifications_total{{format=\"{format}\"}}"
    ))
    .await
    .unwrap_or(0.0)
}

fn retry_after(reply: &Reply) -> u64 {
    reply.header("retry-after").unwrap().parse().unwrap()
}

#[tokio::test]
async fn disabled_is_set_kept_changed_and_filtered() {
    let app = TestApp::spawn().await;
    let off = app
        .post_user(
            json!({ "name": "Off", "email": "off@example.com", "password": PASSWORD,
                           "disabled": true }),
        )
        .await;
    assert_eq!(off.status, StatusCode::CREATED, "{}", off.text);
    assert_eq!(off.data()["disabled"], true);
    let off_id = id(off.data()).to_owned();
    let on = app.create_user("On", "on@example.com").await;
    assert_eq!(on["disabled"], false);

    // PUT without `disabled` keeps it, as it keeps the password.
    let replaced = app
        .put_user(
            &off_id,
            json!({ "name": "Still Off", "email": "off@example.com" }),
        )
        .await;
    assert_eq!(replaced.data()["disabled"], true);
    assert_eq!(replaced.data()["version"], 2);
    let patched = app.patch_user(&off_id, json!({ "disabled": false })).await;
    assert_eq!(patched.data()["disabled"], false);
    assert_eq!(patched.data()["version"], 3, "a change of state is a write");
    app.patch_user(&off_id, json!({ "disabled": true })).await;

    for (filter, expected) in [("true", vec![off_id.as_str()]), ("false", vec![id(&on)])] {
        let page = app.get(&format!("/user?disabled={filter}")).await;
        let ids: Vec<&str> = page.data().as_array().unwrap().iter().map(id).collect();
        assert_eq!(ids, expected, "disabled={filter}");
    }
    let combined = app.get("/user?disabled=true&email=on@example.com").await;
    assert_eq!(combined.data(), &json!([]));
    app.get("/user?disabled=yes")
        .await
        .assert_invalid(&["disabled"]);
    app.patch_user(&off_id, json!({ "disabled": "no" }))
        .await
        .assert_invalid(&["disabled"]);
}

#[tokio::test]
async fn the_filter_pages_with_every_user_once() {
    let app = TestApp::spawn().await;
    let mut disabled = Vec::new();
    for i in 0..7 {
        let reply = app
            .post_user(json!({ "name": "U", "email": format!("u{i}@example.com"),
                               "password": PASSWORD, "disabled": i % 2 == 0 }))
            .await;
        if i % 2 == 0 {
            disabled.push(id(reply.data()).to_owned());
        }
    }
    let pages = app.all_pages("/user?disabled=true&limit=2").await;
    for url in pages.iter().filter_map(Reply::next_link) {
        assert!(url.contains("disabled=true"), "{url}");
    }
    let seen: Vec<String> = pages.iter().flat_map(Reply::ids).collect();
    assert_eq!(seen, disabled);
}

/// Keycloak's order: the state of an account never shows to someone
/// without its password.
#[tokio::test]
async fn verify_answers_in_order() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("Ada", "ada@example.com").await;
    app.post_user(
        json!({ "name": "Off", "email": "off@example.com", "password": PASSWORD,
                          "disabled": true }),
    )
    .await;

    let unknown = app.verify("nobody@example.com", PASSWORD).await;
    unknown.assert_error(401, "invalid_credentials");
    let wrong_of_disabled = app.verify("off@example.com", "Password@999").await;
    wrong_of_disabled.assert_error(401, "invalid_credentials");
    assert_eq!(
        unknown.body, wrong_of_disabled.body,
        "nothing tells them apart"
    );

    app.verify("off@example.com", PASSWORD)
        .await
        .assert_error(403, "user_disabled");

    let verified = app.verify("ada@example.com", PASSWORD).await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(verified.data()["id"], ada["id"]);
    assert!(verified.data()["last_verified_at"].is_string());
    assert!(ada["last_verified_at"].is_null());
}

#[tokio::test]
async fn failures_lock_an_email_out_with_no_password_checked() {
    let app = TestApp::spawn_with(|config| {
        config.limits.lockout_threshold = 3;
        config.limits.lockout_secs = 300;
    })
    .await;
    let ada = app.create_user("Ada", "ada@example.com").await;
    for _ in 0..3 {
        app.verify("ada@example.com", "Password@999")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let before = checks(&app, "bcrypt").await;
    // Even the right password: the email is locked out.
    let locked = app.verify("ADA@example.com", PASSWORD).await;
    locked.assert_error(429, "too_many_failures");
    assert!(
        (299..=300).contains(&retry_after(&locked)),
        "{}",
        retry_after(&locked)
    );
    assert_eq!(
        checks(&app, "bcrypt").await,
        before,
        "no password was checked"
    );

    // An unknown email locks out the same way: the lockout reveals nothing.
    for _ in 0..3 {
        app.verify("nobody@example.com", PASSWORD).await;
    }
    app.verify("nobody@example.com", PASSWORD)
        .await
        .assert_error(429, "too_many_failures");

    // An administrator lifts it.
    let cleared = app
        .request(Method::DELETE, &format!("/user/{}/lockout", id(&ada)), None)
        .await;
    cleared.assert_status_only(204);
    assert_eq!(
        app.verify("ada@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    app.request(
        Method::DELETE,
        "/user/65a1b2c3d4e5f60718293a4b/lockout",
        None,
    )
    .await
    .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_success_clears_the_count_and_lockouts_double() {
    let app = TestApp::spawn_with(|config| {
        config.limits.lockout_threshold = 2;
        config.limits.lockout_secs = 1;
    })
    .await;
    app.create_user("Ada", "ada@example.com").await;
    app.verify("ada@example.com", "Password@999").await;
    assert_eq!(
        app.verify("ada@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    // Two fresh failures are allowed again after the success.
    for _ in 0..2 {
        app.verify("ada@example.com", "Password@999")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let first = app.verify("ada@example.com", "Password@999").await;
    first.assert_error(429, "too_many_failures");
    assert_eq!(retry_after(&first), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        app.verify("ada@example.com", "Password@999")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let second = app.verify("ada@example.com", "Password@999").await;
    second.assert_error(429, "too_many_failures");
    assert_eq!(
        retry_after(&second),
        2,
        "the second lockout in the window doubles"
    );
}

/// Zitadel's advisory: parallel guesses must not get past the threshold.
/// 50 at once at one email run at most 10 password checks.
/// Failures count within a window that starts at the first one: once it
/// has passed, they no longer add up to a lockout.
#[tokio::test]
async fn failures_older_than_the_window_are_forgotten() {
    let app = TestApp::spawn_with(|config| {
        config.limits.lockout_threshold = 2;
        config.limits.lockout_window_secs = 1;
    })
    .await;
    app.create_user("Ada", "ada@example.com").await;
    app.verify("ada@example.com", "Password@999")
        .await
        .assert_error(401, "invalid_credentials");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // A new window: this failure is its first, the next its second.
    for _ in 0..2 {
        app.verify("ada@example.com", "Password@999")
            .await
            .assert_error(401, "invalid_credentials");
    }
    // Within that window the threshold holds.
    app.verify("ada@example.com", PASSWORD)
        .await
        .assert_error(429, "too_many_failures");
}

#[tokio::test]
async fn fifty_parallel_guesses_run_at_most_the_threshold_of_checks() {
    let app = TestApp::spawn_with(|config| {
        config.limits.lockout_threshold = 10;
        config.limits.rate_limit_verify = 0;
    })
    .await;
    app.create_user("Ada", "ada@example.com").await;
    let before = checks(&app, "bcrypt").await;
    let guesses: Vec<String> = (0..50).map(|i| format!("Guess@{i:03}")).collect();
    let replies = join_all(
        guesses
            .iter()
            .map(|guess| app.verify("ada@example.com", guess)),
    )
    .await;
    let refused = replies
        .iter()
        .filter(|r| r.error_code() == "too_many_failures")
        .count();
    let wrong = replies
        .iter()
        .filter(|r| r.error_code() == "invalid_credentials")
        .count();
    assert_eq!(refused + wrong, 50);
    assert!(wrong <= 10, "{wrong} guesses were checked");
    let ran = checks(&app, "bcrypt").await - before;
    assert!(ran <= 10.0, "{ran} password checks ran");
    assert_eq!(ran as usize, wrong);
}

/// Two instances on one database count one threshold.
#[tokio::test]
async fn the_threshold_holds_across_instances() {
    let database = fresh_database();
    let limit = |config: &mut user_api::config::Config| config.limits.lockout_threshold = 4;
    let one = TestApp::spawn_on(&database, limit).await;
    let two = TestApp::spawn_on(&database, limit).await;
    one.create_user("Ada", "ada@example.com").await;
    for app in [&one, &two, &one, &two] {
        app.verify("ada@example.com", "Password@999")
            .await
            .assert_error(401, "invalid_credentials");
    }
    for app in [&one, &two] {
        app.verify("ada@example.com", PASSWORD)
            .await
            .assert_error(429, "too_many_failures");
    }
}
