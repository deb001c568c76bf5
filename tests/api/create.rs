use futures::future::join_all;
use mongodb::bson::Document;
use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use serde_json::json;

use crate::helpers::{id, TestApp, PASSWORD};

#[tokio::test]
async fn create_returns_201_the_user_and_its_location() {
    let app = TestApp::spawn().await;
    let reply = app
        .post_user(
            json!({ "name": "John Doe", "email": "john.doe@example.com", "password": PASSWORD }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let user = reply.data();
    let id = user["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        reply.header("location"),
        Some(format!("/user/{id}").as_str())
    );
    assert_eq!(user["name"], "John Doe");
    assert_eq!(user["email"], "john.doe@example.com");
    assert_eq!(user["created_at"], user["updated_at"]);
    let created = user["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    assert!(created.ends_with('Z'), "{created}");
    let keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "email",
            "created_at",
            "updated_at",
            "version",
            "disabled",
            "last_verified_at",
            "metadata",
            "external_id"
        ]
    );
    assert_eq!(user["metadata"], serde_json::json!({}));
    assert_eq!(user["external_id"], serde_json::Value::Null);
    assert_eq!(user["version"], 1);
    assert_eq!(user["disabled"], false);
    assert_eq!(user["last_verified_at"], serde_json::Value::Null);
    assert_eq!(reply.header("etag"), Some("\"1\""));
    assert_eq!(reply.body["status_code"], 201);

    let fetched = app.get(&format!("/user/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.data(), user);
}

#[tokio::test]
async fn create_trims_the_name_and_normalizes_the_email() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("  Ada Lovelace\t", "  Ada.Lovelace@Example.COM ")
        .await;
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["email"], "ada.lovelace@example.com");
}

#[tokio::test]
async fn the_password_is_stored_only_as_a_bcrypt_hash() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let stored = app.stored(user["id"].as_str().unwrap()).await.unwrap();

    assert!(stored.get("password").is_none());
    let hash = stored.get_str("password_hash").unwrap();
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    assert!(bcrypt::verify(PASSWORD, hash).unwrap());
    assert!(!Document::to_string(&stored).contains(PASSWORD));
}

