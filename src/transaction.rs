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

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::backup::{self, BackupError, CreatedSet, SourceFile, Store};
use crate::fsio::{self, Bounded, FileSpec, TEMP_PREFIX};
use crate::inventory::io_reason;
use crate::keyfile::MAX_KEY_FILE_SIZE;
use crate::retired::{self, RetiredKey};
use crate::timefmt;

/// The journal's name in the SSH directory (`check` ignores `.keyrotate*` names).
pub const JOURNAL_NAME: &str = ".keyrotate-journal";

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
    sha256: String,
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

/// A new file the transaction puts in place.
pub struct NewFile {
    pub target: PathBuf,
    pub bytes: Zeroizing<Vec<u8>>,
    pub mode: u32,
    /// May an existing file at `target` be replaced (after being saved)? If not, one there is an error.
    pub replace: bool,
    /// Its modification time (restore puts back the saved one); `None` for now.
    pub modified: Option<SystemTime>,
}

/// Everything one transaction changes.
pub struct Change {
    /// `"generate"`, `"rotate"` or `"restore"`: shown when a later command recovers it.
    pub operation: &'static str,
    pub new_files: Vec<NewFile>,
    /// Live files to take out of the live directory (they are saved in the backup set first).
    pub remove: Vec<PathBuf>,
    /// Keys to add to the retired-key record (their `set` is filled in with the backup set's name).
    pub retire: Vec<RetiredKey>,
    /// The backup store: needed when anything is replaced or removed, or keys are retired.
    pub store: Option<Store>,
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
    #[error("could not write {}: {reason}", .path.display())]
    Write { path: PathBuf, reason: String },
    #[error("{} changed while keyrotate was working on it", .path.display())]
    Changed { path: PathBuf },
    #[error("the journal {} is damaged: {reason}", .path.display())]
    Journal { path: PathBuf, reason: String },
    #[error("keyrotate cannot handle the file name {}: it is not valid UTF-8", .path.display())]
    NonUtf8 { path: PathBuf },
    #[error("the change was made but could not be completely finished: {reason}")]
    Unfinished { reason: String },
    #[error("{} appeared while keyrotate was writing, so it was left alone and nothing was changed", .path.display())]
    Appeared { path: PathBuf },
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
            TxError::Journal { path, .. } => format!(
                "look at {} (a record of an interrupted keyrotate run); your keys are in \
                 key_backup/ (`keyrotate backup --list`)",
                path.display()
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
        }
    }
}

type Result<T> = std::result::Result<T, TxError>;

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> TxError + '_ {
    move |e| TxError::Write {
        path: path.to_path_buf(),
        reason: io_reason(&e),
    }
}

fn journal_path(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join(JOURNAL_NAME)
}

