//! The email flows, as PocketBase runs them: `request-verification` / `confirm-verification`,
//! `request-password-reset` / `confirm-password-reset`, `request-email-change` /
//! `confirm-email-change`. A request answers the same whether or not the address belongs to
//! an account (no enumeration) and hands back the letter to send, if any; mails per address and
//! per client are limited. Every change goes through the record update path, so it is validated
//! and published as a record event like any other update.

use serde_json::{Map, Value, json};

use crate::auth::flow_tokens::{self, FlowClaims, Purpose, Refused};
use crate::auth::letters::{self, AppInfo, Letter, LetterKind};
use crate::auth::{self, Auth};
use crate::collections::SUPERUSERS_ID;
use crate::engine::Engine;
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType};
use crate::query::RequestInfo;
use crate::schema::quote;

const INVALID_DATA: &str = "An error occurred while validating the submitted data.";

/// A validation error on one field, in PocketBase's shape.
pub(crate) fn invalid(field: &str, code: &str, message: &str) -> RecordError {
    let mut fields = Map::new();
    fields.insert(field.into(), json!({"code": code, "message": message}));
    RecordError::Validation {
        message: INVALID_DATA.into(),
        fields,
    }
}

pub(crate) fn required(fields: &[(&str, &str)]) -> Result<(), RecordError> {
    let mut errors = Map::new();
    for (name, value) in fields {
        if value.is_empty() {
            errors.insert(
                (*name).into(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RecordError::Validation {
            message: INVALID_DATA.into(),
            fields: errors,
        })
    }
}

/// A required, well-formed email address in `field`.
pub(crate) fn check_email(field: &str, email: &str) -> Result<(), RecordError> {
    required(&[(field, email)])?;
    if crate::values::is_email(email) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "validation_is_email",
            "Must be a valid email address.",
        ))
    }
}

fn token_refused(why: &Refused) -> RecordError {
    match why {
        Refused::Invalid => invalid(
            "token",
            "validation_invalid_token",
            "Invalid or expired token.",
        ),
        Refused::OtherCollection => invalid(
            "token",
            "validation_token_collection_mismatch",
            "The provided token is for different auth collection.",
        ),
    }
}

fn superuser() -> RequestInfo {
    RequestInfo {
        auth: Auth::Superuser { id: String::new() },
        ..RequestInfo::default()
    }
}

pub(crate) struct Account {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) verified: bool,
    pub(crate) token_key: String,
    pub(crate) password: String,
}

impl Engine {
    /// The record of `c` with this email, compared without case.
    pub(crate) async fn account_by_email(
        &self,
        c: &Collection,
        email: &str,
    ) -> Result<Option<Account>, RecordError> {
        self.account_where(c, "LOWER(email) = LOWER($1)", email)
            .await
    }

    pub(crate) async fn account_by_id(
        &self,
        c: &Collection,
        id: &str,
    ) -> Result<Option<Account>, RecordError> {
        self.account_where(c, "id = $1", id).await
    }

    async fn account_where(
        &self,
        c: &Collection,
        condition: &str,
        value: &str,
    ) -> Result<Option<Account>, RecordError> {
        if c.kind != CollectionType::Auth {
            return Ok(None);
        }
        let rows = self
            .store
            .query(
                format!(
                    "SELECT id, email, verified, \"tokenKey\", password FROM {} WHERE {condition} LIMIT 1",
                    quote(&c.name)
                ),
                vec![value.into()],
            )
            .await?;
        Ok(rows.iter().next().map(|r| Account {
            id: r[0].as_str().unwrap_or_default().to_owned(),
            email: r[1].as_str().unwrap_or_default().to_owned(),
            verified: r[2].as_i64().is_some_and(|v| v != 0),
            token_key: r[3].as_str().unwrap_or_default().to_owned(),
            password: r[4].as_str().unwrap_or_default().to_owned(),
        }))
    }

    /// Whether another mail of `kind` may go to `email` from `client` now; counts it if so.
    /// Every kind is limited per client; verification and reset mails also wait two minutes
    /// after the last one to the same address, as PocketBase waits.
    pub(crate) fn may_mail(&self, c: &Collection, kind: &str, email: &str, client: &str) -> bool {
        let per_client = [format!("mailip:{client}")];
        let resend = format!("{}:{kind}:{}", c.id, email.to_lowercase());
        let allowed = self.limiter.blocked(&per_client).is_none()
            && (kind == "otp" || self.limiter.may_resend(&resend));
        if !allowed {
            tracing::info!(
                target: "pier::mail",
                collection = %c.name, kind,
                "mail not sent: one went to this address recently, or this client asked for too many"
            );
            return false;
        }
        self.limiter.fail(&per_client);
        true
    }

    async fn letter_record(&self, c: &Collection, id: &str) -> Map<String, Value> {
        self.record_for(c, id, &Auth::Superuser { id: String::new() })
            .await
            .unwrap_or_default()
    }

