//! API keys (beyond PocketBase): long-lived credentials for servers and scripts.
//!
//! A key is `pier_` followed by 40 random characters (about 238 bits). It is shown once, when it
//! is made; `_apiKeys` keeps only its SHA-256, the record it acts as, an optional scope
//! (collections and record actions) and an expiry. Every request looks its key up in the
//! database, so a revoked key stops working at once on every backend that shares it; the
//! lookup is one indexed read, like a token's `tokenKey` read. A key acts as its record
//! (`@request.auth` in rules is that record); deleting the record deletes its keys.
//!
//! Who makes keys: a superuser, for any auth record (a superuser's own by default); an auth
//! record, for itself, when its collection's `apiKeys.enabled` option is on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pier_storage::Value as Db;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::auth::Auth;
use crate::collections::SUPERUSERS_ID;
use crate::engine::{Engine, now, unix_now};
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType};
use crate::schema::quote;

/// The start of every key, so that a key is told from a token at a glance.
pub const KEY_PREFIX: &str = "pier_";

/// Record actions a key may be narrowed to.
pub const ACTIONS: &[&str] = &["list", "view", "create", "update", "delete"];

/// Keys one record may hold.
const MAX_KEYS_PER_RECORD: i64 = 100;

/// How often a key's `lastUsed` is written, at most (per process).
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// What a key may do beyond acting as its record: `None` in a list means no narrowing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyScope {
    /// Collection ids the key may touch (records routes only), or every collection.
    pub collections: Option<Vec<String>>,
    /// Record actions (`list`, `view`, `create`, `update`, `delete`), or every action.
    pub actions: Option<Vec<String>>,
}

impl KeyScope {
    /// True when the key is not narrowed at all.
    pub fn is_unscoped(&self) -> bool {
        self.collections.is_none() && self.actions.is_none()
    }

    /// True when `action` on the collection `collection_id` is inside the scope.
    pub fn allows(&self, collection_id: &str, action: &str) -> bool {
        self.collections
            .as_ref()
            .is_none_or(|c| c.iter().any(|id| id == collection_id))
            && self
                .actions
                .as_ref()
                .is_none_or(|a| a.iter().any(|x| x == action))
    }
}

/// A request authenticated by an API key.
#[derive(Debug, Clone)]
pub struct KeyAuth {
    /// The record the key acts as.
    pub auth: Auth,
    /// The key's id (never its secret).
    pub key_id: String,
    /// What it may do.
    pub scope: KeyScope,
}

/// When each key's `lastUsed` was last written by this process.
#[derive(Default)]
pub(crate) struct KeyUses(Mutex<HashMap<String, Instant>>);

impl KeyUses {
    /// True when `lastUsed` of `id` is due to be written now (and notes that it is).
    fn due(&self, id: &str) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        if m.len() > 100_000 {
            m.retain(|_, t| now.duration_since(*t) < LAST_USED_EVERY);
        }
        match m.get(id) {
            Some(t) if now.duration_since(*t) < LAST_USED_EVERY => false,
            _ => {
                m.insert(id.to_owned(), now);
                true
            }
        }
    }
}

fn digest(key: &str) -> String {
    use std::fmt::Write as _;
    Sha256::digest(key.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn invalid(field: &str, code: &str, text: &str) -> RecordError {
    RecordError::field("Failed to create API key.", field, code, text)
}

fn string_list(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    invalid(
                        field,
                        "validation_invalid_value",
                        "Must be a list of strings.",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(
            field,
            "validation_invalid_value",
            "Must be a list of strings.",
        )),
    }
}

fn scope_json(scope: &KeyScope) -> Value {
    json!({
        "collections": scope.collections.clone().unwrap_or_default(),
        "actions": scope.actions.clone().unwrap_or_default(),
    })
}

fn parse_scope(text: &str) -> KeyScope {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
    };
    KeyScope {
        collections: list("collections"),
        actions: list("actions"),
    }
}

