//! Changing live key files as one transaction that survives being killed at any instant.
//!
//! `generate` and `rotate` both go through [`commit`]:
//!
//! 1. **Prepare.** A journal (`<ssh-dir>/.keyrotate-journal`) is written before anything else,
//!    naming every temporary file to come. The files about to be replaced or removed are saved in
//!    a verified backup set (its name goes into the journal as soon as it exists). Every new file
//!    (keys, `.pub`, the retired-key record, a rewritten config) is written complete and fsynced
//!    under a temporary name beside its target.
//! 2. **Commit point.** The journal is rewritten with phase `committing`.
//! 3. **Apply.** Only renames, links and unlinks, which need no disk space: new files take their
//!    names, retired files leave the live directory (only if still exactly what was saved), the
//!    directories are fsynced and the journal is removed.
//!
//! [`recover`], run by every command before its own work, finds a journal left by a killed
//! process: before the commit point it undoes (temporary files and an unfinished set removed: the
//! live files were never touched); after it, it finishes the apply step, which is idempotent.
//! Either way the live pair ends wholly old or wholly new.
//!
//! A journal is a set of instructions to rename and delete files, so recovery obeys only one it
//! can trust ([`validate`]): a regular file owned by the effective user and writable by nobody
//! else, in an SSH directory owned by that user and writable by nobody else, naming only
//! keyrotate's temporary files and names directly inside the SSH directory (or the retired-key
//! record in its backup store). Anything else is refused, changing nothing.

pub mod lock;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::keyfile::MAX_KEY_FILE_SIZE;
pub use crate::layout::JOURNAL_NAME;
use crate::layout::TEMP_PREFIX;
use crate::layout::journal_path;
use crate::store::retired::{self, RetiredKey};
use crate::store::{self, BackupError, CreatedSet, SourceFile, Store};
use crate::sys::fsio::{self, Bounded, FileSpec};
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Preparing,
    Committing,
}

/// A new file: written under `staged`, then renamed (or, when `replace` is false, linked without
/// replacing) to `target`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Staged {
    staged: PathBuf,
    target: PathBuf,
    sha256: String,
    replace: bool,
}

/// A live file and the content it had when the transaction began.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LiveFile {
    path: PathBuf,
    /// Of its content; empty for a symlink that leads to nothing keyrotate can save.
    sha256: String,
    /// Set for such a symlink: what it pointed to (it is removed only if it still does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Journal {
    version: u32,
    operation: String,
    started: String,
    phase: Phase,
    staged: Vec<Staged>,
    /// Live files replaced by a staged file (saved in the backup set).
    replaced: Vec<LiveFile>,
    /// Live files removed (saved in the backup set).
    removed: Vec<LiveFile>,
    backup_set: Option<String>,
}

/// A new file the transaction puts in place. `C` is its content: bytes when it is committed, or
/// a description of the bytes to come in a plan (see [`crate::plan`]).
pub struct NewFile<C = Zeroizing<Vec<u8>>> {
    pub target: PathBuf,
    pub bytes: C,
    pub mode: u32,
    /// May an existing file at `target` be replaced (after being saved)? If not, one there is an error.
    pub replace: bool,
    /// Its modification time (restore puts back the saved one); `None` for now.
    pub modified: Option<SystemTime>,
}

/// Everything one transaction changes. The same value, with its contents still to come, is the
/// plan a dry run prints ([`preview`]).
pub struct Change<C = Zeroizing<Vec<u8>>> {
    /// `"generate"`, `"rotate"` or `"restore"`: shown when a later command recovers it.
    pub operation: &'static str,
    pub new_files: Vec<NewFile<C>>,
    /// Live files to take out of the live directory (they are saved in the backup set first).
    pub remove: Vec<PathBuf>,
    /// Keys to add to the retired-key record (their `set` is filled in with the backup set's name).
    pub retire: Vec<RetiredKey>,
    /// May live files be replaced or removed (each saved first in a new set of the backup store,
    /// which is made if need be)? Without it, anything to save is an error.
    pub backup: bool,
}

impl<C> Change<C> {
    /// The same change with each new file's content turned into `f(content)`.
    pub fn map_content<D>(self, mut f: impl FnMut(C) -> D) -> Change<D> {
        Change {
            operation: self.operation,
            new_files: self
                .new_files
                .into_iter()
                .map(|n| NewFile {
                    target: n.target,
                    bytes: f(n.bytes),
                    mode: n.mode,
                    replace: n.replace,
                    modified: n.modified,
                })
                .collect(),
            remove: self.remove,
            retire: self.retire,
            backup: self.backup,
        }
    }
}

