//! One SMTP server's settings ([`SmtpServer`], PocketBase's `settings.smtp` shape plus extra
//! trusted roots) and the lettre transport built from them.
//!
//! `tls: true` is implicit TLS from the first byte (SMTPS, usually port 465). `tls: false` is
//! STARTTLS, which is **required** for any server that is not on a loopback address, so a
//! network attacker cannot strip it and read the password or the mails; a relay on the same
//! machine may speak plain SMTP. Certificates are checked against the public roots and the
//! configured extra ones; there is no way to turn the check off.

use std::net::IpAddr;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::{Address, Mail, MailError};

/// How long one SMTP exchange may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A mail server.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    /// Empty: no `AUTH`.
    pub username: String,
    pub password: SecretString,
    /// `PLAIN` or `LOGIN` (anything else is PLAIN).
    pub auth_method: String,
    /// Implicit TLS; otherwise STARTTLS (required unless the host is a loopback address).
    pub tls: bool,
    /// The `EHLO` name; empty: `localhost`.
    pub local_name: String,
    /// PEM certificates of extra authorities to trust.
    pub extra_roots: Vec<Vec<u8>>,
}

impl SmtpServer {
    /// Whether two values describe the same connection (the transport can be reused).
    pub(crate) fn same(&self, other: &SmtpServer) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.username == other.username
            && self.password.expose_secret() == other.password.expose_secret()
            && self.auth_method == other.auth_method
            && self.tls == other.tls
            && self.local_name == other.local_name
            && self.extra_roots == other.extra_roots
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The transport for this server (it keeps a small pool of connections).
    pub(crate) fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let host = self.host.trim_matches(['[', ']']).to_owned();
        let mut params = TlsParameters::builder(host.clone());
        for pem in &self.extra_roots {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| MailError::Smtp(format!("extra root certificate: {e}")))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| MailError::Smtp(format!("TLS setup: {e}")))?;
        let tls = if self.tls {
            Tls::Wrapper(params)
        } else if self.is_loopback() {
            Tls::Opportunistic(params)
        } else {
            Tls::Required(params)
        };
        let name = if self.local_name.is_empty() {
            "localhost".to_owned()
        } else {
            self.local_name.clone()
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(self.port)
            .tls(tls)
            .hello_name(ClientId::Domain(name))
            .timeout(Some(TIMEOUT));
        if !self.username.is_empty() {
            let mechanism = if self.auth_method.eq_ignore_ascii_case("LOGIN") {
                Mechanism::Login
            } else {
                Mechanism::Plain
            };
            builder = builder
                .credentials(Credentials::new(
                    self.username.clone(),
                    self.password.expose_secret().to_owned(),
                ))
                .authentication(vec![mechanism]);
        }
        Ok(builder.build())
    }
}

fn mailbox(a: &Address) -> Result<lettre::message::Mailbox, MailError> {
    let email = a
        .email
        .parse()
        .map_err(|_| MailError::Address(a.email.clone()))?;
    Ok(lettre::message::Mailbox::new(
        (!a.name.is_empty()).then(|| a.name.clone()),
        email,
    ))
}

/// The message as it goes on the wire: `multipart/alternative` with the text and the HTML.
pub(crate) fn build(mail: &Mail) -> Result<Message, MailError> {
    let text = crate::html_to_text(&mail.html);
    Message::builder()
        .from(mailbox(&mail.from)?)
        .to(mailbox(&mail.to)?)
        .subject(mail.subject.clone())
        .multipart(lettre::message::MultiPart::alternative_plain_html(
            text,
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Sends one message and waits for the server's answer.
pub(crate) async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
) -> Result<(), MailError> {
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| MailError::Smtp(describe(&e)))
}

/// The error with its causes, without the credentials (lettre never prints them).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    // lettre's messages repeat their kind ("Connection error: Connection error: …").
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}
