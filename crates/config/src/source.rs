//! Where a value came from, and the process environment as pier reads it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The layer a configuration value came from. Error messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built into pier.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, by name.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file `{}`", path.display()),
            Source::Env(name) => write!(f, "environment variable `{name}`"),
            Source::Flag(name) => write!(f, "flag `{name}`"),
        }
    }
}

/// A snapshot of the environment variables pier reads.
///
/// Only this crate reads the process environment; everything else gets a [`crate::Config`].
/// Tests build an `Env` from pairs so that the ambient environment never leaks in.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads the current process environment. Variables that are not valid UTF-8 are kept lossily.
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// Builds an environment from explicit pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns the value of one variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A value given on the command line, aimed at one configuration key.
#[derive(Debug, Clone)]
pub struct Flag {
    /// The dotted configuration key, e.g. `http.addr`.
    pub key: &'static str,
    /// The flag's value as typed.
    pub value: String,
    /// The flag's name as the user typed it, e.g. `--http`.
    pub name: &'static str,
}
