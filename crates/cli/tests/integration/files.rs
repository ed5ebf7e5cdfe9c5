//! Files through the HTTP API, on the local folder and on a real S3 server (`s3s-fs`, which
//! checks signatures), on both engines: uploads land where PocketBase puts them, replaced and
//! removed files are deleted after the commit, refused and broken uploads leave nothing, every
//! image format gets thumbnails in its own format (made once), bombs and corrupt images are not
//! decoded, and a bucket that is down or refuses the key gets a clear error without the secret.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pier_testkit::s3::{S3Server, SECRET_KEY};
use pier_testkit::{Engine, TestApp, spawn_app_with};
use serde_json::{Value, json};

use crate::records::superuser_token;

pub(crate) struct Files {
    pub(crate) app: TestApp,
    pub(crate) token: String,
    /// Where the objects are on disk: the local storage folder or the S3 server's bucket.
    pub(crate) root: PathBuf,
    pub(crate) collection_id: String,
    pub(crate) s3: Option<S3Server>,
}

impl Files {
    pub(crate) async fn start(engine: Engine, s3: bool) -> Files {
        let server = if s3 {
            Some(S3Server::start().await)
        } else {
            None
        };
        let flags = server.as_ref().map(S3Server::flags).unwrap_or_default();
        let app = spawn_app_with(engine, flags).await;
        let root = match &server {
            Some(s) => s.bucket_dir(),
            None => app.dir.path().join("storage"),
        };
        let token = superuser_token(&app).await;
        let mut f = Files {
            app,
            token,
            root,
            collection_id: String::new(),
            s3: server,
        };
        let (status, c) = f
            .json(
                "POST",
                "/api/collections",
                json!({
                    "name": "docs",
                    "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
                    "fields": [
                        {"name": "title", "type": "text"},
                        {"name": "one", "type": "file", "maxSelect": 1, "maxSize": 1000},
                        {"name": "many", "type": "file", "maxSelect": 5, "maxSize": 50_000_000},
                        {"name": "img", "type": "file", "maxSelect": 1, "maxSize": 50_000_000,
                         "mimeTypes": ["image/png", "image/jpeg", "image/gif", "image/webp"],
                         "thumbs": ["40x30", "0x20"]}
                    ]
                }),
            )
            .await;
        assert_eq!(status, 200, "{c}");
        f.collection_id = c["id"].as_str().unwrap().to_owned();
        f
    }

