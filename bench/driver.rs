//! The database side of the benchmark (`scripts/bench`), with the official
//! MongoDB driver and no HTTP in between:
//!
//!   bench-driver seed URI COUNT            insert COUNT users (precomputed
//!                                          hash); print the first id, a deep
//!                                          page's and its cursor
//!   bench-driver read URI ID CONC SECS     the API's GET /user/{id} query, raw
//!   bench-driver list URI AFTER CONC SECS  the API's GET /user?limit=50 query,
//!                                          raw (AFTER: `-` for the first page)
//!   bench-driver search URI PREFIX CONC SECS  the API's GET /user?q=PREFIX
//!                                          query, raw
//!   bench-driver since URI ID CONC SECS    the API's GET /user?created_after=
//!                                          (the second of ID) query, raw
//!   bench-driver hash COST ROUNDS          median time of one bcrypt hash
//!   bench-driver insert URI COUNT          insert COUNT users shaped as the
//!                                          service stores them, 1,000 per
//!                                          insert_many: what an import of
//!                                          them costs the database alone
//!   bench-driver seed-legacy URI COUNT     insert COUNT documents shaped as
//!                                          the Flask service stored them
//!   bench-driver copy FROM TO              copy Flask documents into users
//!                                          shaped as the service stores
//!                                          them, 1,000 per insert_many: what
//!                                          a migration costs the database
//!                                          alone
//!
//! Load results print as one JSON object: requests, errors, rps, p50_ms,
//! p99_ms, and cpu_ticks: the CPU time (user and system, in clock ticks)
//! this process used during the load. The queries mirror `store::UserStore`'s exactly.

