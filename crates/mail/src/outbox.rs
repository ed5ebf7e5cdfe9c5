//! The [`Mailer`]: mails leave off the request path. A request hands its mail over and returns;
//! a task per mail sends it (at most [`SENDING`] at once), retrying a failed delivery after each
//! of the back-off delays, and counts what happened. At most [`WAITING`] mails may be on their
//! way; beyond that [`Mailer::send`] refuses at once rather than grow without bound.
//!
//! Without a server the mail is printed to the log (text part included), which is how a
//! developer follows the links and codes locally.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use crate::smtp::{self, SmtpServer};
use crate::{Mail, MailError};

/// Mails being sent at the same time.
const SENDING: usize = 4;
/// Mails accepted and not yet sent or given up.
const WAITING: usize = 1000;

/// What the mailer did, for `/metrics`.
#[derive(Debug, Default)]
pub struct MailCounters {
    /// Accepted by the SMTP server.
    pub sent: AtomicU64,
    /// Given up after the last retry.
    pub failed: AtomicU64,
    /// Failed attempts that were tried again.
    pub retried: AtomicU64,
    /// Printed to the log because no server is configured.
    pub printed: AtomicU64,
}

/// Sends mails in the background. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    waiting: Arc<Semaphore>,
    sending: Semaphore,
    retry_after: Vec<Duration>,
    transport: Mutex<Option<(SmtpServer, AsyncSmtpTransport<Tokio1Executor>)>>,
    counters: MailCounters,
}

impl Default for Mailer {
    fn default() -> Self {
        Mailer::new(vec![
            Duration::from_secs(2),
            Duration::from_secs(15),
            Duration::from_secs(60),
        ])
    }
}

impl Mailer {
    /// A mailer that retries a failed delivery after each of `retry_after` in turn.
    pub fn new(retry_after: Vec<Duration>) -> Mailer {
        Mailer {
            inner: Arc::new(Inner {
                waiting: Arc::new(Semaphore::new(WAITING)),
                sending: Semaphore::new(SENDING),
                retry_after,
                transport: Mutex::new(None),
                counters: MailCounters::default(),
            }),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &MailCounters {
        &self.inner.counters
    }

    /// Queues `mail` for `server` (`None`: print it). Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// [`MailError::Address`] or [`MailError::Build`] for a mail that cannot be sent at all,
    /// [`MailError::Full`] when too many mails are waiting.
    pub fn send(&self, server: Option<SmtpServer>, mail: Mail) -> Result<(), MailError> {
        let message = smtp::build(&mail)?;
        let permit = self
            .inner
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| MailError::Full)?;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match server {
                None => inner.print(&mail),
                Some(server) => inner.deliver(&server, &mail, message).await,
            }
        });
        Ok(())
    }

    /// Sends `mail` now, once, and reports the server's answer (the settings' test email).
    ///
    /// # Errors
    /// Any [`MailError`]; nothing is retried.
    pub async fn send_now(
        &self,
        server: Option<&SmtpServer>,
        mail: &Mail,
    ) -> Result<(), MailError> {
        let message = smtp::build(mail)?;
        let Some(server) = server else {
            self.inner.print(mail);
            return Ok(());
        };
        let transport = self.inner.transport(server)?;
        let result = smtp::send(&transport, message).await;
        let c = &self.inner.counters;
        match &result {
            Ok(()) => c.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => c.failed.fetch_add(1, Ordering::Relaxed),
        };
        result
    }
}

impl Inner {
    fn transport(
        &self,
        server: &SmtpServer,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let mut slot = match self.transport.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if let Some((s, t)) = slot.as_ref()
            && s.same(server)
        {
            return Ok(t.clone());
        }
        let t = server.transport()?;
        *slot = Some((server.clone(), t.clone()));
        Ok(t)
    }

    fn print(&self, mail: &Mail) {
        self.counters.printed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            target: "pier::mail",
            to = %mail.to.email,
            subject = %mail.subject,
            "email not sent, no SMTP server is configured ([smtp] in pier.toml, or the SMTP settings); it reads:\n{}",
            crate::html_to_text(&mail.html)
        );
    }

    async fn deliver(&self, server: &SmtpServer, mail: &Mail, message: lettre::Message) {
        let c = &self.counters;
        let mut attempt = 0;
        loop {
            let result = match self.transport(server) {
                Ok(t) => {
                    let _turn = self.sending.acquire().await;
                    smtp::send(&t, message.clone()).await
                }
                Err(e) => Err(e),
            };
            let Err(e) = result else {
                c.sent.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let Some(delay) = self.retry_after.get(attempt).copied() else {
                c.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    target: "pier::mail",
                    to = %mail.to.email, subject = %mail.subject, attempts = attempt + 1,
                    "email not delivered, giving up: {e}"
                );
                return;
            };
            c.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "pier::mail",
                to = %mail.to.email, subject = %mail.subject,
                "email delivery failed, trying again in {}s: {e}", delay.as_secs()
            );
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }
}
