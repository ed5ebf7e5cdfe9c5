//! Changing a collection in place: the schema diff between the stored definition and the new
//! one, run in one transaction with the new definition, so a change keeps every value or
//! changes nothing.
//!
//! Fields are matched by id (see `parse.rs`). A kept id under a new name is a rename: the column
//! is renamed (`ALTER TABLE … RENAME COLUMN`), so its values and the database's own indexes on
//! it follow. Renames go through temporary names first, so two fields can swap names in one
//! change. The collection's indexes are dropped and created again from the new definition
//! whenever a column is renamed or dropped or the index list changes: an index that still names
//! an old column is refused with the index's own error, as PocketBase refuses it. A select,
//! relation or file field that changes between one value and several has its values converted
//! as PocketBase converts them. What the database cannot carry along is refused before anything
//! runs: a view collection that reads a renamed or dropped column (or the renamed table), and
//! another collection's rule that names what this change removes.

use std::sync::{Arc, Mutex};

use pier_storage::{Dialect, StorageError, Value as Db};
use serde_json::Value;

use super::sql_names;
use crate::engine::Engine;
use crate::error::RecordError;
use crate::events::Change;
use crate::model::{Collection, CollectionType, Field};
use crate::schema::{self, quote};

const ACTION: &str = "Failed to update collection.";

/// One statement of a schema change; `index` is the position in the definition's `indexes` of
/// the index it creates, so its failure is reported on that index.
pub(crate) struct Step {
    sql: String,
    index: Option<usize>,
}

impl Step {
    pub(crate) fn script(sql: String) -> Step {
        Step { sql, index: None }
    }
}

/// How the fields of two definitions of one collection relate, matched by id.
struct FieldDiff<'a> {
    dropped: Vec<&'a Field>,
    renamed: Vec<(&'a Field, &'a Field)>,
    added: Vec<&'a Field>,
    /// Kept select, relation and file fields that change between one value and several.
    multiplicity: Vec<&'a Field>,
}

impl<'a> FieldDiff<'a> {
    fn new(old: &'a Collection, new: &'a Collection) -> FieldDiff<'a> {
        let by_id = |c: &'a Collection, id: &str| c.fields.iter().find(|f| f.id == id);
        FieldDiff {
            dropped: old
                .fields
                .iter()
                .filter(|f| by_id(new, &f.id).is_none())
                .collect(),
            renamed: old
                .fields
                .iter()
                .filter_map(|f| by_id(new, &f.id).map(|n| (f, n)))
                .filter(|(o, n)| o.name != n.name)
                .collect(),
            added: new
                .fields
                .iter()
                .filter(|f| by_id(old, &f.id).is_none())
                .collect(),
            multiplicity: old
                .fields
                .iter()
                .filter_map(|f| by_id(new, &f.id).map(|n| (f, n)))
                .filter(|(o, n)| {
                    matches!(n.kind.as_str(), "select" | "relation" | "file")
                        && o.is_multi() != n.is_multi()
                })
                .map(|(_, n)| n)
                .collect(),
        }
    }

    /// The old fields whose column goes away under its old name.
    fn gone(&self) -> impl Iterator<Item = &'a Field> + '_ {
        self.dropped
            .iter()
            .copied()
            .chain(self.renamed.iter().map(|(o, _)| *o))
    }
}

