//! The first page a new user sees (issue 11, item 5): `/` without a frontend folder is a page
//! about pier, a real frontend replaces it, and the API keeps its JSON errors.

use pier_testkit::{Engine, spawn_app_with};

async fn get(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
) -> (u16, String, String) {
    let res = client.request(method, url).send().await.unwrap();
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, kind, res.text().await.unwrap())
}

#[tokio::test]
async fn without_a_frontend_folder_the_root_is_a_page_about_pier() {
    // The default folder, `./public`, is missing (an explicit `--public-dir` that is missing
    // stops pier at start instead).
    let app = spawn_app_with(Engine::Sqlite, Vec::new()).await;
    let (status, kind, body) = get(&app.client, &app.url("/"), reqwest::Method::GET).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/html"), "{kind}");
    for link in ["href=\"/_/\"", "href=\"/docs\"", "href=\"/api/health\""] {
        assert!(body.contains(link), "{link} in {body}");
    }
    // It says where the build goes and how to name another folder.
    assert!(body.contains("<code>./public</code>"), "{body}");
    assert!(body.contains("--public-dir"), "{body}");
    let (status, kind, body) = get(&app.client, &app.url("/"), reqwest::Method::HEAD).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(kind.starts_with("text/html"), "{kind}");
    // Only GET and HEAD; other paths and the API keep their JSON 404s.
    let (status, _, _) = get(&app.client, &app.url("/"), reqwest::Method::POST).await;
    assert_eq!(status, 405);
    for path in ["/api/nope", "/api/collections/nope/records", "/nothing.js"] {
        let (status, kind, body) = get(&app.client, &app.url(path), reqwest::Method::GET).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        assert!(body.contains("\"status\":404"), "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_frontend_folder_is_served_instead_of_the_page() {
    let public = tempfile::tempdir().unwrap();
    std::fs::write(public.path().join("index.html"), "<p>my app</p>").unwrap();
    let app = spawn_app_with(
        Engine::Sqlite,
        vec![("paths.public_dir", public.path().display().to_string())],
    )
    .await;
    let (status, _, body) = get(&app.client, &app.url("/"), reqwest::Method::GET).await;
    assert_eq!((status, body.as_str()), (200, "<p>my app</p>"));
    let (status, kind, _) = get(&app.client, &app.url("/api/nope"), reqwest::Method::GET).await;
    assert_eq!(status, 404);
    assert!(kind.starts_with("application/json"), "{kind}");
    app.stop().await;
}
