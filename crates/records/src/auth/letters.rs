//! The mails of the auth flows, as letters the API layer sends: PocketBase's default templates
//! (`verificationTemplate`, `resetPasswordTemplate`, `confirmEmailChangeTemplate`,
//! `otp.emailTemplate`, `authAlert.emailTemplate`), a collection's own templates over them, and
//! PocketBase's placeholders (`{APP_NAME}`, `{APP_URL}`, `{TOKEN}`, `{OTP}`, `{OTP_ID}`,
//! `{ALERT_INFO}`, `{RECORD:field}`). Record values are HTML-escaped, in the subject too, as
//! PocketBase escapes them; hidden fields and unknown names stay as written. The body goes out
//! inside a small HTML page with inline styles.

use serde_json::{Map, Value, json};

use crate::model::Collection;

/// The application, as the settings' `meta` names it.
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    pub name: String,
    /// Without a trailing slash.
    pub url: String,
}

/// One mail to send: the recipient, the subject and the HTML body.
#[derive(Debug, Clone)]
pub struct Letter {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// Which mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LetterKind {
    Verification,
    PasswordReset,
    EmailChange,
    Otp,
    AuthAlert,
}

impl LetterKind {
    /// The names `POST /api/settings/test/email` takes.
    pub fn from_test_name(name: &str) -> Option<LetterKind> {
        Some(match name {
            "verification" => LetterKind::Verification,
            "password-reset" => LetterKind::PasswordReset,
            "email-change" => LetterKind::EmailChange,
            "otp" => LetterKind::Otp,
            "login-alert" => LetterKind::AuthAlert,
            _ => return None,
        })
    }

    /// Where the collection keeps this template: a top-level key or `section.emailTemplate`.
    fn option_path(self) -> (&'static str, Option<&'static str>) {
        match self {
            LetterKind::Verification => ("verificationTemplate", None),
            LetterKind::PasswordReset => ("resetPasswordTemplate", None),
            LetterKind::EmailChange => ("confirmEmailChangeTemplate", None),
            LetterKind::Otp => ("otp", Some("emailTemplate")),
            LetterKind::AuthAlert => ("authAlert", Some("emailTemplate")),
        }
    }
}

const SIGNATURE: &str = "<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";

fn link(path: &str, label: &str) -> String {
    format!(
        "<p>\n  <a class=\"btn\" href=\"{{APP_URL}}/_/#/auth/{path}/{{TOKEN}}\" target=\"_blank\" rel=\"noopener\">{label}</a>\n</p>"
    )
}

/// PocketBase's default template for `kind`: `{"subject", "body"}`.
pub(crate) fn default_template(kind: LetterKind) -> Value {
    let (subject, body) = match kind {
        LetterKind::Verification => (
            "Verify your {APP_NAME} email",
            format!(
                "<p>Hello,</p>\n<p>Thank you for joining us at {{APP_NAME}}.</p>\n<p>Click on the button below to verify your email address.</p>\n{}\n<p><i>If you didn't recently register, please ignore this email.</i></p>\n{SIGNATURE}",
                link("confirm-verification", "Verify")
            ),
        ),
        LetterKind::PasswordReset => (
            "Reset your {APP_NAME} password",
            format!(
                "<p>Hello,</p>\n<p>Click on the button below to reset your password.</p>\n{}\n<p><i>If you didn't ask to reset your password, please ignore this email.</i></p>\n{SIGNATURE}",
                link("confirm-password-reset", "Reset password")
            ),
        ),
        LetterKind::EmailChange => (
            "Confirm your {APP_NAME} new email address",
            format!(
                "<p>Hello,</p>\n<p>Click on the button below to confirm your new email address.</p>\n{}\n<p><i>If you didn't ask to change your email address, please ignore this email.</i></p>\n{SIGNATURE}",
                link("confirm-email-change", "Confirm new email")
            ),
        ),
        LetterKind::Otp => (
            "OTP for {APP_NAME}",
            format!(
                "<p>Hello,</p>\n<p>Your one-time password is: <strong>{{OTP}}</strong></p>\n<p><i>If you didn't ask for the one-time password, you can ignore this email.</i></p>\n{SIGNATURE}"
            ),
        ),
        LetterKind::AuthAlert => (
            "Login from a new location",
            format!(
                "<p>Hello,</p>\n<p>We noticed a login to your {{APP_NAME}} account from a new location:</p>\n<p><em>{{ALERT_INFO}}</em></p>\n<p><strong>If this wasn't you, you should immediately change your {{APP_NAME}} account password to revoke access from all other locations.</strong></p>\n<p>If this was you, you may disregard this email.</p>\n{SIGNATURE}"
            ),
        ),
    };
    json!({"subject": subject, "body": body})
}

