//! Reading a collection definition from its JSON: names, type, fields matched to the existing
//! ones by id (a kept id under a new name is a rename), rules, indexes and auth options.

use serde_json::{Map, Value};

use super::options;
use super::sql_names;
use super::{auth_fields, auth_options, id_field};
use crate::engine::{Engine, now};
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType, FIELD_TYPES, Field, is_valid_name};

impl Engine {
    pub(crate) fn parse_collection(
        &self,
        input: &Value,
        existing: Option<&Collection>,
    ) -> Result<Collection, RecordError> {
        let action = if existing.is_some() {
            "Failed to update collection."
        } else {
            "Failed to create collection."
        };
        let bad =
            |field: &str, code: &str, text: &str| RecordError::field(action, field, code, text);
        let Value::Object(obj) = input else {
            return Err(RecordError::BadRequest(
                "The request body must be a JSON object.".into(),
            ));
        };
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            None => existing.map(|e| e.name.clone()).unwrap_or_default(),
            Some(_) => return Err(bad("name", "validation_invalid_name", "Must be a string.")),
        };
        if name.is_empty() {
            return Err(bad(
                "name",
                "validation_required",
                "Missing required value.",
            ));
        }
        if !is_valid_name(&name) || (name.starts_with('_') && existing.is_none_or(|e| !e.system)) {
            return Err(bad(
                "name",
                "validation_match_invalid",
                "Invalid collection name: use letters, digits and _, not starting with _ or a digit.",
            ));
        }
        if let Some(other) = self.cached(&name)
            && existing.is_none_or(|e| e.id != other.id)
        {
            return Err(bad(
                "name",
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
            ));
        }
        let kind = match obj.get("type").and_then(Value::as_str) {
            None => existing.map_or(CollectionType::Base, |e| e.kind),
            Some("base") => CollectionType::Base,
            Some("auth") => CollectionType::Auth,
            Some("view") => CollectionType::View,
            Some(_) => {
                return Err(bad(
                    "type",
                    "validation_in_invalid",
                    "Must be base, auth or view.",
                ));
            }
        };
        if existing.is_some_and(|e| e.kind != kind) {
            return Err(bad(
                "type",
                "validation_collection_type_change",
                "The collection type cannot be changed.",
            ));
        }

        options::check_keys(obj, kind).map_err(|(key, code, m)| bad(&key, code, &m))?;
        let mut fields: Vec<Field> = match obj.get("fields") {
            None => existing.map(|e| e.fields.clone()).unwrap_or_default(),
            Some(Value::Array(items)) => self.parse_fields(items, existing, action)?,
            Some(_) => {
                return Err(bad(
                    "fields",
                    "validation_invalid_fields",
                    "Must be a list of fields.",
                ));
            }
        };
        if !fields.iter().any(|f| f.name == "id") {
            let id = existing
                .and_then(|e| e.field("id"))
                .cloned()
                .unwrap_or_else(id_field);
            fields.insert(0, id);
        }
        if kind == CollectionType::Auth && existing.is_none() {
            // As PocketBase: the given fields first, then the auth system fields.
            for f in auth_fields() {
                if let Some(pos) = fields.iter().position(|x| x.name == f.name) {
                    fields.remove(pos);
                }
                fields.push(f);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for f in &fields {
            if !seen.insert(f.name.to_ascii_lowercase()) {
                return Err(bad(
                    "fields",
                    "validation_duplicated_field_name",
                    &format!("Duplicated field name `{}`.", f.name),
                ));
            }
        }
        if let Some(e) = existing {
            // Fields are matched by id: a system field whose id is gone was removed or renamed.
            for old in e.fields.iter().filter(|f| f.system) {
                if !fields.iter().any(|f| f.id == old.id && f.name == old.name) {
                    return Err(bad(
                        "fields",
                        "validation_system_field_change",
                        &format!(
                            "System fields cannot be deleted or renamed (`{}`).",
                            old.name
                        ),
                    ));
                }
            }
        }

        let rule =
            |key: &str, old: Option<&Option<String>>| -> Result<Option<String>, RecordError> {
                match obj.get(key) {
                    None => Ok(old.cloned().flatten()),
                    Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(bad(
                        key,
                        "validation_invalid_rule",
                        "Must be a string or null.",
                    )),
                }
            };
        let indexes = Self::parse_indexes(obj.get("indexes"), existing, &name, action)?;
        let mut options = match existing {
            Some(e) => e.options.clone(),
            None if kind == CollectionType::Auth => auth_options(432_000),
            None => Map::new(),
        };
        if kind == CollectionType::Auth {
            options::apply_auth_options(&mut options, obj, &fields)
                .map_err(|(key, code, m)| bad(&key, code, &m))?;
        }
        let ts = now();
        Ok(Collection {
            id: match (
                existing,
                obj.get("id")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty()),
            ) {
                (Some(e), _) => e.id.clone(),
                (None, Some(given)) => {
                    if !is_valid_name(given) || self.cached(given).is_some() {
                        return Err(bad(
                            "id",
                            "validation_invalid_id",
                            "The id must be unique and use letters, digits and _.",
                        ));
                    }
                    given.to_owned()
                }
                (None, None) => format!("pbc_{}", ids::digits(10)),
            },
            name,
            kind,
            system: existing.is_some_and(|e| e.system),
            fields,
            indexes,
            list_rule: rule("listRule", existing.map(|e| &e.list_rule))?,
            view_rule: rule("viewRule", existing.map(|e| &e.view_rule))?,
            create_rule: rule("createRule", existing.map(|e| &e.create_rule))?,
            update_rule: rule("updateRule", existing.map(|e| &e.update_rule))?,
            delete_rule: rule("deleteRule", existing.map(|e| &e.delete_rule))?,
            created: existing.map_or_else(|| ts.clone(), |e| e.created.clone()),
            updated: ts,
            options,
        })
    }

