//! Tokens: PocketBase-shaped HS256 JWTs, and the engine's issuing and checking of auth and
//! file tokens.
//!
//! A token is signed with the record's `tokenKey` followed by its collection's token secret, so
//! changing a password (which rotates `tokenKey`) or rotating the secret invalidates every token
//! issued before.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use pier_storage::Value as Db;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::Auth;
use crate::collections::SUPERUSERS_ID;
use crate::engine::{Engine, unix_now};
use crate::error::RecordError;
use crate::model::{Collection, CollectionType};
use crate::schema::quote;

/// The claims of an auth token, as PocketBase writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(rename = "collectionId")]
    pub collection_id: String,
    pub exp: i64,
    pub id: String,
    #[serde(default)]
    pub refreshable: bool,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

type HmacSha256 = Hmac<Sha256>;

/// Signs claims into a compact JWT.
pub(crate) fn sign<T: Serialize>(claims: &T, key: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{body}");
    let sig = mac(key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn mac(key: &str, data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Decodes a token's claims without checking the signature (the key depends on the record the
/// claims name). Only `HS256` is accepted; `none` and every other algorithm are refused.
pub(crate) fn peek(token: &str) -> Option<TokenClaims> {
    peek_as(token)
}

/// [`peek`] into any claims type.
pub(crate) fn peek_as<T: serde::de::DeserializeOwned>(token: &str) -> Option<T> {
    let mut parts = token.split('.');
    let (h, c, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header.alg != "HS256" {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()
}

/// Checks the signature with `key`, in constant time.
pub(crate) fn verify_signature(token: &str, key: &str) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let Ok(mut m) = HmacSha256::new_from_slice(key.as_bytes()) else {
        return false;
    };
    m.update(input.as_bytes());
    m.verify_slice(&sig).is_ok()
}

/// Lifetime of a file token, as PocketBase's default (`fileToken.duration`).
const FILE_TOKEN_SECONDS: i64 = 180;

impl Engine {
    /// The `tokenKey` of record `id` of the auth collection `c`, which signs its tokens.
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) async fn token_key(
        &self,
        c: &Collection,
        id: &str,
    ) -> Result<Option<String>, RecordError> {
        let rows = self
            .store
            .query(
                format!("SELECT \"tokenKey\" FROM {} WHERE id = $1", quote(&c.name)),
                vec![id.into()],
            )
            .await?;
        Ok(rows.scalar().and_then(Db::as_str).map(str::to_owned))
    }

    pub(crate) fn issue_token(
        c: &Collection,
        id: &str,
        token_key: &str,
    ) -> Result<String, RecordError> {
        let secret = c
            .token_secret()
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let claims = TokenClaims {
            collection_id: c.id.clone(),
            exp: unix_now() + c.token_duration(),
            id: id.to_owned(),
            refreshable: true,
            kind: "auth".into(),
        };
        Ok(sign(&claims, &format!("{token_key}{secret}")))
    }

    /// Who a token belongs to; anything invalid (bad signature, expired, unknown record, rotated
    /// key) is a guest.
    pub async fn authenticate(&self, token: &str) -> Auth {
        self.authenticate_kind(token, "auth").await
    }

    /// Who a file token (`POST /api/files/token`, `?token=`) belongs to; anything invalid is a
    /// guest. File tokens are never accepted as auth tokens, nor the reverse.
    pub async fn authenticate_file_token(&self, token: &str) -> Auth {
        self.authenticate_kind(token, "file").await
    }

    /// A short-lived file token for `auth` (PocketBase's claims with `type: "file"`, signed like
    /// its auth token, so a password change retires it too).
    ///
    /// # Errors
    /// [`RecordError`] for a guest or an unknown record.
    pub async fn issue_file_token(&self, who: &Auth) -> Result<String, RecordError> {
        let (collection_id, id) = match who {
            Auth::Guest => {
                return Err(RecordError::BadRequest(
                    "The request requires valid record authorization token.".into(),
                ));
            }
            Auth::Superuser { id } => (SUPERUSERS_ID.to_owned(), id.clone()),
            Auth::Record { collection_id, id } => (collection_id.clone(), id.clone()),
        };
        let c = self.collection(&collection_id).await?;
        let secret = c
            .token_secret()
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let key = self
            .token_key(&c, &id)
            .await?
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let claims = TokenClaims {
            collection_id: c.id.clone(),
            exp: unix_now() + FILE_TOKEN_SECONDS,
            id,
            refreshable: false,
            kind: "file".into(),
        };
        Ok(sign(&claims, &format!("{key}{secret}")))
    }

    async fn authenticate_kind(&self, token: &str, kind: &str) -> Auth {
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        let Some(claims) = peek(token) else {
            return Auth::Guest;
        };
        if claims.kind != kind || claims.exp <= unix_now() {
            return Auth::Guest;
        }
        let Ok(c) = self.collection(&claims.collection_id).await else {
            return Auth::Guest;
        };
        if c.kind != CollectionType::Auth || c.id != claims.collection_id {
            return Auth::Guest;
        }
        let Some(secret) = c.token_secret() else {
            return Auth::Guest;
        };
        let Ok(Some(key)) = self.token_key(&c, &claims.id).await else {
            return Auth::Guest;
        };
        if verify_signature(token, &format!("{key}{secret}")) {
            Self::auth_of(&c, &claims.id)
        } else {
            Auth::Guest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            collection_id: "pbc_1".into(),
            exp,
            id: "abc".into(),
            refreshable: true,
            kind: "auth".into(),
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key() {
        let t = sign(&claims(10), "key1");
        assert_eq!(peek(&t), Some(claims(10)));
        assert!(verify_signature(&t, "key1"));
        assert!(!verify_signature(&t, "key2"));
        // Tampered claims break the signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(99)).unwrap()),
            parts[2]
        );
        assert!(!verify_signature(&forged, "key1"));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(10)).unwrap())
        );
        assert_eq!(peek(&none), None);
        assert_eq!(peek("garbage"), None);
        assert_eq!(peek("a.b.c.d"), None);
    }
}
