//! The HTTP server: the app, served by hyper (HTTP/1.1, and HTTP/2 with
//! prior knowledge) on each accepted connection, with the connection-level
//! limits poem's own server leaves out.
//!
//! - **Header-read and idle timeout.** A client must send a request's head
//!   (its line and headers) within `HEADER_READ_TIMEOUT_MS` of the
//!   connection opening or of the previous response; otherwise the
//!   connection is closed. That holds however little it sent: nothing at
//!   all, part of the HTTP/2 preface, part of a head. So a slow or silent
//!   client (slowloris) holds a connection for that long at most, and an
//!   idle keep-alive connection (HTTP/1.1 or HTTP/2) closes after it too.
//!   `REQUEST_TIMEOUT_MS` then bounds the request's handler. Its response
//!   must then keep moving: a client that stops taking it (a full send
//!   buffer, an HTTP/2 window left shut) for the same timeout has its
//!   connection closed, as nginx's `send_timeout` does. A request counts as
//!   in progress until hyper has taken all of its response body.
//! - **Connection cap.** At most `MAX_CONNECTIONS` are served at once (by
//!   default, the file-descriptor limit less a reserve for the database
//!   pool and the process itself). A new connection past the cap takes the
//!   place of the one idle longest: no request in progress (between
//!   requests, or still sending its head), or a response its client has
//!   stopped taking. A connection whose handler is running or whose
//!   response is moving is never touched. If every connection is busy, the
//!   new one waits until one finishes.
//! - **Graceful shutdown.** When told to stop, no connection is accepted
//!   any more; each open one finishes the request it is serving and
//!   closes, for up to the grace period.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{fence, AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{
    endpoint::{BoxEndpoint, DynEndpoint},
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
    Addr, Response,
};
use tokio::{net::TcpListener, sync::Notify};

/// File descriptors kept free below the limit for what is not a client
/// connection: the database pool and its monitors, the log, the listener.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The default connection cap: the process's file-descriptor limit less
/// [`RESERVED_DESCRIPTORS`], at least 16; and the limit it comes from.
pub fn default_max_connections() -> (usize, Option<u64>) {
    let limit = descriptor_limit();
    let cap = limit.map_or(1024, |limit| {
        limit.saturating_sub(RESERVED_DESCRIPTORS).max(16)
    });
    (usize::try_from(cap).unwrap_or(usize::MAX), limit)
}

/// The soft limit on open file descriptors, where the system says.
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// What a connection is doing: requests in progress, and since when it
/// has had none.
struct Activity {
    opened: Instant,
    /// Requests in progress: from the head being read until the response
    /// body has been written out.
    busy: AtomicUsize,
    /// Of those, the ones whose handler is still running (bounded by the
    /// request deadline); the rest are writing their response.
    handling: AtomicUsize,
    /// When a response being written last moved (its writing began, or a
    /// piece of its body went out), in nanoseconds after `opened`.
    progress: AtomicU64,
    /// When the last request in progress ended, in nanoseconds after
    /// `opened` (0: none has).
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            handling: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    /// Now, in nanoseconds after `opened`.
    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn at(&self, nanos: &AtomicU64) -> Instant {
        self.opened + Duration::from_nanos(nanos.load(Ordering::Acquire))
    }

    /// What the connection is doing now, for a client allowed `limit` to
    /// send a head or to take a piece of a response.
    fn state(&self, limit: Duration) -> State {
        if self.handling.load(Ordering::Acquire) > 0 {
            return State::Handling;
        }
        if self.busy.load(Ordering::Acquire) > 0 {
            let moved = self.at(&self.progress);
            return if moved.elapsed() < limit {
                State::Writing(moved + limit)
            } else {
                State::Stalled
            };
        }
        State::Idle(self.at(&self.idle_since))
    }

    /// Completes once the connection has had no request in progress for
    /// `limit` (since it opened, or since its last request ended), or once
    /// a response it is writing has not moved for `limit`: its client has
    /// stopped reading.
    async fn stalled_for(&self, limit: Duration) {
        let mut due = self.opened + limit;
        loop {
            tokio::time::sleep_until(due.into()).await;
            due = match self.state(limit) {
                State::Handling => Instant::now() + limit,
                State::Writing(due) => due,
                State::Stalled => return,
                State::Idle(since) if since.elapsed() >= limit => return,
                State::Idle(since) => since + limit,
            };
        }
    }
}

/// See [`Activity::state`].
enum State {
    /// A handler is running: the request deadline bounds it.
    Handling,
    /// Writing a response that moved lately: stalled if it has not moved
    /// again by the instant given.
    Writing(Instant),
    /// Writing a response the client has stopped taking.
    Stalled,
    /// No request in progress since the instant given.
    Idle(Instant),
}

