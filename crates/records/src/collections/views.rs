//! View collections: a SQL view over one `SELECT`, its fields inferred from the query.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::collections::{Step, id_field};
use crate::engine::Engine;
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType, Field, is_valid_name};
use crate::schema::quote;

fn view_error(action: &str, text: &str) -> RecordError {
    RecordError::field(action, "viewQuery", "validation_invalid_view_query", text)
}

impl Engine {
    /// A `view` collection: a SQL view over `viewQuery` (one `SELECT` with an `id` column), its
    /// fields inferred as PocketBase does: a column named like a field of a table in the query
    /// takes that field's type, anything computed becomes `json`. Read-only.
    pub(crate) async fn create_view(&self, input: &Value) -> Result<Arc<Collection>, RecordError> {
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
