//! Recovery: every command first finishes or undoes what a killed keyrotate left behind.

use super::journal::trusted_owner;
use super::*;

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
pub(super) fn dir_is_trusted(ssh_dir: &Path) -> Result<bool> {
    let meta = fsio::stat(ssh_dir).map_err(|source| TxError::Look {
        path: ssh_dir.to_path_buf(),
        source,
    })?;
    Ok(meta.is_some_and(|m| trusted_owner(ssh_dir, &m, "").is_ok()))
}

/// Names of sets in `root` that are unfinished: still carrying the INCOMPLETE marker, or empty.
pub(super) fn incomplete_sets(root: &Path) -> Result<Vec<String>> {
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

pub(super) fn recover_transaction(ssh_dir: &Path) -> Result<Option<Recovered>> {
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
pub(super) fn remove_stray_temporaries(ssh_dir: &Path) -> Result<()> {
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