/// One open connection, as the accept loop sees it.
struct Open {
    activity: Arc<Activity>,
    /// How the server tells it to stop.
    told: Arc<Told>,
}

/// What the server has told one connection: nothing, to finish the request
/// in progress and close (shutdown), or to close at once (to make room).
///
/// Its own, looked at with an atomic load each time the connection's task
/// wakes: a `CancellationToken` shared by every connection takes its lock
/// (and its `Notify`'s) on every poll, on every worker.
#[derive(Default)]
struct Told {
    /// 0 (nothing), [`Self::STOP`] or [`Self::CLOSE`]: it only rises.
    what: AtomicU8,
    waker: AtomicWaker,
}

impl Told {
    const STOP: u8 = 1;
    const CLOSE: u8 = 2;

    fn tell(&self, what: u8) {
        self.what.fetch_max(what, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Completes once the connection has been told `what`, or more.
    fn told(&self, what: u8) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.what.load(Ordering::Acquire) >= what {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Told between the look and the registration: not missed.
            match self.what.load(Ordering::Acquire) >= what {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
    }
}

/// The open connections, oldest first (ids only grow).
#[derive(Default)]
struct Connections {
    open: Mutex<BTreeMap<u64, Open>>,
    /// Signalled whenever a connection ends, and when one finishes its last
    /// request in progress (and so may make room) while an accept waits.
    ended: Notify,
    /// Accepts looking for room (for a moment) or waiting at the cap for it.
    /// Only while there are any does a connection going idle signal `ended`:
    /// that takes the `Notify`'s lock, which every request of every worker
    /// would otherwise contend for.
    waiting_for_room: AtomicUsize,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection under `cap`, closing the one idle
    /// longest (a stalled response counts as idle since it last moved) if
    /// need be; false if every connection is busy.
    fn make_room(&self, cap: usize, limit: Duration) -> bool {
        let mut open = self.lock();
        if open.len() < cap {
            return true;
        }
        let idle = open
            .iter()
            .filter_map(|(id, connection)| {
                let activity = &connection.activity;
                match activity.state(limit) {
                    State::Idle(since) => Some((since, *id)),
                    State::Stalled => Some((activity.at(&activity.progress), *id)),
                    State::Handling | State::Writing(_) => None,
                }
            })
            .min()
            .map(|(_, id)| id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(closed) => {
                closed.told.tell(Told::CLOSE);
                tracing::debug!("at the connection cap: closed the connection idle longest");
                true
            }
            None => false,
        }
    }

    fn ended(&self, id: u64) {
        self.lock().remove(&id);
        self.ended.notify_waiters();
    }

    /// Makes room as [`Self::make_room`] does, waiting (until `shutdown`)
    /// for a connection to end or go idle if every one is busy; false if
    /// `shutdown` came first.
    async fn wait_for_room(
        &self,
        cap: usize,
        limit: Duration,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let _waiting = WaitingForRoom::announce(&self.waiting_for_room);
        loop {
            let ended = self.ended.notified();
            if self.make_room(cap, limit) {
                return true;
            }
            tokio::select! {
                () = shutdown.as_mut() => return false,
                () = ended => {}
            }
        }
    }
}

/// An accept counted in `Connections::waiting_for_room` for as long as it
/// lives, however its wait ends.
struct WaitingForRoom<'a>(&'a AtomicUsize);

impl<'a> WaitingForRoom<'a> {
    /// Announced before the accept looks for room, so that a request ending
    /// after the look sees it and signals: the fence pairs with the one in
    /// `InProgress::drop`.
    fn announce(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Self(waiting)
    }
}

impl Drop for WaitingForRoom<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a request in progress on its connection for as long as it lives:
/// it travels with the response body, so it ends when hyper has written
/// the body out and dropped it.
struct InProgress {
    activity: Arc<Activity>,
    connections: Arc<Connections>,
    handling: bool,
}

impl InProgress {
    fn start(activity: &Arc<Activity>, connections: &Arc<Connections>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        activity.handling.fetch_add(1, Ordering::AcqRel);
        Self {
            activity: activity.clone(),
            connections: connections.clone(),
            handling: true,
        }
    }

    /// The response moved: its handler returned, or a piece of its body
    /// went out.
    fn moved(&mut self) {
        let activity = &self.activity;
        activity
            .progress
            .fetch_max(activity.now(), Ordering::AcqRel);
        if std::mem::take(&mut self.handling) {
            activity.handling.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let activity = &self.activity;
        // Before the counts drop, so whoever sees it idle sees since when.
        activity
            .idle_since
            .fetch_max(activity.now(), Ordering::AcqRel);
        if self.handling {
            activity.handling.fetch_sub(1, Ordering::AcqRel);
        }
        // The connection just went idle: an accept waiting at the cap may
        // now close it to make room. Either that accept's look at the
        // connections sees this request gone, or this sees the accept
        // waiting (the fences order the two).
        if activity.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            fence(Ordering::SeqCst);
            if self.connections.waiting_for_room.load(Ordering::SeqCst) > 0 {
                self.connections.ended.notify_waiters();
            }
        }
    }
}

/// A response body that keeps its request counted as in progress until it
/// has been written out (or the connection dropped it), marking each piece
/// that goes out as progress.
struct CountedBody<B> {
    body: B,
    in_progress: InProgress,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &frame {
            self.in_progress.moved();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Takes a connection out of the registry when its task ends, however it
/// ends (a panic included), so shutdown never waits for a ghost.
struct Registered(Arc<Connections>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.ended(self.1);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish, for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<BoxEndpoint<'static, Response>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let connections = Arc::new(Connections::default());
    let mut next_id = 0_u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or memory, or the client gave up:
                    // none of it is fatal. Pause so a shortage is not a spin.
                    tracing::warn!("cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !connections
            .wait_for_room(
                limits.max_connections,
                limits.header_read_timeout,
                shutdown.as_mut(),
            )
            .await
        {
            break;
        }
        let id = next_id;
        next_id += 1;
        let activity = Arc::new(Activity::new());
        let told = Arc::new(Told::default());
        connections.lock().insert(
            id,
            Open {
                activity: activity.clone(),
                told: told.clone(),
            },
        );
        let connection = Connection {
            app: app.clone(),
            local,
            remote,
            activity,
            connections: connections.clone(),
            header_read_timeout: limits.header_read_timeout,
        };
        let registered = Registered(connections.clone(), id);
        tokio::spawn(async move {
            let _registered = registered;
            connection.serve(stream, &told).await;
        });
    }
    drop(listener);
    // Every connection is in the registry before its task starts. Told
    // with the registry unlocked: each, as it ends, takes that lock.
    let open: Vec<Arc<Told>> = connections
        .lock()
        .values()
        .map(|open| open.told.clone())
        .collect();
    for told in open {
        told.tell(Told::STOP);
    }
    let drained = async {
        loop {
            let ended = connections.ended.notified();
            if connections.lock().is_empty() {
                return;
            }
            ended.await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            "requests still in flight after the {} s grace period",
            grace.as_secs()
        );
    }
    Ok(())
}

struct Connection {
    app: Arc<BoxEndpoint<'static, Response>>,
    local: SocketAddr,
    remote: SocketAddr,
    activity: Arc<Activity>,
    connections: Arc<Connections>,
    header_read_timeout: Duration,
}

impl Connection {
    async fn serve(self, stream: tokio::net::TcpStream, told: &Told) {
        let Self {
            app,
            local,
            remote,
            activity,
            connections,
            header_read_timeout,
        } = self;
        let watched = activity.clone();
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            let mut in_progress = InProgress::start(&activity, &connections);
            let request = poem::Request::from((
                request,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(remote)),
                Scheme::HTTP,
            ));
            async move {
                // The app's own boxed future, not poem's `get_response` and
                // `Box`'s forwarding: each would hold the request again.
                let response = match DynEndpoint::call(&**app, request).await {
                    Ok(response) => response,
                    Err(error) => error.into_response(),
                };
                in_progress.moved();
                Ok::<_, Infallible>(
                    hyper::Response::from(response).map(|body| CountedBody { body, in_progress }),
                )
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // Not `writev(false)`, though one `send` per response would make
            // a ping 7% cheaper: hyper would copy every body into the
            // connection's write buffer, which keeps the size of the largest
            // (Swagger UI's 1.6 MB) for the connection's life.
            // The idle watch below bounds reading a head, not hyper's own
            // timer: that one would be set and cleared for every request.
            .header_read_timeout(None);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        // The idle watch: a connection with no request in progress for
        // `header_read_timeout`, since it opened or since its last response
        // was written out, is closed. So it bounds a head sent slowly or not
        // at all (over HTTP/1.1, or part of the HTTP/2 preface), an idle
        // keep-alive or HTTP/2 connection, and a response no longer read.
        // A request counts as in progress once its head is read.
        tokio::select! {
            _ = connection.as_mut() => return,
            () = watched.stalled_for(header_read_timeout) => return,
            () = told.told(Told::STOP) => {}
        }
        // Told to close (to make room), not to stop: nothing to finish.
        // Nothing is told to close once stopping, as rooms are made only by
        // the accept loop, which has ended by then.
        if told.what.load(Ordering::Acquire) >= Told::CLOSE {
            return;
        }
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            _ = connection => {}
            () = watched.stalled_for(header_read_timeout) => {}
        }
    }
}
