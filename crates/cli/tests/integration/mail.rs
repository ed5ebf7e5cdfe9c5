//! Mail through a real SMTP server (aiosmtpd, which offers and requires STARTTLS when given a
//! certificate): a verification mail delivered over STARTTLS to a server whose certificate the
//! configured `smtp.ca_file` vouches for, its link confirming the account; the same server
//! refused when its certificate is not trusted (the test email reports why, queued mails are
//! retried and counted, nothing is delivered); and, with no server configured, every mail
//! printed to the log with its link, the SMTP password never printed anywhere.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::backup::{ok, pier_cli};
use crate::helpers::{Server, pier, run};

const SU: (&str, &str) = ("admin@example.com", "AdminPass123!");

/// The Python that has aiosmtpd (Debian's python3-aiosmtpd is for the system Python).
fn python() -> &'static str {
    for py in ["/usr/bin/python3", "python3"] {
        let has = Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if has {
            return py;
        }
    }
    panic!(
        "these tests need aiosmtpd (apt-get install python3-aiosmtpd; scripts/test installs it)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An aiosmtpd process storing mail in `<dir>/maildir/new`.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> Smtp {
        let maildir = dir.join("maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(&maildir);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    fn mails(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }

    async fn wait_for_mail(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(m) = self.mails().pop() {
                return m;
            }
            assert!(Instant::now() < deadline, "no mail arrived");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A self-signed certificate for 127.0.0.1 (and localhost), marked as no authority (a
/// certificate that is both is refused as a server's).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    (cert, key)
}

async fn call(method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `pier serve` with a superuser and the given environment; the base URL and a superuser token.
async fn serve(dir: &Path, env: &[(&str, String)]) -> (Server, String) {
    let data = dir.join("data");
    ok(run(&mut pier_cli(
        &data,
        None,
        &["superuser", "upsert", SU.0, SU.1],
    )));
    let mut cmd = pier(dir);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(&data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server::start(cmd);
    let (s, body) = call(
        Method::POST,
        &format!(
            "{}/api/collections/_superusers/auth-with-password",
            server.base_url
        ),
        None,
        Some(json!({"identity": SU.0, "password": SU.1})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    (server, body["token"].as_str().unwrap().to_owned())
}

async fn new_user(base: &str, token: &str, email: &str) -> String {
    let (s, body) = call(
        Method::POST,
        &format!("{base}/api/collections/users/records"),
        Some(token),
        Some(json!({"email": email, "password": "Secret12345", "passwordConfirm": "Secret12345"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn counter(base: &str, outcome: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("pier_mail_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in /metrics:\n{text}"))
}

/// The token of a link `…/auth/<kind>/<token>` in a (quoted-printable) mail.
fn link_token(mail: &str, kind: &str) -> String {
    let flat = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let at = flat
        .find(&format!("/auth/{kind}/"))
        .unwrap_or_else(|| panic!("a {kind} link in:\n{mail}"));
    flat[at + kind.len() + 7..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_starttls_to_a_server_the_configured_authority_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let smtp = Smtp::start(dir.path(), Some((&cert, &key)));
    let (server, token) = serve(
        dir.path(),
        &[
            ("PIER_SMTP__HOST", "127.0.0.1".into()),
            ("PIER_SMTP__PORT", smtp.port.to_string()),
            ("PIER_SMTP__CA_FILE", cert.display().to_string()),
        ],
    )
    .await;
    let base = server.base_url.clone();
    let id = new_user(&base, &token, "tls@example.com").await;
    let (s, body) = call(
        Method::POST,
        &format!("{base}/api/collections/users/request-verification"),
        None,
        Some(json!({"email": "tls@example.com"})),
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let mail = smtp.wait_for_mail().await;
    // aiosmtpd refuses mail before STARTTLS ("530 Must issue a STARTTLS command first"), so a
    // delivered mail went over TLS.
    assert!(mail.contains("To: tls@example.com"), "{mail}");
    let verify = link_token(&mail, "confirm-verification");
    let (s, body) = call(
        Method::POST,
        &format!("{base}/api/collections/users/confirm-verification"),
        None,
        Some(json!({"token": verify})),
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let (_, user) = call(
        Method::GET,
        &format!("{base}/api/collections/users/records/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(user["verified"], true, "{user}");
    assert_eq!(counter(&base, "sent").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_is_not_trusted_gets_no_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let smtp = Smtp::start(dir.path(), Some((&cert, &key)));
    let (mut server, token) = serve(
        dir.path(),
        &[
            ("PIER_SMTP__HOST", "127.0.0.1".into()),
            ("PIER_SMTP__PORT", smtp.port.to_string()),
            ("PIER_SMTP__USERNAME", "shop".into()),
            ("PIER_SMTP__PASSWORD", "smtp-secret-never-printed".into()),
        ],
    )
    .await;
    let base = server.base_url.clone();
    let (s, body) = call(
        Method::POST,
        &format!("{base}/api/settings/test/email"),
        Some(&token),
        Some(json!({"email": "to@example.com", "template": "verification", "collection": "users"})),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Failed to send the test email."),
        "{body}"
    );
    assert!(message.to_lowercase().contains("certificate"), "{body}");
    new_user(&base, &token, "untrusted@example.com").await;
    let (s, _) = call(
        Method::POST,
        &format!("{base}/api/collections/users/request-password-reset"),
        None,
        Some(json!({"email": "untrusted@example.com"})),
    )
    .await;
    assert_eq!(s, 204);
    // The first retry is two seconds after the first failure.
    let deadline = Instant::now() + Duration::from_secs(15);
    while counter(&base, "retried").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the failed delivery was not retried"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        smtp.mails().is_empty(),
        "nothing may reach an untrusted server"
    );
    assert_eq!(counter(&base, "sent").await, 0);
    server.signal_and_wait("TERM");
    let log = server.seen.join("\n");
    assert!(log.contains("email delivery failed"), "{log}");
    assert!(!log.contains("smtp-secret-never-printed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_server_every_mail_is_printed_with_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, token) = serve(dir.path(), &[]).await;
    let base = server.base_url.clone();
    let id = new_user(&base, &token, "console@example.com").await;
    let (s, _) = call(
        Method::POST,
        &format!("{base}/api/collections/users/request-verification"),
        None,
        Some(json!({"email": "console@example.com"})),
    )
    .await;
    assert_eq!(s, 204);
    let line = server.wait_for("confirm-verification/", Duration::from_secs(10));
    let start = line.find("confirm-verification/").unwrap() + "confirm-verification/".len();
    let verify: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    let (s, body) = call(
        Method::POST,
        &format!("{base}/api/collections/users/confirm-verification"),
        None,
        Some(json!({"token": verify})),
    )
    .await;
    assert_eq!(s, 204, "{body} from {line}");
    let (_, user) = call(
        Method::GET,
        &format!("{base}/api/collections/users/records/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(user["verified"], true);
    assert_eq!(counter(&base, "printed").await, 1);
}
