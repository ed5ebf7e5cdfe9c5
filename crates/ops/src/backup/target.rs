//! Where finished archives are kept. [`LocalFolder`] (the backups folder) is the one target
//! today; S3-compatible storage is meant to arrive as a second implementation of
//! [`BackupTarget`]. Scratch work (snapshots, extraction) always happens in a local folder.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::archive::io_error;
use super::{BackupEntry, BackupError, BackupKey, sync_dir};

/// A store of finished archives, keyed by [`BackupKey`].
pub trait BackupTarget: Send + Sync + std::fmt::Debug {
    /// The archives, newest first.
    ///
    /// # Errors
    /// The store cannot be listed.
    fn list(&self) -> Result<Vec<BackupEntry>, BackupError>;

    /// True when an archive has this name.
    fn exists(&self, key: &BackupKey) -> bool;

    /// Keeps the finished, synced local file `file` as `key`, never replacing an existing
    /// archive. The file may be moved or linked.
    ///
    /// # Errors
    /// [`BackupError::AlreadyExists`], or the store cannot be written.
    fn store(&self, file: &Path, key: &BackupKey) -> Result<(), BackupError>;

    /// A local file with the archive's bytes (a remote target would download it first).
    ///
    /// # Errors
    /// [`BackupError::NotFound`].
    fn local_path(&self, key: &BackupKey) -> Result<PathBuf, BackupError>;

    /// Deletes an archive.
    ///
    /// # Errors
    /// [`BackupError::NotFound`], or the store cannot be written.
    fn delete(&self, key: &BackupKey) -> Result<(), BackupError>;
}

/// Archives as files in one folder (`paths.backups_dir`).
#[derive(Debug, Clone)]
pub struct LocalFolder {
    dir: PathBuf,
}

impl LocalFolder {
    /// The folder `dir` (created on first write).
    pub fn new(dir: PathBuf) -> LocalFolder {
        LocalFolder { dir }
    }
}

/// Gives the finished file `src` its final name `dst` without ever replacing an existing file:
/// a hard link (which fails on an existing name), or a rename after a check where the file
/// system has no hard links.
fn publish(src: &Path, dst: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if dst.exists() => Err(std::io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(src, dst),
    }
}

impl BackupTarget for LocalFolder {
    fn list(&self) -> Result<Vec<BackupEntry>, BackupError> {
        let dir = &self.dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("failed to list `{}`", dir.display()))(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(key) = entry
                .file_name()
                .to_str()
                .and_then(|n| BackupKey::parse_stored(n).ok())
            else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            out.push(BackupEntry {
                key,
                size: meta.len(),
                modified: meta.modified().unwrap_or(UNIX_EPOCH),
            });
        }
        out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.key.cmp(&a.key)));
        Ok(out)
    }

    fn exists(&self, key: &BackupKey) -> bool {
        self.dir.join(key.as_str()).exists()
    }

    fn store(&self, file: &Path, key: &BackupKey) -> Result<(), BackupError> {
        let dst = self.dir.join(key.as_str());
        publish(file, &dst).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                BackupError::AlreadyExists {
                    key: key.to_string(),
                }
            } else {
                io_error(format!("failed to create `{}`", dst.display()))(e)
            }
        })?;
        sync_dir(&self.dir);
        Ok(())
    }

    fn local_path(&self, key: &BackupKey) -> Result<PathBuf, BackupError> {
        let path = self.dir.join(key.as_str());
        if path.is_file() {
            Ok(path)
        } else {
            Err(BackupError::NotFound {
                key: key.to_string(),
            })
        }
    }

    fn delete(&self, key: &BackupKey) -> Result<(), BackupError> {
        let path = self.local_path(key)?;
        std::fs::remove_file(&path)
            .map_err(io_error(format!("failed to delete `{}`", path.display())))?;
        sync_dir(&self.dir);
        Ok(())
    }
}