/// What [`commit`] of a change would do, as its look phase finds it: the same function decides
/// both, so a dry run and the real run cannot drift apart.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Live files saved in the new backup set (empty: no set is made).
    pub saved: Vec<PathBuf>,
    /// The backup store, when it does not exist yet and would be made.
    pub new_store: Option<PathBuf>,
    /// The new set, when one is made (its name as a run at this instant would choose it).
    pub set: Option<PathBuf>,
    /// New files: target, mode, and whether something there is replaced.
    pub written: Vec<(PathBuf, u32, bool)>,
    /// Live files taken out of the live directory.
    pub removed: Vec<PathBuf>,
    /// Keys added to the retired-key record (already listed ones are not).
    pub retired: Vec<RetiredKey>,
    /// The retired-key record is rewritten.
    pub record: Option<PathBuf>,
}

/// What the look phase found: everything [`commit`] needs before it writes anything.
struct Looked {
    to_save: Vec<SourceFile>,
    replaced: Vec<LiveFile>,
    removed: Vec<LiveFile>,
    staged: Vec<Staged>,
    /// The retired-key record's bytes now, when keys are to be retired.
    record_now: Option<Zeroizing<Vec<u8>>>,
    /// Keys not yet in the record (empty: the record is left alone).
    retire: Vec<RetiredKey>,
}

/// What a finished transaction did.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The set holding every file replaced or removed, if there were any.
    pub backup: Option<CreatedSet>,
}

#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("{} already exists; keyrotate never overwrites a key without being told to", .path.display())]
    Exists { path: PathBuf },
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("could not write {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} changed while keyrotate was working on it", .path.display())]
    Changed { path: PathBuf },
    #[error("the journal {} is damaged: {reason}", .path.display())]
    Journal { path: PathBuf, reason: String },
    #[error("the journal {} is damaged: {}", .path.display(), crate::sys::io_reason(.source))]
    JournalUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("keyrotate cannot handle the file name {}: it is not valid UTF-8", .path.display())]
    NonUtf8 { path: PathBuf },
    #[error("the change was made but could not be completely finished: {source}")]
    Unfinished {
        #[source]
        source: Box<TxError>,
    },
    #[error("{} appeared while keyrotate was writing, so it was left alone and nothing was changed", .path.display())]
    Appeared { path: PathBuf },
    /// `source` names the path already ("cannot look at PATH: ...").
    #[error("{source}")]
    Look {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("keyrotate will not act on the journal {}: {reason}", .path.display())]
    Untrusted {
        path: PathBuf,
        reason: String,
        /// Refused for its owner or mode (or its directory's), not for what it says: if it is
        /// the user's own, making both private lets recovery finish it.
        permissions: Option<PathBuf>,
    },
    #[error("interrupted before the change was committed: it was undone, and nothing was changed")]
    Cancelled,
}

impl TxError {
    pub fn hint(&self) -> String {
        match self {
            TxError::Exists { .. } => {
                "add --force to replace it (the old key is backed up first), \
                 or run `keyrotate rotate` to replace it the way JASMIN asks"
                    .to_string()
            }
            TxError::Backup(e) => e.hint(),
            TxError::Write { .. } => "your keys were not changed and nothing partial was left; \
                 check the free space and health of the disk (`df -h`), then run again"
                .to_string(),
            TxError::Changed { .. } => {
                "something else is changing your keys; let it finish, then run again".to_string()
            }
            TxError::Journal { path, .. } | TxError::JournalUnreadable { path, .. } => format!(
                "nothing was changed. Look at {p} (a record of an interrupted keyrotate run); your \
                 keys are in key_backup/ (`keyrotate backup --list`). Once you have what you need, \
                 remove it (`rm {p}`)",
                p = crate::text::shell_path(path)
            ),
            TxError::NonUtf8 { .. } => {
                "rename the file to a UTF-8 name, then run again".to_string()
            }
            TxError::Appeared { .. } => "something else is writing keys here: let it finish, \
                 move that file away if it is not needed, then run again"
                .to_string(),
            TxError::Unfinished { .. } => "your old key is safe in key_backup/; once the disk \
                 works again, run `keyrotate check`: it finishes the change first"
                .to_string(),
            TxError::Look { .. } => "nothing was changed; check the disk and the file's \
                 permissions (`ls -l`), then run again"
                .to_string(),
            TxError::Untrusted {
                path,
                permissions: Some(dir),
                ..
            } => format!(
                "nothing was changed. If this is your own interrupted keyrotate run, make the \
                 directory and the journal yours and private (`chmod 700 {d}; chmod 600 {p}`) and \
                 run again: it will be finished. If you did not run keyrotate here, someone else \
                 may have planted it: read it (`cat {p}`), then remove it (`rm {p}`)",
                p = crate::text::shell_path(path),
                d = crate::text::shell_path(dir)
            ),
            TxError::Untrusted { path, .. } => format!(
                "nothing was changed. If you did not run keyrotate here yourself, someone else may \
                 have planted it: read it (`cat {p}`), and once you are sure no keyrotate of yours \
                 was interrupted there, remove it (`rm {p}`)",
                p = crate::text::shell_path(path)
            ),
            TxError::Cancelled => "run the command again when you are ready".to_string(),
        }
    }
}

