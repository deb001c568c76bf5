use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const COMMITTED: &str = include_str!("../../openapi.yaml");
const REGENERATE: &str = "cargo run --quiet -- openapi > openapi.yaml";

#[test]
fn committed_openapi_yaml_matches_the_code() {
    let generated = user_api::api::openapi_yaml();
    if generated == COMMITTED {
        return;
    }
    let first_difference = generated
        .lines()
        .zip(COMMITTED.lines())
        .enumerate()
        .find(|(_, (new, old))| new != old)
        .map(|(line, (new, old))| {
            format!("line {}:\n  committed: {old}\n  generated: {new}", line + 1)
        })
        .unwrap_or_else(|| {
            format!(
                "one is a prefix of the other ({} vs {} lines)",
                COMMITTED.lines().count(),
                generated.lines().count()
            )
        });
    panic!(
        "openapi.yaml is out of date with the code; regenerate it with\n\n    {REGENERATE}\n\n\
         and review the diff. First difference at {first_difference}"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one() {
    let app = TestApp::spawn().await;
    let committed: Value = serde_yaml::from_str(COMMITTED).unwrap();

    let json = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert!(json.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(
        json.json::<Value>().await.unwrap() == committed,
        "/openapi.json differs"
    );

    let yaml = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.status(), StatusCode::OK);
    assert!(
        yaml.text().await.unwrap() == COMMITTED,
        "/openapi.yaml differs"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_with_the_spec() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("SwaggerUIBundle"));
    assert!(html.contains("\"operationId\": \"createUser\""));
    assert!(html.contains("\"additionalProperties\": false"));
}

#[test]
fn every_operation_is_fully_described() {
    let spec: Value = serde_yaml::from_str(COMMITTED).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(operation["operationId"].is_string(), "{name}: operationId");
            assert!(operation["summary"].is_string(), "{name}: summary");
            assert!(
                operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{name}: tag"
            );
            let responses = operation["responses"].as_object().unwrap();
            if path.starts_with("/user") {
                assert!(responses.contains_key("400"), "{name}: 400");
                assert!(responses.contains_key("500"), "{name}: 500");
            }
            if operation.get("requestBody").is_some() {
                assert!(responses.contains_key("415"), "{name}: 415");
            }
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{name}: 404");
            }
        }
    }
}

#[test]
fn request_bodies_forbid_unknown_fields() {
    let spec: Value = serde_yaml::from_str(COMMITTED).unwrap();
    for name in [
        "CreateUserRequest",
        "ReplaceUserRequest",
        "PatchUserRequest",
    ] {
        let schema = &spec["components"]["schemas"][name];
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
    assert_eq!(
        spec["components"]["schemas"]["PatchUserRequest"]["minProperties"],
        1
    );
}

/// The README's table of error codes says what the code says: every code,
/// each with its status.
#[test]
fn the_readme_lists_every_error_code_with_its_status() {
    let readme = include_str!("../../README.md");
    let rows: Vec<(String, u16)> = readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let status = cells.get(2)?.parse().ok()?;
            Some((code.to_owned(), status))
        })
        .collect();
    for code in user_api::api::ErrorCode::ALL {
        let documented: Vec<u16> = rows
            .iter()
            .filter(|(name, _)| *name == code.name())
            .map(|(_, status)| *status)
            .collect();
        assert_eq!(
            documented,
            vec![code.status().as_u16()],
            "README's row for `{}`",
            code.name()
        );
    }
    assert_eq!(rows.len(), user_api::api::ErrorCode::ALL.len(), "{rows:?}");
}

/// The README's API table lists each operation's error statuses as the spec
/// does (500, which any route may answer, aside).
#[test]
fn the_readme_api_table_matches_the_spec() {
    let spec: Value = serde_yaml::from_str(COMMITTED).unwrap();
    let readme = include_str!("../../README.md");
    let mut checked = 0;
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(method), Some(path), Some(errors)) = (cells.get(1), cells.get(2), cells.get(4))
        else {
            continue;
        };
        let Some(path) = path.strip_prefix('`').and_then(|p| p.strip_suffix('`')) else {
            continue;
        };
        let Some(operation) = spec["paths"][path].get(method.to_lowercase()) else {
            continue;
        };
        let mut documented: Vec<String> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|status| status.as_str() >= "400" && status.as_str() != "500")
            .cloned()
            .collect();
        documented.sort();
        let mut listed: Vec<String> = errors
            .split(',')
            .map(|status| status.trim().to_owned())
            .filter(|status| !status.is_empty())
            .collect();
        listed.sort();
        assert_eq!(listed, documented, "README's row for {method} {path}");
        checked += 1;
    }
    let operations: usize = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(checked, operations, "every operation has a row");
}