/// The statements that turn `old`'s table into `new`'s, in order.
fn plan(old: &Collection, new: &Collection, diff: &FieldDiff<'_>, dialect: Dialect) -> Vec<Step> {
    let mut steps = Vec::new();
    let t = quote(&new.name);
    let rebuild_indexes = diff.dropped.len() + diff.renamed.len() > 0 || old.indexes != new.indexes;
    if rebuild_indexes {
        for name in old
            .indexes
            .iter()
            .filter_map(|i| sql_names::parse_index(i))
            .map(|i| i.name)
        {
            steps.push(Step::script(format!(
                "DROP INDEX IF EXISTS {}",
                quote(&name)
            )));
        }
    }
    // pier's own index on an autodate column is named after the field: drop it with the name.
    for f in diff.gone().filter(|f| f.kind == "autodate") {
        steps.push(Step::script(format!(
            "DROP INDEX IF EXISTS {}",
            quote(&schema::autodate_index_name(old, f))
        )));
    }
    if new.name != old.name {
        steps.push(Step::script(format!(
            "ALTER TABLE {} RENAME TO {t}",
            quote(&old.name)
        )));
    }
    for f in &diff.dropped {
        steps.push(Step::script(format!(
            "ALTER TABLE {t} DROP COLUMN {}",
            quote(&f.name)
        )));
    }
    for (o, _) in &diff.renamed {
        steps.push(Step::script(format!(
            "ALTER TABLE {t} RENAME COLUMN {} TO {}",
            quote(&o.name),
            quote(&temporary_name(o))
        )));
    }
    for (o, n) in &diff.renamed {
        steps.push(Step::script(format!(
            "ALTER TABLE {t} RENAME COLUMN {} TO {}",
            quote(&temporary_name(o)),
            quote(&n.name)
        )));
    }
    for f in &diff.multiplicity {
        steps.push(Step::script(convert_multiplicity(&t, f, dialect)));
    }
    for f in &diff.added {
        steps.push(Step::script(format!(
            "ALTER TABLE {t} ADD COLUMN {}",
            schema::column_def(f, dialect)
        )));
    }
    let new_autodates = diff
        .added
        .iter()
        .copied()
        .chain(diff.renamed.iter().map(|(_, n)| *n))
        .filter(|f| f.kind == "autodate");
    for f in new_autodates {
        steps.push(Step::script(schema::autodate_index(new, f)));
    }
    if rebuild_indexes {
        for (i, idx) in new.indexes.iter().enumerate() {
            steps.push(Step {
                sql: idx.clone(),
                index: Some(i),
            });
        }
    }
    steps
}

/// Converts the values of `f` (already under its new name) as PocketBase does when a select,
/// relation or file field changes between one value and several: one value becomes a list of
/// it, a list keeps its last value; empty stays empty.
fn convert_multiplicity(table: &str, f: &Field, dialect: Dialect) -> String {
    let c = quote(&f.name);
    // A stored list is a JSON array; one value (an id, a select value, a file name) never
    // starts with `[`.
    let is_list = match dialect {
        Dialect::Sqlite => format!("json_valid({c}) AND json_type({c}) = 'array'"),
        Dialect::Postgres => format!("{c} LIKE '[%'"),
    };
    let value = if f.is_multi() {
        let wrap = match dialect {
            Dialect::Sqlite => format!("json_array({c})"),
            Dialect::Postgres => format!("json_build_array({c})::text"),
        };
        format!(
            "CASE WHEN COALESCE({c}, '') = '' THEN '[]' WHEN {is_list} THEN {c} ELSE {wrap} END"
        )
    } else {
        let last = match dialect {
            Dialect::Sqlite => format!("COALESCE(json_extract({c}, '$[#-1]'), '')"),
            Dialect::Postgres => format!("COALESCE({c}::jsonb ->> -1, '')"),
        };
        format!(
            "CASE WHEN COALESCE({c}, '') IN ('', '[]') THEN '' WHEN {is_list} THEN {last} ELSE {c} END"
        )
    };
    format!("UPDATE {table} SET {c} = {value}")
}

/// A column name no field can have (field names cannot start with `_`), unique per field.
fn temporary_name(f: &Field) -> String {
    format!("_pier_rename_{}", f.id)
}

impl Engine {
    /// Updates rules, name, fields (added, renamed and removed columns) and indexes.
    ///
    /// # Errors
    /// As [`Engine::create_collection`]; [`RecordError::NotFound`]; a 400 naming what a rename
    /// or removal would break.
    pub async fn update_collection(
        &self,
        id_or_name: &str,
        input: &Value,
    ) -> Result<Arc<Collection>, RecordError> {
        let old = self.collection(id_or_name).await?;
        if old.kind == CollectionType::View {
            return self.update_view(&old, input).await;
        }
        let new = self.parse_collection(input, Some(&old))?;
        self.validate_rules(&new)?;
        let diff = FieldDiff::new(&old, &new);
        self.check_dependents(&old, &new, &diff)?;
        let steps = plan(&old, &new, &diff, self.dialect());
        self.store_definition(&new, steps).await.map_err(|e| {
            match e {
                // A failed index: reported on the index, the rest is rolled back.
                (Some(i), e) => {
                    let name = new
                        .indexes
                        .get(i)
                        .and_then(|s| sql_names::parse_index(s))
                        .map(|s| s.name)
                        .unwrap_or_default();
                    RecordError::field(
                        ACTION,
                        &format!("indexes.{i}"),
                        "validation_invalid_index_expression",
                        &format!("Failed to create index `{name}`: {}.", db_message(&e)),
                    )
                }
                (None, e) => RecordError::from(e),
            }
        })?;
        self.reload().await?;
        self.collection(&new.id).await
    }

