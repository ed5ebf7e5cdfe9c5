//! Records: list and view (`read`), create, update and delete (`write`), the API rules
//! (`access`), relation expansion (`expand`), field projection (`fields`) and file fields
//! (`files`), and what realtime subscribers may see of record events (`realtime`, with rules
//! decided in memory in `quick`). This file holds what they share: the list envelope and how a
//! stored row becomes a record's JSON.

mod access;
mod expand;
mod fields;
mod files;
mod quick;
mod read;
mod realtime;
mod write;

pub use fields::project;
pub(crate) use files::removed as removed_files;
pub use files::{RemovedFile, Upload, max_file_size, upload_too_large};
pub use realtime::EventRule;

use pier_storage::{Rows, Value as Db};
use serde_json::{Map, Value, json};

use crate::auth::Auth;
use crate::engine::Engine;
use crate::model::{Collection, CollectionType, Field};
use crate::schema::quote;
use crate::values;

pub(crate) const ONLY_SUPERUSERS: &str = "Only superusers can perform this action.";

/// Marks a create that its rule refused, so the transaction rolls back.
pub(crate) const CREATE_RULE_FAILED: &str = "the create rule refused the new record";

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

impl Engine {
    pub(crate) fn columns(c: &Collection) -> String {
        c.fields
            .iter()
            .map(|f| quote(&f.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn row_json(
        c: &Collection,
        rows: &Rows,
        row: &[Db],
        auth: &Auth,
    ) -> Map<String, Value> {
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
}