use std::{
    env,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use mongodb::{
    bson::{doc, oid::ObjectId, DateTime, Document},
    options::ClientOptions,
    Client, Collection,
};
use serde_json::json;
use user_api::api::encode_cursor;

const USAGE: &str = "usage: bench-driver seed URI COUNT | read URI ID CONC SECS | list URI AFTER CONC SECS | search URI PREFIX CONC SECS | since URI ID CONC SECS | hash COST ROUNDS | insert URI COUNT | seed-legacy URI COUNT | copy FROM TO";
/// Rows the API fetches for a page of 50: one extra tells whether more follow.
const PAGE_FETCH: i64 = 51;

#[tokio::main]
async fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{USAGE}"))
    };
    match arg(0) {
        "seed" => seed(&users(arg(1)).await, arg(2).parse().expect(USAGE)).await,
        "read" => {
            let id = ObjectId::parse_str(arg(2)).expect("an id");
            let collection = users(arg(1)).await;
            let report = load(arg(3), arg(4), move || {
                let collection = collection.clone();
                async move {
                    collection
                        .find_one(doc! { "_id": id })
                        .projection(doc! { "password_hash": 0 })
                        .await
                        .map(|found| found.is_some())
                }
            })
            .await;
            println!("{report}");
        }
        "list" => {
            let after = match arg(2) {
                "-" => None,
                hex => Some(ObjectId::parse_str(hex).expect("an id")),
            };
            let collection = users(arg(1)).await;
            let report = load(arg(3), arg(4), move || {
                let collection = collection.clone();
                async move {
                    let filter = match after {
                        Some(after) => doc! { "_id": { "$gt": after } },
                        None => doc! {},
                    };
                    let page: Vec<Document> = collection
                        .find(filter)
                        .projection(doc! { "password_hash": 0 })
                        .sort(doc! { "_id": 1 })
                        .limit(PAGE_FETCH)
                        .await?
                        .try_collect()
                        .await?;
                    Ok(!page.is_empty())
                }
            })
            .await;
            println!("{report}");
        }
        "search" => {
            let prefix = arg(2).to_owned();
            let collection = users(arg(1)).await;
            let report = load(arg(3), arg(4), move || {
                let filter = doc! { "$or": [
                    { "email": { "$regex": format!("^{}", regex::escape(&prefix)) } },
                    { "name_folded": { "$regex": format!("^{}", regex::escape(&prefix)) } },
                ] };
                page(collection.clone(), filter)
            })
            .await;
            println!("{report}");
        }
        "since" => {
            let id = ObjectId::parse_str(arg(2)).expect("an id");
            let seconds = id.timestamp().timestamp_millis() / 1000;
            let mut first = [0u8; 12];
            first[..4].copy_from_slice(&(seconds as u32).to_be_bytes());
            let collection = users(arg(1)).await;
            let report = load(arg(3), arg(4), move || {
                let filter = doc! {
                    "_id": { "$gte": ObjectId::from_bytes(first) },
                    "created_at": { "$gt": DateTime::from_millis(seconds * 1000) },
                };
                page(collection.clone(), filter)
            })
            .await;
            println!("{report}");
        }
        "hash" => {
            let cost: u32 = arg(1).parse().expect(USAGE);
            let rounds: usize = arg(2).parse().expect(USAGE);
            let mut times: Vec<Duration> = (0..rounds)
                .map(|_| {
                    let started = Instant::now();
                    bcrypt::hash("Password@123", cost).expect("bcrypt hashes");
                    started.elapsed()
                })
                .collect();
            times.sort();
            println!("{}", json!({ "median_ms": ms(times[times.len() / 2]) }));
        }
        "insert" => {
            let collection = users(arg(1)).await;
            let count: usize = arg(2).parse().expect(USAGE);
            let hash = bcrypt::hash("Password@123", 4).expect("bcrypt hashes");
            let run = ObjectId::new().to_hex();
            let started = Instant::now();
            for batch in (0..count).collect::<Vec<_>>().chunks(1000) {
                let now = DateTime::now();
                let documents: Vec<Document> = batch
                    .iter()
                    .map(|i| {
                        doc! {
                            "_id": ObjectId::new(),
                            "name": format!("Raw import {i}"),
                            "email": format!("raw-{run}-{i}@example.com"),
                            "password_hash": &hash,
                            "created_at": now,
                            "updated_at": now,
                            "version": 1_i64,
                        }
                    })
                    .collect();
                collection.insert_many(documents).await.expect("inserts");
            }
            println!("{}", timed(count, started));
        }
        "seed-legacy" => {
            let collection = users(arg(1)).await;
            let count: usize = arg(2).parse().expect(USAGE);
            let hash = bcrypt::hash("Password@123", 4).expect("bcrypt hashes");
            for batch in (0..count).collect::<Vec<_>>().chunks(1000) {
                let documents: Vec<Document> = batch
                    .iter()
                    .map(|i| {
                        doc! {
                            "_id": ObjectId::new().to_hex(),
                            "name": format!("Flask user {i}"),
                            "email": format!("Flask.User{i}@example.com"),
                            "password": &hash,
                        }
                    })
                    .collect();
                collection.insert_many(documents).await.expect("inserts");
            }
            println!("{}", json!({ "documents": count }));
        }
        "copy" => {
            let from = users(arg(1)).await;
            let to = users(arg(2)).await;
            to.create_index(
                mongodb::IndexModel::builder()
                    .keys(doc! { "email": 1 })
                    .options(
                        mongodb::options::IndexOptions::builder()
                            .unique(true)
                            .build(),
                    )
                    .build(),
            )
            .await
            .expect("an index");
            let started = Instant::now();
            let mut cursor = from
                .find(doc! {})
                .sort(doc! { "_id": 1 })
                .await
                .expect("a cursor");
            let mut batch = Vec::with_capacity(1000);
            let mut count = 0;
            while let Some(legacy) = cursor.try_next().await.expect("a document") {
                let id = ObjectId::parse_str(legacy.get_str("_id").expect("an id")).expect("hex");
                let created = DateTime::from_millis(id.timestamp().timestamp_millis());
                batch.push(doc! {
                    "_id": id,
                    "name": legacy.get_str("name").expect("a name"),
                    "email": legacy.get_str("email").expect("an email").to_lowercase(),
                    "password_hash": legacy.get_str("password").expect("a hash"),
                    "created_at": created,
                    "updated_at": created,
                    "version": 1_i64,
                });
                count += 1;
                if batch.len() == 1000 {
                    to.insert_many(std::mem::take(&mut batch))
                        .await
                        .expect("inserts");
                }
            }
            if !batch.is_empty() {
                to.insert_many(batch).await.expect("inserts");
            }
            println!("{}", timed(count, started));
        }
        _ => panic!("{USAGE}"),
    }
}

