//! The archive: one tar stream compressed with zstd (with zstd's content checksum), holding the
//! database snapshot, uploaded files, the static folder and, last, `manifest.json` with the size
//! and SHA-256 of every other member.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BackupError;
use super::manifest::{MANIFEST_MEMBER, Manifest, ManifestFile};

/// zstd level: fast, and still a good ratio for SQLite pages and dumps.
const ZSTD_LEVEL: i32 = 3;
/// Largest manifest accepted when reading.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 128 * 1024;

pub(super) fn io_error(action: String) -> impl FnOnce(std::io::Error) -> BackupError {
    move |source| BackupError::Io { action, source }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Writes an archive to `out` (a new file). Members are added with [`ArchiveWriter::add_file`]
/// and [`ArchiveWriter::add_tree`]; [`ArchiveWriter::finish`] appends the manifest and syncs.
pub(super) struct ArchiveWriter {
    builder: tar::Builder<zstd::Encoder<'static, BufWriter<File>>>,
    out: PathBuf,
    files: Vec<ManifestFile>,
}

impl ArchiveWriter {
    pub(super) fn create(out: &Path) -> Result<ArchiveWriter, BackupError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(io_error(format!("failed to create `{}`", out.display())))?;
        let mut encoder = zstd::Encoder::new(BufWriter::with_capacity(CHUNK, file), ZSTD_LEVEL)
            .map_err(io_error("failed to start the zstd encoder".into()))?;
        encoder
            .include_checksum(true)
            .map_err(io_error("failed to set up the zstd encoder".into()))?;
        let mut builder = tar::Builder::new(encoder);
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        Ok(ArchiveWriter {
            builder,
            out: out.to_owned(),
            files: Vec::new(),
        })
    }

    fn write_error(&self) -> impl FnOnce(std::io::Error) -> BackupError + use<> {
        io_error(format!("failed to write `{}`", self.out.display()))
    }

    /// Adds the file at `source` as member `member`, hashing it on the way.
    pub(super) fn add_file(&mut self, source: &Path, member: &str) -> Result<(), BackupError> {
        let file = File::open(source)
            .map_err(io_error(format!("failed to read `{}`", source.display())))?;
        let len = file
            .metadata()
            .map_err(io_error(format!("failed to read `{}`", source.display())))?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // NOTE: `take(len)` keeps the member the size the header announced even when the file
        // grows meanwhile; a file that shrinks makes tar fail, and the backup with it.
        let mut reader = HashingReader {
            inner: file.take(len),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let err = self.write_error();
        self.builder
            .append_data(&mut header, member, &mut reader)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    BackupError::Io {
                        action: format!("file `{}` shrank while it was copied", source.display()),
                        source: e,
                    }
                } else {
                    err(e)
                }
            })?;
        self.files.push(ManifestFile {
            path: member.to_owned(),
            size: reader.bytes,
            sha256: hex(&reader.hasher.finalize()),
        });
        Ok(())
    }

    /// Adds every regular file under `root` (when it exists) as `prefix/<relative path>`.
    /// Symbolic links and special files are skipped. Returns the number of files added.
    pub(super) fn add_tree(&mut self, root: &Path, prefix: &str) -> Result<usize, BackupError> {
        if !root.is_dir() {
            return Ok(0);
        }
        let mut stack = vec![root.to_owned()];
        let mut added = 0;
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .map_err(io_error(format!("failed to list `{}`", dir.display())))?
                .collect::<Result<_, _>>()
                .map_err(io_error(format!("failed to list `{}`", dir.display())))?;
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let path = entry.path();
                let kind = entry
                    .file_type()
                    .map_err(io_error(format!("failed to read `{}`", path.display())))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let Some(relative) = path
                        .strip_prefix(root)
                        .ok()
                        .and_then(|r| r.to_str())
                        .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
                    else {
                        tracing::warn!(path = %path.display(), "file name is not UTF-8; not backed up");
                        continue;
                    };
                    self.add_file(&path, &format!("{prefix}/{relative}"))?;
                    added += 1;
                } else {
                    tracing::debug!(path = %path.display(), "not a regular file; not backed up");
                }
            }
        }
        Ok(added)
    }

    /// Appends `manifest` (whose `files` and `total_bytes` are filled in here), ends the
    /// streams and syncs the file to disk.
    pub(super) fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, BackupError> {
        manifest.total_bytes = self.files.iter().map(|f| f.size).sum();
        manifest.files = std::mem::take(&mut self.files);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
            action: "failed to encode the manifest".into(),
            source: std::io::Error::other(e),
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o644);
        let err = self.write_error();
        self.builder
            .append_data(&mut header, MANIFEST_MEMBER, json.as_slice())
            .map_err(err)?;
        let action = format!("failed to write `{}`", self.out.display());
        let encoder = self
            .builder
            .into_inner()
            .map_err(io_error(action.clone()))?;
        let writer = encoder.finish().map_err(io_error(action.clone()))?;
        let file = writer
            .into_inner()
            .map_err(|e| io_error(action.clone())(e.into_error()))?;
        file.sync_all().map_err(io_error(action))?;
        Ok(manifest)
    }
}

