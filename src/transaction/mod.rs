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
//! can trust (`journal::validate`): a regular file owned by the effective user and writable by nobody
//! else, in an SSH directory owned by that user and writable by nobody else, naming only
//! keyrotate's temporary files and names directly inside the SSH directory (or the retired-key
//! record in its backup store). Anything else is refused, changing nothing.

mod apply;
mod journal;
pub mod lock;
mod recover;

use apply::{Applied, apply};
use journal::{Journal, LiveFile, Phase, Staged, read_journal, write_journal};
pub use recover::{
    Recovered, RecoveryReport, check_journal, has_journal, needs_recovery, owned_by_me, recover,
};

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
    /// The SHA-256 the live file had when the plan read it (a config rewritten from what was
    /// read): if it holds other bytes now, nothing is changed ([`TxError::Changed`]).
    pub expect: Option<String>,
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
                    expect: n.expect,
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
            if file.expect.as_ref().is_some_and(|sha| *sha != live.sha256) {
                return Err(TxError::Changed {
                    path: file.target.clone(),
                });
            }
            to_save.extend(source);
            replaced.push(live);
        } else if file.expect.is_some() {
            return Err(TxError::Changed {
                path: file.target.clone(),
            });
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
    let (new_store, set) = match looked.to_save.is_empty() {
        true => (None, None),
        false => {
            let (new_store, set) = new_set(ssh_dir, now)?;
            (new_store, Some(set))
        }
    };
    let record = (!looked.retire.is_empty()).then(|| retired::retired_path(ssh_dir));
    Ok(Preview {
        saved: looked.to_save.iter().map(|f| f.path.clone()).collect(),
        new_store,
        set,
        written: change
            .new_files
            .iter()
            // Replaced: what the look phase found there (it looked at every target once).
            .map(|f| {
                let replaced = looked.replaced.iter().any(|l| l.path == f.target);
                (f.target.clone(), f.mode, replaced)
            })
            .collect(),
        removed: looked.removed.iter().map(|l| l.path.clone()).collect(),
        retired: looked.retire,
        record,
    })
}

/// The backup set a change (or a backup) made at `now` would create: the store, when it does not
/// exist yet, and the set's path. Reads, never writes.
pub fn new_set(ssh_dir: &Path, now: SystemTime) -> Result<(Option<PathBuf>, PathBuf)> {
    let store_dir = crate::layout::store_dir(ssh_dir);
    // fsio's errors name the path already.
    let looked_at = |source| TxError::Look {
        path: store_dir.clone(),
        source,
    };
    let new_store = fsio::lstat(&store_dir)
        .map_err(looked_at)?
        .is_none()
        .then(|| store_dir.clone());
    let set = store_dir.join(store::next_set_name(ssh_dir, now).map_err(looked_at)?);
    Ok((new_store, set))
}

/// Run `change` as one crash-safe transaction. The caller holds the SSH directory's lock.
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
