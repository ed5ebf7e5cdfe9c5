//! Merging the layers: built-in defaults < `pier.toml` < environment < flags.
//!
//! The layers are merged as a TOML tree. Every leaf remembers where it came from, so that an error
//! found later (by serde or by validation) can name the key and its source. Values from the
//! environment and from flags are strings; they are typed by looking at the type of the built-in
//! default for the same key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::raw::{RawConfig, is_secret};
use crate::{ConfigError, Env, Flag, Source};

/// Template variables honoured exactly as written, and the key each one sets.
const TEMPLATE_VARS: &[(&str, &str)] = &[
    ("APP_ENV", "app_env"),
    ("DEBUG", "debug"),
    ("LOG_LEVEL", "log.level"),
    ("DB_HOST", "database.host"),
    ("DB_PORT", "database.port"),
    ("DB_NAME", "database.name"),
    ("DB_USER", "database.user"),
    ("DB_PASSWORD", "database.password"),
    ("DATABASE_URL", "database.url"),
];

/// `PIER_*` variables that are not configuration keys.
fn is_reserved_pier_var(name: &str) -> bool {
    name == "PIER_CONFIG" || name.starts_with("PIER_TEST_")
}

/// The merged tree plus the origin of every leaf.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layers {
    pub(crate) root: Table,
    pub(crate) origins: BTreeMap<String, Source>,
    /// Things worth telling the operator that do not stop pier.
    pub(crate) warnings: Vec<String>,
}

impl Layers {
    /// Where the value at `key` (or the nearest enclosing table) came from.
    pub(crate) fn origin(&self, key: &str) -> Source {
        let mut k = key;
        loop {
            if let Some(s) = self.origins.get(k) {
                return s.clone();
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return Source::Default,
            }
        }
    }

    fn set(&mut self, key: &str, value: Value, origin: Source) -> Result<(), ConfigError> {
        let mut table = &mut self.root;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_owned(), value);
                self.origins.insert(key.to_owned(), origin);
                return Ok(());
            }
            let entry = table
                .entry(part.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            match entry {
                Value::Table(t) => table = t,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: key.to_owned(),
                        origin,
                        message: format!("`{part}` is a value, not a section"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The built-in defaults as a tree; used to type string values and to spot unknown keys.
fn default_tree() -> Table {
    Table::try_from(RawConfig::default()).unwrap_or_default()
}

fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let first = parts.next()?;
    let mut v = table.get(first)?;
    for p in parts {
        v = v.as_table()?.get(p)?;
    }
    Some(v)
}

/// Types a string from the environment or a flag by the default value of the same key.
fn typed(defaults: &Table, key: &str, raw: &str, origin: &Source) -> Result<Value, ConfigError> {
    let invalid = |expected: &str| ConfigError::Invalid {
        key: key.to_owned(),
        origin: origin.clone(),
        message: format!("expected {expected}, got `{raw}`"),
    };
    let known_section = |section: &str| key.starts_with(section);
    match lookup(defaults, key) {
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| invalid("a whole number")),
        Some(Value::Float(_)) => raw
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| invalid("a number")),
        Some(Value::Boolean(_)) => parse_bool(raw)
            .map(Value::Boolean)
            .ok_or_else(|| invalid("true or false")),
        Some(Value::Array(_)) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        Some(Value::Table(_)) => Err(ConfigError::Invalid {
            key: key.to_owned(),
            origin: origin.clone(),
            message: "this is a section; set one of its keys instead".into(),
        }),
        Some(_) => Ok(Value::String(raw.to_owned())),
        // Keys that default to nothing: optional strings and the open `apis` table.
        None if known_section("apis.") || is_optional_key(key) => {
            if key == "log.file" {
                parse_bool(raw)
                    .map(Value::Boolean)
                    .ok_or_else(|| invalid("true or false"))
            } else {
                Ok(Value::String(raw.to_owned()))
            }
        }
        None => Err(ConfigError::UnknownKey {
            key: key.to_owned(),
            origin: origin.clone(),
        }),
    }
}

/// Keys whose default is "unset", so they are absent from the default tree.
fn is_optional_key(key: &str) -> bool {
    matches!(
        key,
        "database.url"
            | "database.password"
            | "metrics.token"
            | "log.file"
            | "tls.acme_eab_hmac_key"
            | "backups.alert_webhook"
            | "files.s3.secret"
            | "smtp.password"
            | "smtp.ca_file"
    )
}

pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn read_secret_file(path: &Path, origin: &Source) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|io| ConfigError::SecretFile {
        path: path.to_owned(),
        origin: origin.clone(),
        io,
    })?;
    // A trailing newline is an artefact of how secret files are written, never part of a secret.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Flattens a tree into dotted leaf keys.
