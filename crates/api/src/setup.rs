//! The first superuser: on a first start in development, while no superuser exists, pier
//! prints a one-time link (`/_/#/pbinstal/<token>`, PocketBase's path) to a page that creates
//! one. The token lives only in this process's memory, expires after 30 minutes, and allows one
//! thing: creating a record in `_superusers` while there is none.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pier_records::{Auth, Engine};

use crate::{ApiError, AppState};

/// How long a setup link stays valid.
const TTL: Duration = Duration::from_secs(30 * 60);

/// The one-time token and its deadline, behind the lock that setup creations hold.
#[derive(Default)]
pub(crate) struct SetupSlot(tokio::sync::Mutex<Option<(String, Instant)>>);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/_", get(page))
        .route("/_/", get(page))
        .route("/_/{*rest}", get(page))
}

/// The installer page (the admin interface arrives later; until then this is what `/_/` is).
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        include_str!("assets/setup.html"),
    )
        .into_response()
}

impl AppState {
    /// The setup link's path and query-free fragment (`/_/#/pbinstal/<token>`), when no
    /// superuser exists yet; a new token replaces any earlier one.
    ///
    /// # Errors
    /// The database is not ready.
    pub async fn first_superuser_setup_path(&self) -> Result<Option<String>, ApiError> {
        let engine = self.engine().await?;
        if engine.has_superuser().await? {
            return Ok(None);
        }
        let token = Engine::new_secret(48);
        *self.setup_slot().0.lock().await = Some((token.clone(), Instant::now() + TTL));
        Ok(Some(format!("/_/#/pbinstal/{token}")))
    }

    /// Claims the setup token for one creation in `_superusers`: `Some` when `token` is the
    /// live setup token and no superuser exists yet. The claim holds the slot's lock, so setup
    /// creations run one at a time; [`SetupClaim::spend`] retires the token after a success.
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) async fn claim_setup_token(
        &self,
        engine: &Engine,
        token: &str,
    ) -> Result<Option<SetupClaim<'_>>, ApiError> {
        let mut slot = self.setup_slot().0.lock().await;
        let live = slot.as_ref().is_some_and(|(t, deadline)| {
            Instant::now() < *deadline
                && crate::ops::constant_time_eq(t.as_bytes(), token.as_bytes())
        });
        if !live {
            return Ok(None);
        }
        if engine.has_superuser().await? {
            *slot = None;
            return Ok(None);
        }
        Ok(Some(SetupClaim(slot)))
    }
}

/// A claimed setup token (see [`AppState::claim_setup_token`]).
pub(crate) struct SetupClaim<'a>(tokio::sync::MutexGuard<'a, Option<(String, Instant)>>);

impl SetupClaim<'_> {
    /// The caller, for the creation: a superuser.
    pub(crate) fn auth() -> Auth {
        Auth::Superuser { id: String::new() }
    }

    /// The first superuser exists: the token is spent.
    pub(crate) fn spend(mut self) {
        *self.0 = None;
        tracing::info!("first superuser created through the setup link");
    }
}
