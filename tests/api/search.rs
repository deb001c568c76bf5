//! Finding users: prefix search, creation-time ranges, both orders, lists of
//! ids, totals, external ids; and the metadata users carry.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, Reply, TestApp, PASSWORD};

/// Every user of a listing, following `Link` from `url`, with each page's
/// `total`.
async fn all_pages(app: &TestApp, url: &str) -> (Vec<String>, Vec<Value>) {
    let pages = app.all_pages(url).await;
    let ids = pages.iter().flat_map(Reply::ids).collect();
    let totals = pages
        .iter()
        .map(|page| page.body["page"]["total"].clone())
        .collect();
    (ids, totals)
}

async fn create(app: &TestApp, body: Value) -> Value {
    let reply = app.post_user(body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.data().clone()
}

/// Users imported with exact creation times.
async fn import_at(app: &TestApp, users: &[(&str, &str)]) -> Vec<String> {
    let items: Vec<Value> = users
        .iter()
        .map(|(email, created_at)| {
            json!({ "name": email, "email": email, "password": PASSWORD, "created_at": created_at })
        })
        .collect();
    let reply = app
        .request(
            Method::POST,
            "/user/import",
            Some(json!({ "users": items })),
        )
        .await;
    assert_eq!(reply.data()["created"], users.len(), "{}", reply.text);
    reply.data()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn q_finds_name_and_email_prefixes_whatever_the_case() {
    let app = TestApp::spawn().await;
    let zoe = create(
        &app,
        json!({ "name": "Zoë Smith", "email": "zs@example.com", "password": PASSWORD }),
    )
    .await;
    let strasse = create(
        &app,
        json!({ "name": "Straße", "email": "s@example.com", "password": PASSWORD }),
    )
    .await;
    let by_email = create(
        &app,
        json!({ "name": "Other", "email": "zoo.keeper@example.com", "password": PASSWORD }),
    )
    .await;
    create(
        &app,
        json!({ "name": "a.b", "email": "dots@example.com", "password": PASSWORD }),
    )
    .await;
    let axb = create(
        &app,
        json!({ "name": "axb", "email": "plain@example.com", "password": PASSWORD }),
    )
    .await;

    for (q, expected) in [
        ("zoë", vec![id(&zoe)]),
        ("ZOË", vec![id(&zoe)]),
        ("zoe%CC%88", vec![id(&zoe)]),
        ("zo", vec![id(&zoe), id(&by_email)]),
        ("STRASSE", vec![id(&strasse)]),
        ("zoo.keeper%40", vec![id(&by_email)]),
        ("ax", vec![id(&axb)]),
        ("nobody", vec![]),
    ] {
        let page = app.get(&format!("/user?q={q}")).await;
        let found: Vec<&str> = page.data().as_array().unwrap().iter().map(id).collect();
        assert_eq!(found, expected, "q={q}");
    }
    // Regular-expression characters are text.
    let dotted = app.get("/user?q=a.").await;
    assert_eq!(
        dotted.data().as_array().unwrap().len(),
        1,
        "{}",
        dotted.text
    );
}

#[tokio::test]
async fn creation_bounds_are_exclusive_to_the_millisecond() {
    let app = TestApp::spawn().await;
    let ids = import_at(
        &app,
        &[
            ("a@example.com", "2021-05-01T10:00:00.000Z"),
            ("b@example.com", "2021-05-01T10:00:00.001Z"),
            ("c@example.com", "2021-05-01T10:00:00.999Z"),
            ("d@example.com", "2021-05-01T10:00:01.000Z"),
            ("e@example.com", "2022-01-01T00:00:00.000Z"),
        ],
    )
    .await;
    for (query, expected) in [
        ("created_after=2021-05-01T10:00:00.000Z", &ids[1..]),
        ("created_after=2021-05-01T10:00:00.999Z", &ids[3..]),
        ("created_before=2021-05-01T10:00:00.999Z", &ids[..2]),
        ("created_before=2021-05-01T10:00:01.000Z", &ids[..3]),
        (
            "created_after=2021-05-01T10:00:00Z&created_before=2021-05-01T12:00:01%2B02:00",
            &ids[1..3],
        ),
        ("created_after=2021-12-31T23:59:59.999Z", &ids[4..]),
    ] {
        let (found, _) = all_pages(&app, &format!("/user?{query}&limit=1")).await;
        assert_eq!(found, expected, "{query}");
    }
}

#[tokio::test]
async fn every_filter_pages_in_both_orders_with_every_user_once() {
    let app = TestApp::spawn().await;
    let mut all = Vec::new();
    for i in 0..9 {
        let user = create(
            &app,
            json!({ "name": format!("Page {i}"), "email": format!("page{i}@example.com"),
                    "password": PASSWORD, "disabled": i % 3 == 0 }),
        )
        .await;
        all.push(id(&user).to_owned());
    }
    let enabled: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, id)| id.clone())
        .collect();
    // Among them an id nobody has: it is not an error, it matches no one.
    let some_ids = [
        all[0].as_str(),
        "000000000000000000000001",
        &all[2],
        &all[4],
        &all[8],
    ]
    .join(",");
    for (filter, expected) in [
        ("", all.clone()),
        ("q=page", all.clone()),
        ("q=page&disabled=false", enabled.clone()),
        ("created_before=2100-01-01T00:00:00Z", all.clone()),
        (
            &format!("id={some_ids}")[..],
            vec![
                all[0].clone(),
                all[2].clone(),
                all[4].clone(),
                all[8].clone(),
            ],
        ),
        (
            &format!("id={some_ids}&disabled=false")[..],
            vec![all[2].clone(), all[4].clone(), all[8].clone()],
        ),
        ("created_after=2000-01-01T00:00:00Z&q=Page", all.clone()),
    ] {
        for (sort, order) in [("created", false), ("-created", true)] {
            let mut expected = expected.clone();
            if order {
                expected.reverse();
            }
            let url = format!("/user?{filter}&sort={sort}&limit=2&include_total=true");
            let (found, totals) = all_pages(&app, &url).await;
            assert_eq!(found, expected, "{url}");
            for total in totals {
                assert_eq!(
                    total,
                    json!(expected.len()),
                    "{url}: total ignores the cursor"
                );
            }
        }
    }
    let plain = app.get("/user").await;
    assert!(plain.body["page"].get("total").is_none(), "off by default");
}

