//! Connection-level limits, over raw TCP against the binary: slow and idle
//! clients are cut off after the header-read timeout, and past the
//! connection cap idle connections make room while busy ones are kept.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::process::Server;

/// Reads until the server closes the connection (or `limit` passes) and
/// returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, Some(Instant::now())),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (received, None),
        }
    }
}

const HALF_SENT: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\n";

/// The server with a 700 ms header-read timeout, and a connection to it.
async fn connect_with_short_timeout() -> (Server, TcpStream) {
    let (server, base) = Server::start(|command| {
        command.env("HEADER_READ_TIMEOUT_MS", "700");
    })
    .await;
    let address = base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&address).await.unwrap();
    (server, stream)
}

/// A connection closed `after` its last sign of life: at the 700 ms
/// timeout, not before, and well before anything else would close it.
fn assert_closed_after_the_timeout(after: Duration) {
    assert!(
        after >= Duration::from_millis(600) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_cut_off_after_the_timeout() {
    cut_off_after_sending(HALF_SENT).await;
}

/// Opens a connection, sends `first` (maybe nothing) and then nothing more:
/// the server must close it after the timeout without serving anything.
async fn cut_off_after_sending(first: &[u8]) {
    let received = closed_after_sending(first).await;
    assert!(
        received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

/// Sends `bytes` on a new connection under the short timeout, then waits
/// for the server to close it: what came back. Fails unless the close came
/// within the timeout's bounds.
async fn closed_after_sending(bytes: &[u8]) -> Vec<u8> {
    let (_server, mut stream) = connect_with_short_timeout().await;
    stream.write_all(bytes).await.unwrap();
    let sent = Instant::now();
    let (received, closed) = until_closed(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.unwrap_or_else(|| {
        panic!(
            "after sending {:?} the connection is still open after 10 s",
            String::from_utf8_lossy(bytes)
        )
    });
    assert_closed_after_the_timeout(closed - sent);
    received
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off_after_the_timeout() {
    cut_off_after_sending(b"").await;
}

#[tokio::test]
async fn a_client_that_stops_inside_the_http2_preface_is_cut_off_after_the_timeout() {
    // Until the preface is complete the server cannot tell HTTP/2 from
    // HTTP/1.1; waiting there must not escape the timeout either.
    cut_off_after_sending(b"PRI * HTTP/2.0\r\n").await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let received = closed_after_sending(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("connection: close"));
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_timeout() {
    // HTTP/2 with prior knowledge: the preface, then an empty SETTINGS
    // frame (length 0, type 4, no flags, stream 0), then no stream at all.
    let received =
        closed_after_sending(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await;
    // The server spoke HTTP/2: its first frame is its own SETTINGS.
    assert_eq!(received.get(3), Some(&4), "{received:?}");
}

/// The HTTP/2 frames in `bytes`, as (type, stream) pairs.
fn http2_frames(mut bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((bytes[3], stream));
        bytes = bytes.get(9 + length..).unwrap_or_default();
    }
    frames
}

#[tokio::test]
async fn a_client_that_stops_taking_a_response_is_cut_off_after_the_timeout() {
    let (_server, mut stream) = connect_with_short_timeout().await;
    let mut sent = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS: INITIAL_WINDOW_SIZE (0x4) = 0, so no stream may receive a
    // byte of DATA until a WINDOW_UPDATE this client never sends.
    sent.extend_from_slice(b"\0\0\x06\x04\0\0\0\0\0\0\x04\0\0\0\0");
    // HEADERS on stream 1, END_STREAM | END_HEADERS, HPACK: :method GET,
    // :scheme http, :path /ping, :authority x (literals not indexed).
    let block = b"\x82\x86\x04\x05/ping\x01\x01x";
    sent.extend_from_slice(&[0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1]);
    sent.extend_from_slice(block);
    stream.write_all(&sent).await.unwrap();
    let asked = Instant::now();
    let (received, closed) = until_closed(&mut stream, Duration::from_secs(10)).await;
    let frames = http2_frames(&received);
    // Served: the response's HEADERS went out (they need no window), its
    // DATA could not.
    assert!(frames.contains(&(0x01, 1)), "{frames:?}");
    assert!(!frames.contains(&(0x00, 1)), "{frames:?}");
    let after = closed.expect("a stalled response holds its connection after 10 s") - asked;
    assert_closed_after_the_timeout(after);
}

#[tokio::test]
async fn keep_alive_requests_each_get_the_timeout_from_the_previous_response() {
    let (_server, mut stream) = connect_with_short_timeout().await;
    // Four requests 450 ms apart: 1.35 s on one connection, each within
    // 700 ms of the response before it.
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(450)).await;
        }
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap_or_else(|err| panic!("request {i}: {err}"));
        let mut head = vec![0_u8; 12];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
            .await
            .unwrap_or_else(|_| panic!("request {i} is not answered"))
            .unwrap_or_else(|err| panic!("request {i}: the connection closed: {err}"));
        assert_eq!(&head, b"HTTP/1.1 200", "request {i}");
        // The rest of the answer: head and a small JSON body.
        let mut rest = [0_u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut rest)).await;
    }
}

/// A create's body, sent apart from its head by the tests below.
const CREATE_BODY: &[u8] =
    br#"{"name": "Ada", "email": "ada@example.com", "password": "Password@123"}"#;

/// The head of an authenticated `POST /user` carrying [`CREATE_BODY`].
fn create_head() -> String {
    format!(
        "POST /user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        crate::helpers::API_KEY,
        CREATE_BODY.len()
    )
}

#[tokio::test]
async fn a_request_body_sent_slowly_is_not_cut_off_by_the_header_timeout() {
    let (_server, mut stream) = connect_with_short_timeout().await;
    stream.write_all(create_head().as_bytes()).await.unwrap();
    // The body in three pieces over 1.2 s, past the 700 ms timeout: the
    // handler is reading it, so the request deadline bounds it instead.
    for piece in CREATE_BODY.chunks(CREATE_BODY.len().div_ceil(3)) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stream.write_all(piece).await.unwrap();
    }
    let mut head = vec![0_u8; 12];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head))
        .await
        .expect("the slow upload is answered")
        .expect("the slow upload's connection is still open");
    assert_eq!(&head, b"HTTP/1.1 201", "{}", String::from_utf8_lossy(&head));
}

