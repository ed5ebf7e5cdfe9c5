//! `GET/PATCH /api/settings`: PocketBase's settings object, with the parts pier acts on stored
//! (the app's name and address, the mail sender and SMTP server, batch requests) and the rest
//! reported as pier behaves (S3 from the configuration, rate limits… off). The SMTP password is
//! write-only: stored, never reported.
//!
//! A PATCH may send back any value GET reported, unchanged: PocketBase's dashboard and SDK
//! send whole sections back. A value that asks for something pier does not do (`s3.enabled:
//! true`, a rate-limit rule, a superuser IP list) or a key pier does not know is refused with a
//! 400 naming it, never stored and ignored.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pier_records::RecordError;
use serde_json::{Map, Value, json};

use crate::records::{Caller, JsonObject, require_superuser};
use crate::{ApiError, AppState};

const SETTINGS_KEY: &str = "settings";

/// The keys pier stores and acts on, as `section.key`; a key's default gives its JSON type.
const STORED: &[&str] = &[
    "meta.appName",
    "meta.appURL",
    "meta.senderName",
    "meta.senderAddress",
    "meta.hideControls",
    "meta.accentColor",
    "batch.enabled",
    "batch.maxRequests",
    "smtp.enabled",
    "smtp.host",
    "smtp.port",
    "smtp.username",
    "smtp.authMethod",
    "smtp.tls",
    "smtp.localName",
];

/// Write-only keys PocketBase accepts and never reports (secrets); blank is the only value
/// that asks for nothing.
const WRITE_ONLY: &[&str] = &["smtp.password", "s3.secret", "backups.s3.secret"];

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(view_settings).patch(update_settings))
        .route("/api/settings/test/s3", axum::routing::post(test_s3))
}

/// `POST /api/settings/test/s3` `{"filesystem": "storage" | "backups"}`: writes, reads back and
/// deletes a small object in the bucket; 204 when all of it worked.
async fn test_s3(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let failed = |why: &str| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("Failed to test the S3 filesystem. Raw error: \n{why}"),
        )
    };
    match body.get("filesystem").and_then(Value::as_str) {
        Some("storage") => {}
        // pier keeps backups on the local disk (`paths.backups_dir`).
        Some("backups") => return Err(failed("S3 storage filesystem is not enabled.")),
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "Failed to test the S3 filesystem.",
            )
            .with_data(
                "filesystem",
                json!({"code": "validation_in_invalid", "message": "Must be a valid value."}),
            ));
        }
    }
    if !matches!(state.files().backend(), pier_files::Backend::S3 { .. }) {
        return Err(failed("S3 storage filesystem is not enabled."));
    }
    match state.files().self_test().await {
        Ok(()) => Ok(axum::http::StatusCode::NO_CONTENT.into_response()),
        Err(e) => {
            tracing::warn!("S3 test failed: {e}");
            Err(failed(&e.to_string()))
        }
    }
}

/// What pier does where it reports a value it does not store, and where to look instead.
fn not_supported(section: &str) -> &'static str {
    match section {
        "s3" => {
            "pier's file storage is configured in pier.toml ([files.s3], or PIER_FILES__S3__* in the environment), not through the settings API."
        }
        "backups" => {
            "pier's backups are configured in pier.toml ([backups]), not through the settings API."
        }
        "rateLimits" => {
            "pier's rate limits are configured in pier.toml ([gateway] api_rate_limit_*, per-route rate_limit_*), not through the settings API."
        }
        "trustedProxy" => {
            "pier's trusted proxies are configured in pier.toml (gateway.trusted_proxies), not through the settings API."
        }
        "logs" => {
            "pier writes request logs to its log output; the logs settings are not supported."
        }
        "superuserIPs" => "pier does not restrict superusers by IP address yet.",
        "batch" => "pier does not support changing this batch setting yet.",
        _ => "pier does not support changing this setting.",
    }
}

