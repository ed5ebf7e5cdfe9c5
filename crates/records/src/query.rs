//! Filters, sorts and rules: the records engine's [`Resolver`] for `pier-filter`.
//!
//! Identifiers become quoted SQL fragments built only from validated collection and field
//! names; every value (including `@request.*`) is bound as a parameter.

use std::sync::Arc;

use pier_filter::{
    Dialect as FDialect, FilterError, Ident, IdentSource, Param, Resolved, Resolver, ValueKind,
};
use pier_storage::{Dialect, Value as Db};
use serde_json::{Map, Value};

use crate::auth::Auth;
use crate::model::{Collection, Field};
use crate::schema::quote;

/// What the request brings to `@request.*`.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The caller.
    pub auth: Auth,
    /// The caller's record (fields visible to itself), for `@request.auth.<field>`.
    pub auth_record: Option<Map<String, Value>>,
    /// The submitted body (create and update).
    pub body: Map<String, Value>,
    /// The query string.
    pub query: Map<String, Value>,
    /// Request headers, lowercased names with `-` as `_`.
    pub headers: Map<String, Value>,
    /// `GET`, `POST`, …
    pub method: String,
    /// Files streamed into the store with this request (multipart create and update).
    pub uploads: Vec<crate::records::Upload>,
    /// The record id the uploads were stored under: a create whose body names no `id` takes it.
    pub upload_id: Option<String>,
}

pub(crate) struct CollectionResolver<'a> {
    pub(crate) collections: &'a [Arc<Collection>],
    pub(crate) root: &'a Collection,
    pub(crate) dialect: Dialect,
    pub(crate) req: &'a RequestInfo,
    /// A client's `filter`/`sort` rather than a rule: hidden fields and `@request.*` are refused.
    pub(crate) client: bool,
    /// Resolving a sort: relation paths become scalar subqueries.
    pub(crate) for_sort: bool,
    pub(crate) refused_request: bool,
    aliases: usize,
}