    pub(crate) async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = self
            .app
            .client
            .request(m, self.app.url(path))
            .header("authorization", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn multipart(
        &self,
        method: &str,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = self
            .app
            .client
            .request(m, self.app.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url(path))
            .send()
            .await
            .unwrap()
    }

    /// Every object under the store's root (thumbnails included), as paths relative to it.
    pub(crate) fn objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    pub(crate) fn object(&self, record: &str, name: &str) -> PathBuf {
        self.root.join(&self.collection_id).join(record).join(name)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        // s3s-fs keeps its own bookkeeping beside the objects, in dot files.
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

fn part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned())
}

fn image_bytes(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 3 % 256) as u8,
            (y * 7 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

/// Waits until `f` holds (files are deleted just after the commit, off the request).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn files_live_and_die_with_their_records(f: Files) {
    let form = reqwest::multipart::Form::new()
        .text("title", "hello")
        .part("one", part(b"hello".to_vec(), "notes.txt"))
        .part("many", part(vec![7u8; 12_000_000], "big part.bin"))
        .part("many", part(b"second".to_vec(), "second.txt"));
    let (status, r) = f
        .multipart("POST", "/api/collections/docs/records", form)
        .await;
    assert_eq!(status, 200, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    let one = r["one"].as_str().unwrap().to_owned();
    let big = r["many"][0].as_str().unwrap().to_owned();
    assert!(one.starts_with("notes_") && one.ends_with(".txt"), "{one}");
    assert!(big.starts_with("big_part_"), "{big}");
    // Stored where PocketBase stores them, byte for byte.
    assert_eq!(std::fs::read(f.object(&id, &one)).unwrap(), b"hello");
    assert_eq!(
        std::fs::read(f.object(&id, &big)).unwrap().len(),
        12_000_000
    );
    let url = format!("/api/files/docs/{id}/{big}");
    let res = f.get(&url).await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.bytes().await.unwrap().len(), 12_000_000);
    // The tag of a plain read is the tag conditional and ranged reads compare with.
    let cached = f
        .app
        .client
        .get(f.app.url(&url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let tail = f
        .app
        .client
        .get(f.app.url(&url))
        .header("range", "bytes=11999998-")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.headers()["content-range"],
        "bytes 11999998-11999999/12000000"
    );
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &[7u8, 7]);

    // Replacing `one` deletes the old file after the commit; the other files stay.
    let form = reqwest::multipart::Form::new().part("one", part(b"again".to_vec(), "notes.txt"));
    let (status, u) = f
        .multipart(
            "PATCH",
            &format!("/api/collections/docs/records/{id}"),
            form,
        )
        .await;
    assert_eq!(status, 200, "{u}");
    let old = f.object(&id, &one);
    eventually("the replaced file is deleted", || !old.exists()).await;
    assert!(f.object(&id, &big).exists());
    let new_one = u["one"].as_str().unwrap();
    assert_eq!(std::fs::read(f.object(&id, new_one)).unwrap(), b"again");

    // `many-` through JSON removes one file and deletes it.
    let (status, _) = f
        .json(
            "PATCH",
            &format!("/api/collections/docs/records/{id}"),
            json!({"many-": [big]}),
        )
        .await;
    assert_eq!(status, 200);
    let gone = f.object(&id, &big);
    eventually("the removed file is deleted", || !gone.exists()).await;

    // A refused write leaves no file behind: too large, wrong type, too many.
    let before = f.objects();
    for (field, bytes, name) in [
        ("one", vec![0u8; 1001], "large.txt"),
        ("img", b"not an image".to_vec(), "fake.png"),
    ] {
        let form = reqwest::multipart::Form::new()
            .part("many", part(b"ok".to_vec(), "fine.txt"))
            .part(field, part(bytes, name));
        let (status, body) = f
            .multipart("POST", "/api/collections/docs/records", form)
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["data"][field]["code"].is_string(), "{body}");
    }
    let mut form = reqwest::multipart::Form::new();
    for i in 0..6 {
        form = form.part("many", part(vec![b'x'; 10], &format!("f{i}.txt")));
    }
    let (status, body) = f
        .multipart("POST", "/api/collections/docs/records", form)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["many"]["code"], "validation_too_many_files");
    assert_eq!(f.objects(), before, "refused uploads left files behind");

    // Deleting the record deletes every one of its files (and thumbnails).
    let res = f
        .app
        .client
        .delete(f.app.url(&format!("/api/collections/docs/records/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    eventually("the record's files are deleted", || {
        !f.objects().iter().any(|o| o.contains(&id))
    })
    .await;
    assert_eq!(
        f.get(&format!("/api/files/docs/{id}/{new_one}"))
            .await
            .status(),
        404
    );
}

async fn thumbnails_keep_the_format_and_are_made_once(f: Files) {
    use image::ImageFormat as F;
    for (format, ext, mime) in [
        (F::Png, "png", "image/png"),
        (F::Jpeg, "jpg", "image/jpeg"),
        (F::Gif, "gif", "image/gif"),
        (F::WebP, "webp", "image/webp"),
    ] {
        let src = image_bytes(format, 160, 90);
        let form =
            reqwest::multipart::Form::new().part("img", part(src.clone(), &format!("pic.{ext}")));
        let (status, r) = f
            .multipart("POST", "/api/collections/docs/records", form)
            .await;
        assert_eq!(status, 200, "{ext}: {r}");
        let (id, name) = (
            r["id"].as_str().unwrap().to_owned(),
            r["img"].as_str().unwrap().to_owned(),
        );
        // 16 clients at once ask for the same new thumbnail.
        let url = f
            .app
            .url(&format!("/api/files/docs/{id}/{name}?thumb=40x30"));
        let mut asks = Vec::new();
        for _ in 0..16 {
            let (c, u) = (f.app.client.clone(), url.clone());
            asks.push(tokio::spawn(async move {
                let r = c.get(u).send().await.unwrap();
                assert_eq!(r.status(), 200);
                (
                    r.headers()["content-type"].to_str().unwrap().to_owned(),
                    r.bytes().await.unwrap(),
                )
            }));
        }
        let mut bodies = Vec::new();
        for a in asks {
            bodies.push(a.await.unwrap());
        }
        assert!(
            bodies.iter().all(|b| b == &bodies[0]),
            "{ext}: every client got the same thumbnail"
        );
        assert_eq!(
            bodies[0].0, mime,
            "{ext}: the thumbnail keeps its source's type"
        );
        let thumb = image::load_from_memory(&bodies[0].1).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (40, 30), "{ext}");
        assert_eq!(image::guess_format(&bodies[0].1).unwrap(), format, "{ext}");
        let thumbs: Vec<String> = f
            .objects()
            .into_iter()
            .filter(|o| o.contains(&format!("thumbs_{name}")))
            .collect();
        assert_eq!(thumbs.len(), 1, "{ext}: made once: {thumbs:?}");
        let tall = f
            .get(&format!("/api/files/docs/{id}/{name}?thumb=0x20"))
            .await;
        let tall = image::load_from_memory(&tall.bytes().await.unwrap()).unwrap();
        assert_eq!((tall.width(), tall.height()), (36, 20), "{ext}");
        // An undeclared size serves the original.
        let other = f
            .get(&format!("/api/files/docs/{id}/{name}?thumb=10x10"))
            .await;
        assert_eq!(other.bytes().await.unwrap(), src, "{ext}");
    }
}

