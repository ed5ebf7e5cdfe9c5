//! A PostgreSQL fixture for tests.
//!
//! [`database`] returns a fresh, empty database for one test. The server is the one named by
//! `PIER_TEST_DATABASE_URL` when that is set (any role allowed to `CREATE DATABASE`); otherwise
//! a throwaway cluster is started once per test process from the system's PostgreSQL binaries
//! (as the `postgres` user when running as root), listening only on a Unix socket in a temporary
//! folder. The cluster stops and its folder is removed when the test process exits: a small shell
//! watchdog holds a pipe from this process and shuts the server down when the pipe closes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Connection parameters of one test database.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Host name, or the socket folder (starting with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// The database made for this test.
    pub name: String,
}

impl TestDb {
    /// A `postgres://` URL for this database (a socket folder is percent-encoded as the host).
    pub fn url(&self) -> String {
        let host = self.host.replace('/', "%2F");
        let auth = match &self.password {
            Some(p) => format!("{}:{}", encode(&self.user), encode(p)),
            None => encode(&self.user),
        };
        format!("postgres://{auth}@{host}:{}/{}", self.port, self.name)
    }

    /// The template's variables for this database (`DB_HOST`, `DB_PORT`, …).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("DB_HOST".to_owned(), self.host.clone()),
            ("DB_PORT".to_owned(), self.port.to_string()),
            ("DB_NAME".to_owned(), self.name.clone()),
            ("DB_USER".to_owned(), self.user.clone()),
        ];
        if let Some(p) = &self.password {
            v.push(("DB_PASSWORD".to_owned(), p.clone()));
        }
        v
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Server {
    base: TestDb,
    /// Keeps the watchdog's stdin open for the life of the process.
    _watchdog: Option<Child>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// Creates a fresh database for one test.
///
/// # Panics
/// When no PostgreSQL server can be started or reached; the message says why.
pub async fn database() -> TestDb {
    let server = SERVER
        .get_or_init(start_server)
        .as_ref()
        .unwrap_or_else(|e| panic!("PostgreSQL test server unavailable: {e}"));
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "pier_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin = TestDb {
        name: "postgres".into(),
        ..server.base.clone()
    };
    let client = connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the PostgreSQL test server: {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE failed: {e}"));
    TestDb {
        name,
        ..server.base.clone()
    }
}

/// Opens a plain client to `db` (for assertions made behind pier's back).
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect(db: &TestDb) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&db.host)
        .port(db.port)
        .user(&db.user)
        .dbname(&db.name)
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &db.password {
        cfg.password(p);
    }
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn start_server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("PIER_TEST_DATABASE_URL") {
        return from_url(&url).map(|base| Server {
            base,
            _watchdog: None,
        });
    }
    start_cluster()
}

fn from_url(url: &str) -> Result<TestDb, String> {
    let cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("PIER_TEST_DATABASE_URL is not a valid URL: {e}"))?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    Ok(TestDb {
        host,
        port: cfg.get_ports().first().copied().unwrap_or(5432),
        user: cfg.get_user().unwrap_or("postgres").to_owned(),
        password: cfg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        name: "postgres".into(),
    })
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (no /usr/lib/postgresql); install the `postgresql` package or set PIER_TEST_DATABASE_URL".to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| "no initdb found under /usr/lib/postgresql".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn start_cluster() -> Result<Server, String> {
    let bin = bin_dir()?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("pier-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let data = dir.join("data");
    let as_pg = |program: &Path| -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if root {
        let st = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown failed: {e}"))?;
        if !st.success() {
            return Err("chown of the cluster folder to `postgres` failed".into());
        }
    }
    let out = as_pg(&bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "-D",
        ])
        .arg(&data)
        .output()
        .map_err(|e| format!("initdb could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The watchdog: start postgres, wait for our pipe to close, then stop it and clean up.
    let runner = if root { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "{runner}'{bin}/postgres' -D '{data}' -k '{dir}' -c listen_addresses='' -F \
         -c max_connections=400 -c shared_buffers=32MB </dev/null >'{dir}/log' 2>&1 &
         pid=$!
         echo started
         read _
         kill -INT $(head -n 1 '{data}/postmaster.pid') 2>/dev/null
         wait $pid
         rm -rf '{dir}'",
        bin = bin.display(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the watchdog shell: {e}"))?;
    if let Some(out) = child.stdout.take() {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let base = TestDb {
        host: dir.display().to_string(),
        port: 5432,
        user: "postgres".into(),
        password: None,
        name: "postgres".into(),
    };
    let socket = dir.join(".s.PGSQL.5432");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start within 30 s: {log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The socket appears slightly before connections are accepted.
    std::thread::sleep(Duration::from_millis(100));
    Ok(Server {
        base,
        _watchdog: Some(child),
    })
}