impl<'a> CollectionResolver<'a> {
    pub(crate) fn new(
        collections: &'a [Arc<Collection>],
        root: &'a Collection,
        dialect: Dialect,
        req: &'a RequestInfo,
        client: bool,
    ) -> CollectionResolver<'a> {
        CollectionResolver {
            collections,
            root,
            dialect,
            req,
            client,
            for_sort: false,
            refused_request: false,
            aliases: 0,
        }
    }

    pub(crate) fn filter_dialect(&self) -> FDialect {
        match self.dialect {
            Dialect::Sqlite => FDialect::Sqlite,
            Dialect::Postgres => FDialect::Postgres,
        }
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("\"_r{}\"", self.aliases)
    }

    fn superuser(&self) -> bool {
        self.req.auth.is_superuser()
    }

    fn collection(&self, id_or_name: &str) -> Option<&'a Collection> {
        self.collections
            .iter()
            .find(|c| c.id == id_or_name || c.name.eq_ignore_ascii_case(id_or_name))
            .map(AsRef::as_ref)
    }

    fn kind(field: &Field) -> ValueKind {
        match field.kind.as_str() {
            "number" => ValueKind::Number,
            "bool" => ValueKind::Bool,
            "json" => ValueKind::Any,
            _ => ValueKind::Text,
        }
    }

    /// Elements of a JSON array column as rows `je.value`.
    fn json_elements(&self, column: &str) -> String {
        elements(self.dialect, column)
    }

    fn json_path(&self, column: &str, path: &[String]) -> Result<String, FilterError> {
        if !path
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(FilterError::UnknownField(path.join(".")));
        }
        Ok(match self.dialect {
            Dialect::Sqlite => format!(
                "json_extract({column}, '$.{}')",
                path.iter()
                    .map(|p| if p.chars().all(|c| c.is_ascii_digit()) {
                        format!("[{p}]").trim_start_matches('.').to_owned()
                    } else {
                        p.clone()
                    })
                    .collect::<Vec<_>>()
                    .join(".")
                    .replace(".[", "[")
            ),
            Dialect::Postgres => {
                format!("(NULLIF({column}, '')::jsonb #>> '{{{}}}')", path.join(","))
            }
        })
    }

    /// A field's column. Others see an auth record's email only when it is visible, so their
    /// filters cannot probe hidden emails (PocketBase answers such filters with no rows).
    fn column_sql(&self, c: &Collection, table: &str, f: &Field) -> String {
        let col = format!("{table}.{}", quote(&f.name));
        if c.kind == crate::model::CollectionType::Auth
            && f.name == "email"
            && self.client
            && !self.superuser()
        {
            return format!(
                "(CASE WHEN {table}.{} THEN {col} ELSE '' END)",
                quote("emailVisibility")
            );
        }
        col
    }

    /// Can this caller read through a relation into `target`?
    fn may_read(&self, target: &Collection) -> bool {
        self.superuser() || !self.client || target.view_rule.as_deref() == Some("")
    }

    fn field_of<'c>(&self, c: &'c Collection, name: &str) -> Result<&'c Field, FilterError> {
        let f = c
            .field(name)
            .ok_or_else(|| FilterError::UnknownField(name.to_owned()))?;
        let secret = matches!(f.name.as_str(), "password" | "tokenKey") || f.kind == "password";
        if secret || (f.hidden && self.client && !self.superuser()) {
            return Err(FilterError::FieldNotAllowed(name.to_owned()));
        }
        Ok(f)
    }

    /// `collection_via_field` back-relations.
    fn back_relation(
        &self,
        segment: &str,
        owner: &Collection,
    ) -> Option<(&'a Collection, &'a Field)> {
        let (cname, fname) = segment.rsplit_once("_via_")?;
        let c = self.collection(cname)?;
        let f = c.field(fname)?;
        (f.kind == "relation" && f.opt_str("collectionId") == owner.id).then_some((c, f))
    }

    /// The values at `path` in `target` (aliased `A`), for rows of `target` matching `link(A)`.
    fn rows(
        &mut self,
        target: &'a Collection,
        link: &dyn Fn(&str) -> String,
        path: &[String],
    ) -> Result<(String, ValueKind, bool), FilterError> {
        if !self.may_read(target) {
            return Err(FilterError::FieldNotAllowed(path.join(".")));
        }
        let a = self.alias();
        let t = quote(&target.name);
        let first = &path[0];
        if let Some((bc, bf)) = self.back_relation(first, target) {
            let ids = format!("SELECT {a}.{} FROM {t} {a} WHERE {}", quote("id"), link(&a));
            let dialect = self.dialect;
            let link2 = move |b: &str| back_link(dialect, b, bf, &format!("({ids})"));
            let rest: Vec<String> = if path.len() > 1 {
                path[1..].to_vec()
            } else {
                vec!["id".to_owned()]
            };
            let (sql, kind, _) = self.rows(bc, &link2, &rest)?;
            return Ok((sql, kind, true));
        }
        let f = self.field_of(target, first)?;
        let col = self.column_sql(target, &a, f);
        if path.len() == 1 {
            let sql = if f.is_multi() {
                format!(
                    "SELECT je.value AS value FROM {t} {a}, {} WHERE {}",
                    self.json_elements(&col),
                    link(&a)
                )
            } else {
                format!("SELECT {col} AS value FROM {t} {a} WHERE {}", link(&a))
            };
            return Ok((sql, Self::kind(f), f.is_multi()));
        }
        if f.kind == "json" {
            let expr = self.json_path(&col, &path[1..])?;
            return Ok((
                format!("SELECT {expr} AS value FROM {t} {a} WHERE {}", link(&a)),
                ValueKind::Any,
                false,
            ));
        }
        if f.kind != "relation" {
            return Err(FilterError::UnknownField(path.join(".")));
        }
        let next = self
            .collection(f.opt_str("collectionId"))
            .ok_or_else(|| FilterError::UnknownField(path.join(".")))?;
        let ids = if f.is_multi() {
            format!(
                "SELECT je.value FROM {t} {a}, {} WHERE {}",
                self.json_elements(&col),
                link(&a)
            )
        } else {
            format!("SELECT {col} FROM {t} {a} WHERE {}", link(&a))
        };
        let link2 = move |b: &str| format!("{b}.{} IN ({ids})", quote("id"));
        let (sql, kind, multi) = self.rows(next, &link2, &path[1..])?;
        Ok((sql, kind, multi || f.is_multi()))
    }

    fn record(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let root = self.root;
        let table = quote(&root.name);
        let first = ident
            .path
            .first()
            .ok_or_else(|| FilterError::UnknownField(String::new()))?;
        if let Some((bc, bf)) = self.back_relation(first, root) {
            let id = format!("({table}.{})", quote("id"));
            let dialect = self.dialect;
            let link = move |b: &str| back_link(dialect, b, bf, &id);
            let rest: Vec<String> = if ident.path.len() > 1 {
                ident.path[1..].to_vec()
            } else {
                vec!["id".to_owned()]
            };
            let (sql, kind, _) = self.rows(bc, &link, &rest)?;
            return Ok(self.rows_result(sql, kind));
        }
        let f = self.field_of(root, first)?;
        let col = self.column_sql(root, &table, f);
        if ident.path.len() == 1 {
            // As in PocketBase, a bare multi-value field compares as its JSON text
            // (`tags ~ "a"`); `:each` and `:length` work on its elements.
            let elementwise = matches!(
                ident.modifier,
                Some(pier_filter::Modifier::Each | pier_filter::Modifier::Length)
            );
            return Ok(if f.is_multi() && elementwise {
                Resolved::json_array(col, ValueKind::Text)
            } else {
                Resolved::column(col, Self::kind(f))
            });
        }
        if f.kind == "json" {
            let expr = self.json_path(&col, &ident.path[1..])?;
            return Ok(Resolved::column(expr, ValueKind::Any));
        }
        if f.kind != "relation" {
            return Err(FilterError::UnknownField(ident.path.join(".")));
        }
        let target = self
            .collection(f.opt_str("collectionId"))
            .ok_or_else(|| FilterError::UnknownField(ident.path.join(".")))?;
        let multi = f.is_multi();
        let elements = self.json_elements(&col);
        let link = move |a: &str| {
            if multi {
                format!("{a}.{} IN (SELECT je.value FROM {elements})", quote("id"))
            } else {
                format!("{a}.{} = {col}", quote("id"))
            }
        };
        let (sql, kind, _) = self.rows(target, &link, &ident.path[1..])?;
        Ok(self.rows_result(sql, kind))
    }

    fn rows_result(&self, sql: String, kind: ValueKind) -> Resolved {
        if self.for_sort {
            Resolved::column(format!("({sql} LIMIT 1)"), kind)
        } else {
            Resolved::Rows { sql, kind }
        }
    }

    fn request_value(v: Option<&Value>) -> Resolved {
        match v {
            Some(Value::Array(items)) => Resolved::Values(items.iter().map(json_param).collect()),
            Some(v) => Resolved::Value(json_param(v)),
            None => Resolved::Value(Param::Null),
        }
    }
}

