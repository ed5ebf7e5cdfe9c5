//! Superusers: whether any exists, and `pier superuser upsert`.

use crate::auth;
use crate::collections::SUPERUSERS_ID;
use crate::engine::{Engine, now};
use crate::error::RecordError;
use crate::ids;

impl Engine {
    /// True once any superuser exists (the first-start setup link is offered until then).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn has_superuser(&self) -> Result<bool, RecordError> {
        let rows = self
            .store
            .query("SELECT 1 FROM _superusers LIMIT 1", vec![])
            .await?;
        Ok(!rows.is_empty())
    }

    /// A random secret of `len` URL-safe characters.
    pub fn new_secret(len: usize) -> String {
        ids::secret(len)
    }

    /// Creates or updates a superuser (`pier superuser upsert`).
    ///
    /// # Errors
    /// [`RecordError::Validation`] for a bad email or a password under 8 characters.
    pub async fn upsert_superuser(
        &self,
        email: &str,
        password: &str,
    ) -> Result<String, RecordError> {
        if !email.contains('@') || email.len() > 255 {
            return Err(RecordError::field(
                "Invalid superuser.",
                "email",
                "validation_is_email",
                "Must be a valid email address.",
            ));
        }
        if password.chars().count() < 8 {
            return Err(RecordError::field(
                "Invalid superuser.",
                "password",
                "validation_min_text_constraint",
                "Must be at least 8 character(s).",
            ));
        }
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
            .await
            .map_err(|e| RecordError::BadRequest(e.to_string()))?
            .map_err(RecordError::BadRequest)?;
        let existing = self.find_superuser(email).await?;
        let ts = now();
        let key = ids::secret(50);
        let id = match existing {
            Some((id, _, _)) => {
                self.store
                    .execute(
                        "UPDATE _superusers SET password = $2, \"tokenKey\" = $3, updated = $4 WHERE id = $1",
                        vec![id.clone().into(), hash.into(), key.into(), ts.into()],
                    )
                    .await?;
                id
            }
            None => {
                let id = ids::record_id();
                self.store
                    .execute(
                        "INSERT INTO _superusers (id, email, \"emailVisibility\", verified, password, \"tokenKey\", created, updated) VALUES ($1, $2, FALSE, TRUE, $3, $4, $5, $5)",
                        vec![id.clone().into(), email.into(), hash.into(), key.into(), ts.into()],
                    )
                    .await?;
                id
            }
        };
        Ok(id)
    }

    async fn find_superuser(
        &self,
        email: &str,
    ) -> Result<Option<(String, String, String)>, RecordError> {
        let c = self.collection(SUPERUSERS_ID).await?;
        self.find_identity(&c, email).await
    }
}
