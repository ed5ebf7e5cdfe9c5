use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The built `pier` binary, run in `dir` with a clean environment (no ambient PIER_*/DB_*).
pub(crate) fn pier(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
    c.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        c.env("PATH", path);
    }
    c
}

/// `pier gateway` on port 0 in `dir`, in front of `upstreams` (more flags may follow).
pub(crate) fn gateway(dir: &Path, upstreams: &[&str]) -> Command {
    let mut c = pier(dir);
    c.args(["gateway", "--http", "127.0.0.1:0"]);
    for u in upstreams {
        c.args(["--upstream", u]);
    }
    c
}

/// Output of a finished command, as text.
pub(crate) struct Outcome {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(cmd: &mut Command) -> Outcome {
    let out = cmd.output().expect("pier should run");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `pier serve` child whose output lines are collected.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
    pub(crate) seen: Vec<String>,
    pub(crate) base_url: String,
}

impl Server {
    /// Starts `cmd` (which must bind port 0) and waits for its `listening on` line.
    pub(crate) fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pier should start");
        let (tx, rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut s = Server {
            child,
            lines: rx,
            seen: Vec::new(),
            base_url: String::new(),
        };
        let line = s.wait_for("listening on http://", Duration::from_secs(20));
        let url = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(|c: char| c == '"' || c.is_whitespace()).next())
            .expect("the listening line should carry the URL")
            .to_owned();
        s.base_url = url;
        s
    }

    /// Waits for an output line containing `needle`; panics with everything seen on timeout.
    pub(crate) fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no output line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends a signal and waits for the exit code.
    pub(crate) fn signal_and_wait(&mut self, signal: &str) -> Option<i32> {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Drain what is left to read.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "pier did not exit after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET, returning status and body.
pub(crate) fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let res = reqwest::get(url).await.unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    })
}

/// A blocking JSON request: status and body (`null` when the body is not JSON).
pub(crate) fn send(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    })
}