type Result<T> = std::result::Result<T, TxError>;

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> TxError + '_ {
    move |source| TxError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn write_journal(ssh_dir: &Path, journal: &Journal) -> Result<()> {
    let path = journal_path(ssh_dir);
    let text = serde_json::to_vec_pretty(journal).map_err(|e| TxError::Write {
        path: path.clone(),
        source: e.into(),
    })?;
    let spec = FileSpec {
        bytes: &text,
        mode: 0o600,
        modified: None,
    };
    fsio::replace_atomically(&path, spec).map_err(write_err(&path))
}

fn read_journal(ssh_dir: &Path) -> Result<Option<Journal>> {
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
fn trusted_owner(path: &Path, meta: &fs::Metadata, what: &str) -> std::result::Result<(), String> {
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
fn validate(ssh_dir: &Path, journal: &Journal) -> std::result::Result<(), String> {
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

fn utf8(path: &Path) -> Result<()> {
    match path.to_str() {
        Some(_) => Ok(()),
        None => Err(TxError::NonUtf8 {
            path: path.to_path_buf(),
        }),
    }
}

fn sha_of(path: &Path) -> io::Result<Option<String>> {
    // As large as the largest file a transaction writes (the retired-key record).
    match fsio::read_bounded(path, 16 << 20) {
        Ok(Bounded::Bytes(bytes)) => Ok(Some(store::sha256_hex(&bytes))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What is at `path` (not following a final symlink); an error when that cannot be told.
fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    fsio::lstat(path).map_err(|source| TxError::Look {
        path: path.to_path_buf(),
        source,
    })
}

/// An I/O error met while looking at `path`, named.
fn look_err(path: &Path) -> impl Fn(io::Error) -> TxError + '_ {
    move |e| TxError::Look {
        path: path.to_path_buf(),
        source: fsio::naming("cannot look at", path, e),
    }
}

fn exists(path: &Path) -> Result<bool> {
    Ok(lstat(path)?.is_some())
}

/// Is `path` a symlink that still points to `target`?
fn is_link_to(path: &Path, target: &Path) -> Result<bool> {
    match lstat(path)? {
        Some(meta) if meta.file_type().is_symlink() => {
            let now = fs::read_link(path).map_err(look_err(path))?;
            Ok(now == target)
        }
        _ => Ok(false),
    }
}

/// Read a live file to save it. A symlink that leads to nothing keyrotate can save (nowhere, a
/// device) has no content to save; it is replaced or removed like any other name, never
/// written through, and the journal remembers where it pointed.
fn live_source(path: &Path) -> Result<(Option<SourceFile>, LiveFile)> {
    match store::read_source(path)? {
        Ok(source) => {
            let live = LiveFile {
                path: path.to_path_buf(),
                sha256: store::sha256_hex(&source.bytes),
                link: None,
            };
            Ok((Some(source), live))
        }
        Err(skipped) => match skipped.link {
            Some(target) => Ok((
                None,
                LiveFile {
                    path: path.to_path_buf(),
                    sha256: String::new(),
                    link: Some(target),
                },
            )),
            None => Err(TxError::Backup(BackupError::NotAKeyFile {
                path: skipped.path,
                why: skipped.reason,
            })),
        },
    }
}

/// Asked just before the commit point: has the user asked to stop? (The binary registers its
/// Ctrl-C flag here.) If so, the transaction is undone instead of committed.
static CANCEL: OnceLock<fn() -> bool> = OnceLock::new();

/// Register `check`, asked just before every commit point; when it says yes, the transaction is
/// undone and [`commit`] returns [`TxError::Cancelled`].
pub fn cancel_when(check: fn() -> bool) {
    let _ = CANCEL.set(check);
}

fn cancelled() -> bool {
    CANCEL.get().is_some_and(|check| check())
}

/// Run `change` as one crash-safe transaction. The caller holds the SSH directory's lock.
/// Look at everything a change touches: nothing is written if any of this fails, and a path
/// that cannot be looked at is an error, never taken for one that is not there. `hash` gives a
/// new file's digest (a plan has none yet).
fn look<C>(ssh_dir: &Path, change: &Change<C>, hash: impl Fn(&C) -> String) -> Result<Looked> {
    let mut to_save = Vec::new();
    let mut replaced = Vec::new();
    let mut removed = Vec::new();
    let mut staged = Vec::new();
    for file in &change.new_files {
        utf8(&file.target)?;
        if exists(&file.target)? {
            if !file.replace {
                return Err(TxError::Exists {
                    path: file.target.clone(),
                });
            }
            let (source, live) = live_source(&file.target)?;
            to_save.extend(source);
            replaced.push(live);
        }
        let staged_path = fsio::temp_path_for(&file.target).map_err(write_err(&file.target))?;
        staged.push(Staged {
            staged: staged_path,
            target: file.target.clone(),
            sha256: hash(&file.bytes),
            replace: file.replace,
        });
    }
    // The retired-key record is rewritten like any other file it replaces: its current bytes
    // are saved in the backup set and kept, every line of them, in the new record.
    let record = retired::retired_path(ssh_dir);
    let record_now = match change.retire.is_empty() {
        true => None,
        false => retired::read_bytes(ssh_dir).map_err(|source| TxError::Look {
            path: record.clone(),
            source,
        })?,
    };
    let retire =
        !retired::not_yet_listed(record_now.as_deref().map(|b| b.as_slice()), &change.retire)
            .is_empty();
    if retire {
        if record_now.is_some() {
            let (source, live) = live_source(&record)?;
            to_save.extend(source);
            replaced.push(live);
        }
        // Its content is known only once the backup set (whose name it records) exists, but
        // its temporary name is fixed now.
        staged.push(Staged {
            staged: fsio::temp_path_for(&record).map_err(write_err(&record))?,
            target: record,
            sha256: String::new(),
            replace: true,
        });
    }
    for path in &change.remove {
        utf8(path)?;
        if !exists(path)? {
            continue;
        }
        let (source, live) = live_source(path)?;
        to_save.extend(source);
        removed.push(live);
    }
    let retire = match retire {
        true => {
            retired::not_yet_listed(record_now.as_deref().map(|b| b.as_slice()), &change.retire)
                .into_iter()
                .cloned()
                .collect()
        }
        false => Vec::new(),
    };
    Ok(Looked {
        to_save,
        replaced,
        removed,
        staged,
        record_now,
        retire,
    })
}

/// What committing `change` now would do, found by the same look phase as [`commit`]'s. Reads
/// the SSH directory; writes nothing.
pub fn preview<C>(ssh_dir: &Path, change: &Change<C>, now: SystemTime) -> Result<Preview> {
    let looked = look(ssh_dir, change, |_| String::new())?;
    if !change.backup && !looked.to_save.is_empty() {
        return Err(TxError::Backup(BackupError::NoSshDir {
            path: ssh_dir.to_path_buf(),
        }));
    }
    let store_dir = crate::layout::store_dir(ssh_dir);
    let saving = !looked.to_save.is_empty();
    let new_store = match saving
        && fsio::lstat(&store_dir)
            .map_err(look_err(&store_dir))?
            .is_none()
    {
        true => Some(store_dir.clone()),
        false => None,
    };
    let set = match saving {
        true => {
            Some(store_dir.join(store::next_set_name(ssh_dir, now).map_err(look_err(&store_dir))?))
        }
        false => None,
    };
    let record = (!looked.retire.is_empty()).then(|| retired::retired_path(ssh_dir));
    Ok(Preview {
        saved: looked.to_save.iter().map(|f| f.path.clone()).collect(),
        new_store,
        set,
        written: change
            .new_files
            .iter()
            .map(|f| (f.target.clone(), f.mode, exists(&f.target).unwrap_or(true)))
            .collect(),
        removed: looked.removed.iter().map(|l| l.path.clone()).collect(),
        retired: looked.retire,
        record,
    })
}

pub fn commit(ssh_dir: &Path, change: Change, now: SystemTime) -> Result<Committed> {
    let Looked {
        to_save,
        replaced,
        removed,
        staged,
        record_now,
        retire,
    } = look(ssh_dir, &change, |bytes| store::sha256_hex(bytes))?;
    let retire = !retire.is_empty();
    // The store is made (or checked) only when something is to be saved in it.
    let store = match (change.backup, to_save.is_empty()) {
        (_, true) => None,
        (true, false) => Some(Store::open_or_create(ssh_dir)?),
        (false, false) => {
            return Err(TxError::Backup(BackupError::NoSshDir {
                path: ssh_dir.to_path_buf(),
            }));
        }
    };
    let mut journal = Journal {
        version: 1,
        operation: change.operation.to_string(),
        started: text::rfc3339_utc(now),
        phase: Phase::Preparing,
        staged,
        replaced,
        removed,
        backup_set: None,
    };
    if let Err(e) = write_journal(ssh_dir, &journal) {
        // The journal may be in place even so (its directory's fsync failed after the rename).
        // Nothing else was written: take it away again.
        let _ = fs::remove_file(journal_path(ssh_dir));
        let _ = fsio::sync_dir(ssh_dir);
        return Err(e);
    }

    let record_bytes = record_now.as_deref().map(|b| b.as_slice());
    match prepare(
        ssh_dir,
        &change,
        store.as_ref(),
        &mut journal,
        &to_save,
        retire.then_some(record_bytes),
        now,
    ) {
        Ok(backup) => {
            if cancelled() {
                undo(ssh_dir, &journal, store.as_ref())?;
                return Err(TxError::Cancelled);
            }
            journal.phase = Phase::Committing;
            if let Err(e) = write_journal(ssh_dir, &journal) {
                // Still before the commit point (the journal on disk says "preparing").
                journal.phase = Phase::Preparing;
                let _ = undo(ssh_dir, &journal, store.as_ref());
                return Err(e);
            }
            // Past the commit point the change must be finished. Apply is idempotent: a passing
            // failure (EIO on one fsync) is retried once; a lasting one leaves the journal, and
            // the next keyrotate command finishes the job.
            let applied = apply(ssh_dir, &journal)
                .or_else(|_| apply(ssh_dir, &journal))
                .map_err(|e| TxError::Unfinished {
                    source: Box::new(e),
                })?;
            match applied {
                Applied::Done => Ok(Committed { backup }),
                Applied::UndoneBecauseAppeared(path) => Err(TxError::Appeared { path }),
            }
        }
        Err(e) => {
            let _ = undo(ssh_dir, &journal, store.as_ref());
            Err(e)
        }
    }
}

/// Everything before the commit point: the backup set, then every new file, complete. With
/// `record` (the retired-key record's current bytes, `None` inside when there is none), the
/// record is rewritten too.
fn prepare(
    ssh_dir: &Path,
    change: &Change,
    store: Option<&Store>,
    journal: &mut Journal,
    to_save: &[SourceFile],
    record: Option<Option<&[u8]>>,
    now: SystemTime,
) -> Result<Option<CreatedSet>> {
    let backup = match (store, to_save.is_empty()) {
        (Some(store), false) => {
            let set = store.create_set_then(to_save, now, |name| {
                journal.backup_set = Some(name.to_string());
                write_journal(ssh_dir, journal).map_err(|e| match e {
                    TxError::Write { path, source } => BackupError::Write { path, source },
                    other => BackupError::Write {
                        path: journal_path(ssh_dir),
                        source: io::Error::other(other.to_string()),
                    },
                })
            })?;
            Some(set)
        }
        (None, false) => {
            return Err(TxError::Backup(BackupError::NoSshDir {
                path: ssh_dir.to_path_buf(),
            }));
        }
        _ => None,
    };
    for (file, staged) in change.new_files.iter().zip(&journal.staged) {
        let spec = FileSpec {
            bytes: &file.bytes,
            mode: file.mode,
            modified: file.modified,
        };
        fsio::write_new_file(&staged.staged, spec).map_err(write_err(&file.target))?;
    }
    if let Some(current) = record {
        let set_name = backup.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        let keys: Vec<RetiredKey> = change
            .retire
            .iter()
            .map(|k| RetiredKey {
                set: set_name.clone(),
                ..k.clone()
            })
            .collect();
        let staged = journal
            .staged
            .last_mut()
            .expect("the record was staged in commit");
        let text = retired::with_added(current, &keys)
            .unwrap_or_else(|| current.unwrap_or_default().to_vec());
        let spec = FileSpec {
            bytes: &text,
            mode: 0o600,
            modified: None,
        };
        fsio::write_new_file(&staged.staged, spec).map_err(write_err(&staged.target))?;
        staged.sha256 = store::sha256_hex(&text);
    }
    for dir in parent_dirs(journal) {
        fsio::sync_dir(&dir).map_err(write_err(&dir))?;
    }
    Ok(backup)
}

fn parent_dirs(journal: &Journal) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let all = journal
        .staged
        .iter()
        .map(|s| &s.target)
        .chain(journal.removed.iter().map(|r| &r.path));
    for path in all {
        if let Some(dir) = path.parent().map(Path::to_path_buf)
            && !dirs.contains(&dir)
        {
            dirs.push(dir);
        }
    }
    dirs
}

/// Before the commit point: remove what was staged and an unfinished set, then the journal.
fn undo(ssh_dir: &Path, journal: &Journal, store: Option<&Store>) -> Result<()> {
    for staged in &journal.staged {
        match fs::remove_file(&staged.staged) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&staged.staged)(e)),
        }
    }
    if let (Some(name), Some(store)) = (&journal.backup_set, store) {
        store
            .remove_if_incomplete(name, ssh_dir)
            .map_err(write_err(&store.root().join(name)))?;
    }
    let path = journal_path(ssh_dir);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(&path)(e)),
    }
    fsio::sync_dir(ssh_dir).map_err(write_err(ssh_dir))
}

