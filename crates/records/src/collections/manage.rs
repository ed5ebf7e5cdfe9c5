//! Creating, deleting, truncating and listing collections. Changing one in place is
//! `update.rs`; view collections are `views.rs`.

use std::sync::Arc;

use pier_storage::{Dialect, Value as Db};
use serde_json::Value;

use crate::engine::{Engine, filter_error};
use crate::error::RecordError;
use crate::events::{Action, Change};
use crate::model::{Collection, CollectionType};
use crate::query::to_db;
use crate::schema::{self, quote};

impl Engine {
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
        // A table's records go with it: each is a delete event (a view holds none).
        let read_all = (c.kind != CollectionType::View)
            .then(|| format!("SELECT {} FROM {}", Self::columns(&c), quote(&c.name)));
        let id = c.id.clone();
        let events = self.events.clone();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    let mut changes = Vec::new();
                    if let Some(sql) = read_all {
                        let rows = Arc::new(tx.query(&sql, &[]).await?);
                        changes = Engine::changes(Action::Delete, &c, &rows, None);
                    }
                    changes.push(Change::collections(&c));
                    for t in crate::auth::RECORD_TABLES {
                        tx.execute(
                            &format!("DELETE FROM {t} WHERE \"collectionRef\" = $1"),
                            &[id.clone().into()],
                        )
                        .await?;
                    }
                    tx.execute_script(&drop).await?;
                    tx.execute("DELETE FROM _collections WHERE id = $1", &[id.into()])
                        .await?;
                    events.stage(tx, changes).await
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
        let sql = format!(
            "DELETE FROM {} RETURNING {}",
            quote(&c.name),
            Self::columns(&c)
        );
        let events = self.events.clone();
        let id = c.id.clone();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    for t in crate::auth::RECORD_TABLES {
                        tx.execute(
                            &format!("DELETE FROM {t} WHERE \"collectionRef\" = $1"),
                            &[id.clone().into()],
                        )
                        .await?;
                    }
                    let rows = Arc::new(tx.query(&sql, &[]).await?);
                    let changes = Engine::changes(Action::Delete, &c, &rows, None);
                    events.stage(tx, changes).await
                })
            })
            .await?;
        Ok(())
    }

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

    /// Records a new collection and runs its DDL in one transaction.
    pub(crate) async fn insert_collection(
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
        let (events, changed) = (self.events.clone(), Change::collections(c));
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO _collections (id, name, type, system, data, created, updated) \
                         VALUES ($1, $2, $5, FALSE, $3, $4, $4)",
                        &params,
                    )
                    .await?;
                    tx.execute_script(&ddl).await?;
                    events.stage(tx, vec![changed]).await
                })
            })
            .await
    }
}
