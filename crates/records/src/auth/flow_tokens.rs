//! The single-purpose tokens of the email flows: verification, password reset and email change,
//! PocketBase's claims (`id`, `type`, `collectionId`, `email`, `newEmail`, `exp`), each signed
//! with the record's `tokenKey` and the collection's secret for that purpose, so a token of one
//! flow is never accepted by another, a password change (which rotates `tokenKey`) retires every
//! token issued before, and a changed email retires the tokens issued for the old one.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::tokens::{peek_as, sign, verify_signature};
use crate::engine::{Engine, unix_now};
use crate::error::RecordError;
use crate::model::{Collection, CollectionType};

/// What a flow token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Verification,
    PasswordReset,
    EmailChange,
}

impl Purpose {
    fn kind(self) -> &'static str {
        match self {
            Purpose::Verification => "verification",
            Purpose::PasswordReset => "passwordReset",
            Purpose::EmailChange => "emailChange",
        }
    }

    /// The collection option holding this token's secret and duration.
    pub(crate) fn option(self) -> &'static str {
        match self {
            Purpose::Verification => "verificationToken",
            Purpose::PasswordReset => "passwordResetToken",
            Purpose::EmailChange => "emailChangeToken",
        }
    }

    /// PocketBase's default lifetime, in seconds.
    pub(crate) fn default_duration(self) -> i64 {
        match self {
            Purpose::Verification => 86_400,
            Purpose::PasswordReset | Purpose::EmailChange => 1800,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FlowClaims {
    #[serde(rename = "collectionId")]
    pub(crate) collection_id: String,
    #[serde(default)]
    pub(crate) email: String,
    pub(crate) exp: i64,
    pub(crate) id: String,
    #[serde(rename = "newEmail", default, skip_serializing_if = "String::is_empty")]
    pub(crate) new_email: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

/// The secret of `option` (`verificationToken`, …, `fileToken`): the collection's own, or,
/// for a collection saved before it had one, a secret derived from its auth token secret, so
/// every backend derives the same one.
pub(crate) fn secret(c: &Collection, option: &str) -> String {
    if let Some(s) = c
        .options
        .get(option)
        .and_then(|t| t.get("secret"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return s.to_owned();
    }
    let base = c.token_secret().unwrap_or_default();
    match Hmac::<Sha256>::new_from_slice(base.as_bytes()) {
        Ok(mut m) => {
            m.update(option.as_bytes());
            m.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        Err(_) => String::new(),
    }
}

fn duration(c: &Collection, p: Purpose) -> i64 {
    c.options
        .get(p.option())
        .and_then(|t| t.get("duration"))
        .and_then(Value::as_i64)
        .filter(|d| *d > 0)
        .unwrap_or_else(|| p.default_duration())
}

/// A token for record `id` of `c` (whose `tokenKey` is `token_key`).
pub(crate) fn issue(
    c: &Collection,
    id: &str,
    token_key: &str,
    p: Purpose,
    email: &str,
    new_email: &str,
) -> String {
    let claims = FlowClaims {
        collection_id: c.id.clone(),
        email: email.to_owned(),
        exp: unix_now() + duration(c, p),
        id: id.to_owned(),
        new_email: new_email.to_owned(),
        kind: p.kind().to_owned(),
    };
    sign(&claims, &format!("{token_key}{}", secret(c, p.option())))
}

/// The `email` claim of a token, read without checking it.
pub(crate) fn email_claim(token: &str) -> Option<String> {
    peek_as::<serde_json::Map<String, Value>>(token)?
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The `newEmail` claim of a token, read without checking it.
pub(crate) fn new_email_claim(token: &str) -> Option<String> {
    peek_as::<serde_json::Map<String, Value>>(token)?
        .get("newEmail")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Why a token was refused.
pub(crate) enum Refused {
    /// Not a token of this purpose, bad signature, expired, or for a record that is gone.
    Invalid,
    /// A valid token of another auth collection.
    OtherCollection,
}

impl Engine {
    /// The claims of a valid `p` token for a record of `c`.
    pub(crate) async fn check_flow_token(
        &self,
        c: &Collection,
        token: &str,
        p: Purpose,
    ) -> Result<Result<FlowClaims, Refused>, RecordError> {
        let Some(claims) = peek_as::<FlowClaims>(token) else {
            return Ok(Err(Refused::Invalid));
        };
        if claims.kind != p.kind() || claims.exp <= unix_now() {
            return Ok(Err(Refused::Invalid));
        }
        if claims.collection_id != c.id {
            // Say so only for a token that really is one of another collection's.
            let Ok(other) = self.collection(&claims.collection_id).await else {
                return Ok(Err(Refused::Invalid));
            };
            let valid = other.kind == CollectionType::Auth
                && match self.token_key(&other, &claims.id).await? {
                    Some(key) => {
                        verify_signature(token, &format!("{key}{}", secret(&other, p.option())))
                    }
                    None => false,
                };
            return Ok(Err(if valid {
                Refused::OtherCollection
            } else {
                Refused::Invalid
            }));
        }
        let Some(key) = self.token_key(c, &claims.id).await? else {
            return Ok(Err(Refused::Invalid));
        };
        if !verify_signature(token, &format!("{key}{}", secret(c, p.option()))) {
            return Ok(Err(Refused::Invalid));
        }
        Ok(Ok(claims))
    }
}