/// A PNG whose header claims `w` x `h` pixels, with a tiny body.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut src = image_bytes(image::ImageFormat::Png, 4, 4);
    src[16..20].copy_from_slice(&w.to_be_bytes());
    src[20..24].copy_from_slice(&h.to_be_bytes());
    // Fix the IHDR checksum so that only the size is a lie.
    let crc = crc32(&src[12..29]);
    src[29..33].copy_from_slice(&crc.to_be_bytes());
    src
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

async fn bombs_and_corrupt_images_are_served_as_they_are(f: Files) {
    let bomb = png_claiming(60_000, 60_000);
    let mut corrupt = image_bytes(image::ImageFormat::Jpeg, 64, 64);
    corrupt.truncate(200);
    corrupt.extend_from_slice(&[0x42; 300]);
    for (bytes, name) in [(bomb, "bomb.png"), (corrupt, "broken.jpg")] {
        let form = reqwest::multipart::Form::new().part("img", part(bytes.clone(), name));
        let (status, r) = f
            .multipart("POST", "/api/collections/docs/records", form)
            .await;
        assert_eq!(
            status, 200,
            "{name}: an image file is accepted as a file: {r}"
        );
        let (id, stored) = (r["id"].as_str().unwrap(), r["img"].as_str().unwrap());
        let t = Instant::now();
        let res = f
            .get(&format!("/api/files/docs/{id}/{stored}?thumb=40x30"))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.bytes().await.unwrap(),
            bytes,
            "{name}: the original is served"
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{name}: refused at once, not decoded"
        );
        assert!(
            !f.objects().iter().any(|o| o.contains("thumbs_")),
            "{name}: no thumbnail"
        );
    }
}

/// A client that sends half a multipart body and hangs up leaves no file and no record.
async fn a_client_that_stops_mid_upload_leaves_nothing(f: Files) {
    let before = f.objects();
    let boundary = "XyZbOuNdArY";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"many\"; filename=\"half.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let mut s = std::net::TcpStream::connect(f.app.addr).unwrap();
    write!(
        s,
        "POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 20000000\r\n\r\n{head}"
    )
    .unwrap();
    s.write_all(&vec![9u8; 6_000_000]).unwrap();
    s.flush().unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.objects(), before, "a broken upload left files behind");
    let (_, list) = f
        .json("GET", "/api/collections/docs/records", Value::Null)
        .await;
    assert_eq!(list["totalItems"], 0, "{list}");

    // A body cut short (the request is complete but the multipart is not) is a 400.
    let body = format!("{head}partial");
    let mut s = std::net::TcpStream::connect(f.app.addr).unwrap();
    write!(
        s,
        "POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"status\":400"), "{answer}");
    assert_eq!(f.objects(), before);
}

