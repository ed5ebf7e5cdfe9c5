//! The keys a collection definition may carry, and the options of auth collections, in
//! PocketBase's shape (with PocketBase's defaults for what a definition leaves out). A key pier
//! does not know is refused with a 400 naming it, never dropped; a section for a feature pier
//! does not have yet (OAuth2) is accepted only while it asks for nothing
//! (`enabled: false`), so definitions exported from PocketBase or read back from pier
//! round-trip, and a client is never told a feature is on when it is not.

use serde_json::{Map, Value, json};

use crate::ids;
use crate::model::{CollectionType, Field};

/// The keys every collection definition may carry (some are read-only and ignored: `created`,
/// `updated`, `system`, as PocketBase ignores them).
const COMMON_KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "system",
    "fields",
    "indexes",
    "listRule",
    "viewRule",
    "createRule",
    "updateRule",
    "deleteRule",
    "created",
    "updated",
];

/// Auth collections' token options besides `authToken`: durations and secrets of the email
/// flows and file tokens, stored as given.
const TOKEN_KEYS: &[&str] = &[
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
];

/// Auth collections' email templates, stored as given.
const TEMPLATE_KEYS: &[&str] = &[
    "verificationTemplate",
    "resetPasswordTemplate",
    "confirmEmailChangeTemplate",
];

/// Sections of features pier does not have yet, with what to call them in an error.
const NOT_YET: &[(&str, &str)] = &[("oauth2", "OAuth2 sign-in")];

/// An error on one key: `(key, code, message)`.
pub(crate) type OptionError = (String, &'static str, String);

/// Refuses a key a definition of this type cannot carry.
pub(crate) fn check_keys(
    obj: &Map<String, Value>,
    kind: CollectionType,
) -> Result<(), OptionError> {
    for key in obj.keys() {
        let known = COMMON_KEYS.contains(&key.as_str())
            || match kind {
                CollectionType::View => key == "viewQuery",
                CollectionType::Auth => {
                    [
                        "authRule",
                        "manageRule",
                        "authToken",
                        "passwordAuth",
                        "otp",
                        "mfa",
                        "authAlert",
                        "apiKeys",
                    ]
                    .contains(&key.as_str())
                        || TOKEN_KEYS.contains(&key.as_str())
                        || TEMPLATE_KEYS.contains(&key.as_str())
                        || NOT_YET.iter().any(|(k, _)| k == key)
                }
                CollectionType::Base => false,
            };
        if !known {
            return Err((
                key.clone(),
                "validation_unknown_key",
                format!(
                    "`{key}` is not an option of {} collections.",
                    kind_name(kind)
                ),
            ));
        }
    }
    Ok(())
}

fn kind_name(kind: CollectionType) -> &'static str {
    match kind {
        CollectionType::Base => "base",
        CollectionType::Auth => "auth",
        CollectionType::View => "view",
    }
}

fn object<'a>(key: &str, v: &'a Value) -> Result<&'a Map<String, Value>, OptionError> {
    v.as_object().ok_or_else(|| {
        (
            key.to_owned(),
            "validation_invalid_auth_options",
            format!("`{key}` must be an object."),
        )
    })
}