#[tokio::test]
async fn every_bad_parameter_is_named() {
    let app = TestApp::spawn().await;
    let id = "65a1b2c3d4e5f60718293a4b";
    let hundred_and_one = vec![id; 101].join(",");
    for (query, field) in [
        ("sort=newest".to_owned(), "sort"),
        ("created_after=yesterday".to_owned(), "created_after"),
        (
            "created_before=2021-13-01T00:00:00Z".to_owned(),
            "created_before",
        ),
        ("q=".to_owned(), "q"),
        (format!("q={}", "a".repeat(101)), "q"),
        (format!("id={id},xyz"), "id"),
        (format!("id={hundred_and_one}"), "id"),
        ("include_total=1".to_owned(), "include_total"),
        ("external_id=".to_owned(), "external_id"),
    ] {
        let reply = app.get(&format!("/user?{query}")).await;
        reply.assert_invalid(&[field]);
    }
    let bad_id = app.get(&format!("/user?id={id},xyz")).await;
    assert!(bad_id.message().contains("`xyz`"), "{}", bad_id.text);
}

#[tokio::test]
async fn metadata_is_set_replaced_merged_and_bounded() {
    let app = TestApp::spawn().await;
    let user = create(
        &app,
        json!({ "name": "Ada", "email": "ada@example.com", "password": PASSWORD,
                "metadata": { "plan": "pro", "billing": { "vat": "DE1", "city": "Köln" }, "n": 1.5 } }),
    )
    .await;
    let user_id = id(&user).to_owned();
    assert_eq!(user["metadata"]["billing"]["city"], "Köln");
    assert_eq!(user["metadata"]["n"], 1.5);

    // PATCH merges top-level keys: null removes, nested objects are replaced.
    let patched = app
        .patch_user(
            &user_id,
            json!({ "metadata": { "plan": null, "billing": { "vat": "FR2" }, "seats": 3 } }),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        patched.data()["metadata"],
        json!({ "billing": { "vat": "FR2" }, "n": 1.5, "seats": 3 })
    );
    assert_eq!(patched.data()["version"], 2);
    // PUT without metadata keeps it; with it, replaces it whole.
    let kept = app
        .put_user(
            &user_id,
            json!({ "name": "Ada", "email": "ada@example.com" }),
        )
        .await;
    assert_eq!(kept.data()["metadata"], patched.data()["metadata"]);
    let replaced = app
        .put_user(
            &user_id,
            json!({ "name": "Ada", "email": "ada@example.com", "metadata": { "only": true } }),
        )
        .await;
    assert_eq!(replaced.data()["metadata"], json!({ "only": true }));

    // Limits, on create and on the merged result.
    let big = "x".repeat(4100);
    for metadata in [
        json!({ "a.b": 1 }),
        json!({ "$set": 1 }),
        json!({ "": 1 }),
        json!({ "a": { "b": { "c": { "d": { "e": { "f": 1 } } } } } }),
        json!({ "big": big }),
        json!([1, 2]),
    ] {
        app.post_user(
            json!({ "name": "Bad", "email": "bad@example.com", "password": PASSWORD,
                              "metadata": metadata }),
        )
        .await
        .assert_invalid(&["metadata"]);
    }
    let half = "y".repeat(2500);
    app.patch_user(&user_id, json!({ "metadata": { "one": half } }))
        .await;
    let over = app
        .patch_user(&user_id, json!({ "metadata": { "two": "y".repeat(2500) } }))
        .await;
    over.assert_invalid(&["metadata"]);
    assert_eq!(
        app.get(&format!("/user/{user_id}")).await.data()["metadata"]["one"]
            .as_str()
            .unwrap()
            .len(),
        2500,
        "a refused merge changes nothing"
    );
}

