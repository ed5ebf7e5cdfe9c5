//! pier's outgoing mail, below the HTTP layer and the database: a [`Mail`] (sender, recipient,
//! subject, HTML body; the plain-text part is derived from the HTML) is handed to the
//! [`Mailer`], which sends it off the request path through the [`SmtpServer`] given with it,
//! retrying a failed delivery with back-off, or prints it to the log when no server is
//! configured, so a developer can follow every link and code locally.
//!
//! # Layout
//! - `smtp`: one SMTP server's settings and the lettre transport built from them (STARTTLS or
//!   implicit TLS, PLAIN or LOGIN, extra trusted roots).
//! - `outbox`: the [`Mailer`]: a bounded queue, retries, and the counters `/metrics` reads.
//! - `text`: the plain-text alternative of an HTML body, and PocketBase's `{PLACEHOLDER}`
//!   substitution.
//!
//! Sending uses `lettre` (message building, SMTP, TLS through rustls); only the HTML-to-text
//! step is written here, because the mails are pier's own small templates and a full HTML
//! renderer would be a large dependency for them.
#![deny(clippy::unwrap_used)]

mod outbox;
mod smtp;
mod text;

pub use outbox::{MailCounters, Mailer};
pub use smtp::SmtpServer;
pub use text::{html_to_text, substitute};

/// A name and an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// May be empty.
    pub name: String,
    pub email: String,
}

impl Address {
    /// An address without a display name.
    pub fn new(email: impl Into<String>) -> Address {
        Address {
            name: String::new(),
            email: email.into(),
        }
    }
}

/// One message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: Address,
    pub to: Address,
    pub subject: String,
    pub html: String,
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A sender or recipient that is not an email address.
    #[error("invalid email address {0:?}")]
    Address(String),
    /// The message could not be assembled.
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The server (or the way to it) refused or failed.
    #[error("{0}")]
    Smtp(String),
    /// Too many mails are waiting to be sent.
    #[error("too many emails are waiting to be sent; try again later")]
    Full,
}
