//! The HTTP surface, through the real application on both engines.

use pier_testkit::{Engine, TestApp, spawn_app_with};
use serde_json::Value;

async fn app(engine: Engine) -> TestApp {
    spawn_app_with(engine, Vec::new()).await
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::app(pier_testkit::Engine::Sqlite).await).await }
        )* }
        mod on_postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::app(pier_testkit::Engine::Postgres).await).await }
        )* }
    };
}

on_both_engines!(
    health_answers_exactly_as_pocketbase,
    head_health_has_the_length_and_no_body,
    readyz_reports_every_check,
    livez_is_always_ok,
    unknown_api_paths_get_pocketbase_404s,
    request_ids_are_kept_when_sane_and_made_otherwise,
    metrics_count_matched_routes_never_raw_paths,
    http2_cleartext_is_served,
    security_headers_are_set,
);

async fn health_answers_exactly_as_pocketbase(app: TestApp) {
    let res = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"API is healthy.","code":200,"data":{}}"#
    );
    app.stop().await;
}

async fn head_health_has_the_length_and_no_body(app: TestApp) {
    let res = app
        .client
        .head(app.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "50");
    assert!(res.bytes().await.unwrap().is_empty());
    app.stop().await;
}

async fn readyz_reports_every_check(app: TestApp) {
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");
    assert_eq!(body["checks"]["disk"], "ok");
    app.stop().await;
}

async fn livez_is_always_ok(app: TestApp) {
    let res = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

async fn unknown_api_paths_get_pocketbase_404s(app: TestApp) {
    for (path, message) in [
        ("/api/nope", "The requested resource wasn't found."),
        ("/api/%00", "The requested resource wasn't found."),
        // PocketBase words an unknown collection on a records route this way.
        (
            "/api/collections/x/records/'; DROP TABLE x;--",
            "Missing collection context.",
        ),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"data": {}, "message": message, "status": 404})
        );
    }
    app.stop().await;
}

async fn request_ids_are_kept_when_sane_and_made_otherwise(app: TestApp) {
    let kept = app
        .client
        .get(app.url("/api/health"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-abc.123");
    let replaced = app
        .client
        .get(app.url("/api/health"))
        .header("x-request-id", "evil value with spaces")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "evil value with spaces");
    assert_eq!(id.len(), 24);
    let fresh = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_ne!(fresh.headers()["x-request-id"].to_str().unwrap(), id);
    app.stop().await;
}

async fn metrics_count_matched_routes_never_raw_paths(app: TestApp) {
    for _ in 0..3 {
        app.client.get(app.url("/api/health")).send().await.unwrap();
    }
    app.client
        .get(app.url("/api/some/secret-raw-path"))
        .send()
        .await
        .unwrap();
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"pier_http_requests_total{method="GET",route="/api/health",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/{*rest}",status="404"} 1"#),
        "{text}"
    );
    assert!(!text.contains("secret-raw-path"));
    assert!(text.contains("pier_db_up{engine="));
    assert!(text.contains("process_resident_memory_bytes "));
    assert!(
        text.contains("pier_http_requests_in_flight 1"),
        "the scrape itself is in flight"
    );
    promtool_accepts(&text);
    app.stop().await;
}

/// Runs `promtool check metrics` when it is installed; CI installs it, so there it must be.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not installed; skipping the exposition lint");
            return;
        }
        Err(e) => panic!("promtool must be installed in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn http2_cleartext_is_served(app: TestApp) {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    app.stop().await;
}

async fn security_headers_are_set(app: TestApp) {
    let res = app.client.get(app.url("/api/nope")).send().await.unwrap();
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_metrics_need_an_allowed_address_or_the_token() {
    // Loopback is not allowed here, so only the token opens the endpoint.
    let app = spawn_app_with(
        Engine::Sqlite,
        vec![
            ("app_env", "production".into()),
            ("log.file", "false".into()),
            ("metrics.allow", "10.0.0.0/8".into()),
            ("metrics.token", "s3cret-token".into()),
        ],
    )
    .await;
    let denied = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["status"], 403);
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-tokex")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let ok = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_metrics_are_open_to_allowed_addresses() {
    let app = spawn_app_with(
        Engine::Sqlite,
        vec![
            ("app_env", "production".into()),
            ("log.file", "false".into()),
        ],
    )
    .await;
    // The default allow-list is loopback, where the test client is.
    let ok = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    app.stop().await;
}
