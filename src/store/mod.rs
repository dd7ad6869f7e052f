//! The backup store `<ssh-dir>/key_backup/`: timestamped sets that are created fresh every time,
//! never written into twice, verified byte for byte, and listed with their verification state;
//! and `restore`, which saves whatever it replaces before putting keys back.
//!
//! A set is made like this: `mkdir` the set (exclusive, 0700) → write an `INCOMPLETE` marker →
//! copy each file (new file, fsync, read back, compare) → write `SHA256SUMS` → fsync → remove the
//! marker → fsync the set and the store. A set interrupted at any point either is removed or keeps
//! its marker, so it can never pass for a good one.

pub mod retired;
mod set;

pub use set::{
    Listing, SetFile, SetInfo, SetState, is_set_name, next_set_name, set_digests, set_timestamp,
};
use set::{inspect_set, parse_set_name, remove_partial_set, set_names, sums_line};

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ssh_key::sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keyfile::{self, MAX_KEY_FILE_SIZE, PublicInfo, Recognised};
pub use crate::layout::{INCOMPLETE_MARKER, STORE_NAME, SUMS_NAME};
use crate::sys::fsio::{self, Bounded, FileSpec};
use crate::sys::io_reason;
use crate::text::shell_path;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{} is a symbolic link (to {}); keyrotate never writes through a link", .path.display(), .target.display())]
    StoreIsSymlink { path: PathBuf, target: PathBuf },
    #[error("{} is owned by another user (uid {uid}), so keyrotate will not keep keys in it", .path.display())]
    StoreNotOwned { path: PathBuf, uid: u32 },
    #[error("{} is not a directory", .path.display())]
    StoreNotADirectory { path: PathBuf },
    #[error("there is no SSH directory at {}", .path.display())]
    NoSshDir { path: PathBuf },
    #[error("cannot back up {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot back up {}: {why}", .path.display())]
    NotAKeyFile { path: PathBuf, why: SkipReason },
    #[error("there is no key {} (looked for {})", .key, .path.display())]
    NoSuchKey {
        key: String,
        path: PathBuf,
        available: Vec<String>,
    },
    #[error("two of the files to back up are named {name}: {} and {}", .first.display(), .second.display())]
    NameClash {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("could not write {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not write {}: too many backup sets with the same timestamp", .path.display())]
    TooManySets { path: PathBuf },
    #[error("the copy {} does not match its original {} when read back", .dest.display(), .source_path.display())]
    Mismatch { source_path: PathBuf, dest: PathBuf },
    #[error("there is no backup set named {name} in {}", .store.display())]
    UnknownSet {
        name: String,
        store: PathBuf,
        available: Vec<String>,
    },
    #[error("backup set {} holds no key named {key}", .set.display())]
    UnknownKey {
        set: PathBuf,
        key: String,
        available: Vec<String>,
    },
    #[error("backup set {} is incomplete: it was interrupted while being written", .set.display())]
    SetIncomplete { set: PathBuf },
    #[error("backup set {} is damaged: {detail}", .set.display())]
    SetDamaged { set: PathBuf, detail: String },
    #[error("cannot restore {}: {}", .path.display(), crate::sys::io_reason(.source))]
    RestoreTarget {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot restore {}: {why}", .path.display())]
    RestoreOver { path: PathBuf, why: SkipReason },
    #[error("cannot read {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BackupError {
    /// The next step for the user.
    pub fn hint(&self) -> String {
        match self {
            BackupError::StoreIsSymlink { path, .. } => format!(
                "move the link aside (`mv {p} {p}.link`) and run again: keyrotate then makes a \
                 private {STORE_NAME} directory",
                p = shell_path(path)
            ),
            BackupError::StoreNotOwned { path, .. } => format!(
                "move {} aside and run again, or give it back to yourself with `chown`",
                shell_path(path)
            ),
            BackupError::StoreNotADirectory { path } => {
                format!("move {} aside and run again", shell_path(path))
            }
            BackupError::NoSshDir { .. } => {
                "point --ssh-dir (or KEYROTATE_SSH_DIR) at your SSH directory".to_string()
            }
            BackupError::NotAKeyFile {
                why: SkipReason::Directory,
                ..
            } => {
                "name key files, not directories: `keyrotate backup KEY...` (each key brings its \
                 .pub)"
                    .to_string()
            }
            BackupError::Source { .. } | BackupError::NotAKeyFile { .. } | BackupError::Read { .. } => {
                "check the file's owner and permissions with `ls -l`, or name the keys to back up \
                 explicitly: `keyrotate backup KEY...`"
                    .to_string()
            }
            BackupError::NoSuchKey { available, .. } => match available.is_empty() {
                true => "there are no keys in the SSH directory; see `keyrotate check`".to_string(),
                false => format!("the keys there are: {}", available.join(", ")),
            },
            BackupError::NameClash { .. } => {
                "back them up in two separate runs of `keyrotate backup`".to_string()
            }
            BackupError::Write { .. } | BackupError::Mismatch { .. } | BackupError::TooManySets { .. } => {
                "your keys were not touched, and the unfinished set was removed (or, failing that, \
                 is marked INCOMPLETE); check the free space and health of the disk (`df -h`), then \
                 run again"
                    .to_string()
            }
            BackupError::UnknownSet { available, .. } => match available.is_empty() {
                true => "there are no backup sets yet; make one with `keyrotate backup`".to_string(),
                false => format!(
                    "the sets are, newest first: {} (see `keyrotate backup --list`)",
                    available.join(", ")
                ),
            },
            BackupError::UnknownKey { available, .. } => {
                format!("the set holds: {}", available.join(", "))
            }
            BackupError::SetIncomplete { .. } => {
                "choose another set from `keyrotate backup --list`".to_string()
            }
            BackupError::SetDamaged { .. } => {
                "restore only the intact keys by naming them (`keyrotate restore SET KEY`), or \
                 choose another set from `keyrotate backup --list`"
                    .to_string()
            }
            BackupError::RestoreTarget { path, .. } | BackupError::RestoreOver { path, .. } => format!(
                "move {} out of the way, then run the restore again",
                shell_path(path)
            ),
        }
    }
}