/// After the commit point: renames, links and unlinks only. Idempotent, so that recovery can run
/// it again after a crash part-way through.
///
/// Links that must not replace anything come first: if one of those names has been taken
/// meanwhile (by something other than keyrotate, which we lock out), nothing has been renamed or
/// removed yet, so the transaction is undone instead, leaving that file alone.
fn apply(ssh_dir: &Path, journal: &Journal) -> Result<Applied> {
    nothing_unsaved(ssh_dir, journal)?;
    for staged in journal.staged.iter().filter(|s| !s.replace) {
        match link_no_replace(staged) {
            Ok(()) => {}
            Err(TxError::Appeared { path }) => {
                undo_links(ssh_dir, journal)?;
                return Ok(Applied::UndoneBecauseAppeared(path));
            }
            Err(e) => return Err(e),
        }
    }
    for staged in journal.staged.iter().filter(|s| s.replace) {
        if exists(&staged.staged)? {
            fs::rename(&staged.staged, &staged.target).map_err(write_err(&staged.target))?;
        } else if sha_of(&staged.target)
            .map_err(write_err(&staged.target))?
            .as_deref()
            != Some(&staged.sha256)
        {
            return Err(TxError::Changed {
                path: staged.target.clone(),
            });
        }
    }
    for live in &journal.removed {
        // Only what was saved is removed: a file that changed since is left alone.
        let remove = match &live.link {
            Some(target) => is_link_to(&live.path, target)?,
            None => {
                sha_of(&live.path)
                    .map_err(write_err(&live.path))?
                    .as_deref()
                    == Some(&live.sha256)
            }
        };
        if remove {
            fs::remove_file(&live.path).map_err(write_err(&live.path))?;
        }
    }
    for dir in parent_dirs(journal) {
        fsio::sync_dir(&dir).map_err(write_err(&dir))?;
    }
    let path = journal_path(ssh_dir);
    match fs::remove_file(&path) {
        Ok(()) => {}
        // Removed by an earlier attempt whose final fsync failed.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(&path)(e)),
    }
    fsio::sync_dir(ssh_dir).map_err(write_err(ssh_dir))?;
    Ok(Applied::Done)
}

