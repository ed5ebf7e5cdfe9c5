//! Passwords: Argon2id for pier's own hashes, bcrypt accepted for hashes brought over from
//! PocketBase (replaced at the next successful sign-in).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

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

#[cfg(test)]
mod tests {
    use super::*;

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
