//! Client JSON to stored values (with PocketBase's lenient casting and its validation codes),
//! and stored values back to record JSON.

use pier_core::time::{format_unix_millis, parse_datetime};
use pier_storage::Value as Db;
use serde_json::{Map, Number, Value};

use crate::model::Field;

/// One field's validation failure: PocketBase's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// PocketBase's `params` (e.g. `{"min": 3}`), when the message has placeholders.
    pub(crate) params: Option<Value>,
}

pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
        params: None,
    }
}

fn with_params(mut i: Invalid, params: Value) -> Invalid {
    i.params = Some(params);
    i
}

/// A whole number prints without a fraction, as in PocketBase's messages and params.
fn num_json(f: f64) -> Value {
    number(f)
}

/// A JSON value cast to text the way PocketBase casts it.
fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // A list given for a single value keeps the last element.
        Value::Array(a) => a.last().map(as_text).unwrap_or_default(),
        Value::Object(_) => v.to_string(),
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Array(a) => a.last().map_or(0.0, as_f64),
        _ => 0.0,
    }
}

fn as_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.trim(), "true" | "1" | "on" | "yes"),
        _ => false,
    }
}

/// A list of strings from a scalar or an array, without duplicates, order kept.
pub(crate) fn as_list(v: &Value) -> Vec<String> {
    let items: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(as_text).filter(|s| !s.is_empty()).collect(),
        // A JSON array sent as text (multipart forms) is a list too.
        Value::String(s) if s.trim_start().starts_with('[') => {
            serde_json::from_str::<Vec<Value>>(s)
                .map(|a| a.iter().map(as_text).collect())
                .unwrap_or_else(|_| vec![s.clone()])
        }
        other => vec![as_text(other)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The ids or names a stored select, relation or file value holds (a JSON array for multiple
/// fields, one text for single ones).
pub(crate) fn stored_list(field: &Field, v: Option<&Db>) -> Vec<String> {
    match v {
        Some(Db::Text(s)) if field.is_multi() => serde_json::from_str(s).unwrap_or_default(),
        Some(Db::Text(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn is_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(char::is_whitespace)
    })
}

/// Casts and validates one field's input. `None` means the client did not send it.
pub(crate) fn coerce(field: &Field, input: Option<&Value>) -> Result<Db, Invalid> {
    let null = Value::Null;
    let v = input.unwrap_or(&null);
    let value = match field.kind.as_str() {
        "number" => {
            let n = as_f64(v);
            if !n.is_finite() {
                return Err(invalid(
                    "validation_not_a_number",
                    "Must be a valid number.",
                ));
            }
            if field.opt_bool("onlyInt") && n.fract() != 0.0 {
                return Err(invalid(
                    "validation_only_int_constraint",
                    "Decimal numbers are not allowed.",
                ));
            }
            if let Some(min) = field.opt_f64("min").filter(|m| n < *m) {
                return Err(invalid(
                    "validation_min_number_constraint",
                    format!("Must be larger than {min}."),
                ));
            }
            if let Some(max) = field.opt_f64("max").filter(|m| n > *m) {
                return Err(invalid(
                    "validation_max_number_constraint",
                    format!("Must be less than {max}."),
                ));
            }
            Db::Real(n)
        }
        "bool" => Db::Integer(i64::from(as_bool(v))),
        "json" => match v {
            Value::Null => Db::Null,
            other => {
                let text = other.to_string();
                let max = field.opt_f64("maxSize").unwrap_or(0.0);
                #[allow(clippy::cast_precision_loss)]
                if max > 0.0 && text.len() as f64 > max {
                    return Err(invalid(
                        "validation_json_size_limit",
                        format!("The maximum allowed JSON size is {max} bytes."),
                    ));
                }
                Db::Text(text)
            }
        },
        "select" | "relation" | "file" if field.is_multi() => {
            let list = as_list(v);
            let max = field.opt_f64("maxSelect").unwrap_or(1.0);
            #[allow(clippy::cast_precision_loss)]
            if list.len() as f64 > max {
                return Err(invalid(
                    "validation_too_many_values",
                    format!("Select no more than {max}."),
                ));
            }
            if field.kind == "select" {
                let allowed = field.values();
                if let Some(bad) = list.iter().find(|x| !allowed.contains(x)) {
                    return Err(with_params(
                        invalid("validation_invalid_value", format!("Invalid value {bad}.")),
                        serde_json::json!({"value": bad}),
                    ));
                }
            }
            Db::Text(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
        }
        "date" => {
            let s = as_text(v);
            // An unparsable date is stored empty, as PocketBase does.
            Db::Text(
                parse_datetime(&s)
                    .map(format_unix_millis)
                    .unwrap_or_default(),
            )
        }
        kind => {
            let s = as_text(v);
            if !s.is_empty() {
                match kind {
                    "email" if !is_email(&s) => {
                        return Err(invalid(
                            "validation_is_email",
                            "Must be a valid email address.",
                        ));
                    }
                    "url" if !is_url(&s) => {
                        return Err(invalid("validation_invalid_url", "Must be a valid url."));
                    }
                    "select" if !field.values().contains(&s) => {
                        return Err(with_params(
                            invalid("validation_invalid_value", format!("Invalid value {s}.")),
                            serde_json::json!({"value": s}),
                        ));
                    }
                    "text" | "editor" => {
                        let len = s.chars().count() as f64;
                        let min = field.opt_f64("min").unwrap_or(0.0);
                        let mut max = field.opt_f64("max").unwrap_or(0.0);
                        if max == 0.0 && kind == "text" {
                            max = 5000.0;
                        }
                        if len < min {
                            return Err(with_params(
                                invalid(
                                    "validation_min_text_constraint",
                                    format!("Must be at least {min} character(s)."),
                                ),
                                serde_json::json!({"min": num_json(min)}),
                            ));
                        }
                        if max > 0.0 && len > max {
                            return Err(with_params(
                                invalid(
                                    "validation_max_text_constraint",
                                    format!("Must be no more than {max} character(s)."),
                                ),
                                serde_json::json!({"max": num_json(max)}),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            Db::Text(s)
        }
    };
    if field.required() && is_blank(&value, field) {
        return Err(invalid("validation_required", "Cannot be blank."));
    }
    Ok(value)
}

fn is_blank(v: &Db, field: &Field) -> bool {
    match v {
        Db::Null => true,
        Db::Integer(i) => *i == 0,
        Db::Real(f) => *f == 0.0,
        Db::Text(s) => s.is_empty() || (field.is_multi() && s == "[]"),
        Db::Blob(b) => b.is_empty(),
    }
}

/// A stored value as record JSON.
pub(crate) fn to_json(field: &Field, v: &Db) -> Value {
    match field.kind.as_str() {
        "number" => match v {
            Db::Integer(i) => Value::from(*i),
            Db::Real(f) => number(*f),
            Db::Text(s) => number(s.parse().unwrap_or(0.0)),
            _ => Value::from(0),
        },
        "bool" => match v {
            Db::Integer(i) => Value::Bool(*i != 0),
            Db::Text(s) => Value::Bool(s == "true" || s == "1"),
            _ => Value::Bool(false),
        },
        "json" => match v {
            Db::Text(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
            // Computed view columns come back as numbers.
            Db::Integer(i) => Value::from(*i),
            Db::Real(f) => number(*f),
            _ => Value::Null,
        },
        "select" | "relation" | "file" if field.is_multi() => match v {
            Db::Text(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::Array(Vec::new())),
            _ => Value::Array(Vec::new()),
        },
        _ => match v {
            Db::Text(s) => Value::String(s.clone()),
            Db::Integer(i) => Value::String(i.to_string()),
            Db::Real(f) => Value::String(f.to_string()),
            _ => Value::String(String::new()),
        },
    }
}

/// A record JSON value back as the value stored for `field` (the inverse of [`to_json`], without
/// validation: the value came from the database).
pub(crate) fn from_json(field: &Field, v: Option<&Value>) -> Db {
    let v = v.unwrap_or(&Value::Null);
    match field.kind.as_str() {
        "number" => Db::Real(as_f64(v)),
        "bool" => Db::Integer(i64::from(as_bool(v))),
        "json" => match v {
            Value::Null => Db::Null,
            other => Db::Text(other.to_string()),
        },
        "select" | "relation" | "file" if field.is_multi() => match v {
            Value::Array(_) => Db::Text(v.to_string()),
            _ => Db::Text("[]".into()),
        },
        _ => Db::Text(as_text(v)),
    }
}

/// Integral floats print as integers, as PocketBase (Go) prints them.
fn number(f: f64) -> Value {
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Value::Number(Number::from(f as i64));
    }
    Number::from_f64(f).map_or(Value::from(0), Value::Number)
}

/// Applies a PATCH modifier (`field+`, `+field`, `field-`) to the current JSON value.
pub(crate) fn apply_modifier(
    field: &Field,
    current: &Value,
    op: char,
    prepend: bool,
    arg: &Value,
) -> Value {
    if field.kind == "number" {
        let cur = current.as_f64().unwrap_or(0.0);
        let delta = as_f64(arg);
        return match (op, prepend) {
            ('+', false) => number(cur + delta),
            ('-', _) => number(cur - delta),
            // `+number` has no meaning; PocketBase ignores it.
            _ => current.clone(),
        };
    }
    let mut list: Vec<String> = as_list(current);
    let args = as_list(arg);
    match (op, prepend) {
        ('+', false) => list.extend(args),
        ('+', true) => {
            list.splice(0..0, args);
        }
        ('-', _) => list.retain(|x| !args.contains(x)),
        _ => {}
    }
    Value::Array(
        as_list(&Value::Array(list.into_iter().map(Value::String).collect()))
            .into_iter()
            .map(Value::String)
            .collect(),
    )
}

/// The record JSON of one row: `collectionId`, `collectionName` and each visible field.
pub(crate) fn record_json(
    collection_id: &str,
    collection_name: &str,
    fields: &[(&Field, &Db)],
    show_hidden: bool,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "collectionId".into(),
        Value::String(collection_id.to_owned()),
    );
    m.insert(
        "collectionName".into(),
        Value::String(collection_name.to_owned()),
    );
    for (f, v) in fields {
        if f.hidden && !show_hidden {
            continue;
        }
        // A password field's value (a hash) never leaves the server.
        let value = if f.kind == "password" {
            Value::String(String::new())
        } else {
            to_json(f, v)
        };
        m.insert(f.name.clone(), value);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(v: Value) -> Field {
        let mut f: Field = serde_json::from_value(v).unwrap();
        f.normalize();
        f
    }

    #[test]
    fn numbers_are_cast_leniently() {
        let f = field(json!({"name": "n", "type": "number"}));
        assert_eq!(coerce(&f, Some(&json!("12"))), Ok(Db::Real(12.0)));
        assert_eq!(coerce(&f, Some(&json!("abc"))), Ok(Db::Real(0.0)));
        assert_eq!(coerce(&f, None), Ok(Db::Real(0.0)));
        let int = field(json!({"name": "n", "type": "number", "onlyInt": true, "min": 1}));
        assert_eq!(
            coerce(&int, Some(&json!(1.5))).unwrap_err().code,
            "validation_only_int_constraint"
        );
        assert_eq!(
            coerce(&int, Some(&json!(0))).unwrap_err().code,
            "validation_min_number_constraint"
        );
        assert_eq!(to_json(&f, &Db::Real(3.0)), json!(3));
        assert_eq!(to_json(&f, &Db::Real(1.5)), json!(1.5));
    }

    #[test]
    fn required_and_text_limits() {
        let f = field(json!({"name": "t", "type": "text", "required": true, "min": 2, "max": 4}));
        assert_eq!(coerce(&f, None).unwrap_err().code, "validation_required");
        assert_eq!(
            coerce(&f, Some(&json!("a"))).unwrap_err().code,
            "validation_min_text_constraint"
        );
        assert_eq!(
            coerce(&f, Some(&json!("abcde"))).unwrap_err().code,
            "validation_max_text_constraint"
        );
        assert_eq!(coerce(&f, Some(&json!("abc"))), Ok(Db::Text("abc".into())));
    }

    #[test]
    fn emails_urls_and_selects_are_checked() {
        let e = field(json!({"name": "e", "type": "email"}));
        assert!(coerce(&e, Some(&json!("a@b.co"))).is_ok());
        assert_eq!(
            coerce(&e, Some(&json!("nope"))).unwrap_err().code,
            "validation_is_email"
        );
        let u = field(json!({"name": "u", "type": "url"}));
        assert!(coerce(&u, Some(&json!("https://x.io/a"))).is_ok());
        assert_eq!(
            coerce(&u, Some(&json!("javascript:alert(1)")))
                .unwrap_err()
                .code,
            "validation_invalid_url"
        );
        let s = field(json!({"name": "s", "type": "select", "values": ["a", "b"]}));
        assert_eq!(
            coerce(&s, Some(&json!(["a", "b"]))),
            Ok(Db::Text("b".into()))
        );
        assert_eq!(
            coerce(&s, Some(&json!("c"))).unwrap_err().code,
            "validation_invalid_value"
        );
        let m = field(json!({"name": "s", "type": "select", "values": ["a", "b"], "maxSelect": 2}));
        assert_eq!(
            coerce(&m, Some(&json!("a"))),
            Ok(Db::Text("[\"a\"]".into()))
        );
        assert_eq!(
            coerce(&m, Some(&json!(["a", "a", "b"]))),
            Ok(Db::Text("[\"a\",\"b\"]".into()))
        );
    }

    #[test]
    fn dates_normalise_or_become_empty() {
        let d = field(json!({"name": "d", "type": "date"}));
        assert_eq!(
            coerce(&d, Some(&json!("2026-01-02"))),
            Ok(Db::Text("2026-01-02 00:00:00.000Z".into()))
        );
        assert_eq!(
            coerce(&d, Some(&json!("not a date"))),
            Ok(Db::Text(String::new()))
        );
    }

    #[test]
    fn modifiers_follow_pocketbase() {
        let n = field(json!({"name": "n", "type": "number"}));
        assert_eq!(
            apply_modifier(&n, &json!(5), '+', false, &json!(2)),
            json!(7)
        );
        assert_eq!(
            apply_modifier(&n, &json!(5), '-', false, &json!("2")),
            json!(3)
        );
        assert_eq!(
            apply_modifier(&n, &json!(5), '+', true, &json!(2)),
            json!(5)
        );
        let m = field(
            json!({"name": "s", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3}),
        );
        assert_eq!(
            apply_modifier(&m, &json!(["a"]), '+', false, &json!(["b", "a"])),
            json!(["a", "b"])
        );
        assert_eq!(
            apply_modifier(&m, &json!(["a"]), '+', true, &json!("c")),
            json!(["c", "a"])
        );
        assert_eq!(
            apply_modifier(&m, &json!(["a", "b"]), '-', false, &json!("a")),
            json!(["b"])
        );
    }
}
