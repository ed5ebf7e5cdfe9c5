//! Signing in with a password, refreshing and impersonating, and `auth-methods`.

use pier_storage::Value as Db;
use serde_json::{Map, Value, json};

use crate::auth::{self, Auth, Origin, SignIn, TokenClaims};
use crate::collections::SUPERUSERS_ID;
use crate::engine::{Engine, unix_now};
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType};
use crate::query::RequestInfo;
use crate::records::ONLY_SUPERUSERS;
use crate::schema::quote;

impl Engine {
    /// (id, password hash, tokenKey) of an auth record by email, case-insensitively.
    /// The record an identity names: the first of the collection's identity fields
    /// (`passwordAuth.identityFields`, in order) that holds it; email is matched without case.
    pub(crate) async fn find_identity(
        &self,
        c: &Collection,
        identity: &str,
    ) -> Result<Option<(String, String, String)>, RecordError> {
        for name in crate::collections::identity_fields(&c.options) {
            let Some(f) = c.field(&name) else { continue };
            let matches = if f.kind == "email" {
                format!("LOWER({}) = LOWER($1)", quote(&f.name))
            } else {
                format!("{} = $1", quote(&f.name))
            };
            let rows = self
                .store
                .query(
                    format!(
                        "SELECT id, password, \"tokenKey\" FROM {} WHERE {matches} AND {} != ''",
                        quote(&c.name),
                        quote(&f.name)
                    ),
                    vec![identity.into()],
                )
                .await?;
            if let Some(r) = rows.iter().next() {
                return Ok(Some((
                    r[0].as_str().unwrap_or_default().to_owned(),
                    r[1].as_str().unwrap_or_default().to_owned(),
                    r[2].as_str().unwrap_or_default().to_owned(),
                )));
            }
        }
        Ok(None)
    }

    pub(crate) fn auth_of(c: &Collection, id: &str) -> Auth {
        if c.id == SUPERUSERS_ID {
            Auth::Superuser { id: id.to_owned() }
        } else {
            Auth::Record {
                collection_id: c.id.clone(),
                id: id.to_owned(),
            }
        }
    }

