//! The framework's floor for `scripts/bench`: a bare poem app with one
//! route and no middleware, answering `GET /ping` with the same JSON as the
//! service. What the service spends per `/ping` beyond this is its own.
//!
//!   bench-bare    listens on 127.0.0.1, on a port the system picks, and
//!                 prints `listening on 127.0.0.1:PORT`

use poem::{
    get, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::Json,
    Route, Server,
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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Route::new().at("/ping", get(ping));
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|address| address.as_socket_addr().map(|address| address.port()))
        .unwrap_or_default();
    println!("listening on 127.0.0.1:{port}");
    Server::new_with_acceptor(acceptor).run(app).await
}
