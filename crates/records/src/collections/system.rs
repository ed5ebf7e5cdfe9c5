//! The collections pier makes itself: the system fields every collection and every auth
//! collection has, `_superusers`, and PocketBase's default `users` collection.

use serde_json::{Map, Value, json};

use crate::engine::{Engine, now};
use crate::error::RecordError;
use crate::ids;
use crate::model::{Collection, CollectionType, Field};

/// The id PocketBase gives its `_superusers` collection; clients and SDKs may rely on it.
pub const SUPERUSERS_ID: &str = "pbc_3142635823";

const SUPERUSERS: &str = "_superusers";

fn system_field(name: &str, kind: &str, extra: Value) -> Field {
    let mut options = match extra {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    options.entry("required").or_insert(Value::Bool(false));
    let mut f = Field {
        id: format!("{kind}{}", ids::digits(10)),
        name: name.to_owned(),
        kind: kind.to_owned(),
        system: true,
        hidden: false,
        presentable: false,
        options,
    };
    f.normalize();
    f
}

pub(crate) fn id_field() -> Field {
    let mut f = system_field(
        "id",
        "text",
        json!({"required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}", "primaryKey": true}),
    );
    f.id = "text3208210256".into();
    f
}

/// The fields every auth collection has, after `id`.
pub(crate) fn auth_fields() -> Vec<Field> {
    let mut password = system_field("password", "password", json!({"required": true, "min": 8}));
    password.hidden = true;
    let mut token_key = system_field("tokenKey", "text", json!({"required": true}));
    token_key.hidden = true;
    vec![
        password,
        token_key,
        system_field("email", "email", json!({"required": true})),
        system_field("emailVisibility", "bool", json!({})),
        system_field("verified", "bool", json!({})),
    ]
}

pub(crate) fn auth_options(duration: i64) -> Map<String, Value> {
    match json!({
        "authRule": "",
        "manageRule": null,
        "authToken": {"secret": ids::secret(50), "duration": duration},
        "passwordAuth": {"enabled": true, "identityFields": ["email"]},
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn superusers_collection() -> Collection {
    let ts = now();
    let mut fields = vec![id_field()];
    fields.extend(auth_fields());
    fields.push(system_field(
        "created",
        "autodate",
        json!({"onCreate": true, "onUpdate": false}),
    ));
    fields.push(system_field(
        "updated",
        "autodate",
        json!({"onCreate": true, "onUpdate": true}),
    ));
    Collection {
        id: SUPERUSERS_ID.into(),
        name: SUPERUSERS.into(),
        kind: CollectionType::Auth,
        system: true,
        fields,
        indexes: Vec::new(),
        list_rule: None,
        view_rule: None,
        create_rule: None,
        update_rule: None,
        delete_rule: None,
        created: ts.clone(),
        updated: ts,
        options: auth_options(86_400),
    }
}

impl Engine {
    /// Creates PocketBase's default `users` auth collection once per database (a deleted one
    /// stays deleted: a marker in `_params` records that it was made).
    pub(crate) async fn bootstrap_users(&self) -> Result<(), RecordError> {
        const MARKER: &str = "records.users_bootstrapped";
        let done = self
            .store
            .query("SELECT 1 FROM _params WHERE key = $1", vec![MARKER.into()])
            .await?;
        if !done.is_empty() {
            return Ok(());
        }
        if self.cached("users").is_none() {
            let owner = "id = @request.auth.id";
            let def = json!({
                "id": "_pb_users_auth_",
                "name": "users",
                "type": "auth",
                "listRule": owner, "viewRule": owner, "createRule": "",
                "updateRule": owner, "deleteRule": owner,
                "fields": [
                    {"name": "name", "type": "text", "max": 255},
                    {"name": "avatar", "type": "file", "maxSelect": 1, "maxSize": 0,
                     "mimeTypes": ["image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"]},
                    {"name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
                    {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
                ]
            });
            // Another backend may be doing the same right now; one of them wins.
            if let Err(e) = self.create_collection(&def).await {
                tracing::debug!(error = %e, "default users collection not created");
            }
        }
        self.store
            .execute(
                "INSERT INTO _params (key, value, updated_at) VALUES ($1, 'true', 0) ON CONFLICT DO NOTHING",
                vec![MARKER.into()],
            )
            .await?;
        Ok(())
    }
}
