//! Authentication: who a request is ([`Auth`]), passwords and their hashes (`passwords`),
//! tokens (`tokens`: PocketBase-shaped HS256 JWTs, issued and verified), signing in with a
//! password, refreshing and impersonating (`signin`), superusers (`superusers`) and the limits on
//! failed sign-ins (`limits`); the email flows (`flows`, with their single-purpose tokens in
//! `flow_tokens` and their mails in `letters`); one-time codes and MFA (`otp`); where records sign in from and the alerts (`origins`); API keys for
//! servers and scripts (`api_keys`). OAuth2 will live here too.

mod api_keys;
mod flow_tokens;
pub(crate) mod flows;
pub(crate) mod letters;
mod limits;
mod origins;
mod otp;
mod passwords;
mod signin;
mod superusers;
mod tokens;

pub(crate) use api_keys::KeyUses;
pub use api_keys::{ACTIONS as KEY_ACTIONS, KEY_PREFIX, KeyAuth, KeyScope};
pub use letters::{AppInfo, Letter, LetterKind, sample_letter};
pub(crate) use limits::FailureLimiter;
pub use origins::Origin;
pub use otp::SignIn;
pub(crate) use otp::{mfa_duration, mfa_enabled, otp_duration, otp_enabled};
pub(crate) use passwords::{hash_password, is_bcrypt, verify_password};
pub use tokens::TokenClaims;
pub(crate) use tokens::{peek, sign};

/// Tables whose rows belong to one auth record (`collectionRef`, `recordRef`): they go when the
/// record or its collection goes.
pub(crate) const RECORD_TABLES: &[&str] = &["_otps", "_mfas", "\"_authOrigins\"", "\"_apiKeys\""];

/// Of those, the tables of sign-ins in progress: a new password (a new `tokenKey`) ends them.
pub(crate) const SIGN_IN_TABLES: &[&str] = &["_otps", "_mfas"];

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
