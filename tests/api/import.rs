//! `POST /user/import`: users with the hashes other systems made (each from
//! its reference library, at test time) or with passwords to hash, each
//! item answered on its own.

use mongodb::bson::oid::ObjectId;
use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{id, Reply, TestApp, PASSWORD},
    reference::{self, Scheme},
};

async fn import(app: &TestApp, users: Value) -> Reply {
    app.request(
        Method::POST,
        "/user/import",
        Some(json!({ "users": users })),
    )
    .await
}

fn results(reply: &Reply) -> &Vec<Value> {
    reply.data()["results"].as_array().expect("results")
}

#[tokio::test]
async fn users_come_in_with_every_format_and_verify_with_their_passwords() {
    let app = TestApp::spawn().await;
    let password = "Imported#Pass1";
    let requests: Vec<(Scheme, &str)> = Scheme::ALL.iter().map(|s| (*s, password)).collect();
    let hashes = reference::hashes(&requests);
    let mut users: Vec<Value> = Scheme::ALL
        .iter()
        .zip(&hashes)
        .map(|(scheme, hash)| {
            json!({ "name": format!("{scheme:?}"), "email": format!("{scheme:?}@example.com"),
                    "password_hash": hash, "ref": format!("{scheme:?}") })
        })
        .collect();
    users.push(json!({ "name": "Plain", "email": "plain@example.com", "password": PASSWORD }));
    let reply = import(&app, Value::Array(users.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.data()["created"], users.len());
    assert_eq!(reply.data()["failed"], 0, "{}", reply.text);
    for (index, result) in results(&reply).iter().enumerate() {
        assert_eq!(result["index"], index);
        assert_eq!(result["status"], "created");
        assert_eq!(result["ref"], users[index]["ref"]);
    }
    for (scheme, hash) in Scheme::ALL.iter().zip(&hashes) {
        let email = format!("{scheme:?}@example.com").to_lowercase();
        let found = app.get(&format!("/user?email={email}")).await;
        let user_id = id(&found.data()[0]).to_owned();
        assert_eq!(
            &app.stored_hash(&user_id).await,
            hash,
            "{scheme:?}: kept as it came"
        );
        let verified = app.verify(&email, password).await;
        assert_eq!(
            verified.status,
            StatusCode::OK,
            "{scheme:?}: {}",
            verified.text
        );
        assert!(
            app.stored_hash(&user_id).await.starts_with("$2b$04$"),
            "{scheme:?}"
        );
    }
    let plain = app.verify("plain@example.com", PASSWORD).await;
    assert_eq!(plain.status, StatusCode::OK);
}

#[tokio::test]
async fn each_item_fails_or_succeeds_on_its_own() {
    let app = TestApp::spawn().await;
    let taken = app.create_user("Taken", "taken@example.com").await;
    let taken_id = id(&taken).to_owned();
    let hash = &reference::hashes(&[(Scheme::Bcrypt2b, PASSWORD)])[0];
    let over_cost = format!("$2b$32{}", &hash[6..]);
    let fresh_id = ObjectId::new().to_hex();
    let users = json!([
        { "name": "Good", "email": "good@example.com", "password_hash": hash },
        { "name": "Bad Email", "email": "not-an-email", "password_hash": hash },
        { "name": "Both", "email": "both@example.com", "password": PASSWORD, "password_hash": hash },
        { "name": "Neither", "email": "neither@example.com" },
        { "name": "Costly", "email": "costly@example.com", "password_hash": over_cost },
        { "name": "Weak", "email": "weak@example.com", "password": "short" },
        { "name": "Email Taken", "email": "TAKEN@example.com", "password_hash": hash },
        { "name": "Id Taken", "email": "other@example.com", "password_hash": hash, "id": taken_id },
        { "name": "Same", "email": "taken@example.com", "password_hash": hash, "id": taken_id },
        { "name": "Bad Id", "email": "badid@example.com", "password_hash": hash, "id": "xyz" },
        { "name": "Bad Time", "email": "badtime@example.com", "password_hash": hash,
          "created_at": "yesterday" },
        { "name": "Off By One", "email": "off@example.com", "password_hash": hash,
          "id": fresh_id, "created_at": "2001-01-01T00:00:00Z" },
        { "name": "  ", "email": "blank@example.com", "password_hash": hash },
    ]);
    let reply = import(&app, users).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let expected: [(&str, Option<&str>, &[&str]); 13] = [
        ("created", None, &[]),
        ("failed", Some("validation_failed"), &["email"]),
        ("failed", Some("validation_failed"), &["password_hash"]),
        ("failed", Some("validation_failed"), &["password"]),
        ("failed", Some("validation_failed"), &["password_hash"]),
        ("failed", Some("validation_failed"), &["password"]),
        ("failed", Some("email_taken"), &[]),
        ("failed", Some("id_taken"), &[]),
        ("existing", None, &[]),
        ("failed", Some("validation_failed"), &["id"]),
        ("failed", Some("validation_failed"), &["created_at"]),
        ("failed", Some("validation_failed"), &["created_at"]),
        ("failed", Some("validation_failed"), &["name"]),
    ];
    for (result, (status, error, fields)) in results(&reply).iter().zip(expected) {
        assert_eq!(result["status"], status, "{result}");
        assert_eq!(result["error"].as_str(), error, "{result}");
        let named: Vec<&str> = result["details"]
            .as_array()
            .map(|details| details.iter().filter_map(|d| d["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(named, fields, "{result}");
        if error.is_some() {
            assert!(result["message"].is_string(), "{result}");
        }
    }
    assert_eq!(results(&reply)[8]["id"], taken_id.as_str());
    assert_eq!(reply.data()["created"], 1);
    assert_eq!(reply.data()["existing"], 1);
    assert_eq!(reply.data()["failed"], 11);
    assert_eq!(app.stored_count().await, 2, "only Good was added");
    let unchanged = app.get(&format!("/user/{taken_id}")).await;
    assert_eq!(unchanged.data(), &taken);
}

#[tokio::test]
async fn ids_and_creation_times_are_kept_and_a_rerun_is_existing() {
    let app = TestApp::spawn().await;
    let hash = &reference::hashes(&[(Scheme::FlaskPasslib, PASSWORD)])[0];
    let kept_id = "5f1d7c3a9b8e4f0012345678";
    let users = json!([
        { "name": "Kept", "email": "kept@example.com", "password_hash": hash, "id": kept_id },
        { "name": "Dated", "email": "dated@example.com", "password_hash": hash,
          "created_at": "2019-06-01T12:34:56.789Z" },
    ]);
    let first = import(&app, users.clone()).await;
    assert_eq!(first.data()["created"], 2, "{}", first.text);
    let kept = app.get(&format!("/user/{kept_id}")).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert_eq!(
        kept.data()["created_at"],
        format!("{}.000Z", reference::object_id_time(kept_id))
    );
    let dated_id = results(&first)[1]["id"].as_str().unwrap().to_owned();
    let dated = app.get(&format!("/user/{dated_id}")).await;
    assert_eq!(dated.data()["created_at"], "2019-06-01T12:34:56.789Z");
    let prefix = reference::object_id_prefix_at("2019-06-01T12:34:56+00:00");
    assert!(
        dated_id.starts_with(&prefix),
        "the id carries the creation second: {dated_id}"
    );

    let again = import(&app, users).await;
    assert_eq!(results(&again)[0]["status"], "existing");
    // Without an id, the second run cannot know it is the same user.
    assert_eq!(results(&again)[1]["error"], "email_taken");
    assert_eq!(app.stored_count().await, 2);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = TestApp::spawn().await;
    let users = json!([
        { "name": "Ann", "email": "ann@example.com", "password": PASSWORD, "ref": "a" },
        { "name": "Bad", "email": "bad", "password": PASSWORD },
    ]);
    let send = |users: &Value, key: &str| {
        app.send(
            app.builder(Method::POST, "/user/import")
                .header("idempotency-key", key)
                .json(&json!({ "users": users })),
        )
    };
    let first = send(&users, "import-1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.header("idempotent-replayed").is_none());
    let retry = send(&users, "import-1").await;
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.stored_count().await, 1);

    let mut changed = users.clone();
    changed[0]["password"] = json!("Password@124");
    send(&changed, "import-1")
        .await
        .assert_error(422, "idempotency_key_reused");
    changed = users.clone();
    changed[1]["email"] = json!("bob@example.com");
    send(&changed, "import-1")
        .await
        .assert_error(422, "idempotency_key_reused");
}

#[tokio::test]
async fn the_request_itself_is_checked_whole() {
    let app = TestApp::spawn().await;
    let user = |i: usize| json!({ "name": "U", "email": format!("u{i}@example.com"), "password": PASSWORD });
    import(&app, json!([])).await.assert_invalid(&["users"]);
    let too_many: Vec<Value> = (0..1001).map(user).collect();
    import(&app, Value::Array(too_many))
        .await
        .assert_invalid(&["users"]);
    let unknown = import(
        &app,
        json!([{ "name": "U", "email": "u@example.com", "password": PASSWORD, "admin": true }]),
    )
    .await;
    unknown.assert_error(400, "validation_failed");
    assert!(unknown.message().contains("admin"), "{}", unknown.text);
    let long_ref = import(&app, json!([{ "name": "U", "email": "u@example.com", "password": PASSWORD, "ref": "r".repeat(65) }])).await;
    long_ref.assert_invalid(&["users[0].ref"]);
    assert_eq!(
        app.stored_count().await,
        0,
        "nothing of a refused request is written"
    );

    // 101 plaintext passwords: the 101st fails, the others go in.
    let many: Vec<Value> = (0..101).map(user).collect();
    let reply = import(&app, Value::Array(many)).await;
    assert_eq!(reply.data()["created"], 100, "{}", reply.text);
    assert_eq!(results(&reply)[100]["details"][0]["field"], "password");
    assert!(results(&reply)[100]["message"]
        .as_str()
        .unwrap()
        .contains("at most 100"));
}

#[tokio::test]
async fn bodies_up_to_1_mib_are_read_and_larger_ones_are_413() {
    let app = TestApp::spawn().await;
    let hash = &reference::hashes(&[(Scheme::Bcrypt2b, PASSWORD)])[0];
    let users: Vec<Value> = (0..1000)
        .map(|i| {
            json!({ "name": format!("User {i}"), "email": format!("user{i}@example.com"),
                         "password_hash": hash, "ref": "x".repeat(60) })
        })
        .collect();
    let body = json!({ "users": users }).to_string();
    assert!(
        body.len() > 150 * 1024 && body.len() < 1024 * 1024,
        "{}",
        body.len()
    );
    let reply = app
        .send(
            app.builder(Method::POST, "/user/import")
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        &reply.text[..200.min(reply.text.len())]
    );
    assert_eq!(reply.data()["created"], 1000);

    let oversized = format!(
        r#"{{"users": [{{"name": "{}"}}]}}"#,
        "a".repeat(1024 * 1024)
    );
    app.send(
        app.builder(Method::POST, "/user/import")
            .header(CONTENT_TYPE, "application/json")
            .body(oversized),
    )
    .await
    .assert_error(413, "payload_too_large");
}