const COLUMNS: &str =
    "id, name, \"collectionRef\", \"recordRef\", prefix, scopes, expires, created, \"lastUsed\"";

fn key_json(row: &[Db]) -> Value {
    let text = |i: usize| {
        row.get(i)
            .and_then(Db::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let expires = row.get(6).and_then(Db::as_i64).unwrap_or(0);
    json!({
        "id": text(0),
        "name": text(1),
        "collectionId": text(2),
        "recordId": text(3),
        "prefix": text(4),
        "scopes": scope_json(&parse_scope(&text(5))),
        "expires": if expires > 0 { pier_core::time::format_unix_millis(expires * 1000) } else { String::new() },
        "created": text(7),
        "lastUsed": text(8),
    })
}

/// True when `collection` lets its records make keys for themselves (`apiKeys.enabled`).
fn self_service(c: &Collection) -> bool {
    c.options
        .get("apiKeys")
        .and_then(|s| s.get("enabled"))
        .and_then(Value::as_bool)
        == Some(true)
}

impl Engine {
    /// Who an API key belongs to and what it may do; `None` for anything that is not a live
    /// key (unknown, revoked, expired).
    pub async fn authenticate_key(&self, key: &str) -> Option<KeyAuth> {
        let key = key.strip_prefix("Bearer ").unwrap_or(key).trim();
        if !key.starts_with(KEY_PREFIX) {
            return None;
        }
        let rows = self
            .store
            .query(
                "SELECT id, \"collectionRef\", \"recordRef\", scopes, expires FROM \"_apiKeys\" WHERE hash = $1",
                vec![digest(key).into()],
            )
            .await
            .ok()?;
        let row = rows.iter().next()?;
        let text = |i: usize| row.get(i).and_then(Db::as_str).unwrap_or_default();
        let expires = row.get(4).and_then(Db::as_i64).unwrap_or(0);
        if expires > 0 && expires <= unix_now() {
            return None;
        }
        let c = self.collection(text(1)).await.ok()?;
        if c.kind != CollectionType::Auth {
            return None;
        }
        let id = text(0).to_owned();
        if self.key_uses.due(&id) {
            let store = self.store.clone();
            let key_id = id.clone();
            tokio::spawn(async move {
                let _ = store
                    .execute(
                        "UPDATE \"_apiKeys\" SET \"lastUsed\" = $1 WHERE id = $2",
                        vec![now().into(), key_id.into()],
                    )
                    .await;
            });
        }
        Some(KeyAuth {
            auth: Self::auth_of(&c, text(2)),
            key_id: id,
            scope: parse_scope(text(3)),
        })
    }

    /// Makes a key from `{name, collection?, record?, scopes?: {collections, actions},
    /// expires? | duration?}` and returns it with its secret (`key`), the only time it is shown.
    ///
    /// # Errors
    /// 401 for a guest, 403 for a record outside its rights, validation errors naming the field.
    pub async fn create_api_key(
        &self,
        caller: &Auth,
        body: &Map<String, Value>,
    ) -> Result<Value, RecordError> {
        let (c, record) = self.key_owner(caller, body).await?;
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if name.is_empty() {
            return Err(invalid("name", "validation_required", "Cannot be blank."));
        }
        if name.chars().count() > 100 {
            return Err(invalid(
                "name",
                "validation_length_out_of_range",
                "The length must be between 1 and 100.",
            ));
        }
        let scopes = body.get("scopes").unwrap_or(&Value::Null);
        if !scopes.is_null() && !scopes.is_object() {
            return Err(invalid(
                "scopes",
                "validation_invalid_value",
                "Must be an object with `collections` and `actions`.",
            ));
        }
        let mut scope = KeyScope {
            collections: None,
            actions: string_list(scopes.get("actions"), "scopes")?,
        };
        if let Some(names) = string_list(scopes.get("collections"), "scopes")? {
            let mut ids = Vec::new();
            for n in names {
                match self.collection(&n).await {
                    Ok(c) => ids.push(c.id.clone()),
                    Err(RecordError::NotFound) => {
                        return Err(invalid(
                            "scopes",
                            "validation_unknown_collection",
                            &format!("Unknown collection `{n}`."),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            scope.collections = Some(ids);
        }
        if let Some(a) = scope
            .actions
            .iter()
            .flatten()
            .find(|a| !ACTIONS.contains(&a.as_str()))
        {
            return Err(invalid(
                "scopes",
                "validation_invalid_action",
                &format!("Unknown action `{a}`: use list, view, create, update or delete."),
            ));
        }
        let expires = expiry(body)?;
        let count = self
            .store
            .query(
                "SELECT COUNT(*) FROM \"_apiKeys\" WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2",
                vec![c.id.clone().into(), record.clone().into()],
            )
            .await?
            .scalar()
            .and_then(Db::as_i64)
            .unwrap_or(0);
        if count >= MAX_KEYS_PER_RECORD {
            return Err(RecordError::BadRequest(format!(
                "A record may hold at most {MAX_KEYS_PER_RECORD} API keys; delete one first."
            )));
        }
        let secret = format!("{KEY_PREFIX}{}", ids::secret(40));
        let id = ids::record_id();
        let prefix: String = secret.chars().take(KEY_PREFIX.len() + 4).collect();
        let created = now();
        let scopes_text = scope_json(&scope).to_string();
        self.store
            .execute(
                "INSERT INTO \"_apiKeys\" (id, name, \"collectionRef\", \"recordRef\", hash, prefix, scopes, expires, created, \"lastUsed\")
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '')",
                vec![
                    id.clone().into(),
                    name.to_owned().into(),
                    c.id.clone().into(),
                    record.clone().into(),
                    digest(&secret).into(),
                    prefix.clone().into(),
                    scopes_text.clone().into(),
                    Db::Integer(expires),
                    created.clone().into(),
                ],
            )
            .await?;
        let row = vec![
            Db::Text(id),
            Db::Text(name.to_owned()),
            Db::Text(c.id.clone()),
            Db::Text(record),
            Db::Text(prefix),
            Db::Text(scopes_text),
            Db::Integer(expires),
            Db::Text(created),
            Db::Text(String::new()),
        ];
        let mut out = key_json(&row);
        out["key"] = Value::String(secret);
        Ok(out)
    }

    /// The caller's keys (a superuser's: every key), newest first, without secrets.
    ///
    /// # Errors
    /// 401 for a guest; storage errors.
    pub async fn list_api_keys(&self, caller: &Auth) -> Result<Vec<Value>, RecordError> {
        let rows = match caller {
            Auth::Guest => return Err(guest()),
            Auth::Superuser { .. } => {
                self.store
                    .query(
                        format!("SELECT {COLUMNS} FROM \"_apiKeys\" ORDER BY created DESC, id"),
                        vec![],
                    )
                    .await?
            }
            Auth::Record { collection_id, id } => {
                self.store
                    .query(
                        format!("SELECT {COLUMNS} FROM \"_apiKeys\" WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2 ORDER BY created DESC, id"),
                        vec![collection_id.clone().into(), id.clone().into()],
                    )
                    .await?
            }
        };
        Ok(rows.iter().map(key_json).collect())
    }

    /// Revokes key `id`: a superuser any key, a record its own.
    ///
    /// # Errors
    /// 401 for a guest, 404 for a key that is not there or not the caller's.
    pub async fn delete_api_key(&self, caller: &Auth, id: &str) -> Result<(), RecordError> {
        let deleted = match caller {
            Auth::Guest => return Err(guest()),
            Auth::Superuser { .. } => {
                self.store
                    .execute("DELETE FROM \"_apiKeys\" WHERE id = $1", vec![id.into()])
                    .await?
            }
            Auth::Record { collection_id, id: me } => {
                self.store
                    .execute(
                        "DELETE FROM \"_apiKeys\" WHERE id = $1 AND \"collectionRef\" = $2 AND \"recordRef\" = $3",
                        vec![id.into(), collection_id.clone().into(), me.clone().into()],
                    )
                    .await?
            }
        };
        if deleted == 0 {
            return Err(RecordError::NotFound);
        }
        Ok(())
    }

    /// The auth collection and record a new key acts as.
    async fn key_owner(
        &self,
        caller: &Auth,
        body: &Map<String, Value>,
    ) -> Result<(std::sync::Arc<Collection>, String), RecordError> {
        let named = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match caller {
            Auth::Guest => Err(guest()),
            Auth::Superuser { id } => {
                let c = self
                    .collection(named("collection").unwrap_or(SUPERUSERS_ID))
                    .await
                    .map_err(|_| {
                        invalid(
                            "collection",
                            "validation_invalid_collection",
                            "Unknown auth collection.",
                        )
                    })?;
                if c.kind != CollectionType::Auth {
                    return Err(invalid(
                        "collection",
                        "validation_invalid_collection",
                        "API keys act as records of auth collections.",
                    ));
                }
                let record = match named("record") {
                    Some(r) => r.to_owned(),
                    None if c.id == SUPERUSERS_ID => id.clone(),
                    None => {
                        return Err(invalid("record", "validation_required", "Cannot be blank."));
                    }
                };
                let found = self
                    .store
                    .query(
                        format!("SELECT 1 FROM {} WHERE id = $1", quote(&c.name)),
                        vec![record.clone().into()],
                    )
                    .await?;
                if found.is_empty() {
                    return Err(invalid(
                        "record",
                        "validation_invalid_record",
                        "Unknown record.",
                    ));
                }
                Ok((c, record))
            }
            Auth::Record { collection_id, id } => {
                let c = self.collection(collection_id).await?;
                let others = named("collection").is_some_and(|n| n != c.id && n != c.name)
                    || named("record").is_some_and(|r| r != id);
                if others || !self_service(&c) {
                    return Err(RecordError::Forbidden(
                        "The authorized record is not allowed to perform this action.".into(),
                    ));
                }
                Ok((c, id.clone()))
            }
        }
    }
}

fn guest() -> RecordError {
    RecordError::Unauthorized("The request requires valid record authorization token.".into())
}

/// Unix seconds a new key expires at, 0 for never: `expires` (a date) or `duration` (seconds).
fn expiry(body: &Map<String, Value>) -> Result<i64, RecordError> {
    let now = unix_now();
    if let Some(d) = body.get("duration").filter(|v| !v.is_null()) {
        return match d.as_i64() {
            Some(s) if s > 0 => Ok(now.saturating_add(s)),
            _ => Err(invalid(
                "duration",
                "validation_invalid_duration",
                "Must be a whole number of seconds above 0.",
            )),
        };
    }
    match body.get("expires") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => match pier_core::time::parse_datetime(s) {
            Some(ms) if ms / 1000 > now => Ok(ms / 1000),
            Some(_) => Err(invalid(
                "expires",
                "validation_date_in_past",
                "The date must be in the future.",
            )),
            None => Err(invalid(
                "expires",
                "validation_invalid_date",
                "Must be a valid date (2027-01-31 12:00:00.000Z).",
            )),
        },
        Some(_) => Err(invalid(
            "expires",
            "validation_invalid_date",
            "Must be a valid date (2027-01-31 12:00:00.000Z).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_by_collection_and_action() {
        let all = KeyScope::default();
        assert!(all.is_unscoped() && all.allows("a", "delete"));
        let s = KeyScope {
            collections: Some(vec!["a".into()]),
            actions: Some(vec!["list".into(), "view".into()]),
        };
        assert!(s.allows("a", "view"));
        assert!(!s.allows("a", "update"));
        assert!(!s.allows("b", "view"));
        assert_eq!(parse_scope(&scope_json(&s).to_string()), s);
        assert_eq!(parse_scope("garbage"), KeyScope::default());
    }

    #[test]
    fn last_use_is_written_once_a_minute() {
        let u = KeyUses::default();
        assert!(u.due("k"));
        assert!(!u.due("k"));
        assert!(u.due("other"));
    }
}
