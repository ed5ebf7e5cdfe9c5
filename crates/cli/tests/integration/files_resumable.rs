//! Resumable uploads (tus 1.0) through the HTTP API, on the local folder and on S3: an upload
//! sent in pieces survives a dropped connection, resumes where it stopped, and is attached to a
//! record with the same checks as a multipart file.

use std::io::Write;
use std::time::Duration;

use pier_testkit::Engine;
use serde_json::{Value, json};

use crate::files::Files;

/// tus 1.0: an upload sent in pieces survives a dropped connection, resumes where it stopped,
/// and is attached to a record with the same checks as a multipart file.
async fn resumable_uploads_resume_and_attach(f: Files) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let c = &f.app.client;
    let opts = c
        .request(reqwest::Method::OPTIONS, f.app.url("/api/files/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(opts.headers()["tus-version"], "1.0.0");
    assert!(
        opts.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("creation")
    );
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let create = |len: usize, field: &str| {
        c.post(f.app.url("/api/files/uploads"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", len.to_string())
            .header(
                "upload-metadata",
                format!(
                    "filename {},collection {},field {}",
                    b64("big video.bin"),
                    b64("docs"),
                    b64(field)
                ),
            )
            .send()
    };
    // Over the field's maxSize: refused before a byte is sent.
    let r = create(5000, "one").await.unwrap();
    assert_eq!(r.status(), 413);
    let r = create(data.len(), "many").await.unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    // The first piece arrives on a connection that drops halfway through its body.
    let mut s = std::net::TcpStream::connect(f.app.addr).unwrap();
    write!(
        s,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 2000000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&data[..1_200_000]).unwrap();
    s.flush().unwrap();
    drop(s);
    let mut offset = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let h = c.head(f.app.url(&location)).send().await.unwrap();
        assert_eq!(h.status(), 200);
        offset = h.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap();
        if offset == 1_200_000 {
            break;
        }
    }
    assert!(
        offset > 0 && offset <= 1_200_000,
        "kept what arrived: {offset}"
    );
    // A wrong offset is a 409; the right one resumes.
    let patch = |at: usize, bytes: Vec<u8>| {
        c.patch(f.app.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", at.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(bytes)
            .send()
    };
    assert_eq!(patch(offset + 1, vec![1]).await.unwrap().status(), 409);
    // Attaching before it is complete is refused.
    let id = location.rsplit('/').next().unwrap().to_owned();
    let early = c
        .post(f.app.url("/api/collections/docs/records"))
        .json(&json!({"@uploads": {"many": [id]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 400);
    assert!(early.text().await.unwrap().contains("is not complete"));
    // The upload is the guest's that created it: another caller cannot attach it.
    let (status, body) = f
        .json(
            "POST",
            "/api/collections/docs/records",
            json!({"@uploads": {"many": [id]}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not for this field"),
        "{body}"
    );
    let r = patch(offset, data[offset..].to_vec()).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["upload-offset"].to_str().unwrap(),
        data.len().to_string()
    );
    let r = c
        .post(f.app.url("/api/collections/docs/records"))
        .json(&json!({"title": "resumed", "@uploads": {"many": [id]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    let name = rec["many"][0].as_str().unwrap();
    assert!(name.starts_with("big_video_"), "{rec}");
    let got = f
        .get(&format!(
            "/api/files/docs/{}/{name}",
            rec["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        got.bytes().await.unwrap().as_ref(),
        data.as_slice(),
        "the same bytes"
    );
    // Attached once: the upload is gone.
    assert_eq!(
        c.head(f.app.url(&location)).send().await.unwrap().status(),
        404
    );
    // A create that names its own id keeps the attached file under that id.
    let r = create(4, "many").await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(f.app.url(&loc))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(b"four".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let upload = loc.rsplit('/').next().unwrap();
    let r = c
        .post(f.app.url("/api/collections/docs/records"))
        .json(&json!({"id": "named0000000001", "@uploads": {"many": upload}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    let got = f
        .get(&format!(
            "/api/files/docs/named0000000001/{}",
            rec["many"][0].as_str().unwrap()
        ))
        .await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"four");
    // Termination.
    let r = create(10, "many").await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        c.delete(f.app.url(&loc))
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(c.head(f.app.url(&loc)).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_uploads_resume_and_attach_on_disk() {
    resumable_uploads_resume_and_attach(Files::start(Engine::Sqlite, false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_uploads_resume_and_attach_on_s3() {
    resumable_uploads_resume_and_attach(Files::start(Engine::Postgres, true).await).await;
}