/// Before anything is renamed over or removed: is every byte it would destroy in the journal's
/// verified backup set? A transaction's own journal always passes (it saves first); one that
/// names a file it never saved (damaged, or written by someone else) is refused, changing
/// nothing, so that even a journal that passes [`validate`] cannot make a file disappear.
fn nothing_unsaved(ssh_dir: &Path, journal: &Journal) -> Result<()> {
    let mut saved: Option<BTreeSet<String>> = None;
    let mut check = |path: &Path, sha: &str| -> Result<()> {
        if saved.is_none() {
            let digests = match &journal.backup_set {
                Some(set) => store::set_digests(&ssh_dir.join(store::STORE_NAME), set)
                    .map_err(write_err(path))?,
                None => Vec::new(),
            };
            saved = Some(digests.into_iter().collect());
        }
        match saved.as_ref().is_some_and(|s| s.contains(sha)) {
            true => Ok(()),
            false => Err(TxError::Untrusted {
                path: journal_path(ssh_dir),
                reason: format!(
                    "it would replace or remove {}, which is in no verified backup set",
                    path.display()
                ),
                permissions: None,
            }),
        }
    };
    for staged in journal.staged.iter().filter(|s| s.replace) {
        if !exists(&staged.staged)? {
            continue;
        }
        let current = sha_of(&staged.target).map_err(write_err(&staged.target))?;
        if let Some(sha) = current
            && sha != staged.sha256
        {
            check(&staged.target, &sha)?;
        }
    }
    for live in journal.removed.iter().filter(|l| l.link.is_none()) {
        let current = sha_of(&live.path).map_err(write_err(&live.path))?;
        if current.as_deref() == Some(live.sha256.as_str()) {
            check(&live.path, &live.sha256)?;
        }
    }
    Ok(())
}

