//! `GET/PATCH /api/settings`: PocketBase's settings object, with the parts pier acts on stored
//! and the rest reported as pier behaves (S3, SMTP, rate limits… off).
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
        "smtp" => "pier sends no email yet; SMTP is not supported.",
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

/// GET's answer before anything is saved: PocketBase's sections, with pier's behaviour.
fn default_settings() -> Value {
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
    let rows = state
        .store()
        .query(
            "SELECT value FROM _params WHERE key = $1",
            vec![SETTINGS_KEY.into()],
        )
        .await?;
    let mut settings = default_settings();
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
    }
    Ok(settings)
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
    let mut settings = load_settings(&state).await?;
    let mut errors = Map::new();
    for (section, given) in &body {
        if let Some(error) = apply_section(&mut settings, section, given) {
            errors.insert(section.clone(), error);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::from(RecordError::Validation {
            message: "An error occurred while validating the submitted data.".into(),
            fields: errors,
        }));
    }
    let text = settings.to_string();
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
        let mut settings = default_settings();
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
        let mut settings = default_settings();
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
        assert_eq!(settings, default_settings());
    }
}