    /// The fields of a definition. A field is the existing one with the same `id`, or else the
    /// existing one with the same name whose id the definition does not give to another field;
    /// anything else is a new field. A kept field keeps its type (PocketBase refuses a change of
    /// type too), so a schema change never empties a column by re-creating it under its name.
    fn parse_fields(
        &self,
        items: &[Value],
        existing: Option<&Collection>,
        action: &str,
    ) -> Result<Vec<Field>, RecordError> {
        let bad =
            |field: &str, code: &str, text: &str| RecordError::field(action, field, code, text);
        let given_ids: std::collections::HashSet<&str> = items
            .iter()
            .filter_map(|v| v.get("id").and_then(Value::as_str))
            .filter(|id| !id.is_empty())
            .collect();
        let mut out: Vec<Field> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut f: Field = serde_json::from_value(item.clone()).map_err(|e| {
                bad(
                    "fields",
                    "validation_invalid_field",
                    &format!("Field {i}: {e}."),
                )
            })?;
            if !FIELD_TYPES.contains(&f.kind.as_str()) {
                return Err(bad(
                    "fields",
                    "validation_invalid_field_type",
                    &format!("Field {i} has the unknown type `{}`.", f.kind),
                ));
            }
            if !is_valid_name(&f.name) {
                return Err(bad(
                    "fields",
                    "validation_invalid_field_name",
                    &format!("Field {i} has an invalid name."),
                ));
            }
            if f.kind == "relation" {
                let target = f.opt_str("collectionId").to_owned();
                if self.cached(&target).is_none() {
                    return Err(bad(
                        "fields",
                        "validation_missing_rel_collection",
                        &format!("Field `{}` points at an unknown collection.", f.name),
                    ));
                }
            }
            // By id; else by name, when no field of the definition claims that field's id (a
            // definition from another instance, with other ids): the values stay, the id too.
            let old = existing.and_then(|e| {
                e.fields
                    .iter()
                    .find(|o| !f.id.is_empty() && o.id == f.id)
                    .or_else(|| {
                        e.field(&f.name)
                            .filter(|o| !given_ids.contains(o.id.as_str()))
                    })
            });
            match old {
                Some(old) => {
                    if old.kind != f.kind {
                        return Err(bad(
                            &format!("fields.{i}"),
                            "validation_field_type_change",
                            &format!(
                                "Field type cannot be changed (`{}` is a {} field).",
                                old.name, old.kind
                            ),
                        ));
                    }
                    f.id = old.id.clone();
                    f.system = old.system;
                }
                None => {
                    f.system = false;
                    if f.id.is_empty() {
                        f.id = format!("{}{}", f.kind, ids::digits(10));
                    } else if f.id.len() > 100
                        || !f.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(bad(
                            "fields",
                            "validation_invalid_field_id",
                            &format!("Field {i} has an invalid id: use letters, digits and _."),
                        ));
                    }
                }
            }
            if out.iter().any(|o| o.id == f.id) {
                return Err(bad(
                    "fields",
                    "validation_duplicated_field_id",
                    &format!("Duplicated field id `{}`.", f.id),
                ));
            }
            f.normalize();
            out.push(f);
        }
        Ok(out)
    }

    /// The indexes of a definition: each one `CREATE [UNIQUE] INDEX … ON` the collection's own
    /// table. An index on the old table name follows a renamed collection, as in PocketBase.
    fn parse_indexes(
        given: Option<&Value>,
        existing: Option<&Collection>,
        table: &str,
        action: &str,
    ) -> Result<Vec<String>, RecordError> {
        let bad =
            |field: &str, code: &str, text: &str| RecordError::field(action, field, code, text);
        let list: Vec<String> = match given {
            None => existing.map(|e| e.indexes.clone()).unwrap_or_default(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().unwrap_or_default().trim().to_owned())
                .collect(),
            Some(_) => {
                return Err(bad(
                    "indexes",
                    "validation_invalid_indexes",
                    "Must be a list.",
                ));
            }
        };
        let mut out = Vec::with_capacity(list.len());
        let mut names = std::collections::HashSet::new();
        for (i, s) in list.into_iter().enumerate() {
            let key = format!("indexes.{i}");
            let Some(idx) = sql_names::parse_index(&s) else {
                return Err(bad(
                    &key,
                    "validation_invalid_index",
                    "Each index must be one CREATE [UNIQUE] INDEX name ON table (...) statement.",
                ));
            };
            if !names.insert(idx.name.to_ascii_lowercase()) {
                return Err(bad(
                    &key,
                    "validation_duplicated_index_name",
                    &format!("Duplicated index name `{}`.", idx.name),
                ));
            }
            let old_table = existing.map(|e| e.name.as_str());
            if idx.table.eq_ignore_ascii_case(table) {
                out.push(s);
            } else if old_table.is_some_and(|o| idx.table.eq_ignore_ascii_case(o)) {
                out.push(idx.on_table(&s, table));
            } else {
                return Err(bad(
                    &key,
                    "validation_invalid_index_table",
                    &format!(
                        "Index `{}` must be on the collection's own table `{table}`, not `{}`.",
                        idx.name, idx.table
                    ),
                ));
            }
        }
        Ok(out)
    }
}