/// How [`apply`] ended.
enum Applied {
    Done,
    /// A name to be created was taken meanwhile: the transaction was undone.
    UndoneBecauseAppeared(PathBuf),
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_err(path)(e)),
    }
}

/// Give a staged file a name that must be free. Where the filesystem has no hard links, the
/// bytes are written there with `create_new`, which cannot replace anything either.
fn link_no_replace(staged: &Staged) -> Result<()> {
    let ours = || -> Result<bool> {
        let found = sha_of(&staged.target).map_err(write_err(&staged.target))?;
        Ok(found.as_deref() == Some(staged.sha256.as_str()))
    };
    if !exists(&staged.staged)? {
        // Linked by a run killed before it removed the staged name?
        return match ours()? {
            true => Ok(()),
            false => Err(TxError::Changed {
                path: staged.target.clone(),
            }),
        };
    }
    match fs::hard_link(&staged.staged, &staged.target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !ours()? {
                return Err(TxError::Appeared {
                    path: staged.target.clone(),
                });
            }
        }
        Err(_) => {
            let bytes = match fsio::read_bounded(&staged.staged, MAX_KEY_FILE_SIZE) {
                Ok(Bounded::Bytes(bytes)) => Zeroizing::new(bytes),
                _ => {
                    return Err(TxError::Changed {
                        path: staged.staged.clone(),
                    });
                }
            };
            let meta = fs::metadata(&staged.staged).map_err(write_err(&staged.staged))?;
            let spec = FileSpec {
                bytes: &bytes,
                mode: crate::sys::unix_mode(&meta).unwrap_or(0o600),
                modified: meta.modified().ok(),
            };
            match fsio::write_new_file(&staged.target, spec) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(TxError::Appeared {
                        path: staged.target.clone(),
                    });
                }
                Err(e) => return Err(write_err(&staged.target)(e)),
            }
        }
    }
    remove_if_present(&staged.staged)
}

