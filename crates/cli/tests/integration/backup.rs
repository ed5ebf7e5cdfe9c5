//! Backups and restores through the built binary, against real SQLite files and a real
//! PostgreSQL server with the system's `pg_dump`/`pg_restore`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pier_config::{Config, Flag, Role};
use pier_storage::Store;
use pier_testkit::{Engine, TestApp, TestDb, spawn_app_with};
use serde_json::{Value as Json, json};

use crate::helpers::{Outcome, pier, run};
use crate::records::superuser_token;

/// `pier <args> --dir <data>` pointed at `pg` when given.
fn pier_cli(data: &Path, pg: Option<&TestDb>, args: &[&str]) -> Command {
    let mut cmd = pier(data.parent().unwrap_or(data));
    cmd.args(args).arg("--dir").arg(data);
    if let Some(db) = pg {
        cmd.envs(db.env());
    }
    cmd
}

fn ok(out: Outcome) -> Outcome {
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    out
}

async fn create_notes(app: &TestApp, token: &str) {
    let res = app
        .client
        .post(app.url("/api/collections"))
        .header("authorization", token)
        .json(&json!({
            "name": "notes",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "meta", "type": "json"}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

async fn add_note(client: &reqwest::Client, base: &str, token: &str, i: i64) {
    let res = client
        .post(format!("{base}/api/collections/notes/records"))
        .header("authorization", token)
        .json(&json!({"title": format!("note {i} é ✓"), "n": i, "meta": {"i": i, "tags": ["a", "b"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// Every row of every table, each rendered as text and sorted, by table name.
async fn all_rows(store: &Store) -> BTreeMap<String, Vec<String>> {
    let list = match store.dialect() {
        pier_storage::Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        pier_storage::Dialect::Postgres => {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()"
        }
    };
    let mut out = BTreeMap::new();
    for row in store.query(list, Vec::new()).await.unwrap().iter() {
        let table = row[0].as_str().unwrap().to_owned();
        let rows = store
            .query(format!("SELECT * FROM \"{table}\""), Vec::new())
            .await
            .unwrap();
        let mut rendered: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
        rendered.sort();
        out.insert(table, rendered);
    }
    out
}

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn write_uploads(storage: &Path) {
    std::fs::create_dir_all(storage.join("coll1/rec1")).unwrap();
    std::fs::write(
        storage.join("coll1/rec1/photo.bin"),
        (0..=255u8).cycle().take(300_000).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(storage.join("coll1/rec1/notes.txt"), "hello").unwrap();
    std::fs::write(storage.join("top.txt"), "").unwrap();
}

async fn open_store(data: &Path, pg: Option<&TestDb>) -> Store {
    let mut flags = vec![Flag {
        key: "paths.data_dir",
        value: data.display().to_string(),
        name: "test",
    }];
    if let Some(db) = pg {
        for (key, value) in [
            ("database.host", db.host.clone()),
            ("database.port", db.port.to_string()),
            ("database.name", db.name.clone()),
            ("database.user", db.user.clone()),
        ] {
            flags.push(Flag {
                key,
                value,
                name: "test",
            });
        }
    }
    let config = Config::from_flags(Role::Tool, flags).unwrap();
    Store::open(&config.database).await.unwrap()
}

fn archive_path(data: &Path, key: &str) -> PathBuf {
    data.join("backups").join(key)
}

async fn round_trip_restores_every_row_and_file(engine: Engine) {
    // Arrange: records, files, and a running pier.
    let app = spawn_app_with(engine, Vec::new()).await;
    let data = app.dir.path().to_owned();
    let token = superuser_token(&app).await;
    create_notes(&app, &token).await;
    for i in 0..25 {
        add_note(&app.client, &app.base_url, &token, i).await;
    }
    write_uploads(&data.join("storage"));

    // Act: a backup while pier runs.
    let pg = app.pg.clone();
    let out = ok(run(&mut pier_cli(
        &data,
        pg.as_ref(),
        &["backup", "create", "rt.tar.zst"],
    )));
    assert_eq!(out.stdout.trim(), "rt.tar.zst");
    let listed = ok(run(&mut pier_cli(&data, pg.as_ref(), &["backup", "list"])));
    assert!(
        listed.stdout.starts_with("rt.tar.zst\t"),
        "{}",
        listed.stdout
    );

    // A restore over the running pier's data is refused, and changes nothing.
    let refused = run(&mut pier_cli(
        &data,
        pg.as_ref(),
        &["restore", "rt.tar.zst"],
    ));
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("refusing to restore"),
        "{}",
        refused.stderr
    );

    let expected_rows = all_rows(&app.store).await;
    assert_eq!(expected_rows["notes"].len(), 25);
    let expected_files = files_under(&data.join("storage"));
    assert_eq!(expected_files.len(), 3);
    // The app's folder goes away with it: keep the archive elsewhere.
    let fresh = tempfile::tempdir().unwrap();
    let archive = fresh.path().join("rt.tar.zst");
    std::fs::copy(archive_path(&data, "rt.tar.zst"), &archive).unwrap();
    app.stop().await;

    // Restore into a fresh place.
    let fresh_data = fresh.path().join("data");
    let fresh_pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(pier_pgtest::database().await),
    };
    let out = ok(run(&mut pier_cli(
        &fresh_data,
        fresh_pg.as_ref(),
        &["restore", archive.to_str().unwrap()],
    )));
    assert!(out.stdout.contains("restored"), "{}", out.stdout);

    // Assert: every row and every file, byte for byte.
    let store = open_store(&fresh_data, fresh_pg.as_ref()).await;
    assert_eq!(all_rows(&store).await, expected_rows);
    assert_eq!(files_under(&fresh_data.join("storage")), expected_files);

    // Restoring over changed data replaces it all: rows, extra tables and files.
    store
        .execute("DELETE FROM notes", Vec::new())
        .await
        .unwrap();
    store
        .execute("CREATE TABLE stray (x INTEGER)", Vec::new())
        .await
        .unwrap();
    store.close().await;
    drop(store);
    std::fs::write(fresh_data.join("storage/stray.txt"), "x").unwrap();
    std::fs::remove_file(fresh_data.join("storage/top.txt")).unwrap();
    ok(run(&mut pier_cli(
        &fresh_data,
        fresh_pg.as_ref(),
        &["restore", archive.to_str().unwrap()],
    )));
    let store = open_store(&fresh_data, fresh_pg.as_ref()).await;
    assert_eq!(all_rows(&store).await, expected_rows);
    store.close().await;
    assert_eq!(files_under(&fresh_data.join("storage")), expected_files);
    let verify = ok(run(&mut pier_cli(
        &fresh_data,
        fresh_pg.as_ref(),
        &["backup", "verify", archive.to_str().unwrap()],
    )));
    assert!(
        verify.stdout.contains("row counts match"),
        "{}",
        verify.stdout
    );
}

async fn backups_taken_while_writes_run_all_verify(engine: Engine) {
    let app = spawn_app_with(engine, Vec::new()).await;
    let data = app.dir.path().to_owned();
    let token = superuser_token(&app).await;
    create_notes(&app, &token).await;
    let pg = app.pg.clone();

    // Writers insert records without pause for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2i64 {
        let (client, base, token, stop) = (
            app.client.clone(),
            app.base_url.clone(),
            token.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = w * 1_000_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                add_note(&client, &base, &token, i).await;
                i += 1;
            }
        }));
    }
    let mut names = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let name = format!("busy{i}.tar.zst");
        let (d, p, n) = (data.clone(), pg.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            ok(run(&mut pier_cli(
                &d,
                p.as_ref(),
                &["backup", "create", &n],
            )))
        })
        .await
        .unwrap();
        names.push(name);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // Every archive passes verify, and the archives saw different numbers of records (the
    // writes really ran across the backups).
    let mut counts = Vec::new();
    for name in &names {
        let (d, p, n) = (data.clone(), pg.clone(), name.clone());
        let out = tokio::task::spawn_blocking(move || {
            ok(run(&mut pier_cli(
                &d,
                p.as_ref(),
                &["backup", "verify", &n],
            )))
        })
        .await
        .unwrap();
        assert!(out.stdout.contains("row counts match"), "{}", out.stdout);
        counts.push(notes_in_manifest(&archive_path(&data, name)));
    }
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "counts: {counts:?}");
    app.stop().await;
}

/// The `notes` count recorded in an archive's manifest.
fn notes_in_manifest(archive: &Path) -> u64 {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(zstd::Decoder::new(file).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let manifest: Json = serde_json::from_reader(&mut entry).unwrap();
            return manifest["tables"]["notes"].as_u64().unwrap();
        }
    }
    panic!("no manifest in {}", archive.display());
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(pier_testkit::Engine::Sqlite).await }
        )* }
        mod on_postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(pier_testkit::Engine::Postgres).await }
        )* }
    };
}