fn s3_off() -> Value {
    json!({"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "forcePathStyle": false})
}

/// GET's answer before anything is saved: PocketBase's sections, with pier's behaviour; the
/// SMTP server is the configuration's `[smtp]`.
fn default_settings(smtp: &pier_config::SmtpConfig) -> Value {
    let mut settings = base_settings();
    settings["smtp"] = json!({
        "enabled": smtp.enabled, "port": smtp.port, "host": smtp.host,
        "username": smtp.username, "authMethod": smtp.auth_method, "tls": smtp.tls,
        "localName": smtp.local_name,
    });
    settings
}

fn base_settings() -> Value {
    json!({
        "meta": {"appName": "pier", "appURL": "", "senderName": "", "senderAddress": "", "hideControls": false, "accentColor": ""},
        "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
        "smtp": {"enabled": false, "port": 587, "host": "", "username": "", "authMethod": "", "tls": false, "localName": ""},
        "s3": s3_off(),
        "backups": {"cron": "", "cronMaxKeep": 3, "s3": s3_off()},
        "rateLimits": {"rules": [], "excludedIPs": [], "enabled": false},
        "trustedProxy": {"headers": [], "useLeftmostIP": false},
        "logs": {"maxDays": 0, "minLevel": 0, "logIP": false, "logAuthId": false, "maxDataSize": 0},
        "superuserIPs": [],
    })
}

/// Loads the saved settings over the defaults; only stored keys are taken from the database.
pub(crate) async fn load_settings(state: &AppState) -> Result<Value, ApiError> {
    Ok(load_with_secrets(state).await?.0)
}

/// The settings as [`load_settings`] reports them, and the saved SMTP password (blank when none
/// was saved: the configuration's then applies).
pub(crate) async fn load_with_secrets(state: &AppState) -> Result<(Value, String), ApiError> {
    let rows = state
        .store()
        .query(
            "SELECT value FROM _params WHERE key = $1",
            vec![SETTINGS_KEY.into()],
        )
        .await?;
    let mut settings = default_settings(state.smtp_config());
    let mut password = String::new();
    if let Some(s3) = state.s3_settings() {
        settings["s3"] = json!({
            "enabled": true, "bucket": s3.bucket, "region": s3.region, "endpoint": s3.endpoint,
            "accessKey": s3.access_key, "forcePathStyle": s3.force_path_style,
        });
    }
    if let Some(saved) = rows
        .scalar()
        .and_then(pier_storage::Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        for path in STORED {
            let (section, key) = path.split_once('.').unwrap_or((path, ""));
            if let Some(v) = saved.get(section).and_then(|s| s.get(key))
                && same_kind(&settings[section][key], v)
            {
                settings[section][key] = v.clone();
            }
        }
        if let Some(p) = saved["smtp"]["password"].as_str() {
            p.clone_into(&mut password);
        }
    }
    Ok((settings, password))
}

async fn view_settings(
    State(state): State<AppState>,
    Caller(auth): Caller,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    Ok(axum::Json(load_settings(&state).await?).into_response())
}

async fn update_settings(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let (mut settings, mut password) = load_with_secrets(&state).await?;
    let mut body = body;
    // The SMTP password is write-only: a blank one keeps the saved one.
    if let Some(Value::Object(smtp)) = body.get_mut("smtp")
        && let Some(p) = smtp.remove("password")
        && let Some(p) = p.as_str().filter(|p| !p.is_empty())
    {
        p.clone_into(&mut password);
    }
    let mut errors = Map::new();
    for (section, given) in &body {
        if let Some(error) = apply_section(&mut settings, section, given) {
            errors.insert(section.clone(), error);
        }
    }
    if !errors.contains_key("smtp")
        && let Some(e) = check_smtp(&settings["smtp"])
    {
        errors.insert("smtp".into(), e);
    }
    if !errors.is_empty() {
        return Err(ApiError::from(RecordError::Validation {
            message: "An error occurred while validating the submitted data.".into(),
            fields: errors,
        }));
    }
    let mut saved = settings.clone();
    if !password.is_empty() {
        saved["smtp"]["password"] = Value::String(password);
    }
    let text = saved.to_string();
    state
        .store()
        .execute(
            "INSERT INTO _params (key, value, updated_at) VALUES ($1, $2, 0)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![SETTINGS_KEY.into(), text.into()],
        )
        .await?;
    Ok(axum::Json(settings).into_response())
}

/// PocketBase's checks of an enabled SMTP section: a host, a port, PLAIN or LOGIN.
fn check_smtp(smtp: &Value) -> Option<Value> {
    if smtp["enabled"] != Value::Bool(true) {
        return None;
    }
    let mut errors = Map::new();
    if smtp["host"].as_str().is_none_or(|h| h.trim().is_empty()) {
        errors.insert(
            "host".into(),
            error("validation_required", "Cannot be blank."),
        );
    }
    if !smtp["port"]
        .as_u64()
        .is_some_and(|p| (1..=65535).contains(&p))
    {
        errors.insert(
            "port".into(),
            error("validation_required", "Cannot be blank."),
        );
    }
    if !matches!(smtp["authMethod"].as_str(), Some("" | "PLAIN" | "LOGIN")) {
        errors.insert(
            "authMethod".into(),
            error("validation_in_invalid", "Must be a valid value."),
        );
    }
    (!errors.is_empty()).then_some(Value::Object(errors))
}

/// Applies one section of a PATCH to `settings`; returns its error, in PocketBase's nesting:
/// `{code, message}` for the section itself, or `{key: {code, message}}` inside it.
fn apply_section(settings: &mut Value, section: &str, given: &Value) -> Option<Value> {
    let Some(current) = settings.get(section).cloned() else {
        return Some(error(
            "validation_unknown_setting",
            "pier has no such settings section.",
        ));
    };
    let has_stored_keys = STORED.iter().any(|p| p.starts_with(&format!("{section}.")));
    if !has_stored_keys {
        // Nothing in this section is pier's to change: it may only repeat what GET reports.
        return differs(section, &current, given)
            .then(|| error("validation_not_supported", not_supported(section)));
    }
    let (Value::Object(current), Value::Object(given)) = (&current, given) else {
        return Some(error("validation_invalid_value", "Must be an object."));
    };
    let mut errors = Map::new();
    for (key, value) in given {
        let path = format!("{section}.{key}");
        let problem = match current.get(key) {
            None => Some(error("validation_unknown_setting", "Unknown setting.")),
            Some(d) if STORED.contains(&path.as_str()) => {
                if same_kind(d, value) {
                    settings[section][key] = value.clone();
                    None
                } else {
                    Some(error("validation_invalid_value", "Invalid value type."))
                }
            }
            Some(d) => (!equal(d, value))
                .then(|| error("validation_not_supported", not_supported(section))),
        };
        if let Some(p) = problem {
            errors.insert(key.clone(), p);
        }
    }
    (!errors.is_empty()).then_some(Value::Object(errors))
}

/// True when `given` asks for something other than `current` (what pier reports) at `path`:
/// a different value, a key pier does not report, or a write-only secret that is not blank.
fn differs(path: &str, current: &Value, given: &Value) -> bool {
    match (current, given) {
        (Value::Object(c), Value::Object(g)) => g.iter().any(|(k, v)| {
            let inner = format!("{path}.{k}");
            match c.get(k) {
                Some(cv) => differs(&inner, cv, v),
                None => {
                    let blank = v.is_null() || v.as_str().is_some_and(str::is_empty);
                    !(WRITE_ONLY.contains(&inner.as_str()) && blank)
                }
            }
        }),
        (c, g) => !equal(c, g),
    }
}

/// JSON equality with numbers compared by value (`3` and `3.0` are the same setting).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
    )
}