mod on_sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_live_and_die_with_their_records_on_disk() {
        files_live_and_die_with_their_records(Files::start(Engine::Sqlite, false).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_live_and_die_with_their_records_on_s3() {
        files_live_and_die_with_their_records(Files::start(Engine::Sqlite, true).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thumbnails_keep_the_format_and_are_made_once_on_disk() {
        thumbnails_keep_the_format_and_are_made_once(Files::start(Engine::Sqlite, false).await)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thumbnails_keep_the_format_and_are_made_once_on_s3() {
        thumbnails_keep_the_format_and_are_made_once(Files::start(Engine::Sqlite, true).await)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bombs_and_corrupt_images_are_served_as_they_are() {
        super::bombs_and_corrupt_images_are_served_as_they_are(
            Files::start(Engine::Sqlite, false).await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_mid_upload_leaves_nothing_on_disk() {
        a_client_that_stops_mid_upload_leaves_nothing(Files::start(Engine::Sqlite, false).await)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_mid_upload_leaves_nothing_on_s3() {
        a_client_that_stops_mid_upload_leaves_nothing(Files::start(Engine::Sqlite, true).await)
            .await;
    }
}

mod on_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_live_and_die_with_their_records_on_disk() {
        files_live_and_die_with_their_records(Files::start(Engine::Postgres, false).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_live_and_die_with_their_records_on_s3() {
        files_live_and_die_with_their_records(Files::start(Engine::Postgres, true).await).await;
    }
}

/// A bucket that refuses pier's key, or that is down: a clear 400 naming the problem (never
/// the secret), no record, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_or_absent_bucket_gets_a_clear_error() {
    let s3 = S3Server::start().await;
    let mut flags = s3.flags();
    for (k, v) in &mut flags {
        if *k == "files.s3.secret" {
            *v = "a-wrong-secret-value".into();
        }
    }
    let app = spawn_app_with(Engine::Sqlite, flags).await;
    let token = superuser_token(&app).await;
    let res = app
        .client
        .post(app.url("/api/collections"))
        .header("authorization", &token)
        .json(&json!({"name": "docs", "createRule": "", "listRule": "",
            "fields": [{"name": "one", "type": "file", "maxSelect": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let upload = |app: &TestApp| {
        let form = reqwest::multipart::Form::new().part("one", part(b"hello".to_vec(), "a.txt"));
        app.client
            .post(app.url("/api/collections/docs/records"))
            .multipart(form)
            .send()
    };
    let res = upload(&app).await.unwrap();
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.contains("file storage is not available"), "{body}");
    assert!(
        !body.contains("a-wrong-secret-value") && !body.contains(SECRET_KEY),
        "{body}"
    );
    let objects: Vec<_> = std::fs::read_dir(s3.bucket_dir()).unwrap().collect();
    assert!(objects.is_empty(), "nothing stored with a refused key");
    let res = app
        .client
        .get(app.url("/api/collections/docs/records"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["totalItems"], 0);

    // The server goes away.
    drop(s3);
    let res = upload(&app).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("file storage is not available")
    );
}

/// Two backends on one PostgreSQL database and one bucket: a file uploaded through one is
/// served, thumbnailed and deleted through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_sharing_postgres_and_s3_share_files() {
    let a = Files::start(Engine::Postgres, true).await;
    let s3 = a.s3.as_ref().unwrap();
    let mut flags = s3.flags();
    flags.extend(a.app.database_flags());
    let b = spawn_app_with(Engine::Sqlite, flags).await;
    let src = image_bytes(image::ImageFormat::Png, 80, 60);
    let form = reqwest::multipart::Form::new().part("img", part(src.clone(), "shared.png"));
    let (status, r) = a
        .multipart("POST", "/api/collections/docs/records", form)
        .await;
    assert_eq!(status, 200, "{r}");
    let (id, name) = (r["id"].as_str().unwrap(), r["img"].as_str().unwrap());
    let got = b
        .client
        .get(b.url(&format!("/api/files/docs/{id}/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), src);
    let thumb = b
        .client
        .get(b.url(&format!("/api/files/docs/{id}/{name}?thumb=40x30")))
        .send()
        .await
        .unwrap();
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (40, 30));
    let res = b
        .client
        .delete(b.url(&format!("/api/collections/docs/records/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    eventually("the other backend deleted the files", || {
        !a.objects().iter().any(|o| o.contains(id))
    })
    .await;
    let gone = a.get(&format!("/api/files/docs/{id}/{name}")).await;
    assert_eq!(gone.status(), 404);
}

/// `GET /api/settings` reports the bucket (never the secret); `POST /api/settings/test/s3`
/// round-trips an object through it; the local folder answers PocketBase's "not enabled".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_report_and_test_the_bucket() {
    let f = Files::start(Engine::Sqlite, true).await;
    let (status, settings) = f.json("GET", "/api/settings", Value::Null).await;
    assert_eq!(status, 200);
    let s3 = &settings["s3"];
    assert_eq!(s3["enabled"], true, "{settings}");
    assert_eq!(s3["bucket"], pier_testkit::s3::BUCKET);
    assert_eq!(s3["forcePathStyle"], true);
    assert!(!settings.to_string().contains(SECRET_KEY));
    let (status, _) = f.json("PATCH", "/api/settings", json!({"s3": s3})).await;
    assert_eq!(
        status, 200,
        "sending the section back unchanged is accepted"
    );
    let (status, body) = f
        .json("PATCH", "/api/settings", json!({"s3": {"bucket": "other"}}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["data"]["s3"].to_string().contains("pier.toml"),
        "{body}"
    );
    let before = f.objects();
    let (status, body) = f
        .json(
            "POST",
            "/api/settings/test/s3",
            json!({"filesystem": "storage"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(f.objects(), before, "the test object is deleted");
    let (status, body) = f
        .json("POST", "/api/settings/test/s3", json!({"filesystem": "x"}))
        .await;
    assert_eq!(
        (status, &body["data"]["filesystem"]["code"]),
        (400, &json!("validation_in_invalid"))
    );

    let local = Files::start(Engine::Sqlite, false).await;
    let (status, body) = local
        .json(
            "POST",
            "/api/settings/test/s3",
            json!({"filesystem": "storage"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Failed to test the S3 filesystem. Raw error: \nS3 storage filesystem is not enabled."
    );
}
