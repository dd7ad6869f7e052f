//! Every name keyrotate keeps on disk, in one place. Nothing else spells them.
//!
//! ```text
//! <ssh-dir>/
//!   .keyrotate.lock            one keyrotate at a time (transaction::lock)
//!   .keyrotate-journal         an interrupted change, finished or undone by the next command
//!   .keyrotate-tmp-*           files being written (staged, then renamed into place)
//!   key_backup/                the backup store, 0700
//!     RETIRED                  the keys `rotate` retired (store::retired)
//!     20261121T101500Z[-N]/    one backup set, 0700: copies + SHA256SUMS (+ INCOMPLETE while written)
//! ```

use std::path::{Path, PathBuf};

/// The store's directory name inside the SSH directory.
pub const STORE_NAME: &str = "key_backup";
/// The checksum file of a set, in `sha256sum` format.
pub const SUMS_NAME: &str = "SHA256SUMS";
/// Present while a set is being written; a set that still has it is incomplete.
pub const INCOMPLETE_MARKER: &str = "INCOMPLETE";
/// The retired-key record's name inside the store.
pub const RETIRED_NAME: &str = "RETIRED";
/// The journal's name in the SSH directory.
pub const JOURNAL_NAME: &str = ".keyrotate-journal";
/// Name of the lock file inside the SSH directory.
pub const LOCK_NAME: &str = ".keyrotate.lock";
/// Prefix of every temporary file keyrotate creates.
pub const TEMP_PREFIX: &str = ".keyrotate-tmp-";
/// Every name above that sits in the SSH directory itself starts with this: `check` skips them.
pub const OWN_PREFIX: &str = ".keyrotate";

/// `<ssh-dir>/key_backup`.
pub fn store_dir(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join(STORE_NAME)
}

/// `<ssh-dir>/key_backup/RETIRED`.
pub fn retired_path(ssh_dir: &Path) -> PathBuf {
    store_dir(ssh_dir).join(RETIRED_NAME)
}

/// `<ssh-dir>/.keyrotate-journal`.
pub fn journal_path(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join(JOURNAL_NAME)
}

/// `<ssh-dir>/.keyrotate.lock`.
pub fn lock_path(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join(LOCK_NAME)
}

/// Is `name` (a file name, as bytes) one of keyrotate's own dot-files?
pub fn is_own_name(name: &[u8]) -> bool {
    name.starts_with(OWN_PREFIX.as_bytes())
}

/// Is `name` one of keyrotate's temporary files?
pub fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes())
}
