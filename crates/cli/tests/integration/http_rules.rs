//! `pier serve` shares the gateway's listener: the HTTP/1.1 message rules hold for requests to
//! the in-process backend too (raw bytes, as an adversarial client sends them).

use std::net::SocketAddr;
use std::time::Duration;

use pier_testkit::spawn_app;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and reads until pier closes the connection.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection stays open");
    String::from_utf8_lossy(&out).into_owned()
}

fn status(out: &str) -> &str {
    out.get(9..12).unwrap_or("")
}

#[tokio::test]
async fn the_message_rules_hold_for_the_in_process_backend() {
    let app = spawn_app().await;
    let cases: Vec<(String, &str)> = vec![
        ("GET /api/health HTTP/1.1\r\n\r\n".into(), "400"),
        ("GET /api/health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), "400"),
        (
            format!("GET /api/health HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n", "a".repeat(9000)),
            "431",
        ),
        (
            "POST /api/collections/_superusers/auth-with-password HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\nzz\r\n".into(),
            "400",
        ),
    ];
    for (req, want) in cases {
        let out = raw(app.addr, req.as_bytes()).await;
        assert_eq!(status(&out), want, "{}: {out}", &req[..req.len().min(80)]);
        assert!(
            out.contains("\"status\":4"),
            "PocketBase's error shape: {out}"
        );
    }
    let out = raw(
        app.addr,
        b"GET /api/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&out), "200", "{out}");
}
