//! `PUT /api/collections/import`: a list of definitions applied in one transaction.

use serde_json::{Map, Value, json};

use crate::engine::Engine;
use crate::error::RecordError;

impl Engine {
    /// `PUT /api/collections/import`: creates the collections that do not exist (matched by id,
    /// then name), updates those that do, and with `delete_missing` drops the other non-system
    /// collections. Collections are applied in order, so a relation may point at one imported
    /// before it. It is one transaction, as in PocketBase: the first failure stops the import
    /// and nothing of it is kept.
    ///
    /// # Errors
    /// [`RecordError::Validation`] with `collections: validation_collections_import_failure`.
    pub async fn import_collections(
        &self,
        list: &[Value],
        delete_missing: bool,
    ) -> Result<(), RecordError> {
        let session = self.store.session().await?;
        let inside = self.isolated(session.store());
        match inside.import_in_session(list, delete_missing).await {
            Ok(()) => {
                session.commit().await?;
                self.reload().await
            }
            Err(e) => {
                session.rollback().await;
                Err(e)
            }
        }
    }

    async fn import_in_session(
        &self,
        list: &[Value],
        delete_missing: bool,
    ) -> Result<(), RecordError> {
        let fail = |detail: String| {
            let mut fields = Map::new();
            fields.insert(
                "collections".into(),
                json!({"code": "validation_collections_import_failure", "message": format!("Failed to import the collections configuration: {detail}")}),
            );
            RecordError::Validation {
                message: "Failed to import collections.".into(),
                fields,
            }
        };
        if list.is_empty() {
            return Err(fail("the list is empty".into()));
        }
        let mut kept = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            let existing = match id.and_then(|id| self.cached(id)) {
                Some(c) => Some(c),
                None => self.cached(name).filter(|_| !name.is_empty()),
            };
            let result = match existing {
                Some(c) => self.update_collection(&c.id, item).await,
                None => self.create_collection(item).await,
            };
            match result {
                Ok(c) => kept.push(c.id.clone()),
                Err(RecordError::Validation { fields, .. }) => {
                    let detail = RecordError::field_messages(&fields)
                        .iter()
                        .map(|(k, m)| format!("{k}: {m}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(fail(format!("collection {i} ({name}): {detail}")));
                }
                Err(e) => return Err(fail(format!("collection {i} ({name}): {e}"))),
            }
        }
        if delete_missing {
            for c in self.collections() {
                if !c.system && !kept.contains(&c.id) {
                    self.delete_collection(&c.id)
                        .await
                        .map_err(|e| fail(format!("deleting {}: {e}", c.name)))?;
                }
            }
        }
        Ok(())
    }
}