/// The elements of a JSON array column as rows with a `je.value` column.
fn elements(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("json_each({column}) AS je"),
        Dialect::Postgres => format!(
            "jsonb_array_elements_text(COALESCE(NULLIF({column}, ''), '[]')::jsonb) AS je(value)"
        ),
    }
}

/// Rows of a back-relating collection (aliased `b`) whose relation field `f` points at any of
/// `ids` (a subquery in parentheses, or a parenthesised column).
fn back_link(dialect: Dialect, b: &str, f: &Field, ids: &str) -> String {
    let col = format!("{b}.{}", quote(&f.name));
    if f.is_multi() {
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE je.value IN {ids})",
            elements(dialect, &col)
        )
    } else {
        format!("{col} IN {ids}")
    }
}

fn json_param(v: &Value) -> Param {
    match v {
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Param::Integer)
            .or_else(|| n.as_f64().map(Param::Real))
            .unwrap_or(Param::Null),
        Value::String(s) => Param::Text(s.clone()),
        other => Param::Text(other.to_string()),
    }
}

/// A filter parameter as a storage value.
pub(crate) fn to_db(p: Param) -> Db {
    match p {
        Param::Null => Db::Null,
        Param::Integer(i) => Db::Integer(i),
        Param::Real(f) => Db::Real(f),
        Param::Text(s) => Db::Text(s),
        Param::Bool(b) => Db::Integer(i64::from(b)),
    }
}