    /// `request-verification`: the letter for an unverified account with this email.
    ///
    /// # Errors
    /// Validation of `email`; storage errors.
    pub async fn request_verification(
        &self,
        c: &Collection,
        email: &str,
        client: &str,
        app: &AppInfo,
    ) -> Result<Option<Letter>, RecordError> {
        check_email("email", email)?;
        if c.id == SUPERUSERS_ID {
            return Err(RecordError::BadRequest(
                "All superusers are verified by default.".into(),
            ));
        }
        let Some(account) = self.account_by_email(c, email).await? else {
            return Ok(None);
        };
        if account.verified || !self.may_mail(c, "verification", email, client) {
            return Ok(None);
        }
        let token = flow_tokens::issue(
            c,
            &account.id,
            &account.token_key,
            Purpose::Verification,
            &account.email,
            "",
        );
        let record = self.letter_record(c, &account.id).await;
        Ok(Some(letters::render(
            c,
            LetterKind::Verification,
            &account.email,
            app,
            &record,
            &[("TOKEN", &token)],
        )))
    }

    /// A valid token of `p` whose email claim is still the record's email.
    async fn flow_account(
        &self,
        c: &Collection,
        token: &str,
        p: Purpose,
    ) -> Result<(FlowClaims, Account), RecordError> {
        let claims = self
            .check_flow_token(c, token, p)
            .await?
            .map_err(|why| token_refused(&why))?;
        let account = self
            .account_by_id(c, &claims.id)
            .await?
            .ok_or_else(|| token_refused(&Refused::Invalid))?;
        if !account.email.eq_ignore_ascii_case(&claims.email) {
            return Err(invalid(
                "token",
                "validation_token_email_mismatch",
                "The record email doesn't match with the requested token claims.",
            ));
        }
        Ok((claims, account))
    }

    /// `confirm-verification`: marks the token's record verified.
    ///
    /// # Errors
    /// 400 for a missing, invalid or expired token.
    pub async fn confirm_verification(
        &self,
        c: &Collection,
        token: &str,
    ) -> Result<(), RecordError> {
        if c.id == SUPERUSERS_ID {
            return Err(RecordError::BadRequest(
                "All superusers are verified by default.".into(),
            ));
        }
        required(&[("token", token)])?;
        if flow_tokens::email_claim(token).is_none_or(|e| e.is_empty()) {
            return Err(invalid(
                "token",
                "validation_invalid_token_claims",
                "Missing email token claim.",
            ));
        }
        let (_, account) = self.flow_account(c, token, Purpose::Verification).await?;
        if !account.verified {
            let mut req = superuser();
            req.body.insert("verified".into(), Value::Bool(true));
            self.update(c, &account.id, &req).await?;
        }
        Ok(())
    }

    /// `request-password-reset`: the letter for the account with this email.
    ///
    /// # Errors
    /// Validation of `email`; storage errors.
    pub async fn request_password_reset(
        &self,
        c: &Collection,
        email: &str,
        client: &str,
        app: &AppInfo,
    ) -> Result<Option<Letter>, RecordError> {
        check_email("email", email)?;
        let Some(account) = self.account_by_email(c, email).await? else {
            return Ok(None);
        };
        if !self.may_mail(c, "passwordReset", email, client) {
            return Ok(None);
        }
        let token = flow_tokens::issue(
            c,
            &account.id,
            &account.token_key,
            Purpose::PasswordReset,
            &account.email,
            "",
        );
        let record = self.letter_record(c, &account.id).await;
        Ok(Some(letters::render(
            c,
            LetterKind::PasswordReset,
            &account.email,
            app,
            &record,
            &[("TOKEN", &token)],
        )))
    }

