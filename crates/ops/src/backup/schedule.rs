//! The backup schedule that runs inside `pier serve` and `pier backend`: a backup at each cron
//! time, pruning after each success, and an alert webhook called when one fails.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Backups, CronSchedule, RetentionPolicy};

/// How the schedule runs.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// When to back up (UTC).
    pub cron: CronSchedule,
    /// Which scheduled archives to keep.
    pub retention: RetentionPolicy,
    /// Called with a JSON `POST` when a scheduled backup fails.
    pub alert_webhook: Option<http::Uri>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs scheduled backups until `shutdown` resolves. A backup in progress at shutdown is
/// abandoned; its scratch folder is removed then or by the next backup.
pub async fn run_schedule(
    backups: Backups,
    config: ScheduleConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let run = async {
        loop {
            let now = now_unix();
            let Some(next) = config.cron.next_after(now) else {
                tracing::warn!(cron = %config.cron, "the backup schedule never fires; no scheduled backups");
                std::future::pending::<()>().await;
                return;
            };
            tracing::debug!(next_unix = next, "next scheduled backup");
            tokio::time::sleep(Duration::from_secs(u64::try_from(next - now).unwrap_or(0))).await;
            // The clock may have been early (sleep drift, suspend): wait for the exact second.
            while now_unix() < next {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            run_once(&backups, &config).await;
        }
    };
    tokio::select! {
        () = run => {}
        () = shutdown => {}
    }
}

async fn run_once(backups: &Backups, config: &ScheduleConfig) {
    match backups.create(None, true, &|_| {}).await {
        Ok(created) => {
            tracing::info!(
                key = %created.key,
                bytes = created.size,
                seconds = created.duration.as_secs_f64(),
                "scheduled backup written"
            );
            match backups.prune(&config.retention) {
                Ok(pruned) => {
                    for key in pruned {
                        tracing::info!(%key, "old scheduled backup pruned");
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "failed to prune old backups");
                }
            }
        }
        Err(error) => {
            let message = error.chain();
            tracing::error!(error = %message, "scheduled backup failed");
            if let Some(url) = &config.alert_webhook {
                let body = serde_json::json!({
                    "event": "backup_failed",
                    "message": message,
                    "failures": backups.metrics().failures(),
                    "time": pier_core::time::format_datetime(SystemTime::now()),
                });
                match tokio::time::timeout(WEBHOOK_TIMEOUT, post_json(url, &body.to_string())).await
                {
                    Ok(Ok(status)) if (200..300).contains(&status) => {}
                    Ok(Ok(status)) => {
                        tracing::warn!(status, "backup alert webhook refused the alert");
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "backup alert webhook unreachable");
                    }
                    Err(_) => tracing::warn!("backup alert webhook timed out"),
                }
            }
        }
    }
}

/// Longest time an alert may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 `POST` of a JSON body (over TLS for `https://`); returns the status code.
async fn post_json(url: &http::Uri, body: &str) -> std::io::Result<u16> {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        request: &[u8],
    ) -> std::io::Result<u16> {
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("the webhook sent no HTTP status line"))
    }

    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
    let host = url
        .host()
        .ok_or_else(|| bad("the webhook URL has no host"))?;
    let tls = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let authority = url.authority().map_or(host, |a| a.as_str());
    // The authority may carry `user:token@`; the Host header must not.
    let host_header = authority.rsplit('@').next().unwrap_or(host);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: pier/{}\r\n\r\n{body}",
        body.len(),
        pier_core::VERSION
    );
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    if !tls {
        return exchange(tcp, request.as_bytes()).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|_| bad("the webhook host is not a valid TLS name"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    exchange(stream, request.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{BackupMetrics, BackupSettings};

    /// A one-request HTTP server on port 0 that hands back the request it received.
    async fn one_shot_server() -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alert", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(i) = text.find("\r\n\r\n") {
                    let len = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len || n == 0 {
                        break;
                    }
                }
            }
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_failed_backup_calls_the_alert_webhook() {
        let dir = tempfile::tempdir().unwrap();
        let config = pier_config::Config::from_flags(
            pier_config::Role::Tool,
            vec![pier_config::Flag {
                key: "paths.data_dir",
                value: dir.path().display().to_string(),
                name: "test",
            }],
        )
        .unwrap();
        // No database file exists, so the snapshot fails.
        let backups = Backups::new(
            BackupSettings::from_config(&config),
            Arc::new(BackupMetrics::default()),
        );
        let (url, server) = one_shot_server().await;
        let schedule = ScheduleConfig {
            cron: CronSchedule::parse("@daily").unwrap(),
            retention: RetentionPolicy::default(),
            alert_webhook: Some(url.parse().unwrap()),
        };
        run_once(&backups, &schedule).await;
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /alert "), "{request}");
        assert!(request.contains("\"event\":\"backup_failed\""), "{request}");
        assert!(request.contains("does not exist"), "{request}");
        assert_eq!(backups.metrics().failures(), 1);
        assert!(backups.list().unwrap().is_empty());
    }
}
