//! Passwords (Argon2id) and tokens (PocketBase-shaped HS256 JWTs).
//!
//! A token is signed with the record's `tokenKey` followed by its collection's token secret, so
//! changing a password (which rotates `tokenKey`) or rotating the secret invalidates every token
//! issued before.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No (valid) token.
    #[default]
    Guest,
    /// A superuser.
    Superuser { id: String },
    /// A record of an auth collection.
    Record { collection_id: String, id: String },
}

impl Auth {
    /// True for superusers.
    pub fn is_superuser(&self) -> bool {
        matches!(self, Auth::Superuser { .. })
    }
}

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

/// Hashes a password with Argon2id and a random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored hash: Argon2 (pier's own) or bcrypt (PocketBase's, kept
/// by data brought over from it). Malformed hashes never match.
pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// True for a bcrypt hash (`$2a$`, `$2b$`, `$2y$`), which a successful login replaces.
pub(crate) fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

type HmacSha256 = Hmac<Sha256>;

/// Signs claims into a compact JWT.
pub(crate) fn sign(claims: &TokenClaims, key: &str) -> String {
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

    #[test]
    fn pocketbase_bcrypt_hashes_are_accepted() {
        // A bcrypt hash as PocketBase stores it (cost 10 here to keep the test quick).
        let h = bcrypt::hash("PocketBasePass1", 10).unwrap();
        assert!(is_bcrypt(&h));
        assert!(verify_password("PocketBasePass1", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!is_bcrypt("$argon2id$v=19$m=19456,t=2,p=1$x$y"));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
