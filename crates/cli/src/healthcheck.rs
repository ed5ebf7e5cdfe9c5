//! `pier healthcheck`: asks a running pier's `/readyz` (at the address the same configuration
//! gives, or `--http`) and exits 0 when it is ready, 1 otherwise, so that container images need
//! no curl or shell for their health checks. Plain HTTP on loopback only: a listener with TLS
//! is asked through `--http` of a plain one (the backend behind a gateway), and says so.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `addr` (an unspecified address means this host) and returns what `/readyz` said.
pub(crate) fn check(addr: SocketAddr, tls: bool) -> anyhow::Result<()> {
    if tls {
        bail!(
            "the listener at {addr} speaks HTTPS; run `pier healthcheck --http HOST:PORT` against a plain-HTTP listener (for example the backend behind the gateway)"
        );
    }
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("pier is not answering at {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: pier-healthcheck\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .with_context(|| format!("no answer from {addr}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).unwrap_or_default();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    if status == "200" {
        println!("ready ({addr})");
        Ok(())
    } else {
        bail!("not ready ({addr}): HTTP {status} {body}")
    }
}
