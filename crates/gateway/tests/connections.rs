//! The gateway's connections to real upstreams: a frontend dev server with its WebSocket, the
//! fast path and the general path on one connection, bodies that end with the upstream's
//! connection, and HTTP/2 members.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::*;

#[tokio::test]
async fn plain_requests_and_the_general_path_share_a_connection() {
    let (f, up) = with_upstream("").await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    // Two requests at once (pipelined), then a HEAD: all on the fast path.
    s.write_all(
        b"GET /api/one HTTP/1.1\r\nHost: example.org\r\nConnection: keep-alive, x-hop\r\nx-hop: no\r\n\
          X-Forwarded-For: 6.6.6.6\r\nX-Request-Id: first-1\r\n\r\n\
          GET /api/two?q=1 HTTP/1.1\r\nHost: example.org\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-request-id: first-1\r\n"), "{head}");
    assert!(
        lower.contains("x-content-type-options: nosniff\r\n"),
        "{head}"
    );
    assert!(!lower.contains("x-upstream-private"), "{head}");
    assert!(!lower.contains("keep-alive"), "{head}");
    assert!(body.starts_with("a /api/one\n"), "{body}");
    assert_eq!(
        body.matches("\nhost: ").count(),
        1,
        "one Host header: {body}"
    );
    assert!(body.contains("host: example.org\n"), "{body}");
    assert!(!body.contains("x-hop"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    assert!(!body.contains("6.6.6.6"), "{body}");
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.starts_with("a /api/two?q=1\n"), "{body}");
    s.write_all(b"HEAD /api/three HTTP/1.1\r\nHost: example.org\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut s, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A request with a body goes the general way, on the same connection, and so does the
    // rest of the connection.
    s.write_all(b"POST /api/four HTTP/1.1\r\nHost: example.org\r\nContent-Length: 4\r\n\r\nbody")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("body: body\n"), "{body}");
    s.write_all(b"GET /api/five HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.starts_with("a /api/five\n"), "{body}");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
        .await
        .expect("the gateway closes after Connection: close")
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(up.hits.load(Ordering::SeqCst), 5);

    // Connection: close on the fast path itself.
    let out = raw(
        f.addr,
        b"GET /api/six HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close\r\n"),
        "{out}"
    );
    assert!(out.contains("a /api/six\n"), "{out}");
}

#[tokio::test]
async fn a_body_that_ends_with_the_upstream_connection_is_relayed_whole() {
    // An upstream that answers without a length and closes, on new connections each time.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = c
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nfirst part, ")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = c.write_all(b"then the end").await;
            });
        }
    });
    let f = front("", &[("gateway.upstreams", format!("http://{addr}"))]).await;
    for _ in 0..2 {
        let r = f
            .client
            .get(format!("{}/api/stream", f.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "first part, then the end");
    }
}

#[tokio::test]
async fn h2c_members_are_spoken_to_in_http2() {
    // An upstream that speaks only HTTP/2 without TLS, and says which version it got.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let text = format!(
                        "{:?} {} {}",
                        req.version(),
                        req.uri().path(),
                        req.headers()
                            .get("x-forwarded-proto")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                    );
                    Ok::<_, Infallible>(Response::new(Body::from(text)))
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    let f = front("", &[("gateway.upstreams", format!("h2c://{addr}"))]).await;
    for _ in 0..3 {
        let r = f
            .client
            .get(format!("{}/api/version", f.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "HTTP/2.0 /api/version http");
    }
    // The same request on a raw HTTP/1.1 connection (which the fast path would take for an
    // http:// member) goes the general way, in HTTP/2.
    let out = raw(
        f.addr,
        b"GET /api/raw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("HTTP/2.0 /api/raw http"), "{out}");
}
