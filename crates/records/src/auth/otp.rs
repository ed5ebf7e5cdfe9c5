//! One-time passwords and multi-factor sign-in, as PocketBase runs them.
//!
//! `request-otp` stores a code (only its hash) in `_otps` and hands back the letter that carries
//! it; an unknown address gets an `otpId` too, so the answer says nothing about who has an
//! account. `auth-with-otp` accepts a code once, before the collection's `otp.duration` runs
//! out. Each record and client address gets 5 attempts in 3 minutes (PocketBase's limit,
//! counted before the code is compared), and after [`MAX_ATTEMPTS`] wrong codes from any
//! clients the OTP is gone: guessing an 8-digit code is
//! hopeless long before 10,000 tries.
//!
//! MFA: when the collection's `mfa` is on (and `mfa.rule`, if any, matches the record), a first
//! factor that succeeds answers 401 with an `mfaId` (a `_mfas` row naming the record and the
//! method); a second, different method presented with that `mfaId` before `mfa.duration` runs
//! out completes the sign-in.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::Origin;
use crate::auth::letters::{self, AppInfo, Letter, LetterKind};
use crate::engine::{Engine, unix_now};
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType};

/// Wrong codes after which an OTP is deleted whatever clients sent them (the per-client limit,
/// 5 attempts in 3 minutes, comes first).
pub(crate) const MAX_ATTEMPTS: i64 = 10;

/// What a successful first factor leads to.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in; `alert` is the sign-in-alert line (`{ALERT_INFO}`) when this was a new
    /// device for a record that had signed in before and the collection's `authAlert` is on.
    Token {
        token: String,
        record: Map<String, Value>,
        alert: Option<String>,
    },
    /// A second factor is needed: present it with this `mfaId`.
    Mfa { mfa_id: String },
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn section<'a>(c: &'a Collection, key: &str) -> Option<&'a Map<String, Value>> {
    c.options.get(key).and_then(Value::as_object)
}

fn enabled(c: &Collection, key: &str) -> bool {
    section(c, key)
        .and_then(|s| s.get("enabled"))
        .and_then(Value::as_bool)
        == Some(true)
}

