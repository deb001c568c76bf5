//! The OpenAPI document, generated from the handlers and served as JSON, YAML
//! and Swagger UI. `user-api openapi` prints the same YAML, which is committed
//! as `openapi.yaml`.

use std::sync::Arc;

use poem::{endpoint::make_sync, web::Html, Endpoint, Response};
use poem_openapi::{OpenApi, OpenApiService, Webhook};
use serde_json::Value;

use super::errors::ErrorCode;

#[derive(Clone)]
pub struct ApiSpec {
    json: Arc<str>,
    yaml: Arc<str>,
    swagger_ui: Arc<str>,
}

impl ApiSpec {
    pub fn new<T: OpenApi, W: Webhook>(service: &OpenApiService<T, W>) -> Self {
        let generated = service.spec();
        let mut document: Value =
            serde_json::from_str(&generated).expect("poem-openapi emits valid JSON");
        forbid_unknown_request_fields(&mut document);
        canonicalize_response_headers(&mut document);
        describe_error_codes(&mut document);
        if let Some(root) = document.as_object_mut() {
            // An empty list would tell clients there is no server; absent means
            // "wherever this document was served from".
            root.shift_remove("servers");
        }
        let json = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
        let yaml = super::yaml::to_string(&document);
        // Swagger UI embeds the generated document; give it the refined one.
        let swagger_ui = service.swagger_ui_html().replacen(&generated, &json, 1);
        Self {
            json: json.into(),
            yaml: yaml.into(),
            swagger_ui: swagger_ui.into(),
        }
    }

    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    pub fn json_endpoint(&self) -> impl Endpoint<Output = Response> {
        let json = self.json.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(json.to_string())
        })
    }

    pub fn yaml_endpoint(&self) -> impl Endpoint<Output = Response> {
        let yaml = self.yaml.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/yaml")
                .body(yaml.to_string())
        })
    }

    pub fn swagger_ui_endpoint(&self) -> impl Endpoint<Output = Html<String>> {
        let html = self.swagger_ui.clone();
        make_sync(move |_| Html(html.to_string()))
    }
}

/// Request bodies refuse unknown fields (mass-assignment protection), the
/// objects nested in them too. The spec says so with
/// `additionalProperties: false`, which poem-openapi's schema model cannot
/// express, on every schema a request body uses.
fn forbid_unknown_request_fields(document: &mut Value) {
    let mut pending: Vec<String> = document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|operations| operations.values())
        .filter_map(|operation| operation.pointer("/requestBody/content"))
        .filter_map(Value::as_object)
        .flat_map(|media| media.values())
        .filter_map(|media| media.pointer("/schema/$ref").and_then(Value::as_str))
        .filter_map(schema_name)
        .collect();
    let mut done: Vec<String> = Vec::new();
    while let Some(name) = pending.pop() {
        if done.contains(&name) {
            continue;
        }
        let Some(schema) = document
            .pointer_mut(&format!("/components/schemas/{name}"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if schema.get("type").and_then(Value::as_str) == Some("object") {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
        let nested = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|properties| properties.values())
            .filter_map(|property| {
                property
                    .get("$ref")
                    .or_else(|| property.pointer("/items/$ref"))
                    .and_then(Value::as_str)
            })
            .filter_map(schema_name);
        pending.extend(nested);
        done.push(name);
    }
}

fn schema_name(reference: &str) -> Option<String> {
    reference
        .strip_prefix("#/components/schemas/")
        .map(str::to_owned)
}

/// The `ErrorCode` schema lists every code with its status and meaning, from
/// the table responses are built from.
fn describe_error_codes(document: &mut Value) {
    let Some(schema) = document.pointer_mut("/components/schemas/ErrorCode") else {
        return;
    };
    let codes = ErrorCode::ALL
        .iter()
        .map(|code| {
            format!(
                "- `{}` ({}): {}",
                code.name(),
                code.status().as_u16(),
                code.description()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let summary = schema["description"].as_str().unwrap_or_default();
    schema["description"] = Value::String(format!("{summary}\n\n{codes}"));
}

/// Header names as HTTP documents spell them. poem-openapi upper-cases
/// response header names, which generated SDKs then copy.
const HEADER_NAMES: &[&str] = &[
    "Location",
    "Link",
    "ETag",
    "Retry-After",
    "WWW-Authenticate",
];

fn canonicalize_response_headers(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|operations| operations.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) else {
            continue;
        };
        let renamed = std::mem::take(headers)
            .into_iter()
            .map(|(name, header)| (canonical_header_name(&name), header))
            .collect();
        *headers = renamed;
    }
}

fn canonical_header_name(name: &str) -> String {
    if let Some(known) = HEADER_NAMES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        return (*known).to_owned();
    }
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}
