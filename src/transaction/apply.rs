//! After the commit point: renames, links and unlinks only, idempotent, and never over or away
//! from bytes the backup set does not hold.

use super::*;

/// After the commit point: renames, links and unlinks only. Idempotent, so that recovery can run
/// it again after a crash part-way through.
///
/// Links that must not replace anything come first: if one of those names has been taken
/// meanwhile (by something other than keyrotate, which we lock out), nothing has been renamed or
/// removed yet, so the transaction is undone instead, leaving that file alone.
pub(super) fn apply(ssh_dir: &Path, journal: &Journal) -> Result<Applied> {
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
pub(super) fn nothing_unsaved(ssh_dir: &Path, journal: &Journal) -> Result<()> {
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
pub(super) enum Applied {
    Done,
    /// A name to be created was taken meanwhile: the transaction was undone.
    UndoneBecauseAppeared(PathBuf),
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_err(path)(e)),
    }
}

/// Give a staged file a name that must be free. Where the filesystem has no hard links, the
/// bytes are written there with `create_new`, which cannot replace anything either.
pub(super) fn link_no_replace(staged: &Staged) -> Result<()> {
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