/// Take back the names linked by [`link_no_replace`] (only files that are ours, by content), and
/// every staged file, then the journal: the live files are as they were.
fn undo_links(ssh_dir: &Path, journal: &Journal) -> Result<()> {
    for staged in journal.staged.iter().filter(|s| !s.replace) {
        let is_link = lstat(&staged.target)?.is_some_and(|m| m.file_type().is_symlink());
        let found = sha_of(&staged.target).map_err(write_err(&staged.target))?;
        if !is_link && found.as_deref() == Some(staged.sha256.as_str()) {
            remove_if_present(&staged.target)?;
        }
    }
    for staged in &journal.staged {
        remove_if_present(&staged.staged)?;
    }
    remove_if_present(&journal_path(ssh_dir))?;
    for dir in parent_dirs(journal) {
        fsio::sync_dir(&dir).map_err(write_err(&dir))?;
    }
    fsio::sync_dir(ssh_dir).map_err(write_err(ssh_dir))
}

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Killed before its commit point: undone; the old files are live and untouched.
    Undone { operation: String, started: String },
    /// Killed after its commit point: finished; the new files are live.
    Finished {
        operation: String,
        started: String,
        backup_set: Option<String>,
    },
}

impl Recovered {
    /// One sentence for the user.
    pub fn describe(&self) -> String {
        match self {
            Recovered::Undone { operation, started } => format!(
                "an interrupted `keyrotate {operation}` (started {started}) was undone: your keys \
                 are exactly as they were before it"
            ),
            Recovered::Finished {
                operation,
                started,
                backup_set,
            } => {
                let saved = backup_set
                    .as_ref()
                    .map(|s| format!("; what it replaced is saved in key_backup/{s}"))
                    .unwrap_or_default();
                format!(
                    "an interrupted `keyrotate {operation}` (started {started}) was finished: its \
                     new key is in place{saved}"
                )
            }
        }
    }
}

/// Everything recovery did, one sentence each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub transaction: Option<Recovered>,
    /// Backup sets left unfinished by a killed run (copies of files that are still live), removed.
    pub removed_sets: Vec<String>,
    /// Unfinished sets kept because they hold the only copy of a file: (set, file).
    pub kept_sets: Vec<(String, String)>,
}

impl RecoveryReport {
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.transaction.iter().map(Recovered::describe).collect();
        for set in &self.removed_sets {
            notes.push(format!(
                "removed the unfinished backup set key_backup/{set} left by an interrupted run (your \
                 keys were never changed by it)"
            ));
        }
        for (set, file) in &self.kept_sets {
            notes.push(format!(
                "kept the unfinished backup set key_backup/{set}: it holds the only copy of {file}, \
                 which is no longer live; look at it, and remove the set yourself once you have \
                 what you need"
            ));
        }
        notes
    }
}

/// Finish or undo what killed keyrotate runs left behind: a transaction, unfinished backup sets,
/// stray temporary files. The caller holds the SSH directory's lock, so nothing is in progress.
/// A journal recovery cannot trust is refused (nothing is changed, not even the leftovers).
pub fn recover(ssh_dir: &Path) -> Result<RecoveryReport> {
    let transaction = recover_transaction(ssh_dir)?;
    let mut report = RecoveryReport {
        transaction,
        ..RecoveryReport::default()
    };
    // Leftovers are cleaned only where no one else can have put them.
    if !dir_is_trusted(ssh_dir)? {
        return Ok(report);
    }
    if let Some(store) = Store::open_existing(ssh_dir)? {
        for name in incomplete_sets(store.root())? {
            let path = store.root().join(&name);
            match store
                .remove_if_incomplete(&name, ssh_dir)
                .map_err(write_err(&path))?
            {
                store::Unfinished::Removed => report.removed_sets.push(name),
                store::Unfinished::Kept { only_copy } => report.kept_sets.push((name, only_copy)),
                store::Unfinished::No => {}
            }
        }
    }
    remove_stray_temporaries(ssh_dir)?;
    Ok(report)
}

