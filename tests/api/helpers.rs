use std::{
    collections::HashMap,
    sync::{LazyLock, Once},
};

use mongodb::{
    bson::{doc, oid::ObjectId, Document},
    Client, Database,
};
use reqwest::{
    header::{HeaderMap, HeaderValue, AUTHORIZATION},
    Method, RequestBuilder, StatusCode,
};
use serde_json::{json, Value};
use user_api::{config::Config, startup::Application};

pub const PASSWORD: &str = "Password@123";
pub const API_KEY: &str = "test-api-key-0123456789abcdefghijklmnop";
pub const OTHER_API_KEY: &str = "other-api-key-0123456789abcdefghijklmno";

/// Where the suite's database listens; `./scripts/test` sets it.
pub fn mongo_uri() -> String {
    std::env::var("TEST_MONGO_URI").unwrap_or_else(|_| {
        panic!(
            "TEST_MONGO_URI is not set. Run the suite with ./scripts/test, which starts a \
             database for it."
        )
    })
}

pub struct TestApp {
    pub base: String,
    /// Sends `Authorization: Bearer API_KEY` with every request.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    pub db: Database,
}

/// The configuration tests start from: the service's own defaults, parsed
/// by its own parser, with only what isolates a test overridden: its
/// database, a free port on loopback, two API keys, and bcrypt at its
/// cheapest so tests run fast.
pub fn test_config(database: &str) -> Config {
    let uri = format!("{}/{database}", mongo_uri());
    let keys = format!("{API_KEY},{OTHER_API_KEY}");
    Config::from_flags([
        "user-api",
        "--mongo-uri",
        &uri,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-keys",
        &keys,
        "--bcrypt-cost",
        "4",
    ])
    .expect("the test flags are valid")
}

/// With `TEST_LOG=1`, the in-process apps' logs (at `RUST_LOG`, or `info`)
/// go to the test output, so the cause of a 500 is visible.
fn show_logs_if_asked() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .init();
        }
    });
}

/// A sample's value in OpenMetrics text, by its name and labels exactly as
/// the service writes them (`name{label="value"}`); `None` when absent.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `condition` every 10 ms until it holds, for up to `seconds`.
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    seconds: u64,
    mut condition: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {seconds} s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A user's id, from its representation.
pub fn id(user: &Value) -> &str {
    user["id"].as_str().expect("a user has an id")
}

pub fn fresh_database() -> String {
    format!("test_{}", ObjectId::new().to_hex())
}