#[tokio::test]
async fn external_ids_are_unique_found_and_removable() {
    let app = TestApp::spawn().await;
    let ada = create(
        &app,
        json!({ "name": "Ada", "email": "ada@example.com", "password": PASSWORD,
                                  "external_id": "crm-1" }),
    )
    .await;
    assert_eq!(ada["external_id"], "crm-1");
    // Users without one do not collide with each other.
    let bob = create(
        &app,
        json!({ "name": "Bob", "email": "bob@example.com", "password": PASSWORD }),
    )
    .await;
    create(&app, json!({ "name": "Cy", "email": "cy@example.com", "password": PASSWORD, "external_id": null })).await;

    let clash: Reply = app
        .post_user(
            json!({ "name": "Twin", "email": "twin@example.com", "password": PASSWORD,
                          "external_id": "crm-1" }),
        )
        .await;
    clash.assert_error(409, "external_id_taken");
    assert_eq!(clash.fields(), ["external_id"]);
    app.patch_user(id(&bob), json!({ "external_id": "crm-1" }))
        .await
        .assert_error(409, "external_id_taken");
    // Compared exactly.
    app.patch_user(id(&bob), json!({ "external_id": "CRM-1" }))
        .await
        .assert_status_only(200);

    let found = app.get("/user?external_id=crm-1").await;
    let found: Vec<&str> = found.data().as_array().unwrap().iter().map(id).collect();
    assert_eq!(found, [id(&ada)]);

    let kept = app
        .put_user(
            id(&ada),
            json!({ "name": "Ada", "email": "ada@example.com" }),
        )
        .await;
    assert_eq!(kept.data()["external_id"], "crm-1");
    let removed = app
        .patch_user(id(&ada), json!({ "external_id": null }))
        .await;
    assert_eq!(removed.data()["external_id"], Value::Null);
    assert_eq!(app.get("/user?external_id=crm-1").await.data(), &json!([]));
    let stored = app.stored(id(&ada)).await.unwrap();
    assert!(
        !stored.contains_key("external_id"),
        "removed, not null: {stored}"
    );

    let imported = app
        .request(
            Method::POST,
            "/user/import",
            Some(json!({ "users": [
                { "name": "I", "email": "i@example.com", "password": PASSWORD, "external_id": "CRM-1" },
                { "name": "J", "email": "j@example.com", "password": PASSWORD, "external_id": "crm-9",
                  "metadata": { "source": "legacy" } },
            ] })),
        )
        .await;
    assert_eq!(
        imported.data()["results"][0]["error"],
        "external_id_taken",
        "{}",
        imported.text
    );
    assert_eq!(imported.data()["results"][1]["status"], "created");
    let j = app.get("/user?external_id=crm-9").await;
    assert_eq!(j.data()[0]["metadata"], json!({ "source": "legacy" }));
}
