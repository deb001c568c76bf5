//! `user-api healthcheck`: asks a running service whether it is ready, for
//! container health checks (the runtime image has no curl).

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    time::Duration,
};

const TIMEOUT: Duration = Duration::from_secs(3);

/// `Ok` when `GET /health` on `host:port` answers 200.
pub fn ready(host: IpAddr, port: u16) -> Result<(), String> {
    // A service listening on every address is reached on loopback.
    let host = match host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let address = SocketAddr::new(host, port);
    let unreachable = |err: std::io::Error| format!("cannot reach {address}: {err}");
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(unreachable)?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    if status_line.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("not ready: {status_line}"))
    }
}
