//! The journal: the record of one transaction on disk, written before anything else, and
//! trusted only when its owner, its mode and every path in it say it is keyrotate's own.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Phase {
    Preparing,
    Committing,
}

/// A new file: written under `staged`, then renamed (or, when `replace` is false, linked without
/// replacing) to `target`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Staged {
    pub(super) staged: PathBuf,
    pub(super) target: PathBuf,
    pub(super) sha256: String,
    pub(super) replace: bool,
}

/// A live file and the content it had when the transaction began.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct LiveFile {
    pub(super) path: PathBuf,
    /// Of its content; empty for a symlink that leads to nothing keyrotate can save.
    pub(super) sha256: String,
    /// Set for such a symlink: what it pointed to (it is removed only if it still does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) link: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Journal {
    pub(super) version: u32,
    pub(super) operation: String,
    pub(super) started: String,
    pub(super) phase: Phase,
    pub(super) staged: Vec<Staged>,
    /// Live files replaced by a staged file (saved in the backup set).
    pub(super) replaced: Vec<LiveFile>,
    /// Live files removed (saved in the backup set).
    pub(super) removed: Vec<LiveFile>,
    pub(super) backup_set: Option<String>,
}

pub(super) fn write_journal(ssh_dir: &Path, journal: &Journal) -> Result<()> {
    let path = journal_path(ssh_dir);
    let text = serde_json::to_vec_pretty(journal).map_err(|e| TxError::Journal {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let spec = FileSpec {
        bytes: &text,
        mode: 0o600,
        modified: None,
    };
    fsio::replace_atomically(&path, spec).map_err(write_err(&path))
}

pub(super) fn read_journal(ssh_dir: &Path) -> Result<Option<Journal>> {
    let path = journal_path(ssh_dir);
    let damaged = |reason: String| TxError::Journal {
        path: path.clone(),
        reason,
    };
    let untrusted = |reason: String| TxError::Untrusted {
        path: path.clone(),
        reason,
        permissions: None,
    };
    let not_private = |reason: String| TxError::Untrusted {
        path: path.clone(),
        reason,
        permissions: Some(ssh_dir.to_path_buf()),
    };
    let Some(meta) = lstat(&path)? else {
        return Ok(None);
    };
    if !meta.file_type().is_file() {
        return Err(untrusted("it is not a regular file".to_string()));
    }
    trusted_owner(&path, &meta, "it").map_err(not_private)?;
    let dir_meta = fsio::stat(ssh_dir)
        .map_err(|source| TxError::Look {
            path: ssh_dir.to_path_buf(),
            source,
        })?
        .ok_or_else(|| untrusted("its SSH directory is gone".to_string()))?;
    trusted_owner(ssh_dir, &dir_meta, "the SSH directory").map_err(not_private)?;
    let bytes = match fsio::read_bounded(&path, MAX_KEY_FILE_SIZE) {
        Ok(Bounded::Bytes(bytes)) => bytes,
        Ok(_) => return Err(untrusted("it is not a regular file".to_string())),
        Err(source) => return Err(TxError::JournalUnreadable { path, source }),
    };
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    validate(ssh_dir, &journal).map_err(untrusted)?;
    Ok(Some(journal))
}

/// A file or directory recovery may act on: owned by the effective user, and writable by
/// nobody else (otherwise someone else could have written the instructions).
pub(super) fn trusted_owner(
    path: &Path,
    meta: &fs::Metadata,
    what: &str,
) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = fsio::current_uid();
        if meta.uid() != me {
            return Err(format!(
                "{what} ({}) is owned by uid {}, not by you (uid {me})",
                path.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{what} ({}) can be written by other users (mode {:04o})",
                path.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta, what);
    Ok(())
}

/// Does the journal name only what a keyrotate transaction of this SSH directory can name?
/// Targets and removed files: names directly inside the SSH directory, or the retired-key
/// record; staged files: keyrotate temporary names beside their target; the backup set: a set
/// name. Checked before recovery touches anything.
pub(super) fn validate(ssh_dir: &Path, journal: &Journal) -> std::result::Result<(), String> {
    if journal.version != 1 {
        return Err(format!("it is of version {}, not 1", journal.version));
    }
    let store = ssh_dir.join(store::STORE_NAME);
    let record = retired::retired_path(ssh_dir);
    let same_dir = |a: &Path, b: &Path| {
        a == b
            || matches!(
                (fs::canonicalize(a), fs::canonicalize(b)),
                (Ok(x), Ok(y)) if x == y
            )
    };
    let plain_name = |path: &Path| {
        path.file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains(['/', '\\']))
            .map(str::to_string)
    };
    let target_ok = |path: &Path| -> bool {
        let Some(name) = plain_name(path) else {
            return false;
        };
        let Some(parent) = path.parent() else {
            return false;
        };
        if path == record || (same_dir(parent, &store) && name == retired::RETIRED_NAME) {
            return true;
        }
        same_dir(parent, ssh_dir) && name != store::STORE_NAME && !name.starts_with(".keyrotate")
    };
    let outside = |path: &Path| {
        Err(format!(
            "it names {}, which is not a file keyrotate changes in {}",
            path.display(),
            ssh_dir.display()
        ))
    };
    let sha_ok = |sha: &str| sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    for staged in &journal.staged {
        if !target_ok(&staged.target) {
            return outside(&staged.target);
        }
        let temp_ok = plain_name(&staged.staged).is_some_and(|n| n.starts_with(TEMP_PREFIX))
            && staged.staged.parent() == staged.target.parent();
        if !temp_ok {
            return outside(&staged.staged);
        }
        // The record's digest is filled in once it is written, before the commit point.
        let pending = staged.sha256.is_empty() && journal.phase == Phase::Preparing;
        if !pending && !sha_ok(&staged.sha256) {
            return Err(format!(
                "its digest for {} is malformed",
                staged.target.display()
            ));
        }
    }
    for live in journal.replaced.iter().chain(&journal.removed) {
        if !target_ok(&live.path) {
            return outside(&live.path);
        }
        if live.link.is_none() && !sha_ok(&live.sha256) {
            return Err(format!(
                "its digest for {} is malformed",
                live.path.display()
            ));
        }
    }
    if let Some(set) = &journal.backup_set
        && !store::is_set_name(set)
    {
        return Err(format!(
            "it names a backup set {set:?}, which is not a set name"
        ));
    }
    Ok(())
}
