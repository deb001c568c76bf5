use reqwest::StatusCode;

use crate::helpers::TestApp;

#[tokio::test]
async fn get_returns_the_user() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = user["id"].as_str().unwrap();

    let reply = app.get(&format!("/user/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.data(), &user);

    // Hex is case-insensitive on the way in.
    let reply = app.get(&format!("/user/{}", id.to_uppercase())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.data()["id"], id);
}

#[tokio::test]
async fn get_of_an_unknown_id_is_404() {
    let app = TestApp::spawn().await;
    let reply = app.get("/user/65a1b2c3d4e5f60718293a4b").await;
    reply.assert_error(404, "not_found");
    assert!(reply.message().contains("65a1b2c3d4e5f60718293a4b"));
}

#[tokio::test]
async fn malformed_ids_are_400_invalid_id_on_every_method() {
    let app = TestApp::spawn().await;
    for id in [
        "123",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
        "65a1b2c3d4e5f60718293a4b0",
        "%20",
    ] {
        let path = format!("/user/{id}");
        for reply in [
            app.get(&path).await,
            app.delete_user(id).await,
            app.put_user(id, serde_json::json!({ "name": "A", "email": "a@b.co" }))
                .await,
            app.patch_user(id, serde_json::json!({ "name": "A" })).await,
        ] {
            reply.assert_error(400, "invalid_id");
            assert_eq!(reply.fields(), ["id"]);
            assert!(reply.message().starts_with("id:"), "{}", reply.text);
        }
    }
}

#[tokio::test]
async fn delete_returns_204_without_a_body_then_the_user_is_gone() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Ada", "ada@example.com").await;
    let id = user["id"].as_str().unwrap();

    let reply = app.delete_user(id).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.text.is_empty());

    app.get(&format!("/user/{id}"))
        .await
        .assert_error(404, "not_found");
    app.delete_user(id).await.assert_error(404, "not_found");
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn deleting_one_user_leaves_the_others() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("Ada", "ada@example.com").await;
    let bob = app.create_user("Bob", "bob@example.com").await;

    app.delete_user(ada["id"].as_str().unwrap()).await;

    let reply = app
        .get(&format!("/user/{}", bob["id"].as_str().unwrap()))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // The email is free again.
    app.create_user("Ada again", "ADA@example.com").await;
}
