//! One keyrotate at a time per SSH directory: an advisory lock on `<ssh-dir>/.keyrotate.lock`,
//! held for a whole command and released by the kernel if the process dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

pub use crate::layout::LOCK_NAME;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another keyrotate is already working on this SSH directory (it holds {})", .path.display())]
    Busy { path: PathBuf },
    #[error("cannot take the lock {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LockError {
    pub fn hint(&self) -> String {
        match self {
            LockError::Busy { .. } => {
                "wait for the other keyrotate to finish, then run this again".to_string()
            }
            LockError::Io { path, .. } => format!(
                "check that you own the SSH directory and can write to it (`ls -ld {}`)",
                crate::text::shell_path(path.parent().unwrap_or(path))
            ),
        }
    }
}

/// Held for as long as it lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Take the lock of `ssh_dir` without waiting: a second keyrotate fails fast.
pub fn lock_ssh_dir(ssh_dir: &Path) -> Result<DirLock, LockError> {
    let path = crate::layout::lock_path(ssh_dir);
    let io_err = |source: io::Error| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(&path).map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file, path }),
        Err(TryLockError::WouldBlock) => Err(LockError::Busy { path }),
        Err(TryLockError::Error(e)) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_fast_and_the_first_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_ssh_dir(dir.path()).unwrap();
        let err = lock_ssh_dir(dir.path()).unwrap_err();
        assert!(matches!(err, LockError::Busy { .. }));
        assert!(err.to_string().contains(LOCK_NAME));
        drop(first);
        lock_ssh_dir(dir.path()).unwrap();
    }
}
