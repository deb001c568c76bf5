use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

async fn create_many(app: &TestApp, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let user = app
            .create_user(&format!("User {i}"), &format!("user{i}@example.com"))
            .await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn an_empty_collection_is_an_empty_last_page() {
    let app = TestApp::spawn().await;
    let reply = app.get("/user").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.data(), &Value::Array(Vec::new()));
    assert_eq!(reply.body["page"]["limit"], 50);
    assert!(reply.body["page"].get("next").is_none(), "{}", reply.text);
    assert!(reply.header("link").is_none());
}

#[tokio::test]
async fn following_next_visits_every_user_once_in_creation_order() {
    let app = TestApp::spawn().await;
    let created = create_many(&app, 7).await;

    let mut seen = Vec::new();
    let mut path = "/user?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["page"]["limit"], 3);
        pages += 1;
        seen.extend(reply.ids());
        match reply.body["page"]["next"].as_str() {
            Some(cursor) => {
                assert_eq!(reply.ids().len(), 3);
                let link = reply.next_link().expect("a Link header when more follow");
                assert!(link.contains(&format!("after={cursor}")), "{link}");
                path = format!("/user?limit=3&after={cursor}");
            }
            None => {
                assert!(reply.next_link().is_none());
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
}

#[tokio::test]
async fn the_link_header_is_a_working_url() {
    let app = TestApp::spawn().await;
    let created = create_many(&app, 5).await;

    let mut seen = Vec::new();
    let mut next = Some("/user?limit=2".to_owned());
    while let Some(path) = next {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        seen.extend(reply.ids());
        next = reply.next_link();
    }
    assert_eq!(seen, created);
}

#[tokio::test]
async fn users_created_or_deleted_between_pages_are_handled() {
    let app = TestApp::spawn().await;
    let created = create_many(&app, 4).await;

    let first = app.get("/user?limit=2").await;
    let cursor = first.body["page"]["next"].as_str().unwrap().to_owned();
    // A user from the first page is deleted, one from the second page too,
    // and a new one arrives: the walk still sees each survivor exactly once.
    app.delete_user(&created[0]).await;
    app.delete_user(&created[2]).await;
    let late = app.create_user("Late", "late@example.com").await;

    let rest = app.get(&format!("/user?limit=10&after={cursor}")).await;
    assert_eq!(
        rest.ids(),
        vec![created[3].clone(), late["id"].as_str().unwrap().to_owned()]
    );
}

#[tokio::test]
async fn limit_defaults_to_50_and_takes_1_to_200() {
    let app = TestApp::spawn().await;
    create_many(&app, 51).await;

    let reply = app.get("/user").await;
    assert_eq!(reply.ids().len(), 50);
    assert!(reply.body["page"]["next"].is_string());
    let reply = app.get("/user?limit=200").await;
    assert_eq!(reply.ids().len(), 51);
    assert!(reply.body["page"].get("next").is_none());
    let reply = app.get("/user?limit=1").await;
    assert_eq!(reply.ids().len(), 1);

    for bad in ["0", "201", "-1", "abc", "", "2.5"] {
        app.get(&format!("/user?limit={bad}"))
            .await
            .assert_invalid(&["limit"]);
    }
}

#[tokio::test]
async fn a_malformed_cursor_is_400() {
    let app = TestApp::spawn().await;
    for bad in ["x", "not-a-cursor!!!!", "AAAAAAAAAAAAAAAAAAAA", ""] {
        app.get(&format!("/user?after={bad}"))
            .await
            .assert_invalid(&["after"]);
    }
}

#[tokio::test]
async fn the_email_filter_matches_the_normalized_address() {
    let app = TestApp::spawn().await;
    create_many(&app, 3).await;
    let ada = app.create_user("Ada", "ada+test@example.com").await;

    let reply = app.get("/user?email=%20ADA%2Btest%40Example.com%20").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.data().as_array().unwrap(), &vec![ada]);

    let reply = app.get("/user?email=nobody%40example.com").await;
    assert_eq!(reply.data(), &Value::Array(Vec::new()));

    app.get("/user?email=not-an-email")
        .await
        .assert_invalid(&["email"]);
}

#[tokio::test]
async fn unknown_query_parameters_are_refused() {
    let app = TestApp::spawn().await;
    let reply = app.get("/user?limti=5&offset=10").await;
    reply.assert_invalid(&["limti", "offset"]);
}

#[tokio::test]
async fn every_problem_in_the_query_is_reported() {
    let app = TestApp::spawn().await;
    let reply = app.get("/user?limit=0&after=bad&email=bad").await;
    reply.assert_invalid(&["limit", "after", "email"]);
    let distinct: HashSet<&str> = reply.fields().into_iter().collect();
    assert_eq!(distinct.len(), 3);
}