type Result<T> = std::result::Result<T, BackupError>;

fn write_err(path: &Path) -> impl Fn(io::Error) -> BackupError + '_ {
    move |source| BackupError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn read_err(path: &Path) -> impl Fn(io::Error) -> BackupError + '_ {
    move |source| BackupError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(&Sha256::digest(bytes))
}

/// A file read into memory, ready to be copied into a set.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its name inside the set.
    pub name: OsString,
    /// Wiped on drop: an unencrypted key's bytes are its secret.
    pub bytes: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub modified: SystemTime,
    /// Set when `path` is a symbolic link: the copy holds the content of what it points to.
    pub symlink_target: Option<PathBuf>,
}

/// Why a file is not something keyrotate copies (or restores over).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("it is a directory")]
    Directory,
    #[error("it is not a regular file")]
    NotRegular,
    #[error("it is larger than any key file (over 1 MiB)")]
    TooLarge,
    #[error("it is a symbolic link to {}, which does not exist", .0.display())]
    DanglingLink(PathBuf),
    #[error("it is a symbolic link to {}, which leads back to itself (a loop)", .0.display())]
    LinkLoop(PathBuf),
    #[error("a directory has that name")]
    DirectoryThere,
}

/// Why a file was left out of a default backup.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: SkipReason,
    /// Set when `path` is a symbolic link to nothing that can be saved (nowhere, a device):
    /// where it points.
    pub link: Option<PathBuf>,
}

/// Read one file to back up. `Ok(None)` for things that are not key files at all (special files,
/// files over 1 MiB); errors for files that cannot be read.
pub fn read_source(path: &Path) -> Result<std::result::Result<SourceFile, Skipped>> {
    let source_err = |source: io::Error| BackupError::Source {
        path: path.to_path_buf(),
        source,
    };
    let lmeta = fs::symlink_metadata(path).map_err(source_err)?;
    let symlink_target = if lmeta.file_type().is_symlink() {
        Some(fs::read_link(path).map_err(source_err)?)
    } else {
        None
    };
    let skipped = |reason: SkipReason| {
        Ok(Err(Skipped {
            path: path.to_path_buf(),
            reason,
            link: symlink_target.clone(),
        }))
    };
    let (bounded, meta) = match fsio::read_bounded_with_metadata(path, MAX_KEY_FILE_SIZE) {
        Ok(read) => read,
        // A link that leads nowhere has nothing to save; anything else that stops the read
        // (EIO, EACCES) is an error, never "nothing there".
        Err(e) if e.kind() == io::ErrorKind::NotFound && symlink_target.is_some() => {
            let target = symlink_target.clone().unwrap_or_default();
            return skipped(SkipReason::DanglingLink(target));
        }
        // A loop of links (ELOOP) leads nowhere too.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && symlink_target.is_some() => {
            let target = symlink_target.clone().unwrap_or_default();
            return skipped(SkipReason::LinkLoop(target));
        }
        Err(e) => return Err(source_err(e)),
    };
    let bytes = match bounded {
        Bounded::Bytes(bytes) => bytes,
        Bounded::NotRegular if meta.is_dir() => return skipped(SkipReason::Directory),
        Bounded::NotRegular => return skipped(SkipReason::NotRegular),
        Bounded::TooLarge(_) => {
            return skipped(SkipReason::TooLarge);
        }
    };
    Ok(Ok(SourceFile {
        path: path.to_path_buf(),
        name: path.file_name().unwrap_or_default().to_os_string(),
        bytes,
        mode: file_mode(&meta),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        symlink_target,
    }))
}