fn number(c: &Collection, key: &str, name: &str, default: i64) -> i64 {
    section(c, key)
        .and_then(|s| s.get(name))
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// `otp.duration` (seconds), PocketBase's default 180.
pub(crate) fn otp_duration(c: &Collection) -> i64 {
    number(c, "otp", "duration", 180)
}

/// `mfa.duration` (seconds), PocketBase's default 600.
pub(crate) fn mfa_duration(c: &Collection) -> i64 {
    number(c, "mfa", "duration", 600)
}

pub(crate) fn otp_enabled(c: &Collection) -> bool {
    enabled(c, "otp")
}

pub(crate) fn mfa_enabled(c: &Collection) -> bool {
    enabled(c, "mfa")
}

fn hash(otp_id: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(otp_id.as_bytes());
    h.update([0]);
    h.update(code.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two hex digests.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn not_allowed(what: &str) -> RecordError {
    RecordError::Forbidden(format!(
        "The collection is not configured to allow {what} authentication."
    ))
}

/// Unexpired OTPs one record may have; a request beyond it gets the newest `otpId` again and
/// no mail, as PocketBase answers.
const MAX_OPEN_OTPS: usize = 10;

impl Engine {
    /// `request-otp`: an `otpId` always; the letter with the code when the address has an
    /// account (and is not over its mail limit).
    ///
    /// # Errors
    /// 400 when OTP is off or `email` is invalid; storage errors.
    pub async fn request_otp(
        &self,
        c: &Collection,
        email: &str,
        client: &str,
        app: &AppInfo,
    ) -> Result<(String, Option<Letter>), RecordError> {
        if c.kind != CollectionType::Auth || !otp_enabled(c) {
            return Err(not_allowed("OTP"));
        }
        crate::auth::flows::check_email("email", email)?;
        let otp_id = ids::record_id();
        let Some(account) = self.account_by_email(c, email).await? else {
            return Ok((otp_id, None));
        };
        // Milliseconds, so that the newest of several OTPs asked for in one second is known.
        let now = unix_millis();
        self.store
            .execute(
                "DELETE FROM _otps WHERE \"collectionRef\" = $1 AND created < $2",
                vec![c.id.clone().into(), (now - otp_duration(c) * 1000).into()],
            )
            .await?;
        let open = self
            .store
            .query(
                "SELECT id FROM _otps WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2
                 ORDER BY created DESC",
                vec![c.id.clone().into(), account.id.clone().into()],
            )
            .await?;
        if open.len() >= MAX_OPEN_OTPS {
            let newest = open
                .iter()
                .next()
                .and_then(|r| r[0].as_str())
                .unwrap_or_default()
                .to_owned();
            return Ok((newest, None));
        }
        if !self.may_mail(c, "otp", email, client) {
            return Ok((otp_id, None));
        }
        let length = usize::try_from(number(c, "otp", "length", 8).clamp(4, 32)).unwrap_or(8);
        let code = ids::digits(length);
        self.store
            .execute(
                "INSERT INTO _otps (id, \"collectionRef\", \"recordRef\", password, \"sentTo\", attempts, created)
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
                vec![
                    otp_id.clone().into(),
                    c.id.clone().into(),
                    account.id.clone().into(),
                    hash(&otp_id, &code).into(),
                    account.email.clone().into(),
                    now.into(),
                ],
            )
            .await?;
        let record = self
            .record_for(
                c,
                &account.id,
                &crate::Auth::Superuser { id: String::new() },
            )
            .await
            .unwrap_or_default();
        let letter = letters::render(
            c,
            LetterKind::Otp,
            &account.email,
            app,
            &record,
            &[("OTP", &code), ("OTP_ID", &otp_id)],
        );
        Ok((otp_id, Some(letter)))
    }

    /// `auth-with-otp`.
    ///
    /// # Errors
    /// 400 when OTP is off, for a blank, unknown, expired, used or wrong OTP, or an invalid
    /// `mfaId`.
    pub async fn auth_with_otp(
        &self,
        c: &Collection,
        otp_id: &str,
        password: &str,
        mfa_id: &str,
        origin: &Origin,
    ) -> Result<SignIn, RecordError> {
        if c.kind != CollectionType::Auth || !otp_enabled(c) {
            return Err(not_allowed("OTP"));
        }
        crate::auth::flows::required(&[("otpId", otp_id), ("password", password)])?;
        let fail = || RecordError::BadRequest("Invalid or expired OTP.".into());
        let rows = self
            .store
            .query(
                "SELECT \"recordRef\", password, \"sentTo\", created FROM _otps
                 WHERE id = $1 AND \"collectionRef\" = $2",
                vec![otp_id.into(), c.id.clone().into()],
            )
            .await?;
        let Some(row) = rows.iter().next() else {
            return Err(fail());
        };
        let record_id = row[0].as_str().unwrap_or_default().to_owned();
        let stored = row[1].as_str().unwrap_or_default().to_owned();
        let sent_to = row[2].as_str().unwrap_or_default().to_owned();
        let created = row[3].as_i64().unwrap_or(0);
        // Attempts per record and client count before the code is compared, right or wrong.
        let attempts = [format!("otp:{}:{record_id}:{}", c.id, origin.ip)];
        if self.limiter.blocked(&attempts).is_some() {
            return Err(RecordError::Throttled(
                "Too many attempts, please try again later with a new OTP.".into(),
            ));
        }
        self.limiter.fail(&attempts);
        if created + otp_duration(c) * 1000 <= unix_millis() {
            self.delete_otp(otp_id).await?;
            return Err(fail());
        }
        if !same(&stored, &hash(otp_id, password)) {
            // Count the miss; the last allowed miss takes the OTP away.
            self.store
                .execute(
                    "UPDATE _otps SET attempts = attempts + 1 WHERE id = $1",
                    vec![otp_id.into()],
                )
                .await?;
            self.store
                .execute(
                    "DELETE FROM _otps WHERE id = $1 AND attempts >= $2",
                    vec![otp_id.into(), MAX_ATTEMPTS.into()],
                )
                .await?;
            return Err(fail());
        }
        // Used once: whoever deletes the row is the one who signs in.
        let deleted = self
            .store
            .execute("DELETE FROM _otps WHERE id = $1", vec![otp_id.into()])
            .await?;
        if deleted == 0 {
            return Err(fail());
        }
        let account = self.account_by_id(c, &record_id).await?.ok_or_else(fail)?;
        // The code reached the address: it is verified.
        if !account.verified
            && c.id != crate::SUPERUSERS_ID
            && account.email.eq_ignore_ascii_case(&sent_to)
        {
            let mut req = crate::RequestInfo {
                auth: crate::Auth::Superuser { id: String::new() },
                ..crate::RequestInfo::default()
            };
            req.body.insert("verified".into(), Value::Bool(true));
            self.update(c, &account.id, &req).await?;
        }
        if !self.passes_auth_rule(c, &account.id).await? {
            return Err(RecordError::BadRequest("Failed to authenticate.".into()));
        }
        self.finish_sign_in(c, &account.id, "otp", mfa_id, origin)
            .await
    }

    async fn delete_otp(&self, otp_id: &str) -> Result<(), RecordError> {
        self.store
            .execute("DELETE FROM _otps WHERE id = $1", vec![otp_id.into()])
            .await?;
        Ok(())
    }

    /// Whether record `id` must complete MFA: the collection's `mfa` is on and its rule (if
    /// any) matches the record.
    async fn needs_mfa(&self, c: &Collection, id: &str) -> Result<bool, RecordError> {
        if !mfa_enabled(c) {
            return Ok(false);
        }
        let rule = section(c, "mfa")
            .and_then(|s| s.get("rule"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if rule.is_empty() {
            return Ok(true);
        }
        let as_self = crate::RequestInfo {
            auth: Self::auth_of(c, id),
            ..crate::RequestInfo::default()
        };
        Ok(self
            .fetch_visible(c, id, &Some(rule), &as_self)
            .await?
            .is_some())
    }

    /// After a first factor (`method`: `password`, `otp`, `oauth2`) succeeded for record `id`:
    /// the token, or the MFA step.
    pub(crate) async fn finish_sign_in(
        &self,
        c: &Collection,
        id: &str,
        method: &str,
        mfa_id: &str,
        origin: &Origin,
    ) -> Result<SignIn, RecordError> {
        if !mfa_id.is_empty() {
            self.complete_mfa(c, id, method, mfa_id).await?;
        } else if self.needs_mfa(c, id).await? {
            let now = unix_now();
            self.store
                .execute(
                    "DELETE FROM _mfas WHERE created < $1",
                    vec![(now - mfa_duration(c)).into()],
                )
                .await?;
            let mfa_id = ids::record_id();
            self.store
                .execute(
                    "INSERT INTO _mfas (id, \"collectionRef\", \"recordRef\", method, created)
                     VALUES ($1, $2, $3, $4, $5)",
                    vec![
                        mfa_id.clone().into(),
                        c.id.clone().into(),
                        id.into(),
                        method.into(),
                        now.into(),
                    ],
                )
                .await?;
            return Ok(SignIn::Mfa { mfa_id });
        }
        let key = self
            .token_key(c, id)
            .await?
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let token = Self::issue_token(c, id, &key)?;
        let record = self.record_for(c, id, &Self::auth_of(c, id)).await?;
        let alert = self.note_origin(c, id, origin).await?;
        Ok(SignIn::Token {
            token,
            record,
            alert,
        })
    }

    async fn complete_mfa(
        &self,
        c: &Collection,
        id: &str,
        method: &str,
        mfa_id: &str,
    ) -> Result<(), RecordError> {
        let invalid = || RecordError::BadRequest("Invalid or expired MFA session.".into());
        let rows = self
            .store
            .query(
                "SELECT method, created FROM _mfas
                 WHERE id = $1 AND \"collectionRef\" = $2 AND \"recordRef\" = $3",
                vec![mfa_id.into(), c.id.clone().into(), id.into()],
            )
            .await?;
        let Some(row) = rows.iter().next() else {
            return Err(invalid());
        };
        if row[1].as_i64().unwrap_or(0) + mfa_duration(c) <= unix_now() {
            return Err(invalid());
        }
        if row[0].as_str() == Some(method) {
            return Err(RecordError::BadRequest(
                "A different authentication method is required.".into(),
            ));
        }
        let deleted = self
            .store
            .execute("DELETE FROM _mfas WHERE id = $1", vec![mfa_id.into()])
            .await?;
        if deleted == 0 {
            return Err(invalid());
        }
        Ok(())
    }
}