/// Is `ssh_dir` ours and writable by nobody else? An error when it cannot be told.
fn dir_is_trusted(ssh_dir: &Path) -> Result<bool> {
    let meta = fsio::stat(ssh_dir).map_err(|source| TxError::Look {
        path: ssh_dir.to_path_buf(),
        source,
    })?;
    Ok(meta.is_some_and(|m| trusted_owner(ssh_dir, &m, "").is_ok()))
}

/// Names of sets in `root` that are unfinished: still carrying the INCOMPLETE marker, or empty.
fn incomplete_sets(root: &Path) -> Result<Vec<String>> {
    let look = look_err(root);
    let entries = match fsio::list_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(look(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let Some(name) = entry.name.to_str().map(str::to_string) else {
            continue;
        };
        if !store::is_set_name(&name) {
            continue;
        }
        let dir = entry.path;
        let is_dir = match entry.kind {
            fsio::Kind::Dir => true,
            fsio::Kind::Unknown => lstat(&dir)?.is_some_and(|m| m.is_dir()),
            _ => false,
        };
        if !is_dir {
            continue;
        }
        let marked = exists(&dir.join(store::INCOMPLETE_MARKER))?;
        let empty =
            || -> Result<bool> { Ok(fsio::list_dir(&dir).map_err(look_err(&dir))?.is_empty()) };
        if marked || empty()? {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn recover_transaction(ssh_dir: &Path) -> Result<Option<Recovered>> {
    let journal = read_journal(ssh_dir)?;
    let recovered = match journal {
        None => None,
        Some(journal) => {
            let store = Store::open_existing(ssh_dir)?;
            match journal.phase {
                Phase::Preparing => {
                    undo(ssh_dir, &journal, store.as_ref())?;
                    Some(Recovered::Undone {
                        operation: journal.operation,
                        started: journal.started,
                    })
                }
                Phase::Committing => match apply(ssh_dir, &journal)? {
                    Applied::Done => Some(Recovered::Finished {
                        operation: journal.operation,
                        started: journal.started,
                        backup_set: journal.backup_set,
                    }),
                    Applied::UndoneBecauseAppeared(_) => Some(Recovered::Undone {
                        operation: journal.operation,
                        started: journal.started,
                    }),
                },
            }
        }
    };
    Ok(recovered)
}

/// Temporary files of a keyrotate that was killed while writing (`.keyrotate-tmp-*`), in the
/// SSH directory and the backup store. Only called with the lock held, when none can be in use.
fn remove_stray_temporaries(ssh_dir: &Path) -> Result<()> {
    for dir in [ssh_dir.to_path_buf(), ssh_dir.join(store::STORE_NAME)] {
        let look = look_err(&dir);
        let entries = match fsio::list_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(look(e)),
        };
        let mut removed = false;
        for entry in entries {
            let is_temp = entry
                .name
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes());
            // Only regular files: a temporary name on anything else is not ours.
            let is_file = is_temp && lstat(&entry.path)?.is_some_and(|m| m.file_type().is_file());
            if is_temp && is_file {
                fs::remove_file(&entry.path).map_err(write_err(&entry.path))?;
                removed = true;
            }
        }
        if removed {
            fsio::sync_dir(&dir).map_err(write_err(&dir))?;
        }
    }
    Ok(())
}

/// Whether a killed keyrotate left anything behind (a journal, an unfinished set or temporary
/// files), so that read-only commands know to recover. Cheap: a `stat` and two listings. When
/// that cannot be told, the answer is yes: recovery then reports what it cannot look at.
pub fn needs_recovery(ssh_dir: &Path) -> bool {
    let journal = !matches!(fsio::lstat(&journal_path(ssh_dir)), Ok(None));
    let sets = !matches!(incomplete_sets(&ssh_dir.join(store::STORE_NAME)), Ok(v) if v.is_empty());
    let temporaries = match fsio::list_dir(ssh_dir) {
        Ok(entries) => entries.iter().any(|e| {
            e.name
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
        }),
        Err(_) => true,
    };
    journal || sets || temporaries
}

/// Read and validate the journal without acting on it (nor taking the lock): a read-only
/// command uses this to refuse an untrusted journal without writing anything, not even a lock.
pub fn check_journal(ssh_dir: &Path) -> Result<()> {
    read_journal(ssh_dir).map(|_| ())
}

/// Is there a journal in `ssh_dir`? (For a command that must not act on it, to say so.)
pub fn has_journal(ssh_dir: &Path) -> io::Result<bool> {
    Ok(fsio::lstat(&journal_path(ssh_dir))?.is_some())
}

/// Is `ssh_dir` owned by the effective user? Recovery and locking write there, so a command
/// run on another user's directory (root's admin loop) must not.
pub fn owned_by_me(ssh_dir: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(fsio::stat(ssh_dir)?.is_some_and(|m| m.uid() == fsio::current_uid()))
    }
    #[cfg(not(unix))]
    {
        let _ = ssh_dir;
        Ok(true)
    }
}
