//! `expand`: related records filled in along relation paths, back-relations included, each
//! checked against its collection's view rule.

use pier_storage::{Dialect, Value as Db};
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::error::RecordError;
use crate::model::Collection;
use crate::query::RequestInfo;
use crate::schema::quote;

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
