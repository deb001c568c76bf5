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

/// PyYAML, a YAML 1.1 loader, reads `yaml` (given as a JSON string on
/// stdin) and prints what it read as JSON. Timestamps it resolves are
/// printed as `datetime(...)`, so a difference shows what went wrong.
const PYYAML_LOAD: &str = r#"
import json, sys, yaml
document = yaml.safe_load(json.load(sys.stdin))
print(json.dumps(document, default=repr))
"#;

#[tokio::test]
async fn a_yaml_1_1_loader_reads_the_committed_spec_as_the_json_one() {
    let app = TestApp::spawn().await;
    let served: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let read = crate::reference::run_python(PYYAML_LOAD, &[], &Value::from(COMMITTED));
    if read != served {
        let differences = differences(&read, &served, "");
        panic!(
            "PyYAML reads openapi.yaml differently from /openapi.json at {} places, first: {:?}",
            differences.len(),
            &differences[..differences.len().min(5)]
        );
    }
}

#[test]
fn text_that_yaml_1_1_would_retype_is_written_so_it_reads_back_unchanged() {
    // What YAML 1.1 resolves to other types, what YAML needs escaped, and
    // what it treats as line breaks, as keys and values at every depth.
    let awkward = [
        "2026-01-31T09:30:00.000Z",
        "2026-01-31",
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "n",
        "null",
        "Null",
        "~",
        "",
        "true",
        "1e3",
        "1_000",
        "0x1F",
        "0o17",
        "017",
        "1:20",
        ".inf",
        "-.5",
        "+1",
        "<<",
        "=",
        "- x",
        "? x",
        "a: b",
        "a #b",
        "#a",
        "@a",
        "`a",
        "!a",
        "&a",
        "*a",
        "%a",
        "|a",
        ">a",
        "'a'",
        "\"a\"",
        "{a}",
        "[a]",
        " leading",
        "trailing ",
        "two  spaces",
        "tab\there",
        "line\nbreak",
        "ends with a break\n",
        "\n starts with one",
        "  indented\nlines",
        "trailing space \non a line",
        "nul \u{0} and bell \u{7} and del \u{7f}",
        "next line \u{85} separators \u{2028} \u{2029}",
        "bom \u{feff}",
        "zero width \u{200b} joiner \u{200d}",
        "José bücher.de 東京 😀",
        "/user/{id}",
        "back\\slash \"quotes\"",
    ];
    let strings: Vec<Value> = awkward.iter().map(|text| Value::from(*text)).collect();
    let keyed: serde_json::Map<String, Value> = awkward
        .iter()
        .filter(|text| !text.is_empty())
        .map(|text| ((*text).to_owned(), Value::from(*text)))
        .collect();
    let document = serde_json::json!({
        "strings": strings,
        "keys": keyed,
        "numbers": [0, -1, 65536, 0.5, 1e-7, 2.5e20, -3.0, 1.0],
        "flags": [true, false, null],
        "nested": [[[]], [{}], [{"a": [{"b": {"c": ["x", ["y"]]}}]}], {"": "empty key"}],
        "empty": {"list": [], "map": {}},
    });
    let yaml = user_api::api::to_yaml(&document);
    let read = crate::reference::run_python(PYYAML_LOAD, &[], &Value::from(yaml.as_str()));
    let differences = differences(&read, &document, "");
    assert!(
        differences.is_empty(),
        "PyYAML reads back differently: {differences:?}\n--- the YAML:\n{yaml}"
    );
    // And a YAML 1.2 reader too.
    let read: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(read, document);
}

/// Where two JSON values differ, by path (numbers compared as numbers).
fn differences(left: &Value, right: &Value, path: &str) -> Vec<String> {
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => {
            let mut found = Vec::new();
            for key in a.keys().chain(b.keys().filter(|key| !a.contains_key(*key))) {
                let at = format!("{path}/{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => found.extend(differences(x, y, &at)),
                    (x, y) => found.push(format!("{at}: {x:?} vs {y:?}")),
                }
            }
            found
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .flat_map(|(i, (x, y))| differences(x, y, &format!("{path}/{i}")))
            .collect(),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Vec::new(),
        (a, b) if a == b => Vec::new(),
        (a, b) => vec![format!("{path}: {a} vs {b}")],
    }
}