#[tokio::test]
async fn a_bcrypt_lookalike_password_is_hashed_like_any_other() {
    let app = TestApp::spawn().await;
    let lookalike = "$2b$04$Password@123abcdefghijuvwxyzABCDEFGHIJKLMNOPQRSTUVWX";
    let reply = app
        .post_user(json!({ "name": "Ada", "email": "ada@example.com", "password": lookalike }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let hash = app.stored_hash(reply.data()["id"].as_str().unwrap()).await;
    assert_ne!(hash, lookalike);
    assert!(bcrypt::verify(lookalike, &hash).unwrap());
}

#[tokio::test]
async fn a_taken_email_is_409_whatever_its_case() {
    let app = TestApp::spawn().await;
    app.create_user("Ada", "a@x.com").await;

    for email in ["a@x.com", "A@X.com", "  A@x.COM "] {
        let reply = app
            .post_user(json!({ "name": "Other", "email": email, "password": PASSWORD }))
            .await;
        reply.assert_error(409, "email_taken");
        assert_eq!(reply.fields(), ["email"]);
        assert!(reply.message().starts_with("email:"), "{}", reply.text);
    }
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn concurrent_creates_with_one_email_yield_exactly_one_201() {
    let app = TestApp::spawn().await;
    let attempts = (0..16).map(|i| {
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        app.post_user(json!({ "name": format!("Racer {i}"), "email": email, "password": PASSWORD }))
    });
    let replies = join_all(attempts).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 15));
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn missing_fields_are_each_named() {
    let app = TestApp::spawn().await;
    app.post_user(json!({}))
        .await
        .assert_invalid(&["name", "email", "password"]);
    app.post_user(json!({ "name": "Ada" }))
        .await
        .assert_invalid(&["email", "password"]);
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn unknown_fields_are_refused_and_named() {
    let app = TestApp::spawn().await;
    let reply = app
        .post_user(json!({
            "name": "Ada", "email": "ada@example.com", "password": PASSWORD,
            "id": "65a1b2c3d4e5f60718293a4b", "_id": "x", "created_at": "2020-01-01T00:00:00Z",
            "password_hash": "$2b$04$abcdefghijklmnopqrstuu", "role": "admin"
        }))
        .await;
    reply.assert_invalid(&["id", "_id", "created_at", "password_hash", "role"]);
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn wrong_types_and_nulls_are_refused_and_named() {
    let app = TestApp::spawn().await;
    for (field, value) in [
        ("name", json!(42)),
        ("email", json!(["a@b.co"])),
        ("password", json!(null)),
        ("name", json!({ "first": "Ada" })),
        ("email", json!(true)),
    ] {
        let mut body = json!({ "name": "Ada", "email": "ada@example.com", "password": PASSWORD });
        body[field] = value;
        app.post_user(body).await.assert_invalid(&[field]);
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn malformed_and_non_object_bodies_are_400() {
    let app = TestApp::spawn().await;
    let post_json = |raw: &'static str| {
        app.send(
            app.builder(Method::POST, "/user")
                .header(CONTENT_TYPE, "application/json")
                .body(raw),
        )
    };
    for raw in ["{", "{\"name\": \"Ada\",}", "nope", "", "   "] {
        post_json(raw).await.assert_error(400, "malformed_json");
    }
    for raw in ["[]", "\"Ada\"", "42", "null"] {
        post_json(raw).await.assert_invalid(&["body"]);
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415() {
    let app = TestApp::spawn().await;
    let body = r#"{"name":"Ada","email":"ada@example.com","password":"Password@123"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut builder = app.builder(Method::POST, "/user").body(body);
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        app.send(builder)
            .await
            .assert_error(415, "unsupported_media_type");
    }
    assert_eq!(app.stored_count().await, 0);

    let reply = app
        .send(
            app.builder(Method::POST, "/user")
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn a_charset_other_than_utf8_is_415() {
    let app = TestApp::spawn().await;
    let body = r#"{"name":"Ada","email":"ada@example.com","password":"Password@123"}"#;
    for content_type in [
        "application/json; charset=utf-16",
        "application/json; charset=iso-8859-1",
        "application/json;charset=\"utf-32\"",
    ] {
        let reply = app
            .send(
                app.builder(Method::POST, "/user")
                    .header(CONTENT_TYPE, content_type)
                    .body(body),
            )
            .await;
        reply.assert_error(415, "unsupported_media_type");
        assert!(reply.message().contains("charset"), "{}", reply.text);
    }
    assert_eq!(app.stored_count().await, 0);
    let reply = app
        .send(
            app.builder(Method::POST, "/user")
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .body(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn a_repeated_key_is_400_naming_it() {
    let app = TestApp::spawn().await;
    let post_raw = |raw: &'static str| {
        app.send(
            app.builder(Method::POST, "/user")
                .header(CONTENT_TYPE, "application/json")
                .body(raw),
        )
    };
    post_raw(r#"{"name":"Ada","email":"ada@example.com","password":"Password@123","name":"Eve"}"#)
        .await
        .assert_invalid(&["name"]);
    post_raw(
        r#"{"name":"Ada","email":"ada@example.com","password":"Password@123",
            "metadata":{"plan":"free","tags":[{"a":1,"a":2}]}}"#,
    )
    .await
    .assert_invalid(&["metadata.tags[0].a"]);
    // A syntax error stays a syntax error, wherever it is.
    post_raw(r#"{"name":"Ada","metadata":{"a":[1,}}"#)
        .await
        .assert_error(400, "malformed_json");
    assert_eq!(app.stored_count().await, 0);

    let user = app.create_user("Ada", "ada@example.com").await;
    let reply = app
        .send(
            app.builder(Method::PATCH, &format!("/user/{}", id(&user)))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"name":"Eve","name":"Mallory"}"#),
        )
        .await;
    reply.assert_invalid(&["name"]);
    let stored = app.get(&format!("/user/{}", id(&user))).await;
    assert_eq!(stored.data()["name"], "Ada", "nothing was written");
    assert_eq!(stored.data()["version"], user["version"]);
}

#[tokio::test]
async fn every_invalid_value_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let reply = app
        .post_user(json!({ "name": "   ", "email": "not-an-email", "password": "short" }))
        .await;
    reply.assert_invalid(&["name", "email", "password"]);
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn names_follow_the_rules() {
    let app = TestApp::spawn().await;
    let valid = [
        "A".to_owned(),
        "a".repeat(100),
        format!("  {}  ", "é".repeat(100)),
        "李小龍".to_owned(),
        "Zoë O'Brien-Smith".to_owned(),
        "Zoë O'Brien-Łukasz 李小龍".to_owned(),
        "Zoe\u{308}".to_owned(),
        "🦀 Ferris".to_owned(),
    ];
    for (i, name) in valid.iter().enumerate() {
        let reply = app
            .post_user(
                json!({ "name": name, "email": format!("n{i}@example.com"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{name:?}: {}",
            reply.text
        );
    }
    let invalid = [
        "".to_owned(),
        " \t ".to_owned(),
        "a".repeat(101),
        "Ada\u{0}".to_owned(),
        "Ada\nLovelace".to_owned(),
        "x\u{7f}y".to_owned(),
        // Invisible, direction-changing and line-separating characters.
        "\u{200b}".to_owned(),
        "\u{feff}".to_owned(),
        "Admin\u{202e}txt.exe".to_owned(),
        "a\u{2028}b".to_owned(),
        "a\u{2029}b".to_owned(),
        "Ada\u{e0041}".to_owned(),
        "\u{3164}".to_owned(),
        "\u{2800} Ada".to_owned(),
    ];
    for name in invalid {
        app.post_user(json!({ "name": name, "email": "bad@example.com", "password": PASSWORD }))
            .await
            .assert_invalid(&["name"]);
    }
    assert_eq!(app.stored_count().await, valid.len() as u64);
}

#[tokio::test]
async fn emails_follow_the_rules() {
    let app = TestApp::spawn().await;
    let domain = format!(
        "{}.{}.{}.com",
        "c".repeat(63),
        "d".repeat(63),
        "e".repeat(63)
    );
    let longest = format!("{}@{domain}", "a".repeat(254 - 1 - domain.len()));
    let reply = app
        .post_user(json!({ "name": "Ada", "email": longest, "password": PASSWORD }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    for email in [
        format!("a{longest}"),
        "plainaddress".to_owned(),
        "@example.com".to_owned(),
        "ada@".to_owned(),
        "ada@example".to_owned(),
        "a da@example.com".to_owned(),
        "ada@@example.com".to_owned(),
        "ada@exa_mple.com".to_owned(),
        "\"ada\"@example.com".to_owned(),
        "ada@[192.0.2.1]".to_owned(),
        "ada@xn--zz.com".to_owned(),
        String::new(),
    ] {
        app.post_user(json!({ "name": "Ada", "email": email, "password": PASSWORD }))
            .await
            .assert_invalid(&["email"]);
    }
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn passwords_follow_the_policy() {
    let app = TestApp::spawn().await;
    for (password, expect) in [
        ("Pa@1xyz", "at least 8 characters"),
        ("password@123", "uppercase"),
        ("PASSWORD@123", "lowercase"),
        ("Password@abc", "digit"),
        ("Password1234", "not a letter or digit"),
    ] {
        let reply = app
            .post_user(json!({ "name": "Ada", "email": "ada@example.com", "password": password }))
            .await;
        reply.assert_invalid(&["password"]);
        assert!(
            reply.message().contains(expect),
            "{password}: {}",
            reply.text
        );
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn a_72_byte_password_is_accepted_whole_and_73_bytes_is_refused() {
    let app = TestApp::spawn().await;
    let prefix = "Password@1";
    let exactly_72 = format!("{prefix}{}", "x".repeat(72 - prefix.len()));
    assert_eq!(exactly_72.len(), 72);

    let reply = app
        .post_user(json!({ "name": "Ada", "email": "ada@example.com", "password": exactly_72 }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let hash = app.stored_hash(reply.data()["id"].as_str().unwrap()).await;
    assert!(bcrypt::verify(&exactly_72, &hash).unwrap());
    // The 72nd byte counts: changing it no longer verifies.
    let last_changed = format!("{}y", &exactly_72[..71]);
    assert!(!bcrypt::verify(&last_changed, &hash).unwrap());

    let reply = app
        .post_user(json!({ "name": "Ada", "email": "ada2@example.com", "password": format!("{exactly_72}x") }))
        .await;
    reply.assert_invalid(&["password"]);
    assert!(reply.message().contains("72 bytes"), "{}", reply.text);

    // Bytes, not characters: 36 two-byte characters are 72 + 10 bytes.
    let wide = format!("{prefix}{}", "é".repeat(36));
    assert!(wide.chars().count() < 72 && wide.len() > 72);
    app.post_user(json!({ "name": "Ada", "email": "ada3@example.com", "password": wide }))
        .await
        .assert_invalid(&["password"]);
    assert_eq!(app.stored_count().await, 1);
}

/// Internationalized addresses, as the Flask service's EmailStr accepted
/// them, are one canonical address however they are written.
#[tokio::test]
async fn internationalized_emails_are_accepted_in_one_canonical_form() {
    let app = TestApp::spawn().await;
    let bucher = app.create_user("Bücher", "User@Bücher.de").await;
    assert_eq!(bucher["email"], "user@bücher.de");
    let jose = app.create_user("José", "josé@correo.es").await;
    assert_eq!(jose["email"], "josé@correo.es");
    for same in ["user@xn--bcher-kva.de", "USER@BÜCHER.DE"] {
        app.post_user(json!({ "name": "Twin", "email": same, "password": PASSWORD }))
            .await
            .assert_error(409, "email_taken");
    }
    // Lookups normalize too, a decomposed ü (u and U+0308) included.
    for lookup in ["User%40XN--BCHER-KVA.DE", "user%40bu%CC%88cher.de"] {
        let found = app.get(&format!("/user?email={lookup}")).await;
        assert_eq!(found.data()[0]["id"], bucher["id"], "{lookup}");
    }
    let verified = app
        .request(
            reqwest::Method::POST,
            "/user/verify",
            Some(json!({ "email": "JOSÉ@correo.es", "password": PASSWORD })),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!(verified.data()["id"], jose["id"]);
}