fn file_mode(meta: &fs::Metadata) -> u32 {
    crate::sys::unix_mode(meta).unwrap_or(0o600)
}

/// One file of a finished set.
#[derive(Debug, Clone)]
pub struct BackedUp {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub sha256: String,
    pub symlink_target: Option<PathBuf>,
}

/// A finished, verified set.
#[derive(Debug, Clone)]
pub struct CreatedSet {
    pub name: String,
    pub dir: PathBuf,
    pub files: Vec<BackedUp>,
}

/// `<ssh-dir>/key_backup`, checked: a real directory, ours, mode 0700.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store of `ssh_dir`, created (0700) if missing. Refuses a symlink, a non-directory, or a
    /// directory owned by someone else; tightens a wider mode (a `mkdir key_backup` made by hand
    /// is usually 0755) to 0700.
    pub fn open_or_create(ssh_dir: &Path) -> Result<Self> {
        if !fsio::is_dir(ssh_dir).map_err(read_err(ssh_dir))? {
            return Err(BackupError::NoSshDir {
                path: ssh_dir.to_path_buf(),
            });
        }
        let root = ssh_dir.join(STORE_NAME);
        match fs::symlink_metadata(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fsio::create_private_dir(&root).map_err(write_err(&root))?;
                fsio::sync_dir(ssh_dir).map_err(write_err(ssh_dir))?;
                Ok(Store { root })
            }
            Err(e) => Err(read_err(&root)(e)),
            Ok(meta) => {
                Self::validate(&root, &meta)?;
                if crate::sys::unix_mode(&meta).is_some_and(|m| m & 0o777 != 0o700) {
                    fsio::set_dir_mode_0700(&root).map_err(write_err(&root))?;
                }
                // Windows: the same for an access list that lets others in.
                #[cfg(windows)]
                if !crate::sys::winacl::other_readers(&root)
                    .map_err(read_err(&root))?
                    .is_empty()
                {
                    crate::sys::winacl::restrict_to_owner(&root, true).map_err(write_err(&root))?;
                }
                Ok(Store { root })
            }
        }
    }

    /// The store of `ssh_dir` if it exists (checked as for writing, but never changed).
    pub fn open_existing(ssh_dir: &Path) -> Result<Option<Self>> {
        let root = ssh_dir.join(STORE_NAME);
        match fs::symlink_metadata(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(&root)(e)),
            Ok(meta) => {
                Self::validate(&root, &meta)?;
                Ok(Some(Store { root }))
            }
        }
    }

    fn validate(root: &Path, meta: &fs::Metadata) -> Result<()> {
        if meta.file_type().is_symlink() {
            return Err(BackupError::StoreIsSymlink {
                path: root.to_path_buf(),
                target: fs::read_link(root).unwrap_or_default(),
            });
        }
        if !meta.is_dir() {
            return Err(BackupError::StoreNotADirectory {
                path: root.to_path_buf(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if meta.uid() != fsio::current_uid() {
                return Err(BackupError::StoreNotOwned {
                    path: root.to_path_buf(),
                    uid: meta.uid(),
                });
            }
        }
        Ok(())
    }

    /// Make a new set holding `files`; every copy is read back and compared before this returns.
    pub fn create_set(&self, files: &[SourceFile], now: SystemTime) -> Result<CreatedSet> {
        self.create_set_then(files, now, |_| Ok(()))
    }

    /// As [`Store::create_set`], calling `on_named` with the set's name as soon as its directory
    /// exists and before anything is copied (a journal records it there, so that recovery can
    /// find a set that was interrupted).
    pub fn create_set_then(
        &self,
        files: &[SourceFile],
        now: SystemTime,
        on_named: impl FnOnce(&str) -> Result<()>,
    ) -> Result<CreatedSet> {
        check_names(files)?;
        let (name, dir) = self.make_set_dir(now)?;
        if let Err(e) = on_named(&name) {
            let _ = fs::remove_dir(&dir);
            return Err(e);
        }
        match self.fill_set(&dir, files) {
            Ok(backed_up) => Ok(CreatedSet {
                name,
                dir,
                files: backed_up,
            }),
            Err(e) => {
                // Remove what we made; if that fails too, the marker still says "incomplete".
                let _ = remove_partial_set(&dir, files);
                let _ = fsio::sync_dir(&self.root);
                Err(e)
            }
        }
    }

    /// `mkdir` a fresh set directory named after `now` (UTC), with `-2`, `-3`... on collision.
    fn make_set_dir(&self, now: SystemTime) -> Result<(String, PathBuf)> {
        let stamp = set_timestamp(now);
        for name in set_names(&stamp) {
            let dir = self.root.join(&name);
            match fsio::create_private_dir(&dir) {
                Ok(()) => return Ok((name, dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(write_err(&dir)(e)),
            }
        }
        Err(BackupError::TooManySets {
            path: self.root.join(&stamp),
        })
    }

    fn fill_set(&self, dir: &Path, files: &[SourceFile]) -> Result<Vec<BackedUp>> {
        let marker = dir.join(INCOMPLETE_MARKER);
        let note = b"keyrotate was interrupted while writing this backup set; do not trust it.\n";
        fsio::write_new_file(
            &marker,
            FileSpec {
                bytes: note,
                mode: 0o600,
                modified: None,
            },
        )
        .map_err(write_err(&marker))?;
        fsio::sync_dir(dir).map_err(write_err(dir))?;

        let mut backed_up = Vec::new();
        let mut sums = Vec::new();
        for f in files {
            let dest = dir.join(&f.name);
            // The mode is kept, except that a private key's copy is never readable by others
            // (a backup must not spread an exposure of the original).
            let mode = match keyfile::looks_private(&f.bytes) {
                true => f.mode & 0o700,
                false => f.mode,
            };
            let spec = FileSpec {
                bytes: &f.bytes,
                mode,
                modified: Some(f.modified),
            };
            fsio::write_new_file(&dest, spec).map_err(write_err(&dest))?;
            if !fsio::read_back_matches(&dest, &f.bytes).map_err(write_err(&dest))? {
                return Err(BackupError::Mismatch {
                    source_path: f.path.clone(),
                    dest,
                });
            }
            let sha256 = sha256_hex(&f.bytes);
            sums.extend(sums_line(&sha256, &f.name));
            backed_up.push(BackedUp {
                source: f.path.clone(),
                dest,
                sha256,
                symlink_target: f.symlink_target.clone(),
            });
        }
        let sums_path = dir.join(SUMS_NAME);
        fsio::write_new_file(
            &sums_path,
            FileSpec {
                bytes: &sums,
                mode: 0o600,
                modified: None,
            },
        )
        .map_err(write_err(&sums_path))?;
        if !fsio::read_back_matches(&sums_path, &sums).map_err(write_err(&sums_path))? {
            return Err(BackupError::Mismatch {
                source_path: sums_path.clone(),
                dest: sums_path,
            });
        }
        fsio::sync_dir(dir).map_err(write_err(dir))?;
        fs::remove_file(&marker).map_err(write_err(&marker))?;
        fsio::sync_dir(dir).map_err(write_err(dir))?;
        fsio::sync_dir(&self.root).map_err(write_err(&self.root))?;
        Ok(backed_up)
    }

    /// Remove set `name` if (and only if) it is unfinished (marked incomplete, or still empty:
    /// killed between its `mkdir` and its marker) and holds nothing that is not also live in
    /// `live_dir`: a set interrupted while being written holds copies (perhaps cut short) of
    /// live files, but if one of those is gone since (or changed), the set holds its only copy,
    /// and is kept.
    pub fn remove_if_incomplete(&self, name: &str, live_dir: &Path) -> io::Result<Unfinished> {
        let dir = self.root.join(name);
        if parse_set_name(OsStr::new(name)).is_none() {
            return Ok(Unfinished::No);
        }
        match fsio::lstat(&dir)? {
            Some(meta) if meta.is_dir() => {}
            _ => return Ok(Unfinished::No),
        }
        let names: Vec<OsString> = fsio::list_dir(&dir)?.into_iter().map(|e| e.name).collect();
        if names.is_empty() {
            fs::remove_dir(&dir)?;
            fsio::sync_dir(&self.root)?;
            return Ok(Unfinished::Removed);
        }
        if fsio::lstat(&dir.join(INCOMPLETE_MARKER))?.is_none() {
            return Ok(Unfinished::No);
        }
        for n in &names {
            if n == INCOMPLETE_MARKER || n == SUMS_NAME {
                continue;
            }
            let live = match n == crate::store::retired::RETIRED_NAME {
                true => self.root.join(n),
                false => live_dir.join(n),
            };
            if !copy_of_live(&dir.join(n), &live)? {
                return Ok(Unfinished::Kept {
                    only_copy: n.to_string_lossy().into_owned(),
                });
            }
        }
        for n in &names {
            if n != INCOMPLETE_MARKER {
                fs::remove_file(dir.join(n))?;
            }
        }
        fs::remove_file(dir.join(INCOMPLETE_MARKER))?;
        fs::remove_dir(&dir)?;
        fsio::sync_dir(&self.root)?;
        Ok(Unfinished::Removed)
    }

    /// Every set, newest first, each verified against its `SHA256SUMS`.
    pub fn list(&self) -> Result<Listing> {
        let mut sets = Vec::new();
        let mut loose = Vec::new();
        for entry in fsio::list_dir(&self.root).map_err(read_err(&self.root))? {
            let (name, path) = (entry.name, entry.path);
            let is_dir = fsio::lstat(&path)
                .map_err(read_err(&path))?
                .is_some_and(|m| m.is_dir());
            // keyrotate's own files here (the retired-key record, a temporary file of a
            // run in progress) are not backups.
            let ours = name == crate::store::retired::RETIRED_NAME
                || name
                    .as_encoded_bytes()
                    .starts_with(crate::layout::TEMP_PREFIX.as_bytes());
            match (is_dir, parse_set_name(&name)) {
                (true, Some(order)) => sets.push((order, inspect_set(&path)?)),
                _ if ours => {}
                _ => loose.push(path),
            }
        }
        sets.sort_by(|a, b| b.0.cmp(&a.0));
        loose.sort();
        Ok(Listing {
            root: self.root.clone(),
            sets: sets.into_iter().map(|(_, s)| s).collect(),
            loose,
        })
    }

    /// The set called `name`, verified.
    pub fn find(&self, name: &str) -> Result<SetInfo> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\'])
            && parse_set_name(OsStr::new(name)).is_some();
        let path = self.root.join(name);
        let exists = plain
            && fsio::lstat(&path)
                .map_err(read_err(&path))?
                .is_some_and(|m| m.is_dir());
        if !exists {
            let available = self
                .list()
                .map(|l| l.sets.into_iter().map(|s| s.name).collect())
                .unwrap_or_default();
            return Err(BackupError::UnknownSet {
                name: name.to_string(),
                store: self.root.clone(),
                available,
            });
        }
        inspect_set(&path)
    }
}

/// What [`Store::remove_if_incomplete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfinished {
    /// The set was not unfinished: left alone.
    No,
    /// Removed: everything in it is live too.
    Removed,
    /// Unfinished, but kept: it holds the only copy of this file.
    Kept { only_copy: String },
}

/// Is `copy` the live file's bytes, or the start of them (a copy cut short by a crash: it is
/// written in one go, so what is there is a prefix)? Then the live file holds all it holds.
fn copy_of_live(copy: &Path, live: &Path) -> io::Result<bool> {
    let read = |path: &Path| match fsio::read_bounded(path, MAX_KEY_FILE_SIZE) {
        Ok(Bounded::Bytes(bytes)) => Ok(Some(bytes)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    // A copy that is not a regular file was not made by keyrotate: not ours to delete.
    if !fsio::lstat(copy)?.is_some_and(|m| m.file_type().is_file()) {
        return Ok(false);
    }
    match (read(copy)?, read(live)?) {
        (Some(copy), Some(live)) => Ok(live.starts_with(&copy)),
        _ => Ok(false),
    }
}

/// Refuse two files that would have the same name inside one set.
pub fn check_names(files: &[SourceFile]) -> Result<()> {
    let mut names: BTreeMap<&OsStr, &Path> = BTreeMap::new();
    for f in files {
        if let Some(first) = names.insert(&f.name, &f.path) {
            return Err(BackupError::NameClash {
                name: f.name.to_string_lossy().into_owned(),
                first: first.to_path_buf(),
                second: f.path.clone(),
            });
        }
    }
    Ok(())
}
