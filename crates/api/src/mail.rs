//! Mail from the API: the SMTP server and sender the settings name (over the configuration's
//! `[smtp]`), handing the engine's letters to the [`pier_mail::Mailer`], the mail counters in
//! `/metrics`, and `POST /api/settings/test/email`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pier_mail::{Address, Mail, SmtpServer};
use pier_records::{AppInfo, Letter};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::records::{Caller, JsonObject, require_superuser};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/settings/test/email", axum::routing::post(test_email))
}

/// Where mails go and who they are from, as the settings say now.
pub(crate) struct Outgoing {
    server: Option<SmtpServer>,
    from: Address,
    pub(crate) app: AppInfo,
}

impl Outgoing {
    /// Reads the settings (another backend may have changed them).
    pub(crate) async fn load(state: &AppState) -> Result<Outgoing, ApiError> {
        let (settings, saved_password) = crate::settings::load_with_secrets(state).await?;
        let smtp = &settings["smtp"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let config = state.smtp_config();
        let server = (smtp["enabled"] == Value::Bool(true)).then(|| {
            let password = if saved_password.is_empty() {
                config.password.expose_secret().to_owned()
            } else {
                saved_password
            };
            let extra_roots = config
                .ca_file
                .as_ref()
                .and_then(|p| match std::fs::read(p) {
                    Ok(pem) => Some(vec![pem]),
                    Err(e) => {
                        tracing::warn!(file = %p.display(), "smtp.ca_file cannot be read: {e}");
                        None
                    }
                })
                .unwrap_or_default();
            SmtpServer {
                host: text(&smtp["host"]),
                port: u16::try_from(smtp["port"].as_u64().unwrap_or(587)).unwrap_or(587),
                username: text(&smtp["username"]),
                password: password.into(),
                auth_method: text(&smtp["authMethod"]),
                tls: smtp["tls"] == Value::Bool(true),
                local_name: text(&smtp["localName"]),
                extra_roots,
            }
        });
        let meta = &settings["meta"];
        let address = text(&meta["senderAddress"]);
        let from = Address {
            name: text(&meta["senderName"]),
            email: if address.is_empty() {
                "noreply@localhost".into()
            } else {
                address
            },
        };
        let app = AppInfo {
            name: text(&meta["appName"]),
            url: text(&meta["appURL"]).trim_end_matches('/').to_owned(),
        };
        Ok(Outgoing { server, from, app })
    }

    fn mail(&self, letter: Letter) -> Mail {
        Mail {
            from: self.from.clone(),
            to: Address::new(letter.to),
            subject: letter.subject,
            html: letter.html,
        }
    }

    /// Queues a letter; a mail that cannot be queued is logged, never shown to the caller
    /// (whose answer must not depend on whether the address exists).
    pub(crate) fn send(&self, state: &AppState, letter: Letter) {
        if let Err(e) = state.mailer().send(self.server.clone(), self.mail(letter)) {
            tracing::error!(target: "pier::mail", "email not queued: {e}");
        }
    }
}

/// `POST /api/settings/test/email` `{email, template, collection?}`: renders one of an auth
/// collection's mails for a sample record and sends it now, reporting the server's answer.
async fn test_email(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let engine = state.engine().await?;
    let email = body
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let template = body
        .get("template")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let collection = body
        .get("collection")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .unwrap_or("_superusers");
    let mut errors = serde_json::Map::new();
    if email.is_empty() {
        errors.insert(
            "email".into(),
            invalid("validation_required", "Cannot be blank."),
        );
    } else if !pier_records::is_email(email) {
        errors.insert(
            "email".into(),
            invalid("validation_is_email", "Must be a valid email address."),
        );
    }
    let kind = pier_records::LetterKind::from_test_name(template);
    if template.is_empty() {
        errors.insert(
            "template".into(),
            invalid("validation_required", "Cannot be blank."),
        );
    } else if kind.is_none() {
        errors.insert(
            "template".into(),
            invalid("validation_in_invalid", "Must be a valid value."),
        );
    }
    let c = match engine.collection(collection).await {
        Ok(c) if c.kind == pier_records::CollectionType::Auth => Some(c),
        _ => {
            errors.insert(
                "collection".into(),
                invalid(
                    "validation_invalid_auth_collection",
                    "Must be a valid auth collection id or name.",
                ),
            );
            None
        }
    };
    let (Some(kind), Some(c), true) = (kind, c, errors.is_empty()) else {
        return Err(ApiError::from(pier_records::RecordError::Validation {
            message: "Failed to send the test email.".into(),
            fields: errors,
        }));
    };
    let out = Outgoing::load(&state).await?;
    let letter = pier_records::sample_letter(&c, kind, email, &out.app);
    match state
        .mailer()
        .send_now(out.server.as_ref(), &out.mail(letter))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => {
            tracing::warn!(target: "pier::mail", "test email failed: {e}");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to send the test email. Raw error: \n{e}"),
            ))
        }
    }
}

fn invalid(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

/// Registers the mail counters with `/metrics`.
pub(crate) fn metrics(mailer: &pier_mail::Mailer) -> pier_ops::Collector {
    let mailer = mailer.clone();
    Arc::new(move |e: &mut pier_ops::Exposition| {
        use std::sync::atomic::Ordering::Relaxed;
        let c = mailer.counters();
        e.family(
            "pier_mail_total",
            "counter",
            "Emails by outcome: sent (accepted by the SMTP server), failed (given up after the last retry), retried (failed attempts tried again), printed (no SMTP server configured).",
        );
        for (outcome, n) in [
            ("sent", &c.sent),
            ("failed", &c.failed),
            ("retried", &c.retried),
            ("printed", &c.printed),
        ] {
            e.sample("pier_mail_total", &[("outcome", outcome)], n.load(Relaxed));
        }
    })
}
