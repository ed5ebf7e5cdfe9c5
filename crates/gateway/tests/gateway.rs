//! The gateway against real upstream servers on port 0: routing, the static rules, the proxy's
//! header handling, WebSocket tunnels, streams, retries, limits and reload.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pier_gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

#[tokio::test]
async fn static_files_have_etags_ranges_and_encodings() {
    let (f, _up) = with_upstream("").await;
    let c = &f.client;
    let r = c
        .get(format!("{}/assets/app.3f9a1c2b.js", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["vary"], "Accept-Encoding");
    assert!(r.headers().get("content-encoding").is_none());
    let etag = r.headers()["etag"].clone();
    assert!(etag.to_str().unwrap().starts_with('"'));
    let full = r.bytes().await.unwrap();

    // If-None-Match → 304, with the ETag.
    let r = c
        .get(format!("{}/assets/app.3f9a1c2b.js", f.base))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag);

    // br preferred, then gzip; each variant its own ETag, smaller than the original.
    for (accept, coding) in [("gzip, br", "br"), ("gzip", "gzip")] {
        let r = c
            .get(format!("{}/assets/app.3f9a1c2b.js", f.base))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-encoding"], coding);
        assert_ne!(r.headers()["etag"], etag);
        let tag = r.headers()["etag"].clone();
        assert!(r.bytes().await.unwrap().len() < full.len() / 4);
        // Its ETag revalidates too.
        let r = c
            .get(format!("{}/assets/app.3f9a1c2b.js", f.base))
            .header("accept-encoding", accept)
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
    }

    // Ranges.
    let r = c
        .get(format!("{}/assets/app.3f9a1c2b.js", f.base))
        .header("range", "bytes=10-19")
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-19/{}", full.len()).as_str()
    );
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.bytes().await.unwrap(), full.slice(10..20));
    let r = c
        .get(format!("{}/assets/app.3f9a1c2b.js", f.base))
        .header("range", format!("bytes={}-", full.len() + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", full.len()).as_str()
    );

    // index.html is revalidated every time; HEAD has the headers and no body.
    let r = c.head(format!("{}/", f.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["content-length"], "26");
    assert!(r.bytes().await.unwrap().is_empty());
    let r = c
        .get(format!("{}/robots.txt", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().contains_key("x-request-id"));
    // Not a method for files.
    let r = c
        .post(format!("{}/robots.txt", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn single_page_fallback_only_for_pages() {
    let (f, up) = with_upstream("").await;
    let c = &f.client;
    let page = |p: &str, accept: &str| {
        c.get(format!("{}{p}", f.base))
            .header("accept", accept.to_owned())
            .send()
    };
    let r = page("/account/settings", "text/html,application/xhtml+xml")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<!doctype html><p>home</p>");
    // A missing file with an extension, or a client not asking for HTML: 404.
    assert_eq!(
        page("/missing.js", "text/html").await.unwrap().status(),
        404
    );
    assert_eq!(
        page("/account", "application/json").await.unwrap().status(),
        404
    );
    // Folders serve their index.html; no listings.
    let r = page("/docs-site/", "text/html").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "<p>docs site</p>");
    assert_eq!(
        page("/assets/", "application/json").await.unwrap().status(),
        404
    );
    // Dotfiles are not served.
    assert_eq!(page("/.env", "*/*").await.unwrap().status(), 404);
    // Never under /api/: that goes to the upstream.
    let before = up.hits.load(Ordering::SeqCst);
    let r = page("/api/unknown", "text/html").await.unwrap();
    assert!(r.text().await.unwrap().starts_with("a /api/unknown"));
    assert_eq!(up.hits.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn traversal_never_leaves_the_folder() {
    let (f, _up) = with_upstream("").await;
    std::fs::write(f.dir.path().join("secret.txt"), "TOP SECRET").unwrap();
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e%5csecret.txt",
        "/..\\secret.txt",
        "/secret.txt%00.html",
        "/assets/../../secret.txt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = raw(f.addr, req.as_bytes(), Duration::from_secs(2)).await;
        assert!(!out.contains("TOP SECRET"), "{path}: {out}");
        assert!(
            out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 404"),
            "{path}: {out}"
        );
    }
}

#[tokio::test]
async fn the_folder_is_reloaded_when_it_changes() {
    let (f, _up) = with_upstream("").await;
    let url = format!("{}/new.txt", f.base);
    assert_eq!(f.client.get(&url).send().await.unwrap().status(), 404);
    std::fs::write(f.dir.path().join("public/new.txt"), "fresh").unwrap();
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = f.client.get(&url).send().await.unwrap();
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "fresh");
            served = true;
            break;
        }
    }
    assert!(served, "a new file is served without a restart");
}

#[tokio::test]
async fn the_proxy_cleans_and_sets_headers() {
    let (f, _up) = with_upstream("").await;
    let r = f
        .client
        .post(format!("{}/api/things?x=1", f.base))
        .header("host", "example.org")
        .header("connection", "x-hop")
        .header("x-hop", "should not pass")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-request-id", "abc-123")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Hop-by-hop headers of the upstream's response are gone too.
    assert!(r.headers().get("x-upstream-private").is_none());
    assert!(r.headers().get("keep-alive").is_none());
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let text = r.text().await.unwrap();
    assert!(text.starts_with("a /api/things?x=1\n"), "{text}");
    assert!(text.contains("host: example.org\n"), "{text}");
    assert!(!text.contains("x-hop"), "{text}");
    // The client is not a trusted proxy: its forwarding headers are replaced.
    assert!(text.contains("x-forwarded-for: 127.0.0.1\n"), "{text}");
    assert!(text.contains("x-forwarded-proto: http\n"), "{text}");
    assert!(text.contains("x-forwarded-host: example.org\n"), "{text}");
    assert!(
        text.contains("forwarded: for=127.0.0.1;proto=http;host=\"example.org\"\n"),
        "{text}"
    );
    assert!(text.contains("x-request-id: abc-123\n"), "{text}");
    assert!(text.contains("body: payload\n"), "{text}");
}

#[tokio::test]
async fn an_absolute_form_target_does_not_change_the_destination() {
    let (f, up) = with_upstream("").await;
    let req =
        "GET http://evil.example/api/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    let out = raw(f.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("a /api/x\n"), "{out}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn websockets_are_tunnelled_after_the_101() {
    let (f, _up) = with_upstream("").await;
    let (mut s, head) = upgrade(
        f.addr,
        b"GET /api/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    let head = head.to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello"[..], b"second frame"] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn streams_arrive_event_by_event() {
    let (f, up) = with_upstream("").await;
    let mut r = f
        .client
        .get(format!("{}/api/sse", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    // The first event arrives while the upstream still holds the second.
    let first = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .expect("the first event is not held back")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    up.release.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&second[..], b"data: two\n\n");
}

#[tokio::test]
async fn a_dead_member_costs_no_idempotent_request() {
    let a = Upstream::start("a").await;
    let mut b = Upstream::start("b").await;
    let f = front(
        "",
        &[
            ("gateway.upstreams", format!("{},{}", a.url(), b.url())),
            ("gateway.health_interval_milliseconds", "200".into()),
        ],
    )
    .await;
    let url = format!("{}/api/x", f.base);
    let mut seen_b = false;
    for _ in 0..4 {
        let t = f
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen_b |= t.starts_with("b ");
    }
    assert!(seen_b, "round robin reaches both members");
    b.kill();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, url) = (f.client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..50 {
                statuses.push(c.get(&url).send().await.unwrap().status().as_u16());
            }
            statuses
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().iter().all(|s| *s == 200));
    }
    // The member is out of the pool now, as the status page and /readyz tell.
    let status = f
        .client
        .get(format!("{}/_pier/status", f.base))
        .send()
        .await
        .unwrap();
    let text = status.text().await.unwrap();
    assert!(text.contains("\"available\":1"), "{text}");
    assert_eq!(
        f.client
            .get(format!("{}/readyz", f.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = f
        .client
        .get(format!("{}/metrics", f.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "pier_gateway_upstream_up{{pool=\"api\",member=\"{}\"}} 0",
            b.addr
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn failing_upstreams_get_pocketbase_errors() {
    let mut a = Upstream::start("a").await;
    let f = front("", &[("gateway.upstreams", a.url())]).await;
    // A 503 from the only member is passed on as it is.
    let r = f
        .client
        .get(format!("{}/api/fail", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    a.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = f
        .client
        .post(format!("{}/api/x", f.base))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 502);
    assert_eq!(body["data"], serde_json::json!({}));
    assert!(body["message"].as_str().unwrap().contains("upstream"));
}

#[tokio::test]
async fn hosts_and_user_routes_decide_where_requests_go() {
    let blog = Upstream::start("blog").await;
    let toml = format!(
        r#"
domain = "example.com"
[[gateway.routes]]
path = "/blog"
to = "upstream"
upstreams = ["{}"]
strip_prefix = true

[[gateway.routes]]
host = "old.example.com"
to = "redirect"
redirect = "https://example.com/new"
status = 301
"#,
        blog.url()
    );
    let (f, _up) = with_upstream(&toml).await;
    let get = |host: &'static str, path: &'static str| {
        f.client
            .get(format!("{}{path}", f.base))
            .header("host", host)
            .header("accept", "text/html")
            .send()
    };
    for (host, path, starts) in [
        ("example.com", "/blog/post?id=1", "blog /post?id=1\n"),
        ("api.example.com", "/api/health", "a /api/health\n"),
        ("admin.example.com", "/", "a /_/\n"),
    ] {
        let t = get(host, path).await.unwrap().text().await.unwrap();
        assert!(t.starts_with(starts), "{host}{path}: {t}");
    }
    let r = get("www.example.com", "/about?x=1").await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "http://example.com/about?x=1");
    let r = get("old.example.com", "/a/b").await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://example.com/new/a/b");
    assert_eq!(get("nope.example.com", "/").await.unwrap().status(), 404);
    let t = get("example.com", "/").await.unwrap().text().await.unwrap();
    assert_eq!(t, "<!doctype html><p>home</p>");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (f, _up) = with_upstream("").await;
    drop(f);
    let up = Upstream::start("a").await;
    let f = front(
        "",
        &[
            ("gateway.upstreams", up.url()),
            ("gateway.api_rate_limit_per_second", "2".into()),
            ("gateway.api_rate_limit_burst", "3".into()),
            // Loopback is exempt by default; this test is a client like any other.
            ("gateway.rate_limit_exempt", String::new()),
        ],
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = f
            .client
            .get(format!("{}/api/x", f.base))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], 429);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(statuses[3], 429);
    assert_eq!(retry_after.unwrap(), "1");
    // Static files are not limited by the API's limit.
    assert_eq!(
        f.client
            .get(format!("{}/robots.txt", f.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn outside_apis_get_their_key_and_the_client_never_sees_it() {
    let ext = Upstream::start("ext").await;
    let up = Upstream::start("a").await;
    let f = front(
        "",
        &[
            ("gateway.upstreams", up.url()),
            ("apis.maps.url", format!("{}/v1", ext.url())),
            ("apis.maps.key", "sk-very-secret".into()),
        ],
    )
    .await;
    let r = f
        .client
        .get(format!("{}/api/ext/maps/geocode?q=paris", f.base))
        .header("authorization", "user-token")
        .header("cookie", "pb_auth=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = format!("{:?}", r.headers());
    assert!(!headers.contains("sk-very-secret"));
    let t = r.text().await.unwrap();
    assert!(t.starts_with("ext /v1/geocode?q=paris\n"), "{t}");
    assert!(t.contains("authorization: Bearer sk-very-secret\n"), "{t}");
    assert!(!t.contains("user-token") && !t.contains("pb_auth"), "{t}");
}

#[tokio::test]
async fn smuggling_and_oversized_heads_are_refused() {
    let (f, up) = with_upstream("").await;
    let cases: [&[u8]; 5] = [
        // Two different lengths.
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        // A final coding other than chunked, and an obfuscated one.
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        // obs-fold, and a bare CR.
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        b"GET /api/x HTTP/1.1\r\nHost: x\rX-A: a\r\n\r\n",
    ];
    for case in cases {
        let out = raw(f.addr, case, Duration::from_secs(3)).await;
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "{}: {out}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );

    // Content-Length with Transfer-Encoding, and bare LF line ends: 400, the connection closed,
    // and what follows is never served as a second request.
    let smuggles: [&[u8]; 3] = [
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/x HTTP/1.1\nHost: x\n\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for case in smuggles {
        let out = raw(f.addr, case, Duration::from_secs(3)).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
    // A keep-alive connection with honest requests, pipelined, bodies and all, still works.
    let honest = b"POST /api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /api/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /api/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = raw(f.addr, honest, Duration::from_secs(3)).await;
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    assert!(
        out.contains("body: hello") && out.contains("body: abc"),
        "{out}"
    );

    // Too many headers, or a head too large: 431.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let out = raw(f.addr, many.as_bytes(), Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let out = raw(f.addr, big.as_bytes(), Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

#[tokio::test]
async fn a_slow_head_is_cut_off() {
    let up = Upstream::start("a").await;
    let f = front(
        "",
        &[
            ("gateway.upstreams", up.url()),
            ("gateway.header_read_timeout_seconds", "1".into()),
        ],
    )
    .await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    // Trickle a header now and then; the deadline is for the whole head.
    let read = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
            let mut b = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(10), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the connection is closed");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn reload_swaps_routes_without_failing_requests() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let f = front("", &[("gateway.upstreams", a.url())]).await;
    let url = format!("{}/api/x", f.base);
    let load = {
        let (c, url) = (f.client.clone(), url.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..200 {
                statuses.push(c.get(&url).send().await.unwrap().status().as_u16());
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let next = config(f.dir.path(), "", &[("gateway.upstreams", b.url())]);
    f.gateway.reload(&next).unwrap();
    assert!(load.await.unwrap().iter().all(|s| *s == 200));
    let t = f
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(t.starts_with("b "), "{t}");
}

#[tokio::test]
async fn a_gateway_needs_a_backend() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "", &[]);
    let err = Gateway::new(&c, None, Arc::new(pier_ops::Metrics::new()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("--upstream"), "{err}");
}

#[tokio::test]
async fn a_frontend_dev_server_gets_every_page_and_its_websocket() {
    let api = Upstream::start("a").await;
    let vite = Upstream::start("vite").await;
    let f = front(
        "",
        &[
            ("gateway.upstreams", api.url()),
            ("gateway.frontend_dev_url", vite.url()),
        ],
    )
    .await;
    let t = f
        .client
        .get(format!("{}/src/main.ts", f.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(t.starts_with("vite /src/main.ts\n"), "{t}");
    let t = f
        .client
        .get(format!("{}/api/x", f.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(t.starts_with("a /api/x\n"), "{t}");
    // The hot-reload socket.
    let (mut s, head) = upgrade(
        f.addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"hmr").await.unwrap();
    let mut back = [0u8; 3];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hmr");
}
