//! Restoring an archive: extract beside the live data (same file system, so renames are
//! atomic), check, then swap: each live path is renamed to `<path>.pier-old`, each staged path
//! renamed into its place, and the old copies removed only once every new one is in place. A
//! failure halfway renames everything back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pier_config::DatabaseConfig;
use pier_storage::StorageError;

use super::archive::{extract, io_error, under};
use super::manifest::{DATABASE_DIR, Manifest, PUBLIC_DIR, STORAGE_DIR};
use super::{
    BackupError, BackupSettings, Progress, Scratch, blocking, clean_stale, count_mismatch,
    database_error, key_name, sync_dir,
};

const STAGED_SUFFIX: &str = ".pier-restore";
const OLD_SUFFIX: &str = ".pier-old";

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_any(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

/// One live path and what replaces it (`None`: it is only moved aside, e.g. a SQLite WAL).
struct Swap {
    target: PathBuf,
    staged: Option<PathBuf>,
}

fn swap_all(items: &[Swap]) -> Result<(), BackupError> {
    let mut aside: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut placed: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for item in items {
            let old = with_suffix(&item.target, OLD_SUFFIX);
            remove_any(&old);
            if item.target.exists() {
                std::fs::rename(&item.target, &old).map_err(io_error(format!(
                    "failed to move `{}` aside",
                    item.target.display()
                )))?;
                aside.push((item.target.clone(), old));
            }
        }
        for item in items {
            if let Some(staged) = &item.staged {
                if let Some(parent) = item.target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(io_error(format!("failed to create `{}`", parent.display())))?;
                }
                std::fs::rename(staged, &item.target).map_err(io_error(format!(
                    "failed to move the restored `{}` into place",
                    item.target.display()
                )))?;
                placed.push((item.target.clone(), staged.clone()));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (target, staged) in placed.iter().rev() {
            let _ = std::fs::rename(target, staged);
        }
        for (target, old) in aside.iter().rev() {
            let _ = std::fs::rename(old, target);
        }
        return Err(e);
    }
    for item in items {
        if let Some(parent) = item.target.parent() {
            sync_dir(parent);
        }
    }
    for (_, old) in aside {
        remove_any(&old);
    }
    Ok(())
}

pub(super) async fn restore(
    settings: Arc<BackupSettings>,
    archive: &Path,
    progress: Progress<'_>,
) -> Result<Manifest, BackupError> {
    let key = key_name(archive);
    let engine = settings.engine();
    // The running-pier checks come first: nothing is touched when they refuse.
    let lock = match &settings.database {
        DatabaseConfig::Sqlite(c) => Some(pier_storage::lock_sqlite(&c.path).map_err(|e| {
            match e {
                StorageError::Locked { path, pid } => BackupError::Refused {
                    message: format!(
                        "refusing to restore: database `{}` is in use by a running pier{}; stop it first",
                        path.display(),
                        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                    ),
                },
                other => BackupError::Database {
                    action: "failed to lock the database".into(),
                    source: other,
                },
            }
        })?),
        DatabaseConfig::Postgres(c) => {
            // A pier that just stopped (to restore at its restart) may still show for a moment
            // while the server ends its connections: look a few times before refusing.
            let mut sessions = 0;
            for attempt in 0..20 {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                sessions = pier_storage::pg_pier_sessions(c)
                    .await
                    .map_err(database_error("failed to reach the database"))?;
                if sessions == 0 {
                    break;
                }
            }
            if sessions > 0 {
                return Err(BackupError::Refused {
                    message: format!(
                        "refusing to restore: {sessions} pier connection(s) are open on database `{}`; stop pier first",
                        c.name
                    ),
                });
            }
            None
        }
    };
    let backups_dir = settings.backups_dir.clone();
    std::fs::create_dir_all(&backups_dir).map_err(io_error(format!(
        "failed to create `{}`",
        backups_dir.display()
    )))?;
    clean_stale(&backups_dir);
    let scratch = Scratch::new(&backups_dir)?;
    let staged_db = match &settings.database {
        DatabaseConfig::Sqlite(c) => with_suffix(&c.path, STAGED_SUFFIX),
        DatabaseConfig::Postgres(_) => scratch.path("database"),
    };
    let staged_storage = with_suffix(&settings.storage_dir, STAGED_SUFFIX);
    let staged_public = with_suffix(&settings.public_dir, STAGED_SUFFIX);
    for p in [&staged_db, &staged_storage, &staged_public] {
        remove_any(p);
    }
    let cleanup = {
        let staged = [
            staged_db.clone(),
            staged_storage.clone(),
            staged_public.clone(),
        ];
        move || {
            for p in &staged {
                remove_any(p);
            }
        }
    };
    progress("extracting and checking checksums");
    let result = async {
        let manifest = {
            let (archive, key) = (archive.to_owned(), key.clone());
            let (db, storage, public) = (
                staged_db.clone(),
                staged_storage.clone(),
                staged_public.clone(),
            );
            blocking(move || {
                let route = |name: &str| -> Option<PathBuf> {
                    if name.starts_with(DATABASE_DIR) && name.matches('/').count() == 1 {
                        return Some(db.clone());
                    }
                    under(name, STORAGE_DIR, &storage).or_else(|| under(name, PUBLIC_DIR, &public))
                };
                Ok(extract(&archive, &key, &route)?.manifest)
            })
            .await?
        };
        if manifest.engine != engine.as_str() {
            return Err(BackupError::Refused {
                message: format!(
                    "backup `{key}` holds a {} database; this pier is configured for {}",
                    manifest.engine,
                    engine.as_str()
                ),
            });
        }
        if manifest
            .files
            .iter()
            .filter(|f| f.path.starts_with(DATABASE_DIR))
            .count()
            != 1
        {
            return Err(BackupError::Damaged {
                key: key.clone(),
                problem: "the archive must hold exactly one database member".into(),
            });
        }
        let mut swaps = Vec::new();
        match &settings.database {
            DatabaseConfig::Sqlite(c) => {
                progress("checking the database (integrity_check)");
                let db = staged_db.clone();
                let info = tokio::task::spawn_blocking(move || pier_storage::check_sqlite(&db))
                    .await
                    .map_err(|e| BackupError::Io {
                        action: "a check task failed".into(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                    .map_err(|e| BackupError::Damaged {
                        key: key.clone(),
                        problem: e.to_string(),
                    })?;
                if info.tables != manifest.tables {
                    return Err(BackupError::Damaged {
                        key: key.clone(),
                        problem: count_mismatch(&manifest.tables, &info.tables),
                    });
                }
                let [db, wal, shm] = pier_storage::sqlite_files(&c.path);
                swaps.push(Swap {
                    target: db,
                    staged: Some(staged_db.clone()),
                });
                swaps.push(Swap {
                    target: wal,
                    staged: None,
                });
                swaps.push(Swap {
                    target: shm,
                    staged: None,
                });
            }
            DatabaseConfig::Postgres(c) => {
                progress("restoring the dump in one transaction");
                pier_storage::restore_postgres(c, &staged_db)
                    .await
                    .map_err(database_error("failed to restore the database"))?;
            }
        }
        std::fs::create_dir_all(&staged_storage).map_err(io_error(format!(
            "failed to create `{}`",
            staged_storage.display()
        )))?;
        swaps.push(Swap {
            target: settings.storage_dir.clone(),
            staged: Some(staged_storage.clone()),
        });
        if manifest.includes_public {
            std::fs::create_dir_all(&staged_public).map_err(io_error(format!(
                "failed to create `{}`",
                staged_public.display()
            )))?;
            swaps.push(Swap {
                target: settings.public_dir.clone(),
                staged: Some(staged_public.clone()),
            });
        }
        progress("moving the restored data into place");
        blocking(move || swap_all(&swaps)).await?;
        Ok(manifest)
    }
    .await;
    cleanup();
    drop(scratch);
    drop(lock);
    if let Ok(m) = &result {
        progress(&format!(
            "restored `{key}` (made {} by pier {}, schema version {})",
            m.created, m.pier_version, m.schema_version
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_replaces_and_moves_aside() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let wal = dir.path().join("live-wal");
        let staged = dir.path().join("staged");
        std::fs::write(&live, "old").unwrap();
        std::fs::write(&wal, "old wal").unwrap();
        std::fs::write(&staged, "new").unwrap();
        swap_all(&[
            Swap {
                target: live.clone(),
                staged: Some(staged.clone()),
            },
            Swap {
                target: wal.clone(),
                staged: None,
            },
        ])
        .unwrap();
        assert_eq!(std::fs::read_to_string(&live).unwrap(), "new");
        assert!(!wal.exists());
        assert!(!staged.exists());
        assert!(!with_suffix(&live, OLD_SUFFIX).exists());
    }

    #[test]
    fn a_failed_swap_puts_the_old_data_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "old a").unwrap();
        std::fs::write(&b, "old b").unwrap();
        let staged_a = dir.path().join("a.new");
        std::fs::write(&staged_a, "new a").unwrap();
        // The second staged path does not exist: the swap fails after `a` was replaced.
        let err = swap_all(&[
            Swap {
                target: a.clone(),
                staged: Some(staged_a.clone()),
            },
            Swap {
                target: b.clone(),
                staged: Some(dir.path().join("missing")),
            },
        ]);
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old b");
        assert_eq!(std::fs::read_to_string(&staged_a).unwrap(), "new a");
    }
}