    /// `confirm-password-reset`: sets the new password (which retires every token issued
    /// before, this one included) and marks the email verified, since the mail reached it.
    ///
    /// # Errors
    /// 400 for a missing or invalid token, a blank or mismatched password, a password the
    /// collection's password field refuses.
    pub async fn confirm_password_reset(
        &self,
        c: &Collection,
        token: &str,
        password: &str,
        password_confirm: &str,
    ) -> Result<(), RecordError> {
        required(&[
            ("token", token),
            ("password", password),
            ("passwordConfirm", password_confirm),
        ])?;
        if password != password_confirm {
            return Err(invalid(
                "passwordConfirm",
                "validation_values_mismatch",
                "Values don't match.",
            ));
        }
        let bound = |key: &str, default: u64| {
            c.field("password")
                .and_then(|f| f.options.get(key))
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let (min, max) = (bound("min", 8), bound("max", 255));
        let length = password.chars().count() as u64;
        if length < min || length > max {
            let mut fields = Map::new();
            fields.insert(
                "password".into(),
                json!({
                    "code": "validation_length_out_of_range",
                    "message": format!("The length must be between {min} and {max}."),
                    "params": {"max": max, "min": min},
                }),
            );
            return Err(RecordError::Validation {
                message: INVALID_DATA.into(),
                fields,
            });
        }
        let (_, account) = self.flow_account(c, token, Purpose::PasswordReset).await?;
        let mut req = superuser();
        req.body.insert("password".into(), Value::from(password));
        req.body
            .insert("passwordConfirm".into(), Value::from(password_confirm));
        if c.id != SUPERUSERS_ID && !account.verified {
            req.body.insert("verified".into(), Value::Bool(true));
        }
        self.update(c, &account.id, &req).await?;
        Ok(())
    }

    /// `request-email-change`: the letter to the new address, for the signed-in record itself.
    ///
    /// # Errors
    /// 401 for a guest, 403 for a record of another collection; validation of `newEmail`
    /// (well-formed, not taken).
    pub async fn request_email_change(
        &self,
        c: &Collection,
        who: &Auth,
        new_email: &str,
        app: &AppInfo,
    ) -> Result<Letter, RecordError> {
        let id = match who {
            Auth::Guest => {
                return Err(RecordError::Unauthorized(
                    "The request requires valid record authorization token.".into(),
                ));
            }
            Auth::Superuser { id } if c.id == SUPERUSERS_ID => id.clone(),
            Auth::Record { collection_id, id } if *collection_id == c.id => id.clone(),
            _ => {
                return Err(RecordError::Forbidden(
                    "The request requires valid auth record from this collection.".into(),
                ));
            }
        };
        check_email("newEmail", new_email)?;
        let account = self
            .account_by_id(c, &id)
            .await?
            .ok_or(RecordError::NotFound)?;
        if account.email.eq_ignore_ascii_case(new_email) {
            return Err(invalid(
                "newEmail",
                "validation_not_in_invalid",
                "Must not be in list.",
            ));
        }
        if self.account_by_email(c, new_email).await?.is_some() {
            return Err(invalid(
                "newEmail",
                "validation_invalid_new_email",
                "Invalid new email address.",
            ));
        }
        let token = flow_tokens::issue(
            c,
            &account.id,
            &account.token_key,
            Purpose::EmailChange,
            &account.email,
            new_email,
        );
        let record = self.letter_record(c, &account.id).await;
        Ok(letters::render(
            c,
            LetterKind::EmailChange,
            new_email,
            app,
            &record,
            &[("TOKEN", &token)],
        ))
    }

    /// `confirm-email-change`: with the record's password, moves it to the new address (marked
    /// verified, since the mail reached it) and retires every token issued before. As in
    /// PocketBase, a password cannot be right for a token that is not: both are reported.
    ///
    /// # Errors
    /// 400 for a missing or invalid token, a wrong password, or a new address taken meanwhile.
    pub async fn confirm_email_change(
        &self,
        c: &Collection,
        token: &str,
        password: &str,
    ) -> Result<(), RecordError> {
        let mut errors = Map::new();
        let mut error = |field: &str, code: &str, message: &str| {
            errors.insert(field.into(), json!({"code": code, "message": message}));
        };
        let mut found: Option<(FlowClaims, Account)> = None;
        if token.is_empty() {
            error("token", "validation_required", "Cannot be blank.");
        } else if flow_tokens::new_email_claim(token).is_none_or(|e| e.is_empty()) {
            error(
                "token",
                "validation_invalid_token_payload",
                "Invalid token payload - newEmail must be set.",
            );
        } else {
            match self.flow_account(c, token, Purpose::EmailChange).await {
                Ok((claims, account)) => {
                    if self.account_by_email(c, &claims.new_email).await?.is_some()
                        || !crate::values::is_email(&claims.new_email)
                    {
                        error(
                            "token",
                            "validation_invalid_token_email",
                            "The new email address is invalid.",
                        );
                    } else {
                        found = Some((claims, account));
                    }
                }
                Err(RecordError::Validation { fields, .. }) => {
                    if let Some(e) = fields.get("token") {
                        errors.insert("token".into(), e.clone());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut error = |field: &str, code: &str, message: &str| {
            errors.insert(field.into(), json!({"code": code, "message": message}));
        };
        if password.is_empty() {
            error("password", "validation_required", "Cannot be blank.");
        } else {
            let ok = match &found {
                Some((_, account)) => {
                    let hash = account.password.clone();
                    let pw = password.to_owned();
                    tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
                        .await
                        .unwrap_or(false)
                }
                None => false,
            };
            if !ok {
                error(
                    "password",
                    "validation_invalid_password",
                    "Missing or invalid auth record password.",
                );
            }
        }
        let (Some((claims, account)), true) = (found, errors.is_empty()) else {
            return Err(RecordError::Validation {
                message: INVALID_DATA.into(),
                fields: errors,
            });
        };
        let mut req = superuser();
        req.body
            .insert("email".into(), Value::String(claims.new_email.clone()));
        if c.id != SUPERUSERS_ID {
            req.body.insert("verified".into(), Value::Bool(true));
        }
        self.update(c, &account.id, &req).await?;
        self.store
            .execute(
                format!(
                    "UPDATE {} SET \"tokenKey\" = $2 WHERE id = $1",
                    quote(&c.name)
                ),
                vec![account.id.clone().into(), ids::secret(50).into()],
            )
            .await?;
        Ok(())
    }
}