pub(crate) fn leaves(prefix: &str, table: &Table, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => leaves(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// Reads and merges every layer.
pub(crate) fn merge(file: Option<&Path>, env: &Env, flags: &[Flag]) -> Result<Layers, ConfigError> {
    let defaults = default_tree();
    let mut layers = Layers::default();

    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::FileRead {
            path: path.to_owned(),
            source,
        })?;
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::FileParse {
                path: path.to_owned(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
        let origin = Source::File(path.to_owned());
        let mut flat = Vec::new();
        leaves("", &table, &mut flat);
        for (key, value) in flat {
            // `<secret>_file = "/path"` reads the secret from that file.
            if let Some(base) = key.strip_suffix("_file").filter(|b| is_secret(b)) {
                let Value::String(p) = &value else {
                    return Err(ConfigError::Invalid {
                        key,
                        origin,
                        message: "expected a file path".into(),
                    });
                };
                let secret = read_secret_file(Path::new(p), &origin)?;
                if lookup(&table, base).is_some() {
                    return Err(ConfigError::Conflict {
                        message: format!("both `{base}` and `{key}` are set in {origin}; give one"),
                    });
                }
                layers.set(base, Value::String(secret), origin.clone())?;
            } else {
                layers.set(&key, value, origin.clone())?;
            }
        }
    }

    for (name, value) in env.iter() {
        let (base, from_file) = match name.strip_suffix("_FILE") {
            Some(base) if env_key(base).is_some_and(|k| is_secret(&k)) => (base, true),
            _ => (name, false),
        };
        let Some(key) = env_key(base) else { continue };
        let origin = Source::Env(name.to_owned());
        let raw = if from_file {
            if env.get(base).is_some() {
                return Err(ConfigError::Conflict {
                    message: format!(
                        "both environment variables `{base}` and `{name}` are set; give one"
                    ),
                });
            }
            read_secret_file(Path::new(value), &origin)?
        } else {
            value.to_owned()
        };
        let v = match typed(&defaults, &key, &raw, &origin) {
            Ok(v) => v,
            // `PIER_SECTION__KEY` is clearly meant as a setting, so a typo there is an error;
            // a bare `PIER_SOMETHING` may belong to a script around pier, so it is only noted.
            Err(ConfigError::UnknownKey { .. })
                if name.starts_with("PIER_") && !name.contains("__") =>
            {
                layers.warnings.push(format!(
                    "ignoring environment variable `{name}`: not a pier setting"
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        layers.set(&key, v, origin)?;
    }

    for flag in flags {
        let origin = Source::Flag(flag.name.to_owned());
        let v = typed(&defaults, flag.key, &flag.value, &origin)?;
        layers.set(flag.key, v, origin)?;
    }
    Ok(layers)
}

/// The configuration key an environment variable sets, if it is one of pier's.
fn env_key(name: &str) -> Option<String> {
    if let Some((_, key)) = TEMPLATE_VARS.iter().find(|(n, _)| *n == name) {
        return Some((*key).to_owned());
    }
    if let Some(api) = name.strip_prefix("API_URL_").filter(|s| !s.is_empty()) {
        return Some(format!("apis.{}.url", api.to_ascii_lowercase()));
    }
    if let Some(api) = name.strip_prefix("API_KEY_").filter(|s| !s.is_empty()) {
        return Some(format!("apis.{}.key", api.to_ascii_lowercase()));
    }
    let rest = name.strip_prefix("PIER_")?;
    if is_reserved_pier_var(name) || rest.is_empty() {
        return None;
    }
    Some(
        rest.split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The config file to read: `--config`, else `PIER_CONFIG`, else none.
pub(crate) fn config_file(flag: Option<PathBuf>, env: &Env) -> Option<PathBuf> {
    flag.or_else(|| env.get("PIER_CONFIG").map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_keys() {
        assert_eq!(env_key("DB_HOST").as_deref(), Some("database.host"));
        assert_eq!(env_key("PIER_HTTP__ADDR").as_deref(), Some("http.addr"));
        assert_eq!(env_key("PIER_DOMAIN").as_deref(), Some("domain"));
        assert_eq!(
            env_key("API_KEY_WEATHER").as_deref(),
            Some("apis.weather.key")
        );
        assert_eq!(env_key("PIER_CONFIG"), None);
        assert_eq!(env_key("PIER_TEST_DATABASE_URL"), None);
        assert_eq!(env_key("HOME"), None);
    }

    #[test]
    fn strings_are_typed_by_the_default() {
        let d = default_tree();
        let o = Source::Env("X".into());
        assert_eq!(
            typed(&d, "database.port", "6543", &o).unwrap(),
            Value::Integer(6543)
        );
        assert_eq!(
            typed(&d, "debug", "TRUE", &o).unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(
            typed(&d, "database.name", "123", &o).unwrap(),
            Value::String("123".into())
        );
        assert!(matches!(
            typed(&d, "database.port", "five", &o),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            typed(&d, "http.adr", "x", &o),
            Err(ConfigError::UnknownKey { .. })
        ));
    }
}