    /// Refuses a change that would leave another collection broken: a view that reads a
    /// renamed or dropped column or the renamed table, or a rule elsewhere that names them.
    fn check_dependents(
        &self,
        old: &Collection,
        new: &Collection,
        diff: &FieldDiff<'_>,
    ) -> Result<(), RecordError> {
        let renamed_table = old.name != new.name;
        if !renamed_table && diff.dropped.is_empty() && diff.renamed.is_empty() {
            return Ok(());
        }
        let others: Vec<Arc<Collection>> = self
            .collections()
            .into_iter()
            .filter(|c| c.id != old.id)
            .collect();
        for view in others.iter().filter(|c| c.kind == CollectionType::View) {
            let query = view
                .options
                .get("viewQuery")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !sql_names::names(query, &old.name) {
                continue;
            }
            if renamed_table {
                return Err(RecordError::field(
                    ACTION,
                    "name",
                    "validation_collection_in_use",
                    &format!(
                        "The view collection `{}` reads `{}`; change its query first.",
                        view.name, old.name
                    ),
                ));
            }
            if let Some(f) = diff
                .gone()
                .find(|f| sql_names::selects_all(query) || sql_names::names(query, &f.name))
            {
                return Err(RecordError::field(
                    ACTION,
                    "fields",
                    "validation_field_in_use",
                    &format!(
                        "Field `{}` is read by the view collection `{}`; change the view's query first.",
                        f.name, view.name
                    ),
                ));
            }
        }
        // Every other collection's rules, resolved with the new definition in place.
        let mut all = others.clone();
        all.push(Arc::new(new.clone()));
        for other in &others {
            if let Err((key, e)) = self.rules_check(other, &all) {
                let what = if renamed_table { "name" } else { "fields" };
                return Err(RecordError::field(
                    ACTION,
                    what,
                    "validation_collection_in_use",
                    &format!(
                        "The {key} of collection `{}` would break ({e}); change it first or in the same import.",
                        other.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs `steps` and stores `c`'s changed definition, in one transaction. A failure says
    /// which index (if it was an index) failed.
    pub(crate) async fn store_definition(
        &self,
        c: &Collection,
        steps: Vec<Step>,
    ) -> Result<(), (Option<usize>, StorageError)> {
        let data = serde_json::to_string(c).unwrap_or_default();
        let params: Vec<Db> = vec![
            c.id.clone().into(),
            c.name.clone().into(),
            data.into(),
            c.updated.clone().into(),
        ];
        let failed: Arc<Mutex<Option<usize>>> = Arc::default();
        let failed_in = Arc::clone(&failed);
        let (events, changed) = (self.events.clone(), Change::collections(c));
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    for step in &steps {
                        if let Err(e) = tx.execute_script(&step.sql).await {
                            if let Ok(mut f) = failed_in.lock() {
                                *f = step.index;
                            }
                            return Err(e);
                        }
                    }
                    tx.execute(
                        "UPDATE _collections SET name = $2, data = $3, updated = $4 WHERE id = $1",
                        &params,
                    )
                    .await?;
                    events.stage(tx, vec![changed]).await
                })
            })
            .await
            .map_err(|e| (failed.lock().ok().and_then(|f| *f), e))
    }
}

/// The database's own words for a failed statement, without pier's prefix.
fn db_message(e: &StorageError) -> String {
    let text = e.to_string();
    text.strip_prefix("query failed: ")
        .unwrap_or(&text)
        .trim_end_matches('.')
        .to_owned()
}