/// The collection's template for `kind`, with PocketBase's default for a blank part.
fn template(c: &Collection, kind: LetterKind) -> (String, String) {
    let (key, inner) = kind.option_path();
    let own = c.options.get(key).and_then(|v| match inner {
        Some(k) => v.get(k),
        None => Some(v),
    });
    let default = default_template(kind);
    let part = |name: &str| {
        own.and_then(|t| t.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .or_else(|| default[name].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (part("subject"), part("body"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page a mail body goes out in.
fn page(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>\nbody {{ font-family: -apple-system, \"Segoe UI\", Roboto, Helvetica, Arial, sans-serif; font-size: 14px; line-height: 1.5; color: #16161a; background: #fff; }}\n.wrapper {{ max-width: 560px; margin: 0 auto; padding: 20px; }}\n.btn {{ display: inline-block; padding: 10px 20px; border-radius: 3px; background: #16161a; color: #fff !important; text-decoration: none; }}\n</style>\n</head>\n<body>\n<div class=\"wrapper\">\n{body}\n</div>\n</body>\n</html>\n"
    )
}

/// Fills a template. `record` gives `{RECORD:field}` (hidden fields such as the password hash
/// and `tokenKey` are never offered); `vars` the rest.
pub(crate) fn render(
    c: &Collection,
    kind: LetterKind,
    to: &str,
    app: &AppInfo,
    record: &Map<String, Value>,
    vars: &[(&str, &str)],
) -> Letter {
    let (subject, body) = template(c, kind);
    let mut values: Vec<(String, String)> = vec![
        ("APP_NAME".into(), app.name.clone()),
        ("APP_URL".into(), app.url.clone()),
    ];
    for (k, v) in vars {
        values.push(((*k).to_owned(), (*v).to_owned()));
    }
    for (k, v) in record {
        if matches!(k.as_str(), "password" | "tokenKey") {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        values.push((format!("RECORD:{k}"), escape(&text)));
    }
    let fill = |template: &str| {
        let mut out = template.to_owned();
        for (k, v) in &values {
            let placeholder = format!("{{{k}}}");
            if out.contains(&placeholder) {
                out = out.replace(&placeholder, v);
            }
        }
        out
    };
    Letter {
        to: to.to_owned(),
        subject: fill(&subject),
        html: page(&fill(&body)),
    }
}

/// A letter for `POST /api/settings/test/email`: the collection's template filled for a sample
/// record at `email`: a token that names the sample record (it confirms nothing), PocketBase's
/// sample code `123456` and sample alert line.
pub fn sample_letter(c: &Collection, kind: LetterKind, email: &str, app: &AppInfo) -> Letter {
    use crate::auth::flow_tokens::{Purpose, issue};
    const ID: &str = "__pb_test_id__";
    let mut record = Map::new();
    record.insert("id".into(), Value::String(ID.into()));
    record.insert("email".into(), Value::String(email.to_owned()));
    let key = crate::ids::secret(50);
    let token = match kind {
        LetterKind::Verification => issue(c, ID, &key, Purpose::Verification, email, ""),
        LetterKind::PasswordReset => issue(c, ID, &key, Purpose::PasswordReset, email, ""),
        LetterKind::EmailChange => issue(c, ID, &key, Purpose::EmailChange, email, email),
        LetterKind::Otp | LetterKind::AuthAlert => String::new(),
    };
    let alert = format!("{} - TEST_IP TEST_USER_AGENT", crate::engine::now());
    render(
        c,
        kind,
        email,
        app,
        &record,
        &[
            ("TOKEN", &token),
            ("OTP", "123456"),
            ("OTP_ID", "__pb_test_otp_id__"),
            ("ALERT_INFO", &alert),
        ],
    )
}
