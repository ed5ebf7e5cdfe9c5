//! Backups through the HTTP API and the running server, on both engines: the backups API as
//! PocketBase answers it, a restore through the API (pier restarts on the backup), a full disk,
//! and scheduled backups with their pruning.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pier_testkit::{Engine, spawn_app_with};
use serde_json::{Value as Json, json};

use crate::backup::{add_note, archive_path, for_each_engine, ok, pier_cli, sqlite_data};
use crate::helpers::{pier, run};
use crate::records::superuser_token;

for_each_engine!(the_backups_api_answers_superusers_only_as_pocketbase_does);

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Json>,
) -> (u16, Json) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Json::Null))
}

async fn the_backups_api_answers_superusers_only_as_pocketbase_does(engine: Engine) {
    use reqwest::Method;
    let app = spawn_app_with(engine, Vec::new()).await;
    let token = superuser_token(&app).await;
    let c = &app.client;
    let url = |p: &str| app.url(p);

    // Guests are refused with PocketBase's 401.
    let (status, body) = call(c, Method::GET, &url("/api/backups"), None, None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "The request requires valid record authorization token."
    );

    // Create: a named backup, an automatically named one, and a refused name.
    let (status, _) = call(
        c,
        Method::POST,
        &url("/api/backups"),
        Some(&token),
        Some(json!({"name": "api_one.tar.zst"})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(c, Method::POST, &url("/api/backups"), Some(&token), None).await;
    assert_eq!(status, 204);
    for bad in ["../x.tar.zst", "x.zip", "UPPER.tar.zst"] {
        let (status, body) = call(
            c,
            Method::POST,
            &url("/api/backups"),
            Some(&token),
            Some(json!({ "name": bad })),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(
            body["data"]["name"]["code"], "validation_invalid_key",
            "{body}"
        );
    }
    let (status, body) = call(
        c,
        Method::POST,
        &url("/api/backups"),
        Some(&token),
        Some(json!({"name": "api_one.tar.zst"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A key pier does not know is refused, naming it, and no backup is made.
    let (status, body) = call(
        c,
        Method::POST,
        &url("/api/backups"),
        Some(&token),
        Some(json!({"name": "api_two.tar.zst", "encrypt": true})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["encrypt"]["code"], "validation_unknown_field",
        "{body}"
    );

    // List.
    let (status, list) = call(c, Method::GET, &url("/api/backups"), Some(&token), None).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let one = list.iter().find(|e| e["key"] == "api_one.tar.zst").unwrap();
    let on_disk = std::fs::read(archive_path(app.dir.path(), "api_one.tar.zst")).unwrap();
    assert_eq!(one["size"].as_u64().unwrap(), on_disk.len() as u64);
    assert!(one["modified"].as_str().unwrap().ends_with('Z'));
    assert!(
        list.iter()
            .any(|e| e["key"].as_str().unwrap().starts_with("pier_backup_"))
    );

    // Download needs a superuser's file token; an auth token in `?token=` is not one.
    let (status, file_token) = call(
        c,
        Method::POST,
        &url("/api/files/token"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let file_token = file_token["token"].as_str().unwrap().to_owned();
    let (status, _) = call(c, Method::POST, &url("/api/files/token"), None, None).await;
    assert_eq!(status, 401);
    let res = c
        .get(url(&format!(
            "/api/backups/api_one.tar.zst?token={file_token}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"api_one.tar.zst\""
    );
    let downloaded = res.bytes().await.unwrap().to_vec();
    assert_eq!(downloaded, on_disk);
    for bad in [token.as_str(), "", "garbage"] {
        let res = c
            .get(url(&format!("/api/backups/api_one.tar.zst?token={bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "token {bad:?}");
    }
    for path in ["/api/backups/..%2Fdata.db", "/api/backups/missing.tar.zst"] {
        let res = c
            .get(url(&format!("{path}?token={file_token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }

    // Upload: a sound archive is kept, a damaged one refused.
    let part = reqwest::multipart::Part::bytes(downloaded.clone()).file_name("uploaded.tar.zst");
    let res = c
        .post(url("/api/backups/upload"))
        .header("authorization", &token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    assert_eq!(
        std::fs::read(archive_path(app.dir.path(), "uploaded.tar.zst")).unwrap(),
        on_disk
    );
    let mut damaged = downloaded.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let part = reqwest::multipart::Part::bytes(damaged).file_name("damaged.tar.zst");
    let res = c
        .post(url("/api/backups/upload"))
        .header("authorization", &token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Json = res.json().await.unwrap();
    assert_eq!(
        body["data"]["file"]["code"], "validation_invalid_backup",
        "{body}"
    );
    assert!(!archive_path(app.dir.path(), "damaged.tar.zst").exists());

    // Delete.
    let (status, _) = call(
        c,
        Method::DELETE,
        &url("/api/backups/uploaded.tar.zst"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        c,
        Method::DELETE,
        &url("/api/backups/uploaded.tar.zst"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        c,
        Method::DELETE,
        &url("/api/backups/api_one.tar.zst"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);

    // Backups show in the metrics.
    let metrics = c
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pier_backup_failures_total 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("pier_backup_last_success_timestamp_seconds 0\n"));
    app.stop().await;
}

/// The next `listening on` URL printed after the ones already seen.
fn next_listening_url(server: &mut crate::helpers::Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server.lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!("pier did not start again; saw:\n{}", server.seen.join("\n"))
        });
        server.seen.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            return rest
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap()
                .to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_through_the_api_restarts_pier_on_the_backup_on_sqlite() {
    a_restore_through_the_api_restarts_pier_on_the_backup(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_through_the_api_restarts_pier_on_the_backup_on_postgres() {
    a_restore_through_the_api_restarts_pier_on_the_backup(Engine::Postgres).await;
}

async fn a_restore_through_the_api_restarts_pier_on_the_backup(engine: Engine) {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(pier_pgtest::database().await),
    };
    ok(run(&mut pier_cli(
        &data,
        pg.as_ref(),
        &["superuser", "upsert", "admin@example.com", "AdminPass123!"],
    )));
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(&data)
        .env("PIER_BACKUPS__CRON", "");
    if let Some(db) = &pg {
        cmd.envs(db.env());
    }
    let mut server = crate::helpers::Server::start(cmd);
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let login = |base: String| {
        let client = client.clone();
        async move {
            let (status, body) = call(
                &client,
                Method::POST,
                &format!("{base}/api/collections/_superusers/auth-with-password"),
                None,
                Some(json!({"identity": "admin@example.com", "password": "AdminPass123!"})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let base = server.base_url.clone();
    let token = login(base.clone()).await;
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/collections"),
        Some(&token),
        Some(json!({"name": "notes", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}, {"name": "meta", "type": "json"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for i in 0..3 {
        add_note(&client, &base, &token, i).await;
    }
    let (status, _) = call(
        &client,
        Method::POST,
        &format!("{base}/api/backups"),
        Some(&token),
        Some(json!({"name": "before.tar.zst"})),
    )
    .await;
    assert_eq!(status, 204);
    for i in 3..5 {
        add_note(&client, &base, &token, i).await;
    }

    // A damaged archive is refused before anything stops.
    let good = std::fs::read(archive_path(&data, "before.tar.zst")).unwrap();
    std::fs::write(
        archive_path(&data, "broken.tar.zst"),
        &good[..good.len() / 2],
    )
    .unwrap();
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/backups/broken.tar.zst/restore"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("is damaged"),
        "{body}"
    );

    let (status, _) = call(
        &client,
        Method::POST,
        &format!("{base}/api/backups/before.tar.zst/restore"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204);

    // The same process starts again on the restored data.
    let base = tokio::task::block_in_place(|| next_listening_url(&mut server));
    assert_eq!(server.child.id(), pid);
    assert!(
        server.seen.iter().any(|l| l.contains("backup restored")),
        "{}",
        server.seen.join("\n")
    );
    let token = login(base.clone()).await;
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/api/collections/notes/records"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], 3, "{body}");
    assert_eq!(
        tokio::task::block_in_place(|| server.signal_and_wait("TERM")),
        Some(0)
    );
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `1m`) at `path`; `None` when this process may not mount.
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| SmallDisk {
            path: path.to_owned(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_backup_cleanly_and_pier_keeps_serving() {
    use reqwest::Method;
    let (dir, data) = sqlite_data();
    // 4 MiB of incompressible uploads for a 1 MiB backups folder.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = Vec::with_capacity(4 << 20);
    while bytes.len() < 4 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(data.join("storage/big.bin"), bytes).unwrap();
    let backups = dir.path().join("small");
    let Some(_disk) = SmallDisk::mount(&backups, "1m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let backups_env = ("PIER_PATHS__BACKUPS_DIR", backups.display().to_string());

    // The command line: a clear error, nothing left behind.
    let out = run(pier_cli(&data, None, &["backup", "create", "full.tar.zst"])
        .env(backups_env.0, &backups_env.1));
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_dir(&backups).unwrap().count(),
        0,
        "leftovers in the backups folder"
    );

    // A running pier: the backup fails, the failure is counted, and pier keeps serving.
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(&data)
        .env("PIER_BACKUPS__CRON", "")
        .env(backups_env.0, &backups_env.1);
    let server = crate::helpers::Server::start(cmd);
    let base = server.base_url.clone();
    let client = reqwest::Client::new();
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/collections/_superusers/auth-with-password"),
        None,
        Some(json!({"identity": "a@example.com", "password": "password123"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &client,
        Method::POST,
        &format!("{base}/api/backups"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        std::fs::read_dir(&backups).unwrap().count(),
        0,
        "leftovers in the backups folder"
    );
    let (status, list) = call(
        &client,
        Method::GET,
        &format!("{base}/api/backups"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, list), (200, json!([])));
    let (status, _) = call(
        &client,
        Method::GET,
        &format!("{base}/api/health"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pier_backup_failures_total 1"),
        "{metrics}"
    );
    drop(server);
}

#[test]
fn pier_serve_makes_scheduled_backups_and_prunes_them() {
    let (dir, data) = sqlite_data();
    // An older scheduled backup from the same day: pruned after the next success (keep 1 day).
    ok(run(&mut pier_cli(
        &data,
        None,
        &["backup", "create", "seed.tar.zst"],
    )));
    std::fs::rename(
        archive_path(&data, "seed.tar.zst"),
        archive_path(&data, "@auto_seed.tar.zst"),
    )
    .unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(&data)
        .env("PIER_BACKUPS__CRON", "* * * * *")
        .env("PIER_BACKUPS__KEEP_DAILY", "1")
        .env("PIER_BACKUPS__KEEP_WEEKLY", "0");
    let mut server = crate::helpers::Server::start(cmd);
    // The next minute boundary is at most 60 s away.
    let line = server.wait_for("scheduled backup written", Duration::from_secs(75));
    assert!(line.contains("@auto_pier_backup_"), "{line}");
    server.wait_for("old scheduled backup pruned", Duration::from_secs(5));
    let listed = ok(run(&mut pier_cli(&data, None, &["backup", "list"])));
    let names: Vec<_> = listed
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("@auto_pier_backup_"), "{names:?}");
    ok(run(&mut pier_cli(
        &data,
        None,
        &["backup", "verify", &names[0]],
    )));
    let (status, metrics) = crate::helpers::get(&format!("{}/metrics", server.base_url));
    assert_eq!(status, 200);
    assert!(
        !metrics.contains("pier_backup_last_success_timestamp_seconds 0\n"),
        "{metrics}"
    );
    assert_eq!(server.signal_and_wait("TERM"), Some(0));
}
