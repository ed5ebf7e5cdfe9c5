//! Collections and fields, in PocketBase's JSON shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `base`, `auth` or `view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Base,
    Auth,
    View,
}

/// One field. The type-specific options (`min`, `max`, `values`, `maxSelect`, `onCreate`, …)
/// are kept as JSON and read through accessors, so every option PocketBase defines round-trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub presentable: bool,
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

/// The field types pier knows.
pub(crate) const FIELD_TYPES: &[&str] = &[
    "text", "editor", "number", "bool", "email", "url", "date", "autodate", "select", "json",
    "relation", "file", "password",
];

impl Field {
    pub fn opt_bool(&self, key: &str) -> bool {
        self.options
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Option<f64> {
        self.options.get(key).and_then(Value::as_f64)
    }

    pub(crate) fn opt_str(&self, key: &str) -> &str {
        self.options.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// `required` lives among the options because not every type has it.
    pub fn required(&self) -> bool {
        self.opt_bool("required")
    }

    /// True when the field holds a JSON array (multi select, relation or file).
    pub fn is_multi(&self) -> bool {
        matches!(self.kind.as_str(), "select" | "relation" | "file")
            && self.opt_f64("maxSelect").unwrap_or(1.0) > 1.0
    }

    /// The allowed values of a select field.
    pub(crate) fn values(&self) -> Vec<String> {
        self.options
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fills the options PocketBase always reports for this type, keeping given ones.
    pub(crate) fn normalize(&mut self) {
        let defaults = match self.kind.as_str() {
            "text" | "editor" => {
                json!({"required": false, "min": 0, "max": 0, "pattern": "", "autogeneratePattern": "", "primaryKey": false, "help": ""})
            }
            "number" => {
                json!({"required": false, "min": null, "max": null, "onlyInt": false, "help": ""})
            }
            "bool" => json!({"required": false, "help": ""}),
            "email" | "url" => {
                json!({"required": false, "exceptDomains": null, "onlyDomains": null, "help": ""})
            }
            "date" => json!({"required": false, "min": "", "max": "", "help": ""}),
            "autodate" => json!({"onCreate": true, "onUpdate": false}),
            "select" => json!({"required": false, "values": [], "maxSelect": 1, "help": ""}),
            "json" => json!({"required": false, "maxSize": 0, "help": ""}),
            "relation" => {
                json!({"required": false, "collectionId": "", "cascadeDelete": false, "minSelect": 0, "maxSelect": 1, "help": ""})
            }
            "file" => {
                json!({"required": false, "maxSelect": 1, "maxSize": 0, "mimeTypes": [], "thumbs": [], "protected": false, "help": ""})
            }
            "password" => {
                json!({"required": false, "min": 0, "max": 0, "pattern": "", "cost": 0, "help": ""})
            }
            _ => json!({}),
        };
        if let Value::Object(d) = defaults {
            for (k, v) in d {
                self.options.entry(k).or_insert(v);
            }
        }
    }
}

/// A collection definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CollectionType,
    #[serde(default)]
    pub system: bool,
    pub fields: Vec<Field>,
    #[serde(default)]
    pub indexes: Vec<String>,
    #[serde(rename = "listRule")]
    pub list_rule: Option<String>,
    #[serde(rename = "viewRule")]
    pub view_rule: Option<String>,
    #[serde(rename = "createRule")]
    pub create_rule: Option<String>,
    #[serde(rename = "updateRule")]
    pub update_rule: Option<String>,
    #[serde(rename = "deleteRule")]
    pub delete_rule: Option<String>,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub updated: String,
    /// Type-specific settings (auth: `authRule`, `manageRule`, `authToken`, …; view: `viewQuery`).
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

impl Collection {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The token signing secret of an auth collection (never sent to clients).
    pub(crate) fn token_secret(&self) -> Option<&str> {
        self.options
            .get("authToken")
            .and_then(|t| t.get("secret"))
            .and_then(Value::as_str)
    }

    /// Token lifetime in seconds.
    pub(crate) fn token_duration(&self) -> i64 {
        self.options
            .get("authToken")
            .and_then(|t| t.get("duration"))
            .and_then(Value::as_i64)
            .unwrap_or(86_400)
    }

    /// The JSON shown to superusers: everything but secrets.
    pub fn to_public_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if self.kind == CollectionType::Auth
            && let Value::Object(m) = &mut v
        {
            crate::collections::public_auth_options(m);
        }
        v
    }
}

/// True for a name usable as a collection or field identifier.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifier_like() {
        assert!(is_valid_name("posts"));
        assert!(is_valid_name("_superusers"));
        assert!(!is_valid_name("1posts"));
        assert!(!is_valid_name("po sts"));
        assert!(!is_valid_name("x\"; DROP TABLE y; --"));
        assert!(!is_valid_name(""));
    }

    #[test]
    fn fields_round_trip_with_unknown_options() {
        let v = json!({"name": "tags", "type": "select", "maxSelect": 3, "values": ["a", "b"], "required": true});
        let mut f: Field = serde_json::from_value(v).unwrap();
        f.normalize();
        assert!(f.is_multi());
        assert!(f.required());
        assert_eq!(f.values(), ["a", "b"]);
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(back["maxSelect"], 3);
        assert_eq!(back["help"], "");
    }
}
