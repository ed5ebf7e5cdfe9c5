//! API rules: a rule or client filter compiled to SQL for one request, the request as rules
//! see it (`@request.*`), and the check of a definition's rules against its fields.

use std::sync::Arc;

use pier_filter::FilterError;
use pier_storage::Value as Db;
use serde_json::{Map, Value};

use crate::auth::Auth;
use crate::engine::{Engine, filter_error};
use crate::error::RecordError;
use crate::model::Collection;
use crate::query::{CollectionResolver, RequestInfo, to_db};
use crate::records::ONLY_SUPERUSERS;

impl Engine {
    /// The SQL condition a rule puts on `c`'s rows for this request, with its parameters
    /// numbered from `first`: `None` when the rule lets every row through.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] for a `null` rule and a non-superuser.
    pub(crate) fn rule_condition(
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
    pub(crate) fn condition(
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
            uploads: Vec::new(),
            upload_id: None,
        }
    }
}