/// Applies an auth collection body's options to `options`: the rules, `authToken` (a new
/// secret of at least 30 characters signs every later token and retires every earlier one),
/// `passwordAuth` (`enabled`, and `identityFields` among the collection's text and email
/// fields), the other tokens and the templates; `fields` are the collection's new fields.
pub(crate) fn apply_auth_options(
    options: &mut Map<String, Value>,
    input: &Map<String, Value>,
    fields: &[Field],
) -> Result<(), OptionError> {
    let invalid =
        |key: &str, text: String| (key.to_owned(), "validation_invalid_auth_options", text);
    for key in ["authRule", "manageRule"] {
        match input.get(key) {
            Some(v @ (Value::Null | Value::String(_))) => {
                options.insert(key.to_owned(), v.clone());
            }
            Some(_) => return Err(invalid(key, "Rules must be strings or null.".into())),
            None => {}
        }
    }
    for key in std::iter::once("authToken").chain(TOKEN_KEYS.iter().copied()) {
        let Some(t) = input.get(key) else { continue };
        let t = object(key, t)?;
        let current = options
            .entry(key)
            .or_insert_with(|| json!({"secret": ids::secret(50), "duration": 432_000}));
        match t.get("secret") {
            // Clients read the collection without its secrets and send it back.
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) if s.chars().count() >= 30 => {
                current["secret"] = Value::String(s.clone());
            }
            Some(_) => {
                return Err(invalid(
                    key,
                    "The token secret must be at least 30 characters.".into(),
                ));
            }
        }
        if let Some(d) = t.get("duration") {
            match d.as_i64() {
                Some(n) if n > 0 => current["duration"] = Value::from(n),
                _ => {
                    return Err(invalid(
                        key,
                        "The token duration must be a positive number of seconds.".into(),
                    ));
                }
            }
        }
    }
    if let Some(p) = input.get("passwordAuth") {
        let p = object("passwordAuth", p)?;
        let mut current = options
            .get("passwordAuth")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| {
                let mut m = Map::new();
                m.insert("enabled".into(), Value::Bool(true));
                m.insert("identityFields".into(), json!(["email"]));
                m
            });
        for (k, v) in p {
            match (k.as_str(), v) {
                ("enabled", Value::Bool(_)) => {}
                ("identityFields", Value::Array(list)) => {
                    if list.is_empty() {
                        return Err(invalid(
                            "passwordAuth",
                            "identityFields needs at least one field.".into(),
                        ));
                    }
                    for name in list {
                        let ok = name
                            .as_str()
                            .and_then(|n| fields.iter().find(|f| f.name == n));
                        if !ok.is_some_and(|f| matches!(f.kind.as_str(), "email" | "text")) {
                            return Err(invalid(
                                "passwordAuth",
                                format!(
                                    "Identity field {name} must be a text or email field of the collection."
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(invalid(
                        "passwordAuth",
                        format!("`passwordAuth.{k}` is not known or has the wrong type."),
                    ));
                }
            }
            current.insert(k.clone(), v.clone());
        }
        options.insert("passwordAuth".into(), Value::Object(current));
    }
    for key in TEMPLATE_KEYS {
        if let Some(t) = input.get(*key) {
            options.insert((*key).to_owned(), Value::Object(object(key, t)?.clone()));
        }
    }
    apply_otp_mfa(options, input)?;
    for (key, what) in NOT_YET {
        let Some(section) = input.get(*key) else {
            continue;
        };
        if object(key, section)?
            .get("enabled")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Err((
                (*key).to_owned(),
                "validation_not_supported",
                format!(
                    "{what} is not available in this version of pier; send `enabled: false` or leave `{key}` out."
                ),
            ));
        }
    }
    Ok(())
}

/// `otp {enabled, duration, length, emailTemplate}`, `mfa {enabled, duration, rule}` and
/// `authAlert {enabled, emailTemplate}`, and pier's `apiKeys {enabled}` (records may make API
/// keys for themselves); MFA needs two sign-in methods to choose from.
fn apply_otp_mfa(
    options: &mut Map<String, Value>,
    input: &Map<String, Value>,
) -> Result<(), OptionError> {
    let invalid =
        |key: &str, text: String| (key.to_owned(), "validation_invalid_auth_options", text);
    for key in ["otp", "mfa", "authAlert", "apiKeys"] {
        let Some(given) = input.get(key) else {
            continue;
        };
        let given = object(key, given)?;
        let mut current = options
            .get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in given {
            let ok = match (key, k.as_str()) {
                (_, "enabled") => v.is_boolean(),
                ("otp" | "mfa", "duration") => v.as_i64().is_some_and(|n| n > 0),
                ("otp", "length") => v.as_i64().is_some_and(|n| (4..=32).contains(&n)),
                ("otp" | "authAlert", "emailTemplate") => v.is_object(),
                ("mfa", "rule") => v.is_string() || v.is_null(),
                _ => false,
            };
            if !ok {
                return Err(invalid(
                    key,
                    format!("`{key}.{k}` is not known or has a wrong value."),
                ));
            }
            current.insert(k.clone(), v.clone());
        }
        options.insert(key.to_owned(), Value::Object(current));
    }
    let on = |key: &str| {
        options
            .get(key)
            .and_then(|s| s.get("enabled"))
            .and_then(Value::as_bool)
    };
    if on("mfa") == Some(true) {
        let methods =
            usize::from(on("passwordAuth") != Some(false)) + usize::from(on("otp") == Some(true));
        if methods < 2 {
            return Err((
                "mfa.enabled".to_owned(),
                "validation_mfa_not_enough_auths",
                "MFA requires at least 2 auth methods to be enabled.".to_owned(),
            ));
        }
    }
    Ok(())
}

/// An auth collection's options as PocketBase reports them: what is stored, PocketBase's
/// defaults for every section left out, and no secret.
pub(crate) fn public_auth_options(options: &mut Map<String, Value>) {
    use crate::auth::letters::{LetterKind, default_template};
    let defaults = json!({
        "oauth2": {"enabled": false, "mappedFields": {"id": "", "name": "", "username": "", "avatarURL": ""}, "providers": []},
        "otp": {"enabled": false, "duration": 180, "length": 8, "emailTemplate": default_template(LetterKind::Otp)},
        "mfa": {"enabled": false, "duration": 600, "rule": ""},
        "authAlert": {"enabled": true, "emailTemplate": default_template(LetterKind::AuthAlert)},
        "passwordResetToken": {"duration": 1800},
        "emailChangeToken": {"duration": 1800},
        "verificationToken": {"duration": 86_400},
        "fileToken": {"duration": 180},
        "verificationTemplate": default_template(LetterKind::Verification),
        "resetPasswordTemplate": default_template(LetterKind::PasswordReset),
        "confirmEmailChangeTemplate": default_template(LetterKind::EmailChange),
    });
    if let Value::Object(defaults) = defaults {
        for (key, default) in defaults {
            match (options.get_mut(&key), default) {
                (None, d) => {
                    options.insert(key, d);
                }
                (Some(Value::Object(own)), Value::Object(d)) => {
                    for (k, v) in d {
                        own.entry(k).or_insert(v);
                    }
                }
                _ => {}
            }
        }
    }
    for key in std::iter::once("authToken").chain(TOKEN_KEYS.iter().copied()) {
        if let Some(Value::Object(t)) = options.get_mut(key) {
            t.remove("secret");
        }
    }
}

/// The identity fields password sign-in looks an identity up in, in order.
pub(crate) fn identity_fields(options: &Map<String, Value>) -> Vec<String> {
    let list: Vec<String> = options
        .get("passwordAuth")
        .and_then(|p| p.get("identityFields"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        vec!["email".to_owned()]
    } else {
        list
    }
}

/// Whether password sign-in is on (it is unless `passwordAuth.enabled` is `false`).
pub(crate) fn password_auth_enabled(options: &Map<String, Value>) -> bool {
    options
        .get("passwordAuth")
        .and_then(|p| p.get("enabled"))
        .and_then(Value::as_bool)
        != Some(false)
}
