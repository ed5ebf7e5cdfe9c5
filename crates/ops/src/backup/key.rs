//! Backup names: the only file names the backups folder answers to.

use std::fmt;

/// The file extension of every backup archive.
pub const EXTENSION: &str = ".tar.zst";

/// Prefix of the archives the schedule makes; only these are pruned.
pub const AUTO_PREFIX: &str = "@auto_";

/// Longest accepted name, extension included.
const MAX_LEN: usize = 150;

/// A validated backup name: `[a-z0-9_-]` characters (and the schedule's `@auto_` prefix)
/// followed by `.tar.zst`. It can never name a path outside the backups folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupKey(String);

/// Why a name is not a backup key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The name does not end in `.tar.zst`.
    #[error("backup name `{0}` must end with `.tar.zst`")]
    Extension(String),
    /// The name uses characters outside `[a-z0-9_-]`, is empty before the extension, or is too
    /// long.
    #[error(
        "backup name `{0}` must be 1 to 150 characters of a-z, 0-9, `_` and `-`, then `.tar.zst`"
    )]
    Characters(String),
}

impl BackupKey {
    /// Parses a name as given by a user (the CLI, `POST /api/backups`): the `@auto_` prefix is
    /// accepted only through [`BackupKey::parse_stored`].
    ///
    /// # Errors
    /// [`KeyError`] when the name breaks the rules.
    pub fn parse(name: &str) -> Result<BackupKey, KeyError> {
        let stem = name
            .strip_suffix(EXTENSION)
            .ok_or_else(|| KeyError::Extension(shorten(name)))?;
        if stem.is_empty()
            || name.len() > MAX_LEN
            || !stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(KeyError::Characters(shorten(name)));
        }
        Ok(BackupKey(name.to_owned()))
    }

    /// Parses any name the backups folder may hold, including the schedule's `@auto_…` names.
    ///
    /// # Errors
    /// [`KeyError`] when the name breaks the rules.
    pub fn parse_stored(name: &str) -> Result<BackupKey, KeyError> {
        match name.strip_prefix(AUTO_PREFIX) {
            Some(rest) => BackupKey::parse(rest)
                .map(|_| BackupKey(name.to_owned()))
                .map_err(|_| KeyError::Characters(shorten(name))),
            None => BackupKey::parse(name),
        }
    }

    /// A name for a backup made now: `pier_backup_YYYYMMDDHHMMSS.tar.zst`, with the `@auto_`
    /// prefix for scheduled ones.
    pub fn generate(unix_seconds: i64, scheduled: bool) -> BackupKey {
        let (y, mo, d) = pier_core::time::civil_from_days(unix_seconds.div_euclid(86_400));
        let rem = unix_seconds.rem_euclid(86_400);
        let prefix = if scheduled { AUTO_PREFIX } else { "" };
        BackupKey(format!(
            "{prefix}pier_backup_{y:04}{mo:02}{d:02}{:02}{:02}{:02}{EXTENSION}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ))
    }

    /// True for archives made by the schedule.
    pub fn is_scheduled(&self) -> bool {
        self.0.starts_with(AUTO_PREFIX)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names in messages are cut short and stripped of control characters.
fn shorten(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_LEN + 10)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_names_are_accepted() {
        for name in ["a.tar.zst", "pier_backup_1-2.tar.zst", "x9.tar.zst"] {
            assert_eq!(BackupKey::parse(name).unwrap().as_str(), name);
        }
        assert!(
            BackupKey::parse_stored("@auto_pier_backup_1.tar.zst")
                .unwrap()
                .is_scheduled()
        );
    }

    #[test]
    fn paths_and_odd_names_are_refused() {
        for name in [
            "../x.tar.zst",
            "a/b.tar.zst",
            ".tar.zst",
            "A.tar.zst",
            "a.zip",
            "a.tar.zst/",
            "a b.tar.zst",
            "@auto_x.tar.zst",
            "..",
            "",
        ] {
            assert!(BackupKey::parse(name).is_err(), "{name}");
        }
        assert!(BackupKey::parse_stored("@auto_../x.tar.zst").is_err());
        assert!(BackupKey::parse(&format!("{}.tar.zst", "a".repeat(150))).is_err());
    }

    #[test]
    fn generated_names_carry_the_utc_time() {
        let key = BackupKey::generate(1_764_109_845, false);
        assert_eq!(key.as_str(), "pier_backup_20251125223045.tar.zst");
        assert_eq!(BackupKey::parse(key.as_str()).unwrap(), key);
        let auto = BackupKey::generate(0, true);
        assert_eq!(auto.as_str(), "@auto_pier_backup_19700101000000.tar.zst");
        assert_eq!(BackupKey::parse_stored(auto.as_str()).unwrap(), auto);
    }

    proptest! {
        #[test]
        fn an_accepted_key_is_a_plain_file_name(name in "\\PC{0,40}") {
            if let Ok(key) = BackupKey::parse_stored(&name) {
                let path = std::path::Path::new(key.as_str());
                prop_assert_eq!(path.components().count(), 1);
                prop_assert!(matches!(
                    path.components().next(),
                    Some(std::path::Component::Normal(_))
                ));
                prop_assert!(!key.as_str().starts_with('.'));
            }
        }
    }
}
