//! What a realtime subscriber may see of a record event: the rule check against the record
//! as the event carries it, and the record cut to the subscriber's view (hidden fields, email
//! visibility, `expand`, `fields`). Simple rules are decided in memory (`quick`).
//!
//! The rule is checked against the event's own values, not the table: a delete's record is no
//! longer in it, and an update's may have changed again since. The query shadows the
//! collection's table with a one-row CTE holding those values, so every rule compiles as it
//! does for the REST API and relations to other records read the database as it is now. (A
//! rule that reads *other* records of the same collection through `@collection` sees only the
//! event's record.)

use pier_storage::{Dialect, Value as Db};
use serde_json::{Map, Value};

use crate::auth::Auth;
use crate::engine::Engine;
use crate::error::RecordError;
use crate::model::{Collection, CollectionType};
use crate::query::RequestInfo;
use crate::records::project;
use crate::schema::quote;
use crate::values;

/// Which rule an event is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventRule {
    /// `collection/*`: the list rule.
    List,
    /// `collection/id`: the view rule.
    View,
}

impl Engine {
    /// True when `rule` and the subscriber's own `filter` let `req` see `record` (a record of
    /// `c` as an event carries it). `None` from `rule_sql` means no query was needed.
    ///
    /// # Errors
    /// Storage errors; a rule or filter that does not compile is a refusal, not an error.
    pub async fn event_visible(
        &self,
        c: &Collection,
        record: &Map<String, Value>,
        rule: EventRule,
        filter: &str,
        req: &RequestInfo,
    ) -> Result<bool, RecordError> {
        let rule = match rule {
            EventRule::List => &c.list_rule,
            EventRule::View => &c.view_rule,
        };
        self.record_passes(c, record, rule, filter, req, true).await
    }

    /// [`Engine::event_visible`] for an arbitrary `rule`, always by query (never in memory):
    /// what the in-memory answers are tested against.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn event_rule_by_query(
        &self,
        c: &Collection,
        record: &Map<String, Value>,
        rule: &str,
        req: &RequestInfo,
    ) -> Result<bool, RecordError> {
        self.record_passes(c, record, &Some(rule.to_owned()), "", req, false)
            .await
    }

    /// The rule's answer when it needs no query (see `quick`): for tests that hold it against
    /// the query's.
    pub fn event_rule_in_memory(
        &self,
        c: &Collection,
        record: &Map<String, Value>,
        rule: &str,
        req: &RequestInfo,
    ) -> Option<bool> {
        let parsed = pier_filter::parse_filter(rule).ok()?;
        super::quick::decide(c, &parsed, record, &req.auth)
    }

    /// The counter of rule queries run for events (see [`Engine::event_visible`]).
    pub fn event_rule_queries(&self) -> u64 {
        self.rule_queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn record_passes(
        &self,
        c: &Collection,
        record: &Map<String, Value>,
        rule: &Option<String>,
        filter: &str,
        req: &RequestInfo,
        in_memory: bool,
    ) -> Result<bool, RecordError> {
        let mut conditions = Vec::new();
        let mut params: Vec<Db> = c
            .fields
            .iter()
            .map(|f| values::from_json(f, record.get(&f.name)))
            .collect();
        let first = params.len() + 1;
        // The rule compiles first (one that does not refuses, as in the REST API); then it is
        // decided in memory when it allows that (see `quick`), otherwise in the query.
        let compiled = match self.rule_condition(c, rule, req, first) {
            Ok(compiled) => compiled,
            Err(_) => return Ok(false),
        };
        let known = match (&compiled, rule.as_deref()) {
            (Some(_), Some(expr)) if in_memory => pier_filter::parse_filter(expr)
                .ok()
                .and_then(|parsed| super::quick::decide(c, &parsed, record, &req.auth)),
            _ => None,
        };
        match (known, compiled) {
            (Some(false), _) => return Ok(false),
            (Some(true), _) | (None, None) => {}
            (None, Some((sql, p))) => {
                conditions.push(sql);
                params.extend(p);
            }
        }
        if !filter.trim().is_empty() {
            match self.condition(c, filter, req, true, params.len() + 1) {
                Ok((sql, p)) => {
                    conditions.push(sql);
                    params.extend(p);
                }
                Err(_) => return Ok(false),
            }
        }
        if conditions.is_empty() {
            return Ok(true);
        }
        let pg = self.dialect() == Dialect::Postgres;
        let columns: Vec<String> = c
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let n = i + 1;
                let value = match (pg, f.kind.as_str()) {
                    (false, _) => format!("${n}"),
                    (true, "number") => format!("CAST(${n} AS DOUBLE PRECISION)"),
                    (true, "bool") => format!("CAST(${n} AS BOOLEAN)"),
                    (true, _) => format!("CAST(${n} AS TEXT)"),
                };
                format!("{value} AS {}", quote(&f.name))
            })
            .collect();
        let table = quote(&c.name);
        let sql = format!(
            "WITH {table} AS (SELECT {}) SELECT 1 FROM {table} WHERE {} LIMIT 1",
            columns.join(", "),
            conditions.join(" AND ")
        );
        self.rule_queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(!self.store.query(sql, params).await?.is_empty())
    }

    /// `record` (as an event carries it: everything but secrets) as `req` may see it: hidden
    /// fields left out for all but superusers, the email of an auth record for its owner,
    /// superusers, those its manage rule lets through, or when it is visible; then `expand` and
    /// `fields`.
    ///
    /// # Errors
    /// Storage errors from `expand`.
    pub async fn event_view(
        &self,
        c: &Collection,
        record: &Map<String, Value>,
        expand: &str,
        fields: &str,
        req: &RequestInfo,
    ) -> Result<Map<String, Value>, RecordError> {
        let mut view = record.clone();
        let superuser = req.auth.is_superuser();
        if !superuser {
            for f in c.fields.iter().filter(|f| f.hidden) {
                view.remove(&f.name);
            }
        }
        if c.kind == CollectionType::Auth && !superuser {
            let id = view.get("id").and_then(Value::as_str).unwrap_or_default();
            let own = matches!(&req.auth, Auth::Record { collection_id, id: me } if *collection_id == c.id && me == id);
            let visible = view
                .get("emailVisibility")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let manager = !own && !visible && {
                let manage = c
                    .options
                    .get("manageRule")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                manage.is_some()
                    && self
                        .record_passes(c, record, &manage, "", req, true)
                        .await?
            };
            if !(own || visible || manager) {
                view.remove("email");
            }
        }
        let mut items = [view];
        if !expand.trim().is_empty() {
            self.expand(c, &mut items, expand, req).await?;
        }
        let [mut view] = items;
        if !fields.trim().is_empty() {
            project(&mut view, fields);
        }
        Ok(view)
    }
}
