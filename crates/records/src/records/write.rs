//! Writing records: create, update and delete, each in one transaction with its rule checked
//! against the row it writes, including the values auth collections manage themselves
//! (password, token key, `verified`) and relation checks.

use std::sync::Arc;

use pier_storage::{Dialect, Rows, Value as Db};
use serde_json::{Map, Value, json};

use crate::auth::{self, Auth};
use crate::engine::{Engine, now, validation};
use crate::error::RecordError;
use crate::events::Action;
use crate::ids;
use crate::model::{Collection, CollectionType, Field};
use crate::query::RequestInfo;
use crate::records::CREATE_RULE_FAILED;
use crate::records::files;
use crate::schema::quote;
use crate::values::{self, Invalid};

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

impl Engine {
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

    async fn check_relations(
        &self,
        c: &Collection,
        values: &[(&Field, Db)],
    ) -> Result<(), RecordError> {
        for (f, v) in values.iter().filter(|(f, _)| f.kind == "relation") {
            let ids = values::stored_list(f, Some(v));
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
            _ => req.upload_id.clone().unwrap_or_else(ids::record_id),
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
            // File fields take the names sent and the files uploaded with the request.
            let files_value;
            let input = if f.hidden && !auth.is_superuser() {
                None
            } else if f.kind == "file" {
                match files::resolve(f, body, &[], &req.uploads) {
                    Some(Ok(list)) => {
                        files_value = files::as_value(f, list);
                        Some(&files_value)
                    }
                    Some(Err(e)) => {
                        errors.push((f.name.clone(), e));
                        continue;
                    }
                    None => None,
                }
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
        let (events, shared) = (self.events.clone(), self.shared(c));
        let rows = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let rows = Arc::new(tx.query(&sql, &params).await?);
                    if let Some((check_sql, check_params)) = check
                        && tx.query(&check_sql, &check_params).await?.is_empty()
                    {
                        return Err(pier_storage::StorageError::aborted(
                            pier_core::ErrorKind::Invalid,
                            CREATE_RULE_FAILED,
                        ));
                    }
                    let changes = Engine::changes(Action::Create, &shared, &rows, None);
                    events.stage(tx, changes).await?;
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
            if f.kind == "file" {
                let current = files::names_in(&current, f);
                match files::resolve(f, body, &current, &req.uploads) {
                    Some(Ok(list)) => match values::coerce(f, Some(&files::as_value(f, list))) {
                        Ok(v) => sets.push((f, v)),
                        Err(e) => errors.push((f.name.clone(), e)),
                    },
                    Some(Err(e)) => errors.push((f.name.clone(), e)),
                    None => {}
                }
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
        // A new password ends the record's sign-ins in progress (its OTPs and MFA steps).
        let new_key = extra.iter().any(|(name, _)| name == "tokenKey");
        let forget: Vec<String> = if new_key {
            crate::auth::SIGN_IN_TABLES
                .iter()
                .map(|t| {
                    format!("DELETE FROM {t} WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2")
                })
                .collect()
        } else {
            Vec::new()
        };
        let owner = [Db::Text(c.id.clone()), Db::Text(id.to_owned())];
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
        let (events, shared) = (self.events.clone(), self.shared(c));
        let before = Arc::new(Rows::clone(&rows));
        let rows = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let rows = Arc::new(tx.query(&sql, &params).await?);
                    for sql in &forget {
                        tx.execute(sql, &owner).await?;
                    }
                    let changes = Engine::changes(Action::Update, &shared, &rows, Some(&before));
                    events.stage(tx, changes).await?;
                    Ok(rows)
                })
            })
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
        // Each step changes the records of one collection: `before` reads the rows an update
        // is about to change, so that its events carry them as `previous`.
        struct Step {
            collection: Arc<Collection>,
            action: Action,
            before: Option<String>,
            sql: String,
        }
        let mut steps: Vec<Step> = Vec::new();
        for other in self.collections() {
            for f in other
                .fields
                .iter()
                .filter(|f| f.kind == "relation" && f.opt_str("collectionId") == c.id)
            {
                let (t, col) = (quote(&other.name), quote(&f.name));
                let cols = Self::columns(&other);
                let update = |set: String, filter: String| Step {
                    collection: other.clone(),
                    action: Action::Update,
                    before: Some(format!("SELECT {cols} FROM {t} WHERE {filter}")),
                    sql: format!("UPDATE {t} SET {col} = {set} WHERE {filter} RETURNING {cols}"),
                };
                if f.is_multi() {
                    // Remove the id from JSON arrays: rewrite in SQL per dialect.
                    steps.push(match self.dialect() {
                        Dialect::Sqlite => update(
                            format!("COALESCE((SELECT json_group_array(value) FROM json_each({t}.{col}) WHERE value != $1), '[]')"),
                            format!("EXISTS (SELECT 1 FROM json_each({t}.{col}) WHERE value = $1)"),
                        ),
                        Dialect::Postgres => update(
                            format!("COALESCE((SELECT json_agg(value)::text FROM jsonb_array_elements_text({col}::jsonb) AS e(value) WHERE value != $1), '[]')"),
                            format!("{col}::jsonb ? $1"),
                        ),
                    });
                } else if f.opt_bool("cascadeDelete") {
                    steps.push(Step {
                        collection: other.clone(),
                        action: Action::Delete,
                        before: None,
                        sql: format!("DELETE FROM {t} WHERE {col} = $1 RETURNING {cols}"),
                    });
                } else {
                    steps.push(update("''".into(), format!("{col} = $1")));
                }
            }
        }
        let shared = self.shared(c);
        steps.push(Step {
            sql: format!(
                "DELETE FROM {} WHERE {} = $1 RETURNING {}",
                quote(&c.name),
                quote("id"),
                Self::columns(c)
            ),
            collection: shared,
            action: Action::Delete,
            before: None,
        });
        // An auth record's OTPs, MFA steps, sign-in origins and API keys go with it.
        let owned: Vec<String> = if c.kind == CollectionType::Auth {
            crate::auth::RECORD_TABLES
                .iter()
                .map(|t| {
                    format!("DELETE FROM {t} WHERE \"collectionRef\" = $1 AND \"recordRef\" = $2")
                })
                .collect()
        } else {
            Vec::new()
        };
        let owner = [Db::Text(c.id.clone()), Db::Text(id.to_owned())];
        let events = self.events.clone();
        let id = Db::Text(id.to_owned());
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    let mut changes = Vec::new();
                    for sql in &owned {
                        tx.execute(sql, &owner).await?;
                    }
                    let params = [id];
                    for s in &steps {
                        let before = match &s.before {
                            Some(sql) => Some(Arc::new(tx.query(sql, &params).await?)),
                            None => None,
                        };
                        let rows = Arc::new(tx.query(&s.sql, &params).await?);
                        changes.extend(Engine::changes(
                            s.action,
                            &s.collection,
                            &rows,
                            before.as_ref(),
                        ));
                    }
                    events.stage(tx, changes).await
                })
            })
            .await?;
        Ok(())
    }
}