    /// Password login. An unknown identity costs the same as a wrong password. With MFA on, the
    /// answer may be the MFA step instead of a token; `mfa_id` completes an earlier step.
    ///
    /// # Errors
    /// [`RecordError::BadRequest`] "Failed to authenticate." for any failure.
    pub async fn auth_with_password(
        &self,
        c: &Collection,
        identity: &str,
        password: &str,
        mfa_id: &str,
        origin: &Origin,
    ) -> Result<SignIn, RecordError> {
        let client = origin.ip.as_str();
        let fail = || RecordError::BadRequest("Failed to authenticate.".into());
        if c.kind != CollectionType::Auth {
            return Err(fail());
        }
        if !crate::collections::password_auth_enabled(&c.options) {
            return Err(RecordError::BadRequest(
                "The collection is not configured to allow password authentication.".into(),
            ));
        }
        // Failed attempts are limited per identity and per client address.
        let keys = [
            format!("id:{}:{}", c.id, identity.to_lowercase()),
            format!("ip:{client}"),
        ];
        if let Some(retry_after_seconds) = self.limiter.blocked(&keys) {
            return Err(RecordError::TooManyAttempts {
                retry_after_seconds,
            });
        }
        let found = self.find_identity(c, identity).await?;
        let hash = found
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |f| f.1.clone());
        let pw = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
            .await
            .unwrap_or(false);
        let Some((id, stored, token_key)) = found.filter(|_| ok) else {
            self.limiter.fail(&keys);
            return Err(fail());
        };
        if !self.passes_auth_rule(c, &id).await? {
            self.limiter.fail(&keys);
            return Err(fail());
        }
        self.limiter.clear(&keys[0]);
        if auth::is_bcrypt(&stored) {
            // Replace an imported bcrypt hash by Argon2id now that the password is known.
            let pw = password.to_owned();
            if let Ok(Ok(hash)) =
                tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await
            {
                self.store
                    .execute(
                        format!("UPDATE {} SET password = $2 WHERE id = $1", quote(&c.name)),
                        vec![id.clone().into(), hash.into()],
                    )
                    .await?;
            }
        }
        let _ = token_key;
        self.finish_sign_in(c, &id, "password", mfa_id, origin)
            .await
    }

    /// The collection's auth rule for record `id`: `null` lets no one in, `""` everyone, an
    /// expression the records it matches (e.g. `verified = true`).
    pub(crate) async fn passes_auth_rule(
        &self,
        c: &Collection,
        id: &str,
    ) -> Result<bool, RecordError> {
        let auth_rule: Option<String> = match c.options.get("authRule") {
            Some(Value::String(r)) => Some(r.clone()),
            Some(Value::Null) => None,
            _ => Some(String::new()),
        };
        let as_self = RequestInfo {
            auth: Self::auth_of(c, id),
            ..RequestInfo::default()
        };
        Ok(match auth_rule.as_deref().map(str::trim) {
            None => false,
            Some("") => true,
            Some(_) => self
                .fetch_visible(c, id, &auth_rule, &as_self)
                .await?
                .is_some(),
        })
    }

    pub(crate) async fn record_for(
        &self,
        c: &Collection,
        id: &str,
        auth: &Auth,
    ) -> Result<Map<String, Value>, RecordError> {
        let (rows, i) = self.fetch(c, id).await?.ok_or(RecordError::NotFound)?;
        let row: Vec<Db> = rows.iter().nth(i).map(<[Db]>::to_vec).unwrap_or_default();
        Ok(Self::row_json(c, &rows, &row, auth))
    }

    /// A fresh token for the caller, who must belong to `c`.
    ///
    /// # Errors
    /// [`RecordError::Unauthorized`] for a guest, [`RecordError::Forbidden`] for a record of
    /// another collection.
    ///
    /// `presented` is the token the caller sent: a non-refreshable one (from impersonation) is
    /// handed back unchanged, as PocketBase does, so it still expires when it was meant to.
    pub async fn auth_refresh(
        &self,
        c: &Collection,
        auth: &Auth,
        presented: &str,
    ) -> Result<(String, Map<String, Value>), RecordError> {
        let (collection_id, id) = match auth {
            Auth::Guest => {
                return Err(RecordError::Unauthorized(
                    "The request requires valid record authorization token.".into(),
                ));
            }
            Auth::Superuser { id } => (SUPERUSERS_ID.to_owned(), id.clone()),
            Auth::Record { collection_id, id } => (collection_id.clone(), id.clone()),
        };
        if collection_id != c.id {
            return Err(RecordError::Forbidden(
                "The request requires valid auth record from this collection.".into(),
            ));
        }
        let key = self.token_key(c, &id).await?.ok_or(RecordError::NotFound)?;
        let presented = presented
            .strip_prefix("Bearer ")
            .unwrap_or(presented)
            .trim();
        if auth::peek(presented).is_some_and(|claims| !claims.refreshable) {
            let record = self.record_for(c, &id, auth).await?;
            return Ok((presented.to_owned(), record));
        }
        let token = Self::issue_token(c, &id, &key)?;
        let record = self.record_for(c, &id, auth).await?;
        Ok((token, record))
    }

    /// A superuser's token for another record: not refreshable, valid `duration` seconds (the
    /// collection's token lifetime when 0).
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] for non-superusers, [`RecordError::NotFound`].
    pub async fn impersonate(
        &self,
        c: &Collection,
        id: &str,
        duration: i64,
        auth: &Auth,
    ) -> Result<(String, Map<String, Value>), RecordError> {
        if !auth.is_superuser() {
            return Err(RecordError::Forbidden(ONLY_SUPERUSERS.into()));
        }
        if c.kind != CollectionType::Auth {
            return Err(RecordError::NotFound);
        }
        if !ids::is_valid_record_id(id) {
            return Err(RecordError::NotFound);
        }
        let key = self.token_key(c, id).await?.ok_or(RecordError::NotFound)?;
        let secret = c.token_secret().ok_or(RecordError::NotFound)?;
        let claims = TokenClaims {
            collection_id: c.id.clone(),
            exp: unix_now()
                + if duration > 0 {
                    duration
                } else {
                    c.token_duration()
                },
            id: id.to_owned(),
            refreshable: false,
            kind: "auth".into(),
        };
        let token = auth::sign(&claims, &format!("{key}{secret}"));
        let record = self.record_for(c, id, auth).await?;
        Ok((token, record))
    }

    /// The sign-in methods of an auth collection, in PocketBase's shape.
    ///
    /// # Errors
    /// [`RecordError::NotFound`] for a collection that is not an auth collection.
    pub fn auth_methods(&self, c: &Collection) -> Result<Value, RecordError> {
        if c.kind != CollectionType::Auth {
            return Err(RecordError::NotFound);
        }
        let password = c
            .options
            .get("passwordAuth")
            .cloned()
            .unwrap_or_else(|| json!({"enabled": true, "identityFields": ["email"]}));
        let otp = if auth::otp_enabled(c) {
            json!({"enabled": true, "duration": auth::otp_duration(c)})
        } else {
            json!({"enabled": false, "duration": 0})
        };
        let mfa = if auth::mfa_enabled(c) {
            json!({"enabled": true, "duration": auth::mfa_duration(c)})
        } else {
            json!({"enabled": false, "duration": 0})
        };
        Ok(json!({
            "password": password,
            "oauth2": {"enabled": false, "providers": []},
            "mfa": mfa,
            "otp": otp,
        }))
    }
}
