//! Authentication: who a request is ([`Auth`]), passwords and their hashes (`passwords`),
//! tokens (`tokens`: PocketBase-shaped HS256 JWTs, issued and verified), signing in with a
//! password, refreshing and impersonating (`signin`), superusers (`superusers`) and the limits on
//! failed sign-ins (`limits`). OAuth2, one-time codes, MFA, mail and API keys will live here too.

mod limits;
mod passwords;
mod signin;
mod superusers;
mod tokens;

pub(crate) use limits::FailureLimiter;
pub(crate) use passwords::{hash_password, is_bcrypt, verify_password};
pub use tokens::TokenClaims;
pub(crate) use tokens::{peek, sign};

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
