//! A service pointed at the database the Flask service wrote, before
//! `user-api migrate`: it says why it is not ready, and never answers 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    flask::{self, FlaskUser},
    helpers::{fresh_database, mongo_uri, TestApp, PASSWORD},
    process::Server,
};

fn flask_users() -> Vec<FlaskUser> {
    vec![
        FlaskUser::new("John Doe", "John.Doe@Example.COM", "Password@123"),
        FlaskUser {
            object_id: true,
            ..FlaskUser::new("Ann Lee", "ann@example.com", "Password@123")
        },
    ]
}

#[tokio::test]
async fn foreign_documents_make_the_service_not_ready_and_every_answer_a_503() {
    let database = fresh_database();
    let written = flask::write(&mongo_uri(), &database, "users", &flask_users());
    let app = TestApp::spawn_on(&database, |_| {}).await;

    let health = app.send(app.anonymous(Method::GET, "/health")).await;
    health.assert_status_only(503);
    assert_eq!(health.data()["status"], "degraded");
    assert_eq!(health.data()["reason"], "legacy_documents");
    assert_eq!(health.data()["database"]["status"], "up");

    let string_id = written[0]["_id"].as_str().unwrap();
    let object_id = written[1]["_id"].as_str().unwrap();
    for path in [
        "/user".to_owned(),
        format!("/user/{string_id}"),
        format!("/user/{object_id}"),
    ] {
        app.get(&path).await.assert_error(503, "migration_required");
    }
    let create = app
        .post_user(json!({ "name": "New", "email": "new@example.com", "password": PASSWORD }))
        .await;
    create.assert_error(503, "migration_required");
    assert!(
        create.message().contains("user-api migrate"),
        "{}",
        create.text
    );
    app.patch_user(object_id, json!({ "name": "Changed" }))
        .await
        .assert_error(503, "migration_required");
    app.delete_user(object_id)
        .await
        .assert_error(503, "migration_required");
    // Ann's document was left whole for the migration.
    let ann = app
        .db
        .collection::<mongodb::bson::Document>("users")
        .find_one(mongodb::bson::doc! { "email": "ann@example.com" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ann.get_str("name").unwrap(), "Ann Lee");
    assert!(!ann.contains_key("version"));

    let verify = app
        .request(
            Method::POST,
            "/user/verify",
            Some(json!({ "email": "ann@example.com", "password": "Password@123" })),
        )
        .await;
    verify.assert_error(503, "migration_required");
}

/// At startup the service logs an error naming the command that fixes it.
#[tokio::test]
async fn the_log_names_user_api_migrate() {
    let database = fresh_database();
    flask::write(&mongo_uri(), &database, "users", &flask_users());
    let (server, base) = Server::start(|command| {
        command.env("MONGO_URI", format!("{}/{database}", mongo_uri()));
    })
    .await;
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let logs = server.logs();
    assert!(
        logs.contains("ERROR") && logs.contains("run `user-api migrate`"),
        "{logs}"
    );
}
