//! Processes a test owns: the `user-api` binary and SecantusDB servers.
//!
//! Each gets an environment of its own (nothing inherited), an empty
//! working directory of its own (so no `.env` applies), and a port that no
//! other test can be handed: the binary listens on port 0 and says which
//! port it got; a database that must come back on the same address gets a
//! port below the kernel's ephemeral range, which neither `bind(0)` nor an
//! outgoing connection ever takes.

use std::{
    io::{BufRead, BufReader, Read},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU16, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use mongodb::bson::{doc, oid::ObjectId};
use socket2::{Domain, Socket, Type};

use crate::helpers::{fresh_database, mongo_uri, API_KEY};

/// A new, empty directory of this test's own.
pub fn empty_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(ObjectId::new().to_hex());
    std::fs::create_dir_all(&dir).expect("the test directory is created");
    dir
}

/// The binary, in an empty directory of its own, with an API key and no
/// other environment variable at all.
pub fn user_api() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_user-api"));
    command
        .current_dir(empty_dir())
        .env_clear()
        .env("API_KEYS", API_KEY);
    command
}

/// An address on loopback that refuses connections for as long as the
/// returned socket lives: bound, so nothing else can take it, and never
/// listening.
pub fn refusing_address() -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into())
        .expect("a loopback port");
    let address = socket
        .local_addr()
        .ok()
        .and_then(|address| address.as_socket())
        .expect("a bound address");
    (socket, address)
}

/// Reads a child's output on a thread, line by line, into `logs` (up to
/// `limit` bytes; the rest is read and dropped); calls `watch` on each line.
fn collect(
    output: impl Read + Send + 'static,
    logs: Arc<Mutex<String>>,
    limit: usize,
    watch: impl Fn(&str) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            watch(&line);
            let mut logs = logs.lock().unwrap();
            if logs.len() < limit {
                logs.push_str(&line);
                logs.push('\n');
            }
        }
    })
}

/// The port in a line such as `… listening on 127.0.0.1:43127`.
pub fn listening_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("listening on ")?;
    let address: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
        .collect();
    address.rsplit(':').next()?.parse().ok()
}

/// Waits for the port a starting process reports, failing with its output
/// if it exits or stays silent.
async fn reported_port(
    child: &mut Child,
    ports: &mpsc::Receiver<u16>,
    logs: &Mutex<String>,
    what: &str,
) -> Result<u16, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(port) = ports.try_recv() {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Let the readers catch up with the last lines.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(format!(
                "{what} exited ({status}) before listening:\n{}",
                logs.lock().unwrap()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not report a port within 30 s:\n{}",
                logs.lock().unwrap()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `user-api` binary, serving.
pub struct Server {
    pub child: Child,
    logs: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on a fresh database, port 0 and `RUST_LOG=trace`,
    /// then `adjust`s the command; returns it with its base URL once it
    /// listens.
    pub async fn start(adjust: impl FnOnce(&mut Command)) -> (Self, String) {
        let mut command = user_api();
        command
            .env("MONGO_URI", format!("{}/{}", mongo_uri(), fresh_database()))
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("BCRYPT_COST", "4")
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().expect("the binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let (found, ports) = mpsc::channel();
        let readers = vec![
            collect(
                child.stdout.take().expect("piped stdout"),
                logs.clone(),
                usize::MAX,
                move |line| {
                    if let Some(port) = listening_port(line) {
                        let _ = found.send(port);
                    }
                },
            ),
            collect(
                child.stderr.take().expect("piped stderr"),
                logs.clone(),
                usize::MAX,
                |_| {},
            ),
        ];
        let port = reported_port(&mut child, &ports, &logs, "user-api").await;
        let server = Self {
            child,
            logs,
            readers,
        };
        let port = port.unwrap_or_else(|reason| panic!("{reason}"));
        (server, format!("http://127.0.0.1:{port}"))
    }

    /// Everything it has written so far.
    pub fn logs_so_far(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Stops the server (if it still runs) as an orchestrator does, with
    /// SIGTERM, so it writes out the log lines it still buffers, and
    /// returns everything it wrote. Kills it if it has not exited in 15 s.
    pub fn logs(mut self) -> String {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.logs_so_far()
    }
}

/// A SecantusDB server of this test's own, on a storage directory that
/// outlives the process, so it can crash and come back on the same address
/// with its data, or without.
pub struct Database {
    process: Option<Child>,
    pub port: u16,
    storage: PathBuf,
}

impl Drop for Database {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// Ports for databases that restart on the same address: below the
/// kernel's ephemeral range, handed out in turn from a place that depends
/// on the process, each tried before use.
fn reserved_ports() -> impl Iterator<Item = u16> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_start > 12_000 {
        (ephemeral_start - 10_000, ephemeral_start)
    } else {
        (20_000, 30_000)
    };
    let span = high - low;
    let start = (std::process::id() % u32::from(span)) as u16;
    std::iter::repeat_with(move || {
        let turn = NEXT.fetch_add(1, Ordering::Relaxed);
        low + (start.wrapping_add(turn.wrapping_mul(7))) % span
    })
    .take(50)
    .filter(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, *port)).is_ok())
}

/// Runs SecantusDB on `port` and `storage` until it answers ping.
async fn run_database(port: u16, storage: &PathBuf) -> Result<Child, String> {
    let server = std::env::var("TEST_SECANTUSD").expect(
        "TEST_SECANTUSD is not set. Run the suite with ./scripts/test, which installs SecantusDB.",
    );
    let mut child = Command::new(server)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--storage-path")
        .arg(storage)
        .args(["--log-level", "INFO"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("SecantusDB starts");
    let logs = Arc::new(Mutex::new(String::new()));
    let (found, ports) = mpsc::channel();
    collect(
        child.stderr.take().expect("piped stderr"),
        logs.clone(),
        16 * 1024,
        move |line| {
            if let Some(port) = listening_port(line) {
                let _ = found.send(port);
            }
        },
    );
    let answered = async {
        match reported_port(&mut child, &ports, &logs, "SecantusDB").await? {
            reported if reported == port => {}
            reported => return Err(format!("SecantusDB listens on {reported}, not {port}")),
        }
        let client = mongodb::Client::with_uri_str(format!(
            "mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500"
        ))
        .await
        .map_err(|err| err.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err("SecantusDB did not answer ping within 30 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    };
    match answered.await {
        Ok(()) => Ok(child),
        Err(reason) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(reason)
        }
    }
}

impl Database {
    pub async fn start() -> Self {
        let storage = empty_dir();
        let mut last_failure = String::new();
        for port in reserved_ports() {
            match run_database(port, &storage).await {
                Ok(process) => {
                    return Self {
                        process: Some(process),
                        port,
                        storage,
                    }
                }
                // Someone took the port in the meantime: try another.
                Err(reason) => last_failure = reason,
            }
        }
        panic!("no port could be reserved for a test database: {last_failure}");
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/users", self.port)
    }

    /// Starts it again on the same storage and address.
    pub async fn restart(&mut self) {
        let process = run_database(self.port, &self.storage)
            .await
            .unwrap_or_else(|reason| panic!("{reason}"));
        self.process = Some(process);
    }

    /// Starts it again on new, empty storage: the same address, another
    /// database.
    pub async fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.storage);
        std::fs::create_dir_all(&self.storage).unwrap();
        self.restart().await;
    }

    /// Kills the process outright, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
