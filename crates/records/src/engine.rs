//! The records engine: the collection cache, record CRUD with rules, and authentication.
//! Changing a collection's definition lives in `collections/`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use pier_core::time::format_datetime;
use pier_storage::{Dialect, Rows, Store, Value as Db};
use serde_json::{Map, Value, json};

use crate::auth::{self, Auth, TokenClaims};
use crate::collections::Step;
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType, Field, is_valid_name};
use crate::query::{CollectionResolver, RequestInfo, to_db};
use crate::schema::{self, quote};
use crate::values::{self, Invalid};
use pier_filter::FilterError;

/// The id PocketBase gives its `_superusers` collection; clients and SDKs may rely on it.
pub const SUPERUSERS_ID: &str = "pbc_3142635823";
const SUPERUSERS: &str = "_superusers";
const ONLY_SUPERUSERS: &str = "Only superusers can perform this action.";
/// Marks a create that its rule refused, so the transaction rolls back.
const CREATE_RULE_FAILED: &str = "the create rule refused the new record";

/// Paging and sorting of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub sort: String,
    pub filter: String,
    pub skip_total: bool,
}

/// One page of records in PocketBase's envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ListResult {
    pub page: i64,
    pub per_page: i64,
    pub total_items: i64,
    pub total_pages: i64,
    pub items: Vec<Map<String, Value>>,
}

impl ListResult {
    /// The JSON envelope.
    pub fn to_json(&self) -> Value {
        json!({
            "page": self.page,
            "perPage": self.per_page,
            "totalItems": self.total_items,
            "totalPages": self.total_pages,
            "items": self.items,
        })
    }
}

#[derive(Default, Clone)]
struct Cache {
    by_name: HashMap<String, Arc<Collection>>,
    by_id: HashMap<String, Arc<Collection>>,
    loaded_at: Option<std::time::Instant>,
}

/// How stale the collection cache may get when other processes share the database
/// (PostgreSQL): their schema and rule changes are seen within this delay.
const SHARED_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The records engine. Cheap to share behind an `Arc`.
pub struct Engine {
    pub(crate) store: Store,
    limiter: Arc<crate::limits::FailureLimiter>,
    cache: Arc<RwLock<Cache>>,
    /// Verified against when an identity is unknown, so that both cases cost the same.
    dummy_hash: String,
}

