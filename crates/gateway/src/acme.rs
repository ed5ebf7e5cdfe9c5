//! Certificates from an ACME CA (RFC 8555): the account is made once and kept, the certificate
//! is ordered at start when missing and renewed when a third of its lifetime is left (with
//! jitter), HTTP-01 challenges are answered by the plain HTTP listener, failures back off
//! exponentially, and the last good certificate keeps serving meanwhile. Several gateways
//! sharing the certificates folder take a lock in it before ordering.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use pier_config::{AcmeConfig, CertificateFiles};
use rand::Rng;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::watch;

/// Tokens of pending HTTP-01 challenges and their key authorizations.
#[derive(Default)]
pub(crate) struct Challenges {
    tokens: RwLock<HashMap<String, String>>,
    /// TLS-ALPN-01: a certificate per name, presented to `acme-tls/1` handshakes.
    alpn: RwLock<HashMap<String, Arc<rustls::sign::CertifiedKey>>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

impl Challenges {
    pub(crate) fn answer(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    fn set(&self, token: String, key_auth: String) {
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token, key_auth);
    }

    fn clear(&self) {
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.alpn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn alpn_certificate(&self, name: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.alpn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn set_alpn(&self, name: String, key: Arc<rustls::sign::CertifiedKey>) {
        self.alpn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name, key);
    }
}

/// The ordering side: configuration, where things are kept, and what it reports.
#[derive(Debug)]
pub(crate) struct Acme {
    config: AcmeConfig,
    dir: PathBuf,
    pub(crate) files: CertificateFiles,
    pub(crate) challenges: Arc<Challenges>,
    pub(crate) failures: AtomicU64,
    /// Unix seconds the certificate in use expires at (0: none yet).
    pub(crate) expires_at: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
enum AcmeError {
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the order ended {0}")]
    Order(String),
    #[error("invalid External Account Binding key: {0}")]
    Eab(String),
}

impl Acme {
    pub(crate) fn new(config: AcmeConfig, certs_dir: &Path) -> Acme {
        Acme {
            files: pier_config::acme_files(certs_dir),
            dir: certs_dir.join("acme"),
            config,
            challenges: Arc::new(Challenges::default()),
            failures: AtomicU64::new(0),
            expires_at: AtomicU64::new(0),
        }
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.config.names
    }

    pub(crate) fn uses_tls_alpn(&self) -> bool {
        self.config.tls_alpn
    }

    /// How long until the certificate on disk should be renewed; zero when it is missing, does
    /// not cover the configured names, or has a third of its life left.
    fn due_in(&self) -> Duration {
        let Ok(pem) = std::fs::read(&self.files.cert_file) else {
            return Duration::ZERO;
        };
        let Some(leaf) = CertificateDer::pem_slice_iter(&pem).find_map(Result::ok) else {
            return Duration::ZERO;
        };
        let Some((not_before, not_after)) = crate::tls::validity(&leaf) else {
            return Duration::ZERO;
        };
        let names_ok = webpki::EndEntityCert::try_from(&leaf).is_ok_and(|ee| {
            self.config.names.iter().all(|n| {
                rustls_pki_types::ServerName::try_from(n.as_str())
                    .is_ok_and(|sn| ee.verify_is_valid_for_subject_name(&sn).is_ok())
            })
        });
        if !names_ok {
            return Duration::ZERO;
        }
        self.expires_at
            .store(u64::try_from(not_after).unwrap_or(0), Ordering::Relaxed);
        let renew_at = not_after - (not_after - not_before) / 3;
        let now = crate::tls::now_unix();
        Duration::from_secs(u64::try_from(renew_at - now).unwrap_or(0))
    }

    /// Orders and renews until `stop`.
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = self.config.retry;
        loop {
            let due = self.due_in();
            if due.is_zero() {
                match self.obtain().await {
                    Ok(()) => {
                        backoff = self.config.retry;
                        tracing::info!(names = ?self.config.names, "certificate obtained");
                        continue;
                    }
                    Err(e) => {
                        self.failures.fetch_add(1, Ordering::Relaxed);
                        let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 4);
                        let wait = backoff + Duration::from_millis(jitter);
                        tracing::warn!(error = %e, retry_in_seconds = wait.as_secs(), "certificate order failed; the current certificate keeps serving");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = stop.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(6 * 3600));
                        continue;
                    }
                }
            }
            // Renewal times are spread so that many gateways do not all ask at once.
            let jitter = Duration::from_secs(rand::rng().random_range(0..=60));
            let wait = (due + jitter).min(self.config.check_interval);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn obtain(&self) -> Result<(), AcmeError> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| AcmeError::Write { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(write_err(&self.dir))?;
        // One orderer per certificates folder: the others wait and then find the new files.
        let lock_path = self.dir.join("order.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(write_err(&lock_path))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| AcmeError::Order(format!("lock task failed: {e}")))?
            .map_err(write_err(&lock_path))?;
        if !self.due_in().is_zero() {
            // Another gateway renewed it while we waited.
            return Ok(());
        }
        let result = self.order().await;
        self.challenges.clear();
        drop(lock);
        result
    }

    async fn account(&self) -> Result<Account, AcmeError> {
        let path = self.dir.join("account.json");
        let builder = || match &self.config.ca_file {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(creds) = serde_json::from_str::<AccountCredentials>(&text)
        {
            return Ok(builder()?.from_credentials(creds).await?);
        }
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = match &self.config.eab {
            Some((kid, key)) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(key.trim_end_matches('='))
                    .map_err(|e| AcmeError::Eab(e.to_string()))?;
                Some(ExternalAccountKey::new(kid.clone(), &bytes))
            }
            None => None,
        };
        let (account, creds) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory_url.clone(),
                eab.as_ref(),
            )
            .await?;
        let json = serde_json::to_vec(&creds)
            .map_err(|e| AcmeError::Order(format!("account credentials: {e}")))?;
        crate::tls::write_private(&path, &json).map_err(|e| AcmeError::Order(e.to_string()))?;
        tracing::info!(directory = %self.config.directory_url, "ACME account created");
        Ok(account)
    }

    async fn order(&self) -> Result<(), AcmeError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .config
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authz = result?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(AcmeError::Order(format!("with an authorization {other:?}"))),
            }
            let kind = if self.config.tls_alpn {
                ChallengeType::TlsAlpn01
            } else {
                ChallengeType::Http01
            };
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| AcmeError::Order(format!("without a {kind:?} challenge")))?;
            if self.config.tls_alpn {
                let name = challenge.identifier().to_string();
                let digest = challenge.key_authorization().digest();
                let key = crate::tls::alpn_challenge_certificate(&name, digest.as_ref())
                    .map_err(|e| AcmeError::Order(e.to_string()))?;
                self.challenges.set_alpn(name, key);
            } else {
                self.challenges.set(
                    challenge.token.clone(),
                    challenge.key_authorization().as_str().to_owned(),
                );
            }
            challenge.set_ready().await?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retry).await?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Order(format!("{status:?}")));
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&retry).await?;
        crate::tls::write_private(&self.files.key_file, key_pem.as_bytes())
            .map_err(|e| AcmeError::Order(e.to_string()))?;
        crate::tls::write_private(&self.files.cert_file, chain_pem.as_bytes())
            .map_err(|e| AcmeError::Order(e.to_string()))?;
        let _ = self.due_in();
        Ok(())
    }
}
