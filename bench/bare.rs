//! The framework's floor for `scripts/bench`: a bare poem app with no
//! middleware.
//!
//! - `GET /ping` answers the same JSON as the service. What the service
//!   spends per `/ping` beyond this is its own.
//! - `GET /user/{id}` runs the service's read query (`find_one` by `_id`,
//!   without the hash) with the official driver and answers the document as
//!   JSON: no auth, ETag, logging or metrics, and the stored document
//!   rather than the service's shaped view. What it spends beyond the raw
//!   driver is what poem and HTTP cost a read; what the service spends
//!   beyond it is the service's own.
//!
//! Usage: `bench-bare URI` (the database the read route queries). It
//! listens on 127.0.0.1, on a port the system picks, and prints
//! `listening on 127.0.0.1:PORT`.

use mongodb::{
    bson::{doc, oid::ObjectId, Document},
    options::ClientOptions,
    Client, Collection,
};
use poem::{
    get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::{Data, Json, Path},
    EndpointExt, Route, Server,
};
use serde::Serialize;

#[derive(Serialize)]
struct Pong {
    data: Status,
    message: &'static str,
    status_code: u16,
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

#[handler]
fn ping() -> Json<Pong> {
    Json(Pong {
        data: Status { status: "ok" },
        message: "pong",
        status_code: 200,
    })
}

#[handler]
async fn read(
    Path(id): Path<String>,
    users: Data<&Collection<Document>>,
) -> poem::Result<Json<Document>> {
    let id = ObjectId::parse_str(&id).map_err(|_| StatusCode::NOT_FOUND)?;
    users
        .find_one(doc! { "_id": id })
        .projection(doc! { "password_hash": 0 })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .map(Json)
        .ok_or_else(|| StatusCode::NOT_FOUND.into())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let uri = std::env::args().nth(1).expect("usage: bench-bare URI");
    let mut options = ClientOptions::parse(&uri).await.expect("a MongoDB URI");
    // The service's default pool size, so 32 connections do not queue.
    options.max_pool_size = Some(50);
    let users = Client::with_options(options)
        .expect("a client")
        .default_database()
        .expect("a database in the URI")
        .collection::<Document>("users");
    // The data is added to the read route alone: /ping stays one route.
    let app = Route::new()
        .at("/ping", get(ping))
        .at("/user/:id", get(read).data(users));
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|address| address.as_socket_addr().map(|address| address.port()))
        .unwrap_or_default();
    println!("listening on 127.0.0.1:{port}");
    Server::new_with_acceptor(acceptor).run(app).await
}