/// Where a member of an archive goes when it is extracted; `None` refuses the member.
pub(super) type Route<'a> = &'a dyn Fn(&str) -> Option<PathBuf>;

/// The outcome of reading a whole archive.
pub(super) struct Extracted {
    pub(super) manifest: Manifest,
}

/// Reads the archive at `archive`, writing each member where `route` says, and checks every
/// member against the manifest. Anything that does not match (a damaged stream, a member
/// missing from the manifest or a checksum that differs) is [`BackupError::Damaged`].
pub(super) fn extract(
    archive: &Path,
    key: &str,
    route: Route<'_>,
) -> Result<Extracted, BackupError> {
    let damaged = |problem: String| BackupError::Damaged {
        key: key.to_owned(),
        problem,
    };
    let file =
        File::open(archive).map_err(io_error(format!("failed to read `{}`", archive.display())))?;
    let decoder =
        zstd::Decoder::new(file).map_err(|e| damaged(format!("not a zstd stream: {e}")))?;
    let mut tar = tar::Archive::new(decoder);
    let mut seen: Vec<ManifestFile> = Vec::new();
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let entries = tar
        .entries()
        .map_err(|e| damaged(format!("cannot read the archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(format!("cannot read the archive: {e}")))?;
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(|e| damaged(format!("bad member name: {e}")))?
            .into_owned();
        let name = member_name(&path).ok_or_else(|| {
            damaged(format!(
                "member `{}` is not a plain relative path",
                path.display()
            ))
        })?;
        if manifest_bytes.is_some() {
            return Err(damaged(format!("member `{name}` follows the manifest")));
        }
        match kind {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(damaged(format!(
                    "member `{name}` is not a regular file ({other:?})"
                )));
            }
        }
        if name == MANIFEST_MEMBER {
            if entry.header().size().unwrap_or(u64::MAX) > MAX_MANIFEST_BYTES {
                return Err(damaged("the manifest is too large".into()));
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(format!("cannot read the manifest: {e}")))?;
            manifest_bytes = Some(bytes);
            continue;
        }
        let dest = route(&name).ok_or_else(|| damaged(format!("unexpected member `{name}`")))?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_error(format!("failed to create `{}`", parent.display())))?;
        }
        let out = File::options()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(io_error(format!("failed to create `{}`", dest.display())))?;
        let mut out = BufWriter::with_capacity(CHUNK, out);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| damaged(format!("cannot read member `{name}`: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            out.write_all(&buf[..n])
                .map_err(io_error(format!("failed to write `{}`", dest.display())))?;
        }
        let out = out.into_inner().map_err(|e| {
            io_error(format!("failed to write `{}`", dest.display()))(e.into_error())
        })?;
        out.sync_all()
            .map_err(io_error(format!("failed to write `{}`", dest.display())))?;
        seen.push(ManifestFile {
            path: name,
            size,
            sha256: hex(&hasher.finalize()),
        });
    }
    let bytes = manifest_bytes.ok_or_else(|| damaged("the manifest is missing".into()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| damaged(format!("the manifest cannot be read: {e}")))?;
    if manifest.format != super::manifest::FORMAT {
        return Err(damaged(format!(
            "manifest format {} is not known to this pier (expected {})",
            manifest.format,
            super::manifest::FORMAT
        )));
    }
    for expected in &manifest.files {
        match seen.iter().find(|f| f.path == expected.path) {
            None => return Err(damaged(format!("member `{}` is missing", expected.path))),
            Some(found) if found != expected => {
                return Err(damaged(format!(
                    "member `{}` does not match its checksum",
                    expected.path
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen
        .iter()
        .find(|f| !manifest.files.iter().any(|m| m.path == f.path))
    {
        return Err(damaged(format!(
            "member `{}` is not in the manifest",
            extra.path
        )));
    }
    Ok(Extracted { manifest })
}

/// A member path as a `/`-separated string, when it is relative and has only normal parts.
fn member_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// Maps a member under `prefix/` to the same relative path under `root`.
pub(super) fn under(name: &str, prefix: &str, root: &Path) -> Option<PathBuf> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    Some(root.join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_must_stay_inside() {
        assert_eq!(
            member_name(Path::new("storage/a/b")).as_deref(),
            Some("storage/a/b")
        );
        assert_eq!(
            member_name(Path::new("./manifest.json")).as_deref(),
            Some("manifest.json")
        );
        assert!(member_name(Path::new("../x")).is_none());
        assert!(member_name(Path::new("/etc/passwd")).is_none());
        assert!(member_name(Path::new("storage/../../x")).is_none());
    }

    #[test]
    fn routing_keeps_members_under_their_root() {
        let root = Path::new("/r");
        assert_eq!(
            under("storage/a/b", "storage", root),
            Some(root.join("a/b"))
        );
        assert_eq!(under("storagex/a", "storage", root), None);
        assert_eq!(under("storage/", "storage", root), None);
    }
}
