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
pub(crate) fn pier_cli(data: &Path, pg: Option<&TestDb>, args: &[&str]) -> Command {
    let mut cmd = pier(data.parent().unwrap_or(data));
    cmd.args(args).arg("--dir").arg(data);
    if let Some(db) = pg {
        cmd.envs(db.env());
    }
    cmd
}

pub(crate) fn ok(out: Outcome) -> Outcome {
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

pub(crate) async fn add_note(client: &reqwest::Client, base: &str, token: &str, i: i64) {
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

pub(crate) fn archive_path(data: &Path, key: &str) -> PathBuf {
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

/// Runs each named `async fn(Engine)` once on SQLite and once on PostgreSQL.
macro_rules! for_each_engine {
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

pub(crate) use for_each_engine;

for_each_engine!(
    round_trip_restores_every_row_and_file,
    backups_taken_while_writes_run_all_verify,
);

/// A SQLite data folder with a database and uploads, made through the binary.
pub(crate) fn sqlite_data() -> (tempfile::TempDir, PathBuf) {
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