fn error(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_get_reports_can_be_sent_back() {
        let mut settings = default_settings(&pier_config::SmtpConfig::default());
        let reported = settings.clone();
        for (section, value) in reported.as_object().unwrap() {
            assert_eq!(
                apply_section(&mut settings, section, value),
                None,
                "{section}"
            );
        }
        assert_eq!(settings, reported);
    }

    #[test]
    fn a_value_pier_does_not_act_on_is_refused_naming_its_section() {
        let mut settings = default_settings(&pier_config::SmtpConfig::default());
        let e = apply_section(&mut settings, "s3", &json!({"enabled": true})).unwrap();
        assert_eq!(e["code"], "validation_not_supported");
        // Blank secrets and unchanged values ask for nothing.
        let blank = json!({"enabled": false, "secret": "", "bucket": ""});
        assert_eq!(apply_section(&mut settings, "s3", &blank), None);
        let secret = json!({"secret": "abc"});
        assert!(apply_section(&mut settings, "s3", &secret).is_some());
        let rule = json!({"rules": [{"label": "/api/", "duration": 10, "maxRequests": 300}]});
        assert!(apply_section(&mut settings, "rateLimits", &rule).is_some());
        let e = apply_section(&mut settings, "batch", &json!({"timeout": 9})).unwrap();
        assert_eq!(e["timeout"]["code"], "validation_not_supported");
        assert_eq!(
            apply_section(&mut settings, "batch", &json!({"timeout": 3.0})),
            None
        );
        let e = apply_section(&mut settings, "nope", &json!({})).unwrap();
        assert_eq!(e["code"], "validation_unknown_setting");
        let e = apply_section(&mut settings, "meta", &json!({"colour": "red"})).unwrap();
        assert_eq!(e["colour"]["code"], "validation_unknown_setting");
        assert_eq!(
            settings,
            default_settings(&pier_config::SmtpConfig::default())
        );
    }
}
