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
    let client = Arc::new(webhook_client());
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
            run_once(&backups, &config, client.as_ref().as_ref()).await;
        }
    };
    tokio::select! {
        () = run => {}
        () = shutdown => {}
    }
}

async fn run_once(backups: &Backups, config: &ScheduleConfig, client: Option<&reqwest::Client>) {
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
            if let (Some(url), Some(client)) = (&config.alert_webhook, client) {
                let body = serde_json::json!({
                    "event": "backup_failed",
                    "message": message,
                    "failures": backups.metrics().failures(),
                    "time": pier_core::time::format_datetime(SystemTime::now()),
                });
                match client.post(url.to_string()).json(&body).send().await {
                    Ok(res) if res.status().is_success() => {}
                    Ok(res) => {
                        tracing::warn!(
                            status = res.status().as_u16(),
                            "backup alert webhook refused the alert"
                        );
                    }
                    Err(error) => tracing::warn!(%error, "backup alert webhook unreachable"),
                }
            }
        }
    }
}

fn webhook_client() -> Option<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| tracing::warn!(%error, "cannot build the backup alert client"))
        .ok()
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
        run_once(&backups, &schedule, webhook_client().as_ref()).await;
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /alert "), "{request}");
        assert!(request.contains("\"event\":\"backup_failed\""), "{request}");
        assert!(request.contains("does not exist"), "{request}");
        assert_eq!(backups.metrics().failures(), 1);
        assert!(backups.list().unwrap().is_empty());
    }
}