impl Resolver for CollectionResolver<'_> {
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let request = !matches!(
            ident.source,
            IdentSource::Record | IdentSource::Collection { .. }
        );
        if request && self.client && !self.superuser() {
            self.refused_request = true;
            return Err(FilterError::FieldNotAllowed(ident.to_string()));
        }
        match &ident.source {
            IdentSource::Record => self.record(ident),
            IdentSource::RequestAuth => {
                let (id, cid) = match &self.req.auth {
                    Auth::Guest => (String::new(), String::new()),
                    Auth::Superuser { id } => {
                        (id.clone(), crate::collections::SUPERUSERS_ID.to_owned())
                    }
                    Auth::Record { collection_id, id } => (id.clone(), collection_id.clone()),
                };
                let key = ident.path.first().map(String::as_str).unwrap_or("");
                Ok(match key {
                    "id" => Resolved::Value(Param::Text(id)),
                    "collectionId" => Resolved::Value(Param::Text(cid)),
                    "collectionName" => Resolved::Value(Param::Text(
                        self.collection(&cid)
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                    )),
                    _ => {
                        Self::request_value(self.req.auth_record.as_ref().and_then(|r| r.get(key)))
                    }
                })
            }
            IdentSource::RequestBody => Ok(Self::request_value(
                ident.path.first().and_then(|k| self.req.body.get(k)),
            )),
            IdentSource::RequestQuery => Ok(Self::request_value(
                ident.path.first().and_then(|k| self.req.query.get(k)),
            )),
            IdentSource::RequestHeaders => {
                Ok(Self::request_value(ident.path.first().and_then(|k| {
                    self.req.headers.get(&k.to_ascii_lowercase())
                })))
            }
            IdentSource::RequestMethod => Ok(Resolved::Value(Param::Text(self.req.method.clone()))),
            IdentSource::RequestContext => Ok(Resolved::Value(Param::Text("default".into()))),
            IdentSource::Collection { name, .. } => {
                let target = self
                    .collection(name)
                    .ok_or_else(|| FilterError::UnknownField(format!("@collection.{name}")))?;
                if ident.path.is_empty() {
                    return Err(FilterError::UnknownField(format!("@collection.{name}")));
                }
                let (sql, kind, _) = self.rows(target, &|_| "TRUE".to_owned(), &ident.path)?;
                Ok(self.rows_result(sql, kind))
            }
        }
    }

    fn rowid(&mut self) -> Result<String, FilterError> {
        Ok(match self.dialect {
            Dialect::Sqlite => format!("{}.rowid", quote(&self.root.name)),
            Dialect::Postgres => format!("{}.ctid", quote(&self.root.name)),
        })
    }
}

/// Resolves filters and sorts over the `_collections` table (`GET /api/collections`).
pub(crate) struct CollectionsResolver;

impl Resolver for CollectionsResolver {
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let name = match (&ident.source, ident.path.as_slice()) {
            (IdentSource::Record, [name]) => name.as_str(),
            _ => return Err(FilterError::UnknownField(ident.to_string())),
        };
        let kind = match name {
            "id" | "name" | "type" | "created" | "updated" => ValueKind::Text,
            "system" => ValueKind::Bool,
            _ => return Err(FilterError::UnknownField(name.to_owned())),
        };
        Ok(Resolved::column(
            format!("_collections.{}", quote(name)),
            kind,
        ))
    }
}