#[tokio::test]
async fn past_the_cap_idle_connections_make_room_and_busy_ones_are_kept() {
    let (server, base) = Server::start(|command| {
        command
            .env("MAX_CONNECTIONS", "8")
            .env("HEADER_READ_TIMEOUT_MS", "60000")
            .env("RUST_LOG", "info");
    })
    .await;
    let address = base.trim_start_matches("http://").to_owned();

    // A request in progress: its head is in, its body is not yet.
    let mut busy = TcpStream::connect(&address).await.unwrap();
    busy.write_all(create_head().as_bytes()).await.unwrap();
    busy.write_all(&CREATE_BODY[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Far more half-sent connections than the cap allows.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(HALF_SENT).await.unwrap();
        slow.push(stream);
    }

    // A new client is still answered at once.
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ping = client.get(format!("{base}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Most of the idle ones were closed to make room (at most 8 are open).
    let mut closed = 0;
    for stream in &mut slow {
        let (_, at) = until_closed(stream, Duration::from_millis(200)).await;
        closed += usize::from(at.is_some());
    }
    assert!(
        closed >= 40 - 8,
        "only {closed} of 40 idle connections were closed"
    );

    // The busy one was never touched: it finishes and is answered.
    busy.write_all(&CREATE_BODY[10..]).await.unwrap();
    let mut answer = vec![0_u8; 12];
    tokio::time::timeout(Duration::from_secs(10), busy.read_exact(&mut answer))
        .await
        .expect("the busy connection is answered")
        .expect("the busy connection is still open");
    assert_eq!(
        &answer,
        b"HTTP/1.1 201",
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let logs = server.logs();
    assert!(
        logs.contains("serving at most 8 connections at once (MAX_CONNECTIONS"),
        "{logs}"
    );
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_client_waits_for_a_request_to_end() {
    let (_server, base) = Server::start(|command| {
        command
            .env("MAX_CONNECTIONS", "2")
            .env("HEADER_READ_TIMEOUT_MS", "60000");
    })
    .await;
    let address = base.trim_start_matches("http://").to_owned();

    // As many connections as the cap allows, each with a request in
    // progress: its head is in, its body is not yet.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(create_head().as_bytes()).await.unwrap();
        stream.write_all(&CREATE_BODY[..10]).await.unwrap();
        busy.push(stream);
    }
    // Time for the server to read both heads (until then a connection
    // counts as idle, and would make room).
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A third client is not served while both are busy...
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let waiting = tokio::spawn(async move {
        client
            .get(format!("{base}/ping"))
            .send()
            .await
            .map(|answer| answer.status())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "answered past the cap while every connection was busy: {:?}",
        waiting.await
    );

    // ...until one request ends: its connection goes idle, is closed to
    // make room, and the waiting client is served.
    busy[0].write_all(&CREATE_BODY[10..]).await.unwrap();
    let mut answer = vec![0_u8; 12];
    busy[0].read_exact(&mut answer).await.unwrap();
    assert_eq!(
        &answer,
        b"HTTP/1.1 201",
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting client is served once a request ends")
        .unwrap()
        .expect("the waiting client's request succeeds");
    assert_eq!(status, StatusCode::OK);
    let (_, closed) = until_closed(&mut busy[0], Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the idle connection was not closed");

    // The other request in progress was never touched.
    let mut still_busy = [0_u8; 1];
    let read =
        tokio::time::timeout(Duration::from_millis(300), busy[1].read(&mut still_busy)).await;
    assert!(
        read.is_err(),
        "the busy connection was answered or closed: {read:?}"
    );
}

#[tokio::test]
async fn the_default_cap_follows_the_descriptor_limit_and_is_logged() {
    let (server, _base) = Server::start(|command| {
        command.env("RUST_LOG", "info");
    })
    .await;
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|line| line.contains("connections at once"))
        .unwrap_or_else(|| panic!("no connection cap was logged:\n{logs}"));
    // What this process's children inherit, as the shell reports it.
    let limit = std::process::Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .unwrap();
    let limit: u64 = String::from_utf8(limit.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let expected = limit.saturating_sub(128).max(16);
    assert!(
        line.contains(&format!("serving at most {expected} connections at once")),
        "{line} (ulimit -n is {limit})"
    );
}

#[tokio::test]
async fn on_sigterm_idle_connections_close_at_once_and_a_request_in_progress_finishes() {
    let (mut server, base) = Server::start(|command| {
        // Neither the idle timeout nor the grace period closes anything
        // during this test: only being told to stop does.
        command
            .env("HEADER_READ_TIMEOUT_MS", "60000")
            .env("SHUTDOWN_GRACE_SECS", "60");
    })
    .await;
    let address = base.trim_start_matches("http://").to_owned();

    // Idle after a response, and idle from the start.
    let mut kept_alive = TcpStream::connect(&address).await.unwrap();
    kept_alive
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0_u8; 12];
    kept_alive.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let mut silent = TcpStream::connect(&address).await.unwrap();
    // A request in progress: its head is in, its body is not yet.
    let mut busy = TcpStream::connect(&address).await.unwrap();
    busy.write_all(create_head().as_bytes()).await.unwrap();
    busy.write_all(&CREATE_BODY[..10]).await.unwrap();
    // Time for the server to read the head (until then the connection is
    // idle, and stopping would close it).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let told = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for (name, stream) in [("kept alive", &mut kept_alive), ("silent", &mut silent)] {
        let (_, closed) = until_closed(stream, Duration::from_secs(5)).await;
        let closed = closed.unwrap_or_else(|| panic!("the {name} connection is still open"));
        assert!(closed - told < Duration::from_secs(5), "{name}");
    }
    // The server waits for the request in progress, and answers it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it did not wait"
    );
    busy.write_all(&CREATE_BODY[10..]).await.unwrap();
    let (received, closed) = until_closed(&mut busy, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    assert!(closed.is_some(), "the busy connection is still open");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.child.try_wait().unwrap().unwrap().code(), Some(0));
}
