//! Start the real application for a test: a configuration built in code (never from the ambient
//! environment), a fresh temporary data folder, a listener bound to 127.0.0.1:0 before the
//! server task starts (so no sleeping or polling), and a stop handle.

use std::net::SocketAddr;

use pier_config::{Config, Flag, Role};
use pier_server::Application;
use pier_storage::Store;
use tokio::sync::oneshot;

pub mod s3;

pub use pier_pgtest::TestDb;

/// Which database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A running pier.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    /// The application's own records engine: its events are the API's.
    pub engine: std::sync::Arc<pier_records::Engine>,
    /// The data folder; removed when the app is dropped.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, for PostgreSQL apps.
    pub pg: Option<TestDb>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), pier_server::StartError>>>,
}

impl TestApp {
    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops the server gracefully and waits for it.
    ///
    /// # Panics
    /// When the server ended with an error.
    /// The flags that point another app at this app's PostgreSQL database (empty on SQLite).
    pub fn database_flags(&self) -> Vec<(&'static str, String)> {
        let Some(db) = &self.pg else {
            return Vec::new();
        };
        let mut flags = vec![
            ("database.host", db.host.clone()),
            ("database.port", db.port.to_string()),
            ("database.name", db.name.clone()),
            ("database.user", db.user.clone()),
        ];
        if let Some(p) = &db.password {
            flags.push(("database.password", p.clone()));
        }
        flags
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task should not panic")
                .expect("server should stop cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts pier on SQLite with default settings.
///
/// # Panics
/// When the application cannot start.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Engine::Sqlite, Vec::new()).await
}

/// Starts pier on the given engine with extra configuration flags (key, value).
///
/// # Panics
/// When the application cannot start.
pub async fn spawn_app_with(engine: Engine, extra: Vec<(&'static str, String)>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir should be creatable");
    let mut flags = vec![
        flag("http.addr", "127.0.0.1:0".into()),
        flag("paths.data_dir", dir.path().display().to_string()),
        flag("log.requests", "false".into()),
        // No scheduled backups unless a test asks for them.
        flag("backups.cron", String::new()),
    ];
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => {
            let db = pier_pgtest::database().await;
            flags.push(flag("database.host", db.host.clone()));
            flags.push(flag("database.port", db.port.to_string()));
            flags.push(flag("database.name", db.name.clone()));
            flags.push(flag("database.user", db.user.clone()));
            if let Some(p) = &db.password {
                flags.push(flag("database.password", p.clone()));
            }
            Some(db)
        }
    };
    flags.extend(extra.into_iter().map(|(k, v)| flag(k, v)));
    let config = Config::from_flags(Role::Serve, flags).expect("test config should be valid");
    config
        .prepare_folders()
        .expect("test folders should be usable");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port 0 should bind");
    let app = Application::build_with_listener(config, listener)
        .await
        .expect("app should build");
    let addr = app.addr();
    let store = app.store();
    let engine = app.engine().await.expect("the records engine should start");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        engine,
        dir,
        pg,
        stop: Some(stop),
        task: Some(task),
    }
}

fn flag(key: &'static str, value: String) -> Flag {
    Flag {
        key,
        value,
        name: "test",
    }
}