pub(crate) fn now() -> String {
    format_datetime(SystemTime::now())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn validation(message: &str, errors: Vec<(String, Invalid)>) -> RecordError {
    let mut fields = Map::new();
    for (name, e) in errors {
        let mut v = json!({"code": e.code, "message": e.message});
        if let Some(p) = e.params {
            v["params"] = p;
        }
        fields.insert(name, v);
    }
    RecordError::Validation {
        message: message.to_owned(),
        fields,
    }
}

fn system_field(name: &str, kind: &str, extra: Value) -> Field {
    let mut options = match extra {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    options.entry("required").or_insert(Value::Bool(false));
    let mut f = Field {
        id: format!("{kind}{}", ids::digits(10)),
        name: name.to_owned(),
        kind: kind.to_owned(),
        system: true,
        hidden: false,
        presentable: false,
        options,
    };
    f.normalize();
    f
}

pub(crate) fn id_field() -> Field {
    let mut f = system_field(
        "id",
        "text",
        json!({"required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}", "primaryKey": true}),
    );
    f.id = "text3208210256".into();
    f
}

/// The fields every auth collection has, after `id`.
pub(crate) fn auth_fields() -> Vec<Field> {
    let mut password = system_field("password", "password", json!({"required": true, "min": 8}));
    password.hidden = true;
    let mut token_key = system_field("tokenKey", "text", json!({"required": true}));
    token_key.hidden = true;
    vec![
        password,
        token_key,
        system_field("email", "email", json!({"required": true})),
        system_field("emailVisibility", "bool", json!({})),
        system_field("verified", "bool", json!({})),
    ]
}

pub(crate) fn auth_options(duration: i64) -> Map<String, Value> {
    match json!({
        "authRule": "",
        "manageRule": null,
        "authToken": {"secret": ids::secret(50), "duration": duration},
        "passwordAuth": {"enabled": true, "identityFields": ["email"]},
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Replaces the plain text of `password` fields (outside auth collections' own) by its hash.
async fn hash_password_fields(values: &mut [(&Field, Db)]) -> Result<(), RecordError> {
    for (f, v) in values.iter_mut() {
        if f.kind != "password" {
            continue;
        }
        if let Db::Text(plain) = v
            && !plain.is_empty()
        {
            let p = std::mem::take(plain);
            let hash = tokio::task::spawn_blocking(move || auth::hash_password(&p))
                .await
                .map_err(|e| RecordError::BadRequest(e.to_string()))?
                .map_err(RecordError::BadRequest)?;
            *v = Db::Text(hash);
        }
    }
    Ok(())
}

fn superusers_collection() -> Collection {
    let ts = now();
    let mut fields = vec![id_field()];
    fields.extend(auth_fields());
    fields.push(system_field(
        "created",
        "autodate",
        json!({"onCreate": true, "onUpdate": false}),
    ));
    fields.push(system_field(
        "updated",
        "autodate",
        json!({"onCreate": true, "onUpdate": true}),
    ));
    Collection {
        id: SUPERUSERS_ID.into(),
        name: SUPERUSERS.into(),
        kind: CollectionType::Auth,
        system: true,
        fields,
        indexes: Vec::new(),
        list_rule: None,
        view_rule: None,
        create_rule: None,
        update_rule: None,
        delete_rule: None,
        created: ts.clone(),
        updated: ts,
        options: auth_options(86_400),
    }
}

impl Engine {
    /// Creates the engine: makes sure the `_superusers` collection is registered and loads every
    /// collection definition. Run it after the migrations.
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub async fn new(store: Store) -> Result<Engine, RecordError> {
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password(&ids::secret(24)))
            .await
            .map_err(|e| RecordError::BadRequest(e.to_string()))?
            .map_err(RecordError::BadRequest)?;
        let engine = Engine {
            store,
            limiter: Arc::default(),
            cache: Arc::default(),
            dummy_hash,
        };
        let su = superusers_collection();
        let data = serde_json::to_string(&su).unwrap_or_default();
        engine
            .store
            .execute(
                "INSERT INTO _collections (id, name, type, system, data, created, updated)
                 VALUES ($1, $2, 'auth', TRUE, $3, $4, $4) ON CONFLICT DO NOTHING",
                vec![
                    su.id.clone().into(),
                    su.name.clone().into(),
                    data.into(),
                    su.created.clone().into(),
                ],
            )
            .await?;
        engine.reload().await?;
        engine.bootstrap_users().await?;
        Ok(engine)
    }

    /// Creates PocketBase's default `users` auth collection once per database (a deleted one
    /// stays deleted: a marker in `_params` records that it was made).
    async fn bootstrap_users(&self) -> Result<(), RecordError> {
        const MARKER: &str = "records.users_bootstrapped";
        let done = self
            .store
            .query("SELECT 1 FROM _params WHERE key = $1", vec![MARKER.into()])
            .await?;
        if !done.is_empty() {
            return Ok(());
        }
        if self.cached("users").is_none() {
            let owner = "id = @request.auth.id";
            let def = json!({
                "id": "_pb_users_auth_",
                "name": "users",
                "type": "auth",
                "listRule": owner, "viewRule": owner, "createRule": "",
                "updateRule": owner, "deleteRule": owner,
                "fields": [
                    {"name": "name", "type": "text", "max": 255},
                    {"name": "avatar", "type": "file", "maxSelect": 1, "maxSize": 0,
                     "mimeTypes": ["image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"]},
                    {"name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
                    {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
                ]
            });
            // Another backend may be doing the same right now; one of them wins.
            if let Err(e) = self.create_collection(&def).await {
                tracing::debug!(error = %e, "default users collection not created");
            }
        }
        self.store
            .execute(
                "INSERT INTO _params (key, value, updated_at) VALUES ($1, 'true', 0) ON CONFLICT DO NOTHING",
                vec![MARKER.into()],
            )
            .await?;
        Ok(())
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The same engine running every call through `store` (a [`pier_storage::Session`]'s, for
    /// a batch), sharing the collection cache and the login limits.
    pub fn scoped(&self, store: Store) -> Engine {
        Engine {
            store,
            limiter: self.limiter.clone(),
            cache: self.cache.clone(),
            dummy_hash: self.dummy_hash.clone(),
        }
    }

    /// Like [`Engine::scoped`], with a collection cache of its own: definitions changed inside
    /// a session are seen by it alone until the session commits.
    fn isolated(&self, store: Store) -> Engine {
        let cache = self.cache.read().map(|c| c.clone()).unwrap_or_default();
        Engine {
            store,
            limiter: self.limiter.clone(),
            cache: Arc::new(RwLock::new(cache)),
            dummy_hash: self.dummy_hash.clone(),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    pub(crate) async fn reload(&self) -> Result<(), RecordError> {
        let rows = self
            .store
            .query("SELECT data FROM _collections ORDER BY created, id", vec![])
            .await?;
        let mut cache = Cache::default();
        for r in rows.iter() {
            let Some(text) = r[0].as_str() else { continue };
            match serde_json::from_str::<Collection>(text) {
                Ok(c) => {
                    let c = Arc::new(c);
                    cache.by_name.insert(c.name.to_ascii_lowercase(), c.clone());
                    cache.by_id.insert(c.id.clone(), c);
                }
                Err(error) => tracing::error!(%error, "unreadable collection definition skipped"),
            }
        }
        cache.loaded_at = Some(std::time::Instant::now());
        if let Ok(mut c) = self.cache.write() {
            *c = cache;
        }
        Ok(())
    }

    /// True when another process may have changed the collections since the last load. SQLite
    /// is held by one process, whose own changes reload the cache, so it never goes stale.
    fn cache_is_stale(&self) -> bool {
        self.cache
            .read()
            .map(|c| c.loaded_at.is_none_or(|t| t.elapsed() > SHARED_CACHE_TTL))
            .unwrap_or(true)
    }

    pub(crate) fn cached(&self, id_or_name: &str) -> Option<Arc<Collection>> {
        let cache = self.cache.read().ok()?;
        cache
            .by_id
            .get(id_or_name)
            .or_else(|| cache.by_name.get(&id_or_name.to_ascii_lowercase()))
            .cloned()
    }

    /// A collection by id or name (case-insensitive). Another backend may have created it, so a
    /// miss reloads the definitions once.
    ///
    /// # Errors
    /// [`RecordError::NotFound`].
    pub async fn collection(&self, id_or_name: &str) -> Result<Arc<Collection>, RecordError> {
        if self.dialect() == Dialect::Postgres && self.cache_is_stale() {
            self.reload().await?;
        }
        if let Some(c) = self.cached(id_or_name) {
            return Ok(c);
        }
        self.reload().await?;
        self.cached(id_or_name).ok_or(RecordError::NotFound)
    }

    /// Every collection, oldest first.
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        let mut all: Vec<_> = self
            .cache
            .read()
            .map(|c| c.by_id.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a: &Arc<Collection>, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        all
    }

    /// Creates a collection and its table in one transaction.
    ///
    /// # Errors
    /// [`RecordError::Validation`] for bad input; storage errors.
    pub async fn create_collection(&self, input: &Value) -> Result<Arc<Collection>, RecordError> {
        if input.get("type").and_then(Value::as_str) == Some("view") {
            return self.create_view(input).await;
        }
        let c = self.parse_collection(input, None)?;
        self.validate_rules(&c)?;
        let mut ddl = schema::create_table(&c, self.dialect());
        if c.kind == CollectionType::Auth {
            let t = quote(&c.name);
            ddl.push_str(&format!(
                "CREATE UNIQUE INDEX {} ON {t} (\"tokenKey\");\nCREATE UNIQUE INDEX {} ON {t} (LOWER(\"email\")) WHERE \"email\" != '';\n",
                quote(&format!("idx_tokenKey_{}", c.id)),
                quote(&format!("idx_email_{}", c.id)),
            ));
        }
        let kind = if c.kind == CollectionType::Auth {
            "auth"
        } else {
            "base"
        };
        self.insert_collection(&c, kind, ddl)
            .await
            .map_err(|e| match e.kind() {
                pier_core::ErrorKind::Conflict => RecordError::field(
                    "Failed to create collection.",
                    "name",
                    "validation_collection_name_exists",
                    "Collection name must be unique (case insensitive).",
                ),
                pier_core::ErrorKind::Internal => RecordError::field(
                    "Failed to create collection.",
                    "indexes",
                    "validation_invalid_index",
                    "An index could not be created.",
                ),
                _ => RecordError::from(e),
            })?;
        self.reload().await?;
        self.collection(&c.id).await
    }

    /// Drops a collection and its table. System collections and collections that others refer
    /// to are refused.
    ///
    /// # Errors
    /// [`RecordError::BadRequest`], [`RecordError::NotFound`], storage errors.
    pub async fn delete_collection(&self, id_or_name: &str) -> Result<(), RecordError> {
        let c = self.collection(id_or_name).await?;
        if c.system {
            return Err(RecordError::BadRequest(
                "System collections cannot be deleted.".into(),
            ));
        }
        if let Some(other) = self.collections().into_iter().find(|o| {
            o.id != c.id
                && o.fields
                    .iter()
                    .any(|f| f.kind == "relation" && f.opt_str("collectionId") == c.id)
        }) {
            return Err(RecordError::BadRequest(format!(
                "The collection is referenced by `{}`; remove that relation first.",
                other.name
            )));
        }
        let kind = if c.kind == CollectionType::View {
            "VIEW"
        } else {
            "TABLE"
        };
        let drop = format!("DROP {kind} {}", quote(&c.name));
        let id = c.id.clone();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute_script(&drop).await?;
                    tx.execute("DELETE FROM _collections WHERE id = $1", &[id.into()])
                        .await
                        .map(|_| ())
                })
            })
            .await?;
        self.reload().await
    }

    /// Deletes every record of a collection.
    ///
    /// # Errors
    /// [`RecordError::NotFound`], storage errors.
    pub async fn truncate_collection(&self, id_or_name: &str) -> Result<(), RecordError> {
        let c = self.collection(id_or_name).await?;
        self.store
            .execute(format!("DELETE FROM {}", quote(&c.name)), vec![])
            .await?;
        Ok(())
    }

    /// The SQL condition a rule puts on `c`'s rows for this request, with its parameters
    /// numbered from `first`: `None` when the rule lets every row through.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] for a `null` rule and a non-superuser.
    fn rule_condition(
        &self,
        c: &Collection,
        rule: &Option<String>,
        req: &RequestInfo,
        first: usize,
    ) -> Result<Option<(String, Vec<Db>)>, RecordError> {
        if req.auth.is_superuser() {
            return Ok(None);
        }
        match rule.as_deref().map(str::trim) {
            None => Err(RecordError::Forbidden(ONLY_SUPERUSERS.into())),
            Some("") => Ok(None),
            Some(expr) => self.condition(c, expr, req, false, first).map(Some),
        }
    }

    /// Compiles a rule (`client` false) or a client filter (`client` true) against `c`.
    fn condition(
        &self,
        c: &Collection,
        expr: &str,
        req: &RequestInfo,
        client: bool,
        first: usize,
    ) -> Result<(String, Vec<Db>), RecordError> {
        let parsed = pier_filter::parse_filter(expr).map_err(|e| filter_error(&e, client))?;
        let all = self.collections();
        let mut r = CollectionResolver::new(&all, c, self.dialect(), req, client);
        let dialect = r.filter_dialect();
        match pier_filter::compile(&parsed, dialect, &mut r, first) {
            Ok(compiled) => Ok((
                compiled.sql,
                compiled.params.into_iter().map(to_db).collect(),
            )),
            Err(_) if r.refused_request => Err(RecordError::Forbidden(
                "Only superusers can filter by @request.".into(),
            )),
            Err(e) => Err(filter_error(&e, client)),
        }
    }

    /// ` ORDER BY …` for a client's `sort`, or an empty string.
    fn order_by(
        &self,
        c: &Collection,
        sort: &str,
        req: &RequestInfo,
    ) -> Result<String, RecordError> {
        if sort.trim().is_empty() {
            return Ok(String::new());
        }
        let items = pier_filter::parse_sort(sort).map_err(|e| filter_error(&e, true))?;
        let all = self.collections();
        let mut r = CollectionResolver::new(&all, c, self.dialect(), req, true);
        r.for_sort = true;
        let dialect = r.filter_dialect();
        let sql = pier_filter::compile_sort(&items, dialect, &mut r)
            .map_err(|e| filter_error(&e, true))?;
        Ok(if sql.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {sql}")
        })
    }

    /// Checks every non-empty rule of a collection definition against its fields.
    pub(crate) fn validate_rules(&self, c: &Collection) -> Result<(), RecordError> {
        // The collection may not be in the cache yet (being created): resolve against it plus
        // every cached one.
        let mut all = self.collections();
        all.retain(|o| o.id != c.id);
        all.push(Arc::new(c.clone()));
        self.rules_check(c, &all).map_err(|(key, e)| {
            RecordError::field(
                "Failed to save collection.",
                key,
                "validation_invalid_rule",
                &format!("Invalid rule: {e}."),
            )
        })
    }

    /// Checks every non-empty rule of `c` against `all`, the collections as they would be.
    pub(crate) fn rules_check(
        &self,
        c: &Collection,
        all: &[Arc<Collection>],
    ) -> Result<(), (&'static str, FilterError)> {
        let req = RequestInfo {
            auth: Auth::Guest,
            ..RequestInfo::default()
        };
        // Auth collections' auth and manage rules are checked like the others: a broken one
        // would otherwise refuse every sign-in without saying why.
        let option_rule = |key: &str| {
            c.options
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (auth_rule, manage_rule) = (option_rule("authRule"), option_rule("manageRule"));
        for (key, rule) in [
            ("listRule", &c.list_rule),
            ("viewRule", &c.view_rule),
            ("createRule", &c.create_rule),
            ("updateRule", &c.update_rule),
            ("deleteRule", &c.delete_rule),
            ("authRule", &auth_rule),
            ("manageRule", &manage_rule),
        ] {
            let Some(expr) = rule.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
                continue;
            };
            let checked = pier_filter::parse_filter(expr).and_then(|parsed| {
                let mut r = CollectionResolver::new(all, c, self.dialect(), &req, false);
                let dialect = r.filter_dialect();
                pier_filter::compile(&parsed, dialect, &mut r, 1).map(|_| ())
            });
            checked.map_err(|e| (key, e))?;
        }
        Ok(())
    }

    /// The request as rules see it: loads the caller's own record for `@request.auth.*`.
    pub async fn request_info(
        &self,
        auth: Auth,
        method: &str,
        query: Map<String, Value>,
        headers: Map<String, Value>,
        body: Map<String, Value>,
    ) -> RequestInfo {
        let auth_record = match &auth {
            Auth::Record { collection_id, id } => match self.collection(collection_id).await {
                Ok(c) => self.record_for(&c, id, &auth).await.ok(),
                Err(_) => None,
            },
            _ => None,
        };
        RequestInfo {
            auth,
            auth_record,
            body,
            query,
            headers,
            method: method.to_owned(),
        }
    }

    fn columns(c: &Collection) -> String {
        c.fields
            .iter()
            .map(|f| quote(&f.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn row_json(c: &Collection, rows: &Rows, row: &[Db], auth: &Auth) -> Map<String, Value> {
        let pairs: Vec<(&Field, &Db)> = c
            .fields
            .iter()
            .filter_map(|f| rows.column_index(&f.name).map(|i| (f, &row[i])))
            .collect();
        let mut m = values::record_json(&c.id, &c.name, &pairs, auth.is_superuser());
        if c.kind == CollectionType::Auth {
            m.remove("tokenKey");
            m.remove("password");
            let own = matches!(auth, Auth::Record { collection_id, id } if *collection_id == c.id && m.get("id").and_then(Value::as_str) == Some(id.as_str()));
            let visible = m
                .get("emailVisibility")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !(auth.is_superuser() || own || visible) {
                m.remove("email");
            }
        }
        m
    }

    /// Password, token key and `verified` of an auth record, which the generic field loop skips.
    async fn auth_values(
        &self,
        c: &Collection,
        body: &Map<String, Value>,
        manager: bool,
        current: Option<&str>,
        errors: &mut Vec<(String, Invalid)>,
    ) -> Result<Vec<(String, Db)>, RecordError> {
        let action = if current.is_some() {
            "Failed to update record."
        } else {
            "Failed to create record."
        };
        let mismatch = |field: &str| {
            validation(
                action,
                vec![(
                    field.to_owned(),
                    Invalid {
                        params: None,
                        code: "validation_values_mismatch",
                        message: "Values don't match.".into(),
                    },
                )],
            )
        };
        let mut out = Vec::new();
        let password = body
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let confirm = body
            .get("passwordConfirm")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if current.is_none() || body.contains_key("password") {
            // A mismatch is reported alone; a missing or short value joins the other fields'
            // errors, as PocketBase reports them.
            if !password.is_empty() && !confirm.is_empty() && password != confirm {
                return Err(mismatch("passwordConfirm"));
            }
            let min = c
                .field("password")
                .and_then(|f| f.opt_f64("min"))
                .unwrap_or(8.0);
            #[allow(clippy::cast_precision_loss)]
            let len = password.chars().count() as f64;
            if password.is_empty() {
                errors.push((
                    "password".into(),
                    values::invalid("validation_required", "Cannot be blank."),
                ));
            } else if len < min {
                errors.push((
                    "password".into(),
                    Invalid {
                        params: Some(json!({"min": min})),
                        code: "validation_min_text_constraint",
                        message: format!("Must be at least {min} character(s)."),
                    },
                ));
            }
            if confirm.is_empty() {
                errors.push((
                    "passwordConfirm".into(),
                    values::invalid("validation_required", "Cannot be blank."),
                ));
            }
            if let Some(hash) = current.filter(|_| !manager) {
                let old = body
                    .get("oldPassword")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if old.is_empty() {
                    errors.push((
                        "oldPassword".into(),
                        values::invalid("validation_required", "Cannot be blank."),
                    ));
                } else {
                    let hash = hash.to_owned();
                    let ok =
                        tokio::task::spawn_blocking(move || auth::verify_password(&old, &hash))
                            .await
                            .unwrap_or(false);
                    if !ok {
                        errors.push((
                            "oldPassword".into(),
                            values::invalid(
                                "validation_invalid_old_password",
                                "Missing or invalid old password.",
                            ),
                        ));
                    }
                }
            }
            if errors.is_empty() {
                let pw = password.to_owned();
                let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
                    .await
                    .map_err(|e| RecordError::BadRequest(e.to_string()))?
                    .map_err(RecordError::BadRequest)?;
                out.push(("password".to_owned(), Db::Text(hash)));
                out.push(("tokenKey".to_owned(), Db::Text(ids::secret(50))));
            }
        }
        match body.get("verified") {
            Some(v) if manager => out.push((
                "verified".to_owned(),
                Db::Integer(i64::from(v.as_bool().unwrap_or(false))),
            )),
            Some(v) if v.as_bool().unwrap_or(false) => return Err(mismatch("verified")),
            _ if current.is_none() => out.push(("verified".to_owned(), Db::Integer(0))),
            _ => {}
        }
        Ok(out)
    }

    fn is_auth_managed(c: &Collection, f: &Field) -> bool {
        c.kind == CollectionType::Auth
            && matches!(f.name.as_str(), "password" | "tokenKey" | "verified")
    }

    /// One page of records.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] by the list rule, [`RecordError::BadRequest`] for a bad sort
    /// or a filter (not supported yet), storage errors.
    pub async fn list(
        &self,
        c: &Collection,
        q: &ListQuery,
        req: &RequestInfo,
    ) -> Result<ListResult, RecordError> {
        let auth = &req.auth;
        let mut conditions = Vec::new();
        let mut params: Vec<Db> = Vec::new();
        if let Some((sql, p)) = self.rule_condition(c, &c.list_rule, req, 1)? {
            conditions.push(sql);
            params.extend(p);
        }
        if !q.filter.trim().is_empty() {
            let (sql, p) = self.condition(c, &q.filter, req, true, params.len() + 1)?;
            conditions.push(sql);
            params.extend(p);
        }
        let page = q.page.unwrap_or(1).max(1);
        let per_page = match q.per_page.unwrap_or(30) {
            n if n <= 0 => 30,
            n => n.min(1000),
        };
        let order = self.order_by(c, &q.sort, req)?;
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let n = params.len();
        let sql = format!(
            "SELECT {} FROM {}{filter}{order} LIMIT ${} OFFSET ${}",
            Self::columns(c),
            quote(&c.name),
            n + 1,
            n + 2
        );
        let count_sql =
            (!q.skip_total).then(|| format!("SELECT COUNT(*) FROM {}{filter}", quote(&c.name)));
        let offset = (page - 1).saturating_mul(per_page);
        let (rows, total) = if self.dialect() == Dialect::Postgres {
            // Over the network, one snapshot for the page and its count costs four round trips
            // in a row (BEGIN, two queries, ROLLBACK); two pooled connections at once cost one.
            // The count may then differ from the page by a concurrent write, as it may in
            // PocketBase.
            let count = async {
                match count_sql {
                    Some(s) => Ok::<_, RecordError>(
                        self.store
                            .query(s, params.clone())
                            .await?
                            .scalar()
                            .and_then(Db::as_i64),
                    ),
                    None => Ok(None),
                }
            };
            let mut page_params = params.clone();
            page_params.push(Db::Integer(per_page));
            page_params.push(Db::Integer(offset));
            let page = self.store.query(sql, page_params);
            let (rows, total) = tokio::join!(page, count);
            (rows?, total?)
        } else {
            self.store
                .read(move |tx| {
                    Box::pin(async move {
                        let total = match count_sql {
                            Some(s) => tx.query(&s, &params).await?.scalar().and_then(Db::as_i64),
                            None => None,
                        };
                        params.push(Db::Integer(per_page));
                        params.push(Db::Integer(offset));
                        let rows = tx.query(&sql, &params).await?;
                        Ok((rows, total))
                    })
                })
                .await?
        };
        let items = rows
            .iter()
            .map(|r| Self::row_json(c, &rows, r, auth))
            .collect();
        let (total_items, total_pages) = match total {
            Some(t) => (t, (t + per_page - 1) / per_page),
            None => (-1, -1),
        };
        Ok(ListResult {
            page,
            per_page,
            total_items,
            total_pages,
            items,
        })
    }

    /// One record, if it exists and `rule` lets this request see it.
    async fn fetch_visible(
        &self,
        c: &Collection,
        id: &str,
        rule: &Option<String>,
        req: &RequestInfo,
    ) -> Result<Option<(Rows, usize)>, RecordError> {
        let Some((sql, params)) = self.rule_condition(c, rule, req, 2)? else {
            return self.fetch(c, id).await;
        };
        if !ids::is_valid_record_id(id) {
            return Ok(None);
        }
        let mut all = vec![Db::Text(id.to_owned())];
        all.extend(params);
        let rows = self
            .store
            .query(
                format!(
                    "SELECT {} FROM {t} WHERE {t}.{} = $1 AND {sql}",
                    Self::columns(c),
                    quote("id"),
                    t = quote(&c.name)
                ),
                all,
            )
            .await?;
        Ok((!rows.is_empty()).then_some((rows, 0)))
    }

    async fn fetch(&self, c: &Collection, id: &str) -> Result<Option<(Rows, usize)>, RecordError> {
        if !ids::is_valid_record_id(id) {
            return Ok(None);
        }
        let rows = self
            .store
            .query(
                format!(
                    "SELECT {} FROM {} WHERE {} = $1",
                    Self::columns(c),
                    quote(&c.name),
                    quote("id")
                ),
                vec![id.into()],
            )
            .await?;
        Ok((!rows.is_empty()).then_some((rows, 0)))
    }

    /// True when a record with this id exists (no rule applied).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn exists(&self, c: &Collection, id: &str) -> Result<bool, RecordError> {
        Ok(self.fetch(c, id).await?.is_some())
    }

    /// One record.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] by the view rule, [`RecordError::NotFound`].
    pub async fn view(
        &self,
        c: &Collection,
        id: &str,
        req: &RequestInfo,
    ) -> Result<Map<String, Value>, RecordError> {
        let auth = &req.auth;
        let (rows, i) = self
            .fetch_visible(c, id, &c.view_rule, req)
            .await?
            .ok_or(RecordError::NotFound)?;
        let row: Vec<Db> = rows.iter().nth(i).map(<[Db]>::to_vec).unwrap_or_default();
        Ok(Self::row_json(c, &rows, &row, auth))
    }

    async fn check_relations(
        &self,
        c: &Collection,
        values: &[(&Field, Db)],
    ) -> Result<(), RecordError> {
        for (f, v) in values.iter().filter(|(f, _)| f.kind == "relation") {
            let ids: Vec<String> = match v {
                Db::Text(s) if f.is_multi() => serde_json::from_str(s).unwrap_or_default(),
                Db::Text(s) if !s.is_empty() => vec![s.clone()],
                _ => Vec::new(),
            };
            if ids.is_empty() {
                continue;
            }
            let target = self.collection(f.opt_str("collectionId")).await?;
            for id in &ids {
                if self.fetch(&target, id).await?.is_none() {
                    let _ = c;
                    return Err(validation(
                        "Failed to save record.",
                        vec![(
                            f.name.clone(),
                            Invalid {
                                params: None,
                                code: "validation_missing_rel_records",
                                message:
                                    "Failed to find all relation records with the provided ids."
                                        .into(),
                            },
                        )],
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates a record.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] by the create rule, [`RecordError::Validation`], storage errors.
    pub async fn create(
        &self,
        c: &Collection,
        req: &RequestInfo,
    ) -> Result<Map<String, Value>, RecordError> {
        let body = &req.body;
        let auth = &req.auth;
        // The rule is checked against the new row inside the insert's transaction.
        let rule = self.rule_condition(c, &c.create_rule, req, 2)?;
        if c.kind == CollectionType::View {
            return Err(RecordError::BadRequest(
                "View collections are read-only.".into(),
            ));
        }
        let id = match body.get("id") {
            Some(Value::String(s)) if !s.is_empty() => {
                if !ids::is_valid_record_id(s) {
                    return Err(validation(
                        "Failed to create record.",
                        vec![(
                            "id".into(),
                            match s.chars().count() {
                                n if n < 15 => Invalid {
                                    params: Some(json!({"min": 15})),
                                    code: "validation_min_text_constraint",
                                    message: "Must be at least 15 character(s).".into(),
                                },
                                n if n > 15 => Invalid {
                                    params: Some(json!({"max": 15})),
                                    code: "validation_max_text_constraint",
                                    message: "Must be no more than 15 character(s).".into(),
                                },
                                _ => Invalid {
                                    params: None,
                                    code: "validation_invalid_format",
                                    message: "Invalid value format.".into(),
                                },
                            },
                        )],
                    ));
                }
                s.clone()
            }
            _ => ids::record_id(),
        };
        let ts = now();
        let mut values: Vec<(&Field, Db)> = Vec::new();
        let mut errors = Vec::new();
        let extra = if c.kind == CollectionType::Auth {
            self.auth_values(c, body, auth.is_superuser(), None, &mut errors)
                .await?
        } else {
            Vec::new()
        };
        for f in c
            .fields
            .iter()
            .filter(|f| f.name != "id" && !Self::is_auth_managed(c, f))
        {
            if f.kind == "autodate" {
                values.push((
                    f,
                    Db::Text(if f.opt_bool("onCreate") {
                        ts.clone()
                    } else {
                        String::new()
                    }),
                ));
                continue;
            }
            // Hidden fields are writable by superusers only; others' values are dropped.
            let input = if f.hidden && !auth.is_superuser() {
                None
            } else {
                body.get(&f.name)
            };
            match values::coerce(f, input) {
                Ok(v) => values.push((f, v)),
                Err(e) => errors.push((f.name.clone(), e)),
            }
        }
        if !errors.is_empty() {
            return Err(validation("Failed to create record.", errors));
        }
        self.check_relations(c, &values).await?;
        hash_password_fields(&mut values).await?;
        let mut cols = vec![quote("id")];
        let mut params = vec![Db::Text(id.clone())];
        for (f, v) in values {
            cols.push(quote(&f.name));
            params.push(v);
        }
        for (name, v) in extra {
            cols.push(quote(&name));
            params.push(v);
        }
        let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
            quote(&c.name),
            cols.join(", "),
            placeholders.join(", "),
            Self::columns(c)
        );
        let c_is_auth = c.kind == CollectionType::Auth;
        let check = rule.map(|(cond, rule_params)| {
            let t = quote(&c.name);
            let mut p = vec![Db::Text(id.clone())];
            p.extend(rule_params);
            (
                format!(
                    "SELECT 1 FROM {t} WHERE {t}.{} = $1 AND {cond}",
                    quote("id")
                ),
                p,
            )
        });
        let rows = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let rows = tx.query(&sql, &params).await?;
                    if let Some((check_sql, check_params)) = check
                        && tx.query(&check_sql, &check_params).await?.is_empty()
                    {
                        return Err(pier_storage::StorageError::aborted(
                            pier_core::ErrorKind::Invalid,
                            CREATE_RULE_FAILED,
                        ));
                    }
                    Ok(rows)
                })
            })
            .await
            .map_err(|e| match e.kind() {
                pier_core::ErrorKind::Invalid if e.to_string() == CREATE_RULE_FAILED => {
                    RecordError::BadRequest("Failed to create record.".into())
                }
                pier_core::ErrorKind::Conflict | pier_core::ErrorKind::Constraint => validation(
                    "Failed to create record.",
                    vec![(
                        if c_is_auth {
                            "email".into()
                        } else {
                            "id".into()
                        },
                        Invalid {
                            params: None,
                            code: "validation_not_unique",
                            message: "Value must be unique.".into(),
                        },
                    )],
                ),
                _ => RecordError::from(e),
            })?;
        let row: Vec<Db> = rows.iter().next().map(<[Db]>::to_vec).unwrap_or_default();
        Ok(Self::row_json(c, &rows, &row, auth))
    }

    /// Updates a record, applying `field+`, `+field` and `field-` modifiers.
    ///
    /// # Errors
    /// As [`Engine::create`]; [`RecordError::NotFound`].
    pub async fn update(
        &self,
        c: &Collection,
        id: &str,
        req: &RequestInfo,
    ) -> Result<Map<String, Value>, RecordError> {
        let body = &req.body;
        let auth = &req.auth;
        if c.kind == CollectionType::View {
            return Err(RecordError::BadRequest(
                "View collections are read-only.".into(),
            ));
        }
        let (rows, i) = self
            .fetch_visible(c, id, &c.update_rule, req)
            .await?
            .ok_or(RecordError::NotFound)?;
        let row: Vec<Db> = rows.iter().nth(i).map(<[Db]>::to_vec).unwrap_or_default();
        let current = Self::row_json(c, &rows, &row, &Auth::Superuser { id: String::new() });
        let mut errors = Vec::new();
        let extra = if c.kind == CollectionType::Auth {
            let hash = rows
                .column_index("password")
                .and_then(|i| row.get(i))
                .and_then(Db::as_str)
                .unwrap_or_default()
                .to_owned();
            // Superusers, and callers the manage rule lets through, change passwords and
            // `verified` without the old password.
            let manage_rule = match c.options.get("manageRule") {
                Some(Value::String(r)) if !r.trim().is_empty() => Some(r.clone()),
                _ => None,
            };
            let manager = auth.is_superuser()
                || match &manage_rule {
                    Some(_) => self
                        .fetch_visible(c, id, &manage_rule, req)
                        .await
                        .ok()
                        .flatten()
                        .is_some(),
                    None => false,
                };
            self.auth_values(c, body, manager, Some(&hash), &mut errors)
                .await?
        } else {
            Vec::new()
        };
        let ts = now();
        let mut sets: Vec<(&Field, Db)> = Vec::new();
        for f in c
            .fields
            .iter()
            .filter(|f| f.name != "id" && !Self::is_auth_managed(c, f))
        {
            if f.kind == "autodate" {
                if f.opt_bool("onUpdate") {
                    sets.push((f, Db::Text(ts.clone())));
                }
                continue;
            }
            if f.hidden && !auth.is_superuser() {
                continue;
            }
            let mut value = body.get(&f.name).cloned();
            for (key, op, prepend) in [
                (format!("{}+", f.name), '+', false),
                (format!("+{}", f.name), '+', true),
                (format!("{}-", f.name), '-', false),
            ] {
                if let Some(arg) = body.get(&key) {
                    let base = value
                        .clone()
                        .or_else(|| current.get(&f.name).cloned())
                        .unwrap_or(Value::Null);
                    value = Some(values::apply_modifier(f, &base, op, prepend, arg));
                }
            }
            let Some(value) = value else { continue };
            match values::coerce(f, Some(&value)) {
                Ok(v) => sets.push((f, v)),
                Err(e) => errors.push((f.name.clone(), e)),
            }
        }
        if !errors.is_empty() {
            return Err(validation("Failed to update record.", errors));
        }
        self.check_relations(c, &sets).await?;
        hash_password_fields(&mut sets).await?;
        let mut params = vec![Db::Text(id.to_owned())];
        let mut assigns = Vec::new();
        for (f, v) in sets {
            params.push(v);
            assigns.push(format!("{} = ${}", quote(&f.name), params.len()));
        }
        for (name, v) in extra {
            params.push(v);
            assigns.push(format!("{} = ${}", quote(&name), params.len()));
        }
        if assigns.is_empty() {
            return Ok(Self::row_json(c, &rows, &row, auth));
        }
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = $1 RETURNING {}",
            quote(&c.name),
            assigns.join(", "),
            quote("id"),
            Self::columns(c)
        );
        let rows = self
            .store
            .write(move |tx| Box::pin(async move { tx.query(&sql, &params).await }))
            .await?;
        let row: Vec<Db> = rows
            .iter()
            .next()
            .map(<[Db]>::to_vec)
            .ok_or(RecordError::NotFound)?;
        Ok(Self::row_json(c, &rows, &row, auth))
    }

    /// Deletes a record; relation fields with `cascadeDelete` in other collections take their
    /// records along, others are cleared.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`], [`RecordError::NotFound`], storage errors.
    pub async fn delete(
        &self,
        c: &Collection,
        id: &str,
        req: &RequestInfo,
    ) -> Result<(), RecordError> {
        if c.kind == CollectionType::View {
            return Err(RecordError::BadRequest(
                "View collections are read-only.".into(),
            ));
        }
        if self
            .fetch_visible(c, id, &c.delete_rule, req)
            .await?
            .is_none()
        {
            return Err(RecordError::NotFound);
        }
        let mut statements: Vec<(String, Vec<Db>)> = Vec::new();
        for other in self.collections() {
            for f in other
                .fields
                .iter()
                .filter(|f| f.kind == "relation" && f.opt_str("collectionId") == c.id)
            {
                let (t, col) = (quote(&other.name), quote(&f.name));
                if f.is_multi() {
                    // Remove the id from JSON arrays: rewrite in SQL per dialect.
                    let sql = match self.dialect() {
                        Dialect::Sqlite => format!(
                            "UPDATE {t} SET {col} = COALESCE((SELECT json_group_array(value) FROM json_each({t}.{col}) WHERE value != $1), '[]') WHERE EXISTS (SELECT 1 FROM json_each({t}.{col}) WHERE value = $1)"
                        ),
                        Dialect::Postgres => format!(
                            "UPDATE {t} SET {col} = COALESCE((SELECT json_agg(value)::text FROM jsonb_array_elements_text({col}::jsonb) AS e(value) WHERE value != $1), '[]') WHERE {col}::jsonb ? $1"
                        ),
                    };
                    statements.push((sql, vec![id.into()]));
                } else if f.opt_bool("cascadeDelete") {
                    statements.push((format!("DELETE FROM {t} WHERE {col} = $1"), vec![id.into()]));
                } else {
                    statements.push((
                        format!("UPDATE {t} SET {col} = '' WHERE {col} = $1"),
                        vec![id.into()],
                    ));
                }
            }
        }
        statements.push((
            format!("DELETE FROM {} WHERE {} = $1", quote(&c.name), quote("id")),
            vec![id.into()],
        ));
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    for (sql, params) in &statements {
                        tx.execute(sql, params).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

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

    /// (id, password hash, tokenKey) of an auth record by email, case-insensitively.
    /// The record an identity names: the first of the collection's identity fields
    /// (`passwordAuth.identityFields`, in order) that holds it; email is matched without case.
    async fn find_identity(
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

    async fn find_superuser(
        &self,
        email: &str,
    ) -> Result<Option<(String, String, String)>, RecordError> {
        let c = self.collection(SUPERUSERS_ID).await?;
        self.find_identity(&c, email).await
    }

    fn issue_token(c: &Collection, id: &str, token_key: &str) -> Result<String, RecordError> {
        let secret = c
            .token_secret()
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let claims = TokenClaims {
            collection_id: c.id.clone(),
            exp: unix_now() + c.token_duration(),
            id: id.to_owned(),
            refreshable: true,
            kind: "auth".into(),
        };
        Ok(auth::sign(&claims, &format!("{token_key}{secret}")))
    }

    fn auth_of(c: &Collection, id: &str) -> Auth {
        if c.id == SUPERUSERS_ID {
            Auth::Superuser { id: id.to_owned() }
        } else {
            Auth::Record {
                collection_id: c.id.clone(),
                id: id.to_owned(),
            }
        }
    }

    /// Password login. An unknown identity costs the same as a wrong password.
    ///
    /// # Errors
    /// [`RecordError::BadRequest`] "Failed to authenticate." for any failure.
    pub async fn auth_with_password(
        &self,
        c: &Collection,
        identity: &str,
        password: &str,
        client: &str,
    ) -> Result<(String, Map<String, Value>), RecordError> {
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
        // The collection's auth rule: null lets no one in, "" everyone, an expression the
        // records it matches (e.g. `verified = true`).
        let auth_rule: Option<String> = match c.options.get("authRule") {
            Some(Value::String(r)) => Some(r.clone()),
            Some(Value::Null) => None,
            _ => Some(String::new()),
        };
        let as_self = RequestInfo {
            auth: Self::auth_of(c, &id),
            ..RequestInfo::default()
        };
        let allowed = match auth_rule.as_deref().map(str::trim) {
            None => false,
            Some("") => true,
            Some(_) => self
                .fetch_visible(c, &id, &auth_rule, &as_self)
                .await?
                .is_some(),
        };
        if !allowed {
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
        let token = Self::issue_token(c, &id, &token_key)?;
        let record = self.record_for(c, &id, &Self::auth_of(c, &id)).await?;
        Ok((token, record))
    }

    async fn record_for(
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
        let rows = self
            .store
            .query(
                format!("SELECT \"tokenKey\" FROM {} WHERE id = $1", quote(&c.name)),
                vec![id.clone().into()],
            )
            .await?;
        let key = rows
            .scalar()
            .and_then(Db::as_str)
            .ok_or(RecordError::NotFound)?
            .to_owned();
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
        let rows = self
            .store
            .query(
                format!("SELECT \"tokenKey\" FROM {} WHERE id = $1", quote(&c.name)),
                vec![id.into()],
            )
            .await?;
        let key = rows
            .scalar()
            .and_then(Db::as_str)
            .ok_or(RecordError::NotFound)?
            .to_owned();
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
        Ok(json!({
            "password": password,
            "oauth2": {"enabled": false, "providers": []},
            "mfa": {"enabled": false, "duration": 0},
            "otp": {"enabled": false, "duration": 0},
        }))
    }

    /// Who a token belongs to; anything invalid (bad signature, expired, unknown record, rotated
    /// key) is a guest.
    pub async fn authenticate(&self, token: &str) -> Auth {
        self.authenticate_kind(token, "auth").await
    }

    /// Who a file token (`POST /api/files/token`, `?token=`) belongs to; anything invalid is a
    /// guest. File tokens are never accepted as auth tokens, nor the reverse.
    pub async fn authenticate_file_token(&self, token: &str) -> Auth {
        self.authenticate_kind(token, "file").await
    }

    /// A short-lived file token for `auth` (PocketBase's claims with `type: "file"`, signed like
    /// its auth token, so a password change retires it too).
    ///
    /// # Errors
    /// [`RecordError`] for a guest or an unknown record.
    pub async fn issue_file_token(&self, who: &Auth) -> Result<String, RecordError> {
        let (collection_id, id) = match who {
            Auth::Guest => {
                return Err(RecordError::BadRequest(
                    "The request requires valid record authorization token.".into(),
                ));
            }
            Auth::Superuser { id } => (SUPERUSERS_ID.to_owned(), id.clone()),
            Auth::Record { collection_id, id } => (collection_id.clone(), id.clone()),
        };
        let c = self.collection(&collection_id).await?;
        let secret = c
            .token_secret()
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let rows = self
            .store
            .query(
                format!("SELECT \"tokenKey\" FROM {} WHERE id = $1", quote(&c.name)),
                vec![id.clone().into()],
            )
            .await?;
        let key = rows
            .scalar()
            .and_then(Db::as_str)
            .ok_or_else(|| RecordError::BadRequest("Failed to authenticate.".into()))?;
        let claims = TokenClaims {
            collection_id: c.id.clone(),
            exp: unix_now() + FILE_TOKEN_SECONDS,
            id,
            refreshable: false,
            kind: "file".into(),
        };
        Ok(auth::sign(&claims, &format!("{key}{secret}")))
    }

    async fn authenticate_kind(&self, token: &str, kind: &str) -> Auth {
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        let Some(claims) = auth::peek(token) else {
            return Auth::Guest;
        };
        if claims.kind != kind || claims.exp <= unix_now() {
            return Auth::Guest;
        }
        let Ok(c) = self.collection(&claims.collection_id).await else {
            return Auth::Guest;
        };
        if c.kind != CollectionType::Auth || c.id != claims.collection_id {
            return Auth::Guest;
        }
        let Some(secret) = c.token_secret() else {
            return Auth::Guest;
        };
        let rows = match self
            .store
            .query(
                format!("SELECT \"tokenKey\" FROM {} WHERE id = $1", quote(&c.name)),
                vec![claims.id.clone().into()],
            )
            .await
        {
            Ok(r) => r,
            Err(_) => return Auth::Guest,
        };
        let Some(key) = rows.scalar().and_then(Db::as_str) else {
            return Auth::Guest;
        };
        if auth::verify_signature(token, &format!("{key}{secret}")) {
            Self::auth_of(&c, &claims.id)
        } else {
            Auth::Guest
        }
    }
}

/// Lifetime of a file token, as PocketBase's default (`fileToken.duration`).
const FILE_TOKEN_SECONDS: i64 = 180;

/// A filter error as the API reports it: PocketBase answers any bad filter with the same 400.
fn filter_error(e: &FilterError, client: bool) -> RecordError {
    tracing::debug!(error = %e, client, "filter refused");
    RecordError::BadRequest("Something went wrong while processing your request.".into())
}

impl Engine {
    /// Fills `expand` on each record for a comma-separated list of relation paths (`a`,
    /// `a.b`, `x_via_y`), six levels deep at most. Unknown paths are ignored, and related records
    /// the request may not view are left out, as PocketBase does.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn expand(
        &self,
        c: &Collection,
        records: &mut [Map<String, Value>],
        expand: &str,
        req: &RequestInfo,
    ) -> Result<(), RecordError> {
        let mut paths: Vec<Vec<&str>> = expand
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.split('.').take(6).collect())
            .collect();
        paths.dedup();
        for path in paths {
            Box::pin(self.expand_path(c, records, &path, req)).await?;
        }
        Ok(())
    }

    async fn expand_path(
        &self,
        c: &Collection,
        records: &mut [Map<String, Value>],
        path: &[&str],
        req: &RequestInfo,
    ) -> Result<(), RecordError> {
        let Some((&first, rest)) = path.split_first() else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        // A forward relation of `c`, or a back-relation `collection_via_field`.
        let (target, field, back) = if let Some(f) = c.field(first).filter(|f| f.kind == "relation")
        {
            match self.collection(f.opt_str("collectionId")).await {
                Ok(t) => (t, f.clone(), false),
                Err(_) => return Ok(()),
            }
        } else if let Some((cname, fname)) = first.rsplit_once("_via_") {
            let Ok(t) = self.collection(cname).await else {
                return Ok(());
            };
            let Some(f) = t
                .field(fname)
                .filter(|f| f.kind == "relation" && f.opt_str("collectionId") == c.id)
                .cloned()
            else {
                return Ok(());
            };
            (t, f, true)
        } else {
            return Ok(());
        };
        let Ok(rule) = self.rule_condition(&target, &target.view_rule, req, 1) else {
            return Ok(()); // the target is superusers-only: nothing to show
        };
        let t = quote(&target.name);
        let (mut sql, mut params) = (
            format!("SELECT {} FROM {t}", Self::columns(&target)),
            Vec::new(),
        );
        let mut conds = Vec::new();
        if let Some((cond, p)) = rule {
            conds.push(cond);
            params.extend(p);
        }
        // Which related rows: by id (forward) or by the relation field (back).
        let ids: Vec<String> = if back {
            records
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        } else {
            let mut all = Vec::new();
            for r in records.iter() {
                match r.get(&field.name) {
                    Some(Value::String(s)) if !s.is_empty() => all.push(s.clone()),
                    Some(Value::Array(a)) => {
                        all.extend(a.iter().filter_map(|v| v.as_str().map(str::to_owned)))
                    }
                    _ => {}
                }
            }
            all.sort();
            all.dedup();
            all
        };
        if ids.is_empty() {
            return Ok(());
        }
        let first_id = params.len() + 1;
        let list: Vec<String> = (0..ids.len())
            .map(|i| format!("${}", first_id + i))
            .collect();
        params.extend(ids.iter().cloned().map(Db::Text));
        if back {
            let col = format!("{t}.{}", quote(&field.name));
            if field.is_multi() {
                let each = match self.dialect() {
                    Dialect::Sqlite => format!("json_each({col}) AS je"),
                    Dialect::Postgres => format!(
                        "jsonb_array_elements_text(COALESCE(NULLIF({col}, ''), '[]')::jsonb) AS je(value)"
                    ),
                };
                conds.push(format!(
                    "EXISTS (SELECT 1 FROM {each} WHERE je.value IN ({}))",
                    list.join(", ")
                ));
            } else {
                conds.push(format!("{col} IN ({})", list.join(", ")));
            }
        } else {
            conds.push(format!("{t}.{} IN ({})", quote("id"), list.join(", ")));
        }
        sql.push_str(&format!(" WHERE {}", conds.join(" AND ")));
        if back {
            sql.push_str(&format!(" ORDER BY {t}.{}", quote("id")));
        }
        let rows = self.store.query(sql, params).await?;
        let mut related: Vec<Map<String, Value>> = rows
            .iter()
            .map(|r| Self::row_json(&target, &rows, r, &req.auth))
            .collect();
        if !rest.is_empty() {
            Box::pin(self.expand_path(&target, &mut related, rest, req)).await?;
        }
        let by_id: std::collections::HashMap<String, &Map<String, Value>> = related
            .iter()
            .filter_map(|r| {
                r.get("id")
                    .and_then(Value::as_str)
                    .map(|id| (id.to_owned(), r))
            })
            .collect();
        for r in records.iter_mut() {
            let value = if back {
                let id = r
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let matches: Vec<Value> = related
                    .iter()
                    .filter(|x| match x.get(&field.name) {
                        Some(Value::String(s)) => *s == id,
                        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(id.as_str())),
                        _ => false,
                    })
                    .map(|x| Value::Object(x.clone()))
                    .collect();
                (!matches.is_empty()).then_some(Value::Array(matches))
            } else {
                match r.get(&field.name) {
                    Some(Value::String(s)) => by_id.get(s).map(|x| Value::Object((*x).clone())),
                    Some(Value::Array(a)) => {
                        let items: Vec<Value> = a
                            .iter()
                            .filter_map(|v| {
                                v.as_str()
                                    .and_then(|id| by_id.get(id))
                                    .map(|x| Value::Object((*x).clone()))
                            })
                            .collect();
                        (!items.is_empty()).then_some(Value::Array(items))
                    }
                    _ => None,
                }
            };
            // A back-relation expand leaves `expand: {}` even when nothing points back.
            if value.is_some() || back {
                let e = r
                    .entry("expand")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Value::Object(m), Some(v)) = (e, value) {
                    m.insert(first.to_owned(), v);
                }
            }
        }
        Ok(())
    }
}

/// Keeps only the requested keys (`fields=id,title,expand.author.name,body:excerpt(20,true)`,
/// `*` for every key at a level).
pub fn project(record: &mut Map<String, Value>, fields: &str) {
    let specs: Vec<&str> = split_top_level(fields)
        .into_iter()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if specs.is_empty() {
        return;
    }
    project_level(
        record,
        &specs
            .iter()
            .map(|s| s.split('.').collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    );
}

/// Splits on commas outside parentheses (`a,b:excerpt(10,true)` is two items).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn project_level(record: &mut Map<String, Value>, specs: &[Vec<&str>]) {
    let mut keep: Map<String, Value> = Map::new();
    let wildcard = specs.iter().any(|s| s.len() == 1 && s[0] == "*");
    for spec in specs {
        let (head, modifier) = match spec[0].split_once(':') {
            Some((h, m)) => (h, Some(m)),
            None => (spec[0], None),
        };
        if head == "*" {
            continue;
        }
        let Some(value) = record.get(head) else {
            continue;
        };
        if spec.len() == 1 {
            let v = match (modifier, value) {
                (Some(m), Value::String(s)) if m.starts_with("excerpt(") => {
                    Value::String(excerpt(s, m))
                }
                _ => value.clone(),
            };
            keep.insert(head.to_owned(), v);
        } else {
            let sub: Vec<Vec<&str>> = specs
                .iter()
                .filter(|s| s.len() > 1 && s[0] == head)
                .map(|s| s[1..].to_vec())
                .collect();
            let mut v = value.clone();
            match &mut v {
                Value::Object(m) if head == "expand" => {
                    // expand.<relation>.<field>: project each expanded record.
                    let mut out = Map::new();
                    for (rel, inner) in m.iter_mut() {
                        let rel_specs: Vec<Vec<&str>> = sub
                            .iter()
                            .filter(|s| s[0] == rel.as_str())
                            .map(|s| s[1..].to_vec())
                            .collect();
                        if rel_specs.is_empty() {
                            continue;
                        }
                        project_value(inner, &rel_specs);
                        out.insert(rel.clone(), inner.clone());
                    }
                    v = Value::Object(out);
                }
                other => project_value(other, &sub),
            }
            keep.insert(head.to_owned(), v);
        }
    }
    if wildcard {
        for (k, v) in std::mem::take(record) {
            keep.entry(k).or_insert(v);
        }
    }
    *record = keep;
}

fn project_value(v: &mut Value, specs: &[Vec<&str>]) {
    if specs.iter().any(|s| s.is_empty()) {
        return;
    }
    match v {
        Value::Object(m) => project_level(m, specs),
        Value::Array(items) => {
            for i in items {
                project_value(i, specs);
            }
        }
        _ => {}
    }
}

/// `excerpt(max[, ellipsis])`: the text without HTML tags, cut to `max` characters.
fn excerpt(s: &str, modifier: &str) -> String {
    let args = modifier
        .trim_start_matches("excerpt(")
        .trim_end_matches(')');
    let mut parts = args.split(',').map(str::trim);
    let max: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let ellipsis = parts.next().is_some_and(|e| e == "true" || e == "1");
    let mut text = String::with_capacity(s.len());
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max).collect();
    if ellipsis {
        cut = cut.trim_end().to_owned();
        cut.push_str("...");
    }
    cut
}

impl Engine {
    /// `PUT /api/collections/import`: creates the collections that do not exist (matched by id,
    /// then name), updates those that do, and with `delete_missing` drops the other non-system
    /// collections. Collections are applied in order, so a relation may point at one imported
    /// before it. It is one transaction, as in PocketBase: the first failure stops the import
    /// and nothing of it is kept.
    ///
    /// # Errors
    /// [`RecordError::Validation`] with `collections: validation_collections_import_failure`.
    pub async fn import_collections(
        &self,
        list: &[Value],
        delete_missing: bool,
    ) -> Result<(), RecordError> {
        let session = self.store.session().await?;
        let inside = self.isolated(session.store());
        match inside.import_in_session(list, delete_missing).await {
            Ok(()) => {
                session.commit().await?;
                self.reload().await
            }
            Err(e) => {
                session.rollback().await;
                Err(e)
            }
        }
    }

    async fn import_in_session(
        &self,
        list: &[Value],
        delete_missing: bool,
    ) -> Result<(), RecordError> {
        let fail = |detail: String| {
            let mut fields = Map::new();
            fields.insert(
                "collections".into(),
                json!({"code": "validation_collections_import_failure", "message": format!("Failed to import the collections configuration: {detail}")}),
            );
            RecordError::Validation {
                message: "Failed to import collections.".into(),
                fields,
            }
        };
        if list.is_empty() {
            return Err(fail("the list is empty".into()));
        }
        let mut kept = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            let existing = match id.and_then(|id| self.cached(id)) {
                Some(c) => Some(c),
                None => self.cached(name).filter(|_| !name.is_empty()),
            };
            let result = match existing {
                Some(c) => self.update_collection(&c.id, item).await,
                None => self.create_collection(item).await,
            };
            match result {
                Ok(c) => kept.push(c.id.clone()),
                Err(RecordError::Validation { fields, .. }) => {
                    let detail = RecordError::field_messages(&fields)
                        .iter()
                        .map(|(k, m)| format!("{k}: {m}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(fail(format!("collection {i} ({name}): {detail}")));
                }
                Err(e) => return Err(fail(format!("collection {i} ({name}): {e}"))),
            }
        }
        if delete_missing {
            for c in self.collections() {
                if !c.system && !kept.contains(&c.id) {
                    self.delete_collection(&c.id)
                        .await
                        .map_err(|e| fail(format!("deleting {}: {e}", c.name)))?;
                }
            }
        }
        Ok(())
    }
}

impl Engine {
    /// A `view` collection: a SQL view over `viewQuery` (one `SELECT` with an `id` column), its
    /// fields inferred as PocketBase does: a column named like a field of a table in the query
    /// takes that field's type, anything computed becomes `json`. Read-only.
    async fn create_view(&self, input: &Value) -> Result<Arc<Collection>, RecordError> {
        let (c, query) = self.view_definition(input, None).await?;
        let ddl = format!("CREATE VIEW {} AS {query}", quote(&c.name));
        self.insert_collection(&c, "view", ddl).await.map_err(|_| {
            view_error(
                "Failed to create collection.",
                "The view could not be created.",
            )
        })?;
        self.reload().await?;
        self.collection(&c.id).await
    }

    /// Changes a view's name, query or rules: the view is dropped and created again in one
    /// transaction, its fields inferred anew (a field that keeps its name and type keeps its id).
    pub(crate) async fn update_view(
        &self,
        old: &Collection,
        input: &Value,
    ) -> Result<Arc<Collection>, RecordError> {
        let (c, query) = self.view_definition(input, Some(old)).await?;
        let ddl = format!(
            "DROP VIEW {};\nCREATE VIEW {} AS {query};\n",
            quote(&old.name),
            quote(&c.name)
        );
        self.store_definition(&c, vec![Step::script(ddl)])
            .await
            .map_err(|_| {
                view_error(
                    "Failed to update collection.",
                    "The view could not be replaced (does another view depend on it?).",
                )
            })?;
        self.reload().await?;
        self.collection(&c.id).await
    }

    /// The collection a view definition describes, and its cleaned query, checked by running
    /// it with `LIMIT 0`. `existing` is the view being changed: absent keys keep its values.
    async fn view_definition(
        &self,
        input: &Value,
        existing: Option<&Collection>,
    ) -> Result<(Collection, String), RecordError> {
        let action = if existing.is_some() {
            "Failed to update collection."
        } else {
            "Failed to create collection."
        };
        let bad = |m: &str| view_error(action, m);
        let query = match input.get("viewQuery") {
            None => existing
                .and_then(|e| e.options.get("viewQuery"))
                .and_then(Value::as_str)
                .unwrap_or_default(),
            Some(v) => v.as_str().ok_or_else(|| bad("Must be a string."))?,
        }
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_owned();
        let upper = query.to_ascii_uppercase();
        if query.is_empty()
            || !(upper.starts_with("SELECT") || upper.starts_with("WITH"))
            || query.contains(';')
        {
            return Err(bad("The view query must be one SELECT statement."));
        }
        let probe = self
            .store
            .query(format!("SELECT * FROM ({query}) AS _view LIMIT 0"), vec![])
            .await
            .map_err(|_| bad("The view query could not be run."))?;
        let columns: Vec<String> = probe.columns().to_vec();
        if !columns.iter().any(|c| c == "id") {
            return Err(bad("The view query must return an `id` column."));
        }
        // Tables named after FROM and JOIN, to infer field types from.
        let words: Vec<&str> = query.split_whitespace().collect();
        let sources: Vec<Arc<Collection>> = words
            .windows(2)
            .filter(|w| w[0].eq_ignore_ascii_case("from") || w[0].eq_ignore_ascii_case("join"))
            .filter_map(|w| {
                self.cached(
                    w[1].trim_matches(|c: char| c == '"' || c == '`' || c == '(' || c == ')'),
                )
            })
            .collect();
        let mut fields = Vec::new();
        for col in &columns {
            if !is_valid_name(col) {
                return Err(bad(&format!("Column `{col}` needs a plain name (use AS).")));
            }
            if col == "id" {
                fields.push(id_field());
                continue;
            }
            let source = sources
                .iter()
                .find_map(|c| c.field(col))
                .filter(|f| f.kind != "password");
            let mut f = match source {
                Some(f) => Field {
                    system: false,
                    ..f.clone()
                },
                None => Field {
                    id: String::new(),
                    name: col.clone(),
                    kind: "json".into(),
                    system: false,
                    hidden: false,
                    presentable: false,
                    options: Map::new(),
                },
            };
            f.id = match existing.and_then(|e| e.field(col)) {
                Some(old) if old.kind == f.kind => old.id.clone(),
                _ => format!("{}{}", f.kind, ids::digits(10)),
            };
            f.normalize();
            fields.push(f);
        }
        // The rest (name, rules) as for any collection; a view's fields are never given.
        let mut def = input.clone();
        if let Value::Object(obj) = &mut def {
            obj.remove("fields");
            obj.remove("viewQuery");
            if existing.is_none() {
                obj.insert("type".into(), json!("base"));
            }
        }
        let mut c = self.parse_collection(&def, existing)?;
        c.kind = CollectionType::View;
        c.fields = fields;
        c.create_rule = None;
        c.update_rule = None;
        c.delete_rule = None;
        c.options
            .insert("viewQuery".into(), Value::String(query.clone()));
        self.validate_rules(&c)?;
        Ok((c, query))
    }
}

fn view_error(action: &str, text: &str) -> RecordError {
    RecordError::field(action, "viewQuery", "validation_invalid_view_query", text)
}

impl Engine {
    /// One page of collections, filtered and sorted on `id`, `name`, `type`, `system`,
    /// `created` and `updated`.
    ///
    /// # Errors
    /// [`RecordError::BadRequest`] for a bad filter or sort; storage errors.
    pub async fn list_collections(
        &self,
        filter: &str,
        sort: &str,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<Arc<Collection>>, i64), RecordError> {
        let dialect = match self.dialect() {
            Dialect::Sqlite => pier_filter::Dialect::Sqlite,
            Dialect::Postgres => pier_filter::Dialect::Postgres,
        };
        let mut r = crate::query::CollectionsResolver;
        let (cond, mut params) = if filter.trim().is_empty() {
            (String::new(), Vec::new())
        } else {
            let parsed = pier_filter::parse_filter(filter).map_err(|e| filter_error(&e, true))?;
            let c = pier_filter::compile(&parsed, dialect, &mut r, 1)
                .map_err(|e| filter_error(&e, true))?;
            (
                format!(" WHERE {}", c.sql),
                c.params.into_iter().map(to_db).collect::<Vec<_>>(),
            )
        };
        let order = if sort.trim().is_empty() {
            " ORDER BY created, id".to_owned()
        } else {
            let items = pier_filter::parse_sort(sort).map_err(|e| filter_error(&e, true))?;
            format!(
                " ORDER BY {}",
                pier_filter::compile_sort(&items, dialect, &mut r)
                    .map_err(|e| filter_error(&e, true))?
            )
        };
        let total = self
            .store
            .query(
                format!("SELECT COUNT(*) FROM _collections{cond}"),
                params.clone(),
            )
            .await?
            .scalar()
            .and_then(Db::as_i64)
            .unwrap_or(0);
        let n = params.len();
        params.push(Db::Integer(per_page));
        params.push(Db::Integer((page - 1).saturating_mul(per_page)));
        let rows = self
            .store
            .query(
                format!(
                    "SELECT id FROM _collections{cond}{order} LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                ),
                params,
            )
            .await?;
        let mut out = Vec::new();
        for row in rows.iter() {
            if let Some(id) = row[0].as_str() {
                out.push(self.collection(id).await?);
            }
        }
        Ok((out, total))
    }
}

impl Engine {
    /// Records a new collection and runs its DDL in one transaction.
    async fn insert_collection(
        &self,
        c: &Collection,
        kind: &str,
        ddl: String,
    ) -> Result<(), pier_storage::StorageError> {
        let data = serde_json::to_string(c).unwrap_or_default();
        let params: Vec<Db> = vec![
            c.id.clone().into(),
            c.name.clone().into(),
            data.into(),
            c.created.clone().into(),
            kind.into(),
        ];
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO _collections (id, name, type, system, data, created, updated) \
                         VALUES ($1, $2, $5, FALSE, $3, $4, $4)",
                        &params,
                    )
                    .await?;
                    tx.execute_script(&ddl).await
                })
            })
            .await
    }
}
