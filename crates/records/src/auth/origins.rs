//! Where records sign in from (`_authOrigins`: a fingerprint of the client address and user
//! agent per record) and the sign-in alert PocketBase mails when a record that signed in before
//! signs in from a new one, while the collection's `authAlert` is on (it is by default).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::letters::{self, AppInfo, Letter, LetterKind};
use crate::engine::{Engine, now, unix_now};
use crate::error::RecordError;
use crate::ids;
use crate::model::Collection;

/// The client a sign-in came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client address as pier sees it (after the trusted-proxy rules).
    pub ip: String,
    pub user_agent: String,
}

impl Origin {
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.ip.as_bytes());
        h.update([0]);
        h.update(self.user_agent.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn alerts_on(c: &Collection) -> bool {
    c.options
        .get("authAlert")
        .and_then(|a| a.get("enabled"))
        .and_then(Value::as_bool)
        != Some(false)
}

impl Engine {
    /// Records that record `id` signed in from `origin`; the `{ALERT_INFO}` line when that
    /// origin is new for a record with earlier origins and alerts are on.
    pub(crate) async fn note_origin(
        &self,
        c: &Collection,
        id: &str,
        origin: &Origin,
    ) -> Result<Option<String>, RecordError> {
        let fingerprint = origin.fingerprint();
        let updated = self
            .store
            .execute(
                "UPDATE \"_authOrigins\" SET updated = $4
                 WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2 AND fingerprint = $3",
                vec![
                    c.id.clone().into(),
                    id.into(),
                    fingerprint.clone().into(),
                    unix_now().into(),
                ],
            )
            .await?;
        if updated > 0 {
            return Ok(None);
        }
        let known = self
            .store
            .query(
                "SELECT 1 FROM \"_authOrigins\" WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2 LIMIT 1",
                vec![c.id.clone().into(), id.into()],
            )
            .await?;
        self.store
            .execute(
                "INSERT INTO \"_authOrigins\" (id, \"collectionRef\", \"recordRef\", fingerprint, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
                vec![
                    ids::record_id().into(),
                    c.id.clone().into(),
                    id.into(),
                    fingerprint.into(),
                    unix_now().into(),
                ],
            )
            .await?;
        if known.is_empty() || !alerts_on(c) {
            return Ok(None);
        }
        Ok(Some(format!(
            "{} - {} {}",
            now(),
            origin.ip,
            origin.user_agent
        )))
    }

    /// The sign-in alert for `record` (as the sign-in returned it), with the line
    /// [`SignIn::Token`](crate::SignIn) carried.
    pub fn alert_letter(
        &self,
        c: &Collection,
        record: &Map<String, Value>,
        info: &str,
        app: &AppInfo,
    ) -> Option<Letter> {
        let to = record.get("email").and_then(Value::as_str)?.to_owned();
        Some(letters::render(
            c,
            LetterKind::AuthAlert,
            &to,
            app,
            record,
            &[("ALERT_INFO", info)],
        ))
    }
}