fn write_journal(ssh_dir: &Path, journal: &Journal) -> Result<()> {
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

fn read_journal(ssh_dir: &Path) -> Result<Option<Journal>> {
    let path = journal_path(ssh_dir);
    let bytes = match fsio::read_bounded(&path, MAX_KEY_FILE_SIZE) {
        Ok(Bounded::Bytes(bytes)) => bytes,
        Ok(_) => {
            return Err(TxError::Journal {
                path,
                reason: "it is not a regular file".to_string(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TxError::Journal {
                path,
                reason: io_reason(&e),
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TxError::Journal {
            path,
            reason: e.to_string(),
        })
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
    match fsio::read_bounded(path, MAX_KEY_FILE_SIZE) {
        Ok(Bounded::Bytes(bytes)) => Ok(Some(backup::sha256_hex(&bytes))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Read a live file to save it. A symlink that leads nowhere has nothing to save (`None`); it
/// is replaced or removed like any other name, never written through.
fn live_source(path: &Path) -> Result<Option<(SourceFile, LiveFile)>> {
    match backup::read_source(path)? {
        Ok(source) => {
            let live = LiveFile {
                path: path.to_path_buf(),
                sha256: backup::sha256_hex(&source.bytes),
            };
            Ok(Some((source, live)))
        }
        Err(_) if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => Ok(None),
        Err(skipped) => Err(TxError::Backup(BackupError::Source {
            path: skipped.path,
            reason: skipped.reason,
        })),
    }
}

/// Run `change` as one crash-safe transaction. The caller holds the SSH directory's lock.
pub fn commit(ssh_dir: &Path, change: Change, now: SystemTime) -> Result<Committed> {
    // Look at everything first: nothing is written if any of this fails.
    let mut to_save = Vec::new();
    let mut replaced = Vec::new();
    let mut removed = Vec::new();
    let mut staged = Vec::new();
    for file in &change.new_files {
        utf8(&file.target)?;
        if exists(&file.target) {
            if !file.replace {
                return Err(TxError::Exists {
                    path: file.target.clone(),
                });
            }
            if let Some((source, live)) = live_source(&file.target)? {
                to_save.push(source);
                replaced.push(live);
            }
        }
        let staged_path = fsio::temp_path_for(&file.target).map_err(write_err(&file.target))?;
        staged.push(Staged {
            staged: staged_path,
            target: file.target.clone(),
            sha256: backup::sha256_hex(&file.bytes),
            replace: file.replace,
        });
    }
    if !change.retire.is_empty() {
        // The retired-key record is rewritten like any new file; its content is known only once
        // the backup set (whose name it records) exists, but its temporary name is fixed now.
        let target = retired::retired_path(ssh_dir);
        staged.push(Staged {
            staged: fsio::temp_path_for(&target).map_err(write_err(&target))?,
            target,
            sha256: String::new(),
            replace: true,
        });
    }
    for path in &change.remove {
        utf8(path)?;
        if let Some((source, live)) = live_source(path)? {
            to_save.push(source);
            removed.push(live);
        }
    }
    let mut journal = Journal {
        version: 1,
        operation: change.operation.to_string(),
        started: timefmt::rfc3339_utc(now),
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

    match prepare(ssh_dir, &change, &mut journal, &to_save, now) {
        Ok(backup) => {
            journal.phase = Phase::Committing;
            if let Err(e) = write_journal(ssh_dir, &journal) {
                // Still before the commit point (the journal on disk says "preparing").
                journal.phase = Phase::Preparing;
                let _ = undo(ssh_dir, &journal, change.store.as_ref());
                return Err(e);
            }
            // Past the commit point the change must be finished. Apply is idempotent: a passing
            // failure (EIO on one fsync) is retried once; a lasting one leaves the journal, and
            // the next keyrotate command finishes the job.
            let applied = apply(ssh_dir, &journal)
                .or_else(|_| apply(ssh_dir, &journal))
                .map_err(|e| TxError::Unfinished {
                    reason: e.to_string(),
                })?;
            match applied {
                Applied::Done => Ok(Committed { backup }),
                Applied::UndoneBecauseAppeared(path) => Err(TxError::Appeared { path }),
            }
        }
        Err(e) => {
            let _ = undo(ssh_dir, &journal, change.store.as_ref());
            Err(e)
        }
    }
}

/// Everything before the commit point: the backup set, then every new file, complete.
fn prepare(
    ssh_dir: &Path,
    change: &Change,
    journal: &mut Journal,
    to_save: &[SourceFile],
    now: SystemTime,
) -> Result<Option<CreatedSet>> {
    let backup = match (&change.store, to_save.is_empty()) {
        (Some(store), false) => {
            let set = store.create_set_then(to_save, now, |name| {
                journal.backup_set = Some(name.to_string());
                write_journal(ssh_dir, journal).map_err(|e| BackupError::Write {
                    path: journal_path(ssh_dir),
                    reason: e.to_string(),
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
    if !change.retire.is_empty() {
        let set_name = backup.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        let keys: Vec<RetiredKey> = change
            .retire
            .iter()
            .map(|k| RetiredKey {
                set: set_name.clone(),
                ..k.clone()
            })
            .collect();
        let record = journal
            .staged
            .last_mut()
            .expect("the record was staged in commit");
        let current = fsio::read_bounded(&record.target, 16 << 20).ok();
        let text = retired::with_added(ssh_dir, &keys).unwrap_or_else(|| match current {
            Some(Bounded::Bytes(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        });
        let spec = FileSpec {
            bytes: text.as_bytes(),
            mode: 0o600,
            modified: None,
        };
        fsio::write_new_file(&record.staged, spec).map_err(write_err(&record.target))?;
        record.sha256 = backup::sha256_hex(text.as_bytes());
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
            .remove_if_incomplete(name)
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
        if exists(&staged.staged) {
            fs::rename(&staged.staged, &staged.target).map_err(write_err(&staged.target))?;
        } else if sha_of(&staged.target).ok().flatten().as_deref() != Some(&staged.sha256) {
            return Err(TxError::Changed {
                path: staged.target.clone(),
            });
        }
    }
    for live in &journal.removed {
        // Only what was saved is removed: a file that changed since is left alone.
        let current = sha_of(&live.path).map_err(write_err(&live.path))?;
        let is_link = fs::symlink_metadata(&live.path).is_ok_and(|m| m.file_type().is_symlink());
        if current.as_deref() == Some(&live.sha256) || (is_link && current.is_none()) {
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
    let ours = || sha_of(&staged.target).ok().flatten().as_deref() == Some(staged.sha256.as_str());
    if !exists(&staged.staged) {
        // Linked by a run killed before it removed the staged name?
        return match ours() {
            true => Ok(()),
            false => Err(TxError::Changed {
                path: staged.target.clone(),
            }),
        };
    }
    match fs::hard_link(&staged.staged, &staged.target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && ours() => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(TxError::Appeared {
                path: staged.target.clone(),
            });
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
            let mode = fs::metadata(&staged.staged)
                .ok()
                .and_then(|m| crate::inventory::unix_mode(&m))
                .unwrap_or(0o600);
            let spec = FileSpec {
                bytes: &bytes,
                mode,
                modified: fs::metadata(&staged.staged).and_then(|m| m.modified()).ok(),
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
        let ours = sha_of(&staged.target).ok().flatten().as_deref() == Some(staged.sha256.as_str());
        if ours && !fs::symlink_metadata(&staged.target).is_ok_and(|m| m.file_type().is_symlink()) {
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
        notes
    }
}

/// Finish or undo what killed keyrotate runs left behind: a transaction, unfinished backup sets,
/// stray temporary files. The caller holds the SSH directory's lock, so nothing is in progress.
pub fn recover(ssh_dir: &Path) -> Result<RecoveryReport> {
    let transaction = recover_transaction(ssh_dir)?;
    let mut removed_sets = Vec::new();
    if let Ok(Some(store)) = Store::open_existing(ssh_dir) {
        for name in incomplete_sets(store.root()) {
            if store
                .remove_if_incomplete(&name)
                .map_err(write_err(&store.root().join(&name)))?
            {
                removed_sets.push(name);
            }
        }
    }
    remove_stray_temporaries(ssh_dir)?;
    Ok(RecoveryReport {
        transaction,
        removed_sets,
    })
}

/// Names of sets in `root` that are unfinished: still carrying the INCOMPLETE marker, or empty.
fn incomplete_sets(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let unfinished = |dir: &Path| {
        dir.join(backup::INCOMPLETE_MARKER).exists()
            || fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && unfinished(&e.path()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn recover_transaction(ssh_dir: &Path) -> Result<Option<Recovered>> {
    let journal = read_journal(ssh_dir)?;
    let recovered = match journal {
        None => None,
        Some(journal) => {
            let store = Store::open_existing(ssh_dir).ok().flatten();
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
    for dir in [ssh_dir.to_path_buf(), ssh_dir.join(backup::STORE_NAME)] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut removed = false;
        for entry in entries.flatten() {
            let is_temp = entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes());
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_temp && is_file {
                fs::remove_file(entry.path()).map_err(write_err(&entry.path()))?;
                removed = true;
            }
        }
        if removed {
            fsio::sync_dir(&dir).map_err(write_err(&dir))?;
        }
    }
    Ok(())
}

/// Whether a killed keyrotate left anything behind (a journal or temporary files), so that
/// read-only commands know to recover. Cheap: a `stat` and a directory listing.
pub fn needs_recovery(ssh_dir: &Path) -> bool {
    if exists(&journal_path(ssh_dir)) {
        return true;
    }
    if !incomplete_sets(&ssh_dir.join(backup::STORE_NAME)).is_empty() {
        return true;
    }
    fs::read_dir(ssh_dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
        })
    })
}