/// A response, already checked against the rules every response obeys.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// The fields named in `details`, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.body["details"]
            .as_array()
            .map(|details| {
                details
                    .iter()
                    .filter_map(|detail| detail["field"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[track_caller]
    /// The URL inside `Link: <...>; rel="next"`.
    pub fn next_link(&self) -> Option<String> {
        let link = self.header("link")?;
        let url = link.strip_prefix('<')?.split_once('>')?;
        assert_eq!(url.1, "; rel=\"next\"", "{link}");
        Some(url.0.to_owned())
    }

    /// The ids of the users a listing returned, in its order.
    pub fn ids(&self) -> Vec<String> {
        let users = self.data().as_array().expect("a list of users");
        users.iter().map(|user| id(user).to_owned()).collect()
    }

    pub fn assert_status_only(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.error_code(), code, "{}", self.text);
    }

    /// A 400 `validation_failed` naming exactly `fields`, with the message
    /// naming each of them too.
    #[track_caller]
    pub fn assert_invalid(&self, fields: &[&str]) {
        self.assert_error(400, "validation_failed");
        assert_eq!(self.fields(), fields, "{}", self.text);
        for field in fields {
            assert!(
                self.message().contains(&format!("{field}:")),
                "message should name `{field}`: {}",
                self.text
            );
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// An app on a fresh database, with the test configuration adjusted.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(&fresh_database(), adjust).await
    }

    /// An app on `database`, which another app may be using too.
    pub async fn spawn_on(database: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        show_logs_if_asked();
        let mut config = test_config(database);
        adjust(&mut config);
        let app = Application::build(&config)
            .await
            .expect("the app starts against the test database");
        let port = app.port();
        tokio::spawn(app.run_until(std::future::pending()));
        let mongo = Client::with_uri_str(mongo_uri())
            .await
            .expect("the test database is reachable");
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {API_KEY}")).unwrap();
        headers.insert(AUTHORIZATION, bearer);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            anonymous: reqwest::Client::new(),
            db: mongo.database(database),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn builder(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request without credentials.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.anonymous.request(method, self.url(path))
    }

    pub async fn send(&self, builder: RequestBuilder) -> Reply {
        let (client, request) = builder.build_split();
        let request = request.expect("a valid request");
        let method = request.method().clone();
        let path = request.url().path().to_owned();
        let response = client.execute(request).await.expect("the app answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let reply = Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        };
        check_invariants(&method, &path, &reply);
        reply
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut builder = self.builder(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        self.send(builder).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    pub async fn post_user(&self, body: Value) -> Reply {
        self.request(Method::POST, "/user", Some(body)).await
    }

    pub async fn put_user(&self, id: &str, body: Value) -> Reply {
        self.request(Method::PUT, &format!("/user/{id}"), Some(body))
            .await
    }

    pub async fn patch_user(&self, id: &str, body: Value) -> Reply {
        self.request(Method::PATCH, &format!("/user/{id}"), Some(body))
            .await
    }

    pub async fn delete_user(&self, id: &str) -> Reply {
        self.request(Method::DELETE, &format!("/user/{id}"), None)
            .await
    }

    pub async fn verify(&self, email: &str, password: &str) -> Reply {
        let body = json!({ "email": email, "password": password });
        self.request(Method::POST, "/user/verify", Some(body)).await
    }

    /// Every page of a listing, following `Link` from `url`; each one 200.
    pub async fn all_pages(&self, url: &str) -> Vec<Reply> {
        let mut pages = Vec::new();
        let mut next = Some(url.to_owned());
        while let Some(url) = next {
            let page = self.get(&url).await;
            assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.text);
            next = page.next_link();
            pages.push(page);
        }
        pages
    }

    /// Creates a user and returns its `data`.
    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let reply = self
            .post_user(json!({ "name": name, "email": email, "password": PASSWORD }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.data().clone()
    }

    /// The stored document, password hash included.
    pub async fn stored(&self, id: &str) -> Option<Document> {
        let id = ObjectId::parse_str(id).expect("a valid id");
        self.db
            .collection::<Document>("users")
            .find_one(doc! { "_id": id })
            .await
            .expect("the test database answers")
    }

    /// The stored bcrypt hash of a user's password.
    pub async fn stored_hash(&self, id: &str) -> String {
        let stored = self.stored(id).await.expect("the user is stored");
        stored
            .get_str("password_hash")
            .expect("a stored user has a hash")
            .to_owned()
    }

    /// A sample's value from this app's /metrics (see [`sample`]).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let scrape = self.send(self.anonymous(Method::GET, "/metrics")).await;
        sample(&scrape.text, name)
    }

    pub async fn stored_count(&self) -> u64 {
        self.db
            .collection::<Document>("users")
            .count_documents(doc! {})
            .await
            .expect("the test database answers")
    }
}

/// What every response must satisfy: the envelope, a documented status, and
/// no trace of a password or its hash.
fn check_invariants(method: &Method, path: &str, reply: &Reply) {
    // The spec and Swagger UI describe the password field; nothing else may.
    let documentation = ["/docs", "/openapi.json", "/openapi.yaml"].contains(&path);
    let secrets = [
        "$2b$",
        "$2a$",
        "$2y$",
        "\"password_hash\":",
        "\"password\":",
        "Password@",
        API_KEY,
        OTHER_API_KEY,
    ];
    if documentation {
        return;
    }
    for secret in secrets {
        assert!(
            !reply.text.contains(secret),
            "{method} {path} leaked `{secret}`: {}",
            reply.text
        );
    }
    let status = reply.status.as_u16();
    if let Some(documented) = documented_statuses(method, path) {
        assert!(
            documented.contains(&status),
            "{method} {path} answered {status}, which openapi.yaml does not list ({documented:?})"
        );
    }
    if status == 204 || *method == Method::HEAD {
        assert!(
            reply.text.is_empty(),
            "{status} with a body: {}",
            reply.text
        );
        return;
    }
    if !reply
        .header("content-type")
        .is_some_and(|value| value.starts_with("application/json"))
    {
        return;
    }
    let body = &reply.body;
    assert_eq!(body["status_code"], json!(status), "{}", reply.text);
    assert!(body["message"].is_string(), "{}", reply.text);
    assert!(body.get("data").is_some(), "{}", reply.text);
    // Readiness reports its state in `data` even when it answers 503.
    if status >= 400 && path != "/health" {
        assert!(body["data"].is_null(), "{}", reply.text);
        assert!(body["error"].is_string(), "{}", reply.text);
    }
}

/// Statuses openapi.yaml lists for the operation serving `path`, if any.
fn documented_statuses(method: &Method, path: &str) -> Option<Vec<u16>> {
    static OPERATIONS: LazyLock<HashMap<(String, String), Vec<u16>>> = LazyLock::new(|| {
        let spec: Value =
            serde_yaml::from_str(include_str!("../../openapi.yaml")).expect("openapi.yaml parses");
        let mut operations = HashMap::new();
        for (template, item) in spec["paths"].as_object().expect("paths").iter() {
            for (verb, operation) in item.as_object().expect("a path item") {
                let statuses = operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .map(|status| status.parse().expect("a numeric status"))
                    .collect();
                operations.insert((verb.to_uppercase(), template.clone()), statuses);
            }
        }
        operations
    });
    let template = user_api::api::route_template(path)?;
    let method = if *method == Method::HEAD {
        "GET".to_owned()
    } else {
        method.as_str().to_owned()
    };
    OPERATIONS.get(&(method, template)).cloned()
}
