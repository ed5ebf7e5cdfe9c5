//! A real S3-compatible server for tests: `s3s-fs` (the s3s project's file-system backend)
//! on 127.0.0.1, port 0, with one bucket, checking every request's SigV4 signature against one
//! access key. It was chosen over moto and s3rver because those accept wrong signatures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "pier-test-access";
pub const SECRET_KEY: &str = "pier-test-secret-0123456789";
pub const BUCKET: &str = "pier-files";

/// A running S3 server; it stops (and closes every connection) when dropped.
pub struct S3Server {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Starts a server over a fresh folder.
    ///
    /// # Panics
    /// When the folder or the port cannot be had.
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("temp dir should be creatable");
        let root = dir.path().to_path_buf();
        let mut s = S3Server::start_at(&root, 0).await;
        s._dir = Some(dir);
        s
    }

    /// Starts a server over `root` (its bucket folder made when missing) on `port`.
    ///
    /// # Panics
    /// When the folder or the port cannot be had.
    pub async fn start_at(root: &Path, port: u16) -> S3Server {
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket folder should be creatable");
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs should open its folder");
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = b.build();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the S3 port should bind");
        let addr = listener.local_addr().expect("a bound address");
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            // Connections live in this set: stopping the server closes them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                conns.spawn(async move {
                    let _ = conn.await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        S3Server {
            addr,
            endpoint: format!("http://{addr}"),
            root: root.to_path_buf(),
            _dir: None,
            task,
        }
    }

    /// The folder that holds the bucket's objects (`<root>/<bucket>/<key>`).
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.join(BUCKET)
    }

    /// pier's configuration flags for this bucket (path style, as self-hosted servers want).
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        vec![
            ("files.s3.enabled", "true".into()),
            ("files.s3.bucket", BUCKET.into()),
            ("files.s3.region", "us-east-1".into()),
            ("files.s3.endpoint", self.endpoint.clone()),
            ("files.s3.access_key", ACCESS_KEY.into()),
            ("files.s3.secret", SECRET_KEY.into()),
            ("files.s3.force_path_style", "true".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