on_both_engines!(
    round_trip_restores_every_row_and_file,
    backups_taken_while_writes_run_all_verify,
    the_backups_api_answers_superusers_only_as_pocketbase_does,
);

/// A SQLite data folder with a database and uploads, made through the binary.
fn sqlite_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(run(&mut pier_cli(
        &data,
        None,
        &["superuser", "upsert", "a@example.com", "password123"],
    )));
    write_uploads(&data.join("storage"));
    (dir, data)
}

#[test]
fn corrupted_archives_are_refused_by_verify_and_restore() {
    let (_dir, data) = sqlite_data();
    ok(run(&mut pier_cli(
        &data,
        None,
        &["backup", "create", "good.tar.zst"],
    )));
    let good = std::fs::read(archive_path(&data, "good.tar.zst")).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(archive_path(&data, "flipped.tar.zst"), &flipped).unwrap();
    std::fs::write(
        archive_path(&data, "truncated.tar.zst"),
        &good[..good.len() - 100],
    )
    .unwrap();
    let db_before = std::fs::read(data.join("data.db")).unwrap();
    // Something that is not a backup at all.
    std::fs::write(archive_path(&data, "junk.tar.zst"), b"not an archive").unwrap();

    for name in ["flipped.tar.zst", "truncated.tar.zst", "junk.tar.zst"] {
        let verify = run(&mut pier_cli(&data, None, &["backup", "verify", name]));
        assert_ne!(verify.code, Some(0), "{name}");
        assert!(
            verify
                .stderr
                .contains(&format!("error: backup `{name}` is damaged: ")),
            "{name}: {}",
            verify.stderr
        );
        let restore = run(&mut pier_cli(&data, None, &["restore", name]));
        assert_ne!(restore.code, Some(0), "{name}");
        assert!(
            restore
                .stderr
                .contains(&format!("backup `{name}` is damaged")),
            "{name}: {}",
            restore.stderr
        );
    }
    // Nothing was touched, and nothing was left behind.
    assert_eq!(std::fs::read(data.join("data.db")).unwrap(), db_before);
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .chain(std::fs::read_dir(data.join("backups")).unwrap())
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.contains("pier-restore") || n.contains("pier-old") || n.starts_with(".pier-tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The good archive still verifies and restores.
    ok(run(&mut pier_cli(
        &data,
        None,
        &["backup", "verify", "good.tar.zst"],
    )));
    ok(run(&mut pier_cli(
        &data,
        None,
        &["restore", "good.tar.zst"],
    )));
}

#[test]
fn a_backup_killed_midway_is_never_listed_and_the_next_one_works() {
    let (_dir, data) = sqlite_data();
    // Enough incompressible uploads that the archive takes a while to write.
    let big = data.join("storage/big");
    std::fs::create_dir_all(&big).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for f in 0..48 {
        let mut bytes = Vec::with_capacity(2 << 20);
        while bytes.len() < 2 << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        std::fs::write(big.join(format!("{f}.bin")), bytes).unwrap();
    }
    let backups = data.join("backups");
    let mut child = pier_cli(&data, None, &["backup", "create"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the archive is being written, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let partial = std::fs::read_dir(&backups).ok().and_then(|entries| {
            entries.flatten().find_map(|e| {
                let archive = e.path().join("archive");
                (e.file_name().to_string_lossy().starts_with(".pier-tmp-")
                    && std::fs::metadata(&archive).is_ok_and(|m| m.len() > 0))
                .then_some(archive)
            })
        });
        if partial.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no partial archive appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        None,
        "the backup finished before it was killed"
    );

    let listed = ok(run(&mut pier_cli(&data, None, &["backup", "list"])));
    assert_eq!(listed.stdout, "", "a partial archive was listed");
    assert!(
        std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".pier-tmp-")),
        "the killed backup should have left its scratch folder"
    );

    // The next backup works, and cleans up the dead one's scratch folder.
    let made = ok(run(&mut pier_cli(&data, None, &["backup", "create"])));
    let key = made.stdout.trim().to_owned();
    let listed = ok(run(&mut pier_cli(&data, None, &["backup", "list"])));
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
    assert!(listed.stdout.starts_with(&format!("{key}\t")));
    let names: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![key.clone()]);
    ok(run(&mut pier_cli(&data, None, &["backup", "verify", &key])));
}

#[test]
fn prune_keeps_manual_backups_and_the_newest_scheduled_ones() {
    let (_dir, data) = sqlite_data();
    ok(run(&mut pier_cli(
        &data,
        None,
        &["backup", "create", "manual.tar.zst"],
    )));
    let manual = std::fs::read(archive_path(&data, "manual.tar.zst")).unwrap();
    // Scheduled archives from three different days (their modification times set back).
    for (name, days_ago) in [("a", 3u64), ("b", 2), ("c", 1)] {
        let path = archive_path(&data, &format!("@auto_{name}.tar.zst"));
        std::fs::write(&path, &manual).unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let out = ok(run(&mut pier_cli(
        &data,
        None,
        &["backup", "prune", "--keep-daily", "2", "--keep-weekly", "0"],
    )));
    assert_eq!(out.stdout.trim(), "deleted @auto_a.tar.zst");
    let listed = ok(run(&mut pier_cli(&data, None, &["backup", "list"])));
    let names: Vec<_> = listed
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["manual.tar.zst", "@auto_c.tar.zst", "@auto_b.tar.zst"]
    );
}

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