/// The first page of a listing with `filter`, as the API asks for it.
async fn page(collection: Collection<Document>, filter: Document) -> mongodb::error::Result<bool> {
    let page: Vec<Document> = collection
        .find(filter)
        .projection(doc! { "password_hash": 0 })
        .sort(doc! { "_id": 1 })
        .limit(PAGE_FETCH)
        .await?
        .try_collect()
        .await?;
    Ok(!page.is_empty())
}

/// `count` documents written since `started`, as JSON.
fn timed(count: usize, started: Instant) -> serde_json::Value {
    let seconds = started.elapsed().as_secs_f64();
    json!({ "documents": count, "seconds": seconds, "per_second": count as f64 / seconds })
}

async fn users(uri: &str) -> Collection<Document> {
    let mut options = ClientOptions::parse(uri).await.expect("a MongoDB URI");
    options.max_pool_size = Some(50);
    let database = options
        .default_database
        .clone()
        .unwrap_or_else(|| "users".into());
    let client = Client::with_options(options).expect("a client");
    client.database(&database).collection("users")
}

/// Inserts users shaped as the service stores them, in batches, and prints
/// the first id, the id 90% of the way in (a deep page starts after it) and
/// that page's cursor.
async fn seed(collection: &Collection<Document>, count: usize) {
    let hash = bcrypt::hash("Password@123", 4).expect("bcrypt hashes");
    let mut ids = Vec::with_capacity(count);
    for batch in (0..count).collect::<Vec<_>>().chunks(1000) {
        let now = DateTime::now();
        let documents: Vec<Document> = batch
            .iter()
            .map(|i| {
                let id = ObjectId::new();
                ids.push(id);
                doc! {
                    "_id": id,
                    "name": format!("Seeded user {i}"),
                    "name_folded": format!("seeded user {i}"),
                    "email": format!("seed-{}@example.com", id.to_hex()),
                    "password_hash": &hash,
                    "created_at": now,
                    "updated_at": now,
                    "version": 1_i64,
                }
            })
            .collect();
        collection
            .insert_many(documents)
            .await
            .expect("seeding inserts");
    }
    let deep = ids[count * 9 / 10];
    println!(
        "{}",
        json!({
            "first": ids[0].to_hex(),
            "deep": deep.to_hex(),
            "deep_cursor": encode_cursor(deep.into()),
        })
    );
}

/// Runs `operation` from CONC concurrent tasks for SECS seconds.
async fn load<F, Fut>(concurrency: &str, seconds: &str, operation: F) -> serde_json::Value
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = mongodb::error::Result<bool>> + Send,
{
    let concurrency: usize = concurrency.parse().expect(USAGE);
    let duration = Duration::from_secs_f64(seconds.parse().expect(USAGE));
    let operation = Arc::new(operation);
    let cpu_before = cpu_ticks();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0_u64;
                while started.elapsed() < duration {
                    let begun = Instant::now();
                    match operation().await {
                        Ok(true) => latencies.push(begun.elapsed()),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mine, failed) = worker.await.expect("a load task");
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_ticks() - cpu_before;
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    json!({
        "requests": latencies.len(),
        "errors": errors,
        "rps": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": ms(percentile(0.50)),
        "p99_ms": ms(percentile(0.99)),
        "cpu_ticks": cpu,
    })
}

/// CPU time this process has used so far, user and system, in clock ticks
/// (`/proc/self/stat`).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the file: the 12th and 13th after the name.
    [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
