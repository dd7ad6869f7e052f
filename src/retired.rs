//! The fingerprints of keys that `rotate` retired, kept in `<ssh-dir>/key_backup/RETIRED`, so that
//! `check` can say so if one of them comes back into use (JASMIN refuses any key used before).
//!
//! One line per key: `SHA256:...<TAB>2026-11-21T10:15:00Z<TAB>SET<TAB>original path`. Only the
//! first field matters when reading; unknown or damaged lines are skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::backup::STORE_NAME;
use crate::fsio::{self, Bounded, FileSpec};

pub const RETIRED_NAME: &str = "RETIRED";

/// One retired key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    pub fingerprint: String,
    pub retired_at: String,
    pub set: String,
    pub path: String,
}

impl RetiredKey {
    fn line(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        format!(
            "{}\t{}\t{}\t{}\n",
            clean(&self.fingerprint),
            clean(&self.retired_at),
            clean(&self.set),
            clean(&self.path)
        )
    }
}

pub fn retired_path(ssh_dir: &Path) -> PathBuf {
    ssh_dir.join(STORE_NAME).join(RETIRED_NAME)
}

/// Every retired key on record (empty when there is no record or it cannot be read).
pub fn read(ssh_dir: &Path) -> Vec<RetiredKey> {
    let path = retired_path(ssh_dir);
    let Ok(Bounded::Bytes(bytes)) = fsio::read_bounded(&path, 16 << 20) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let fingerprint = fields.next()?.trim();
            fingerprint.starts_with("SHA256:").then(|| RetiredKey {
                fingerprint: fingerprint.to_string(),
                retired_at: fields.next().unwrap_or_default().to_string(),
                set: fields.next().unwrap_or_default().to_string(),
                path: fields.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The record's new contents with `keys` added (those already there are skipped), or `None`
/// when there is nothing new.
pub fn with_added(ssh_dir: &Path, keys: &[RetiredKey]) -> Option<String> {
    let path = retired_path(ssh_dir);
    let existing = read(ssh_dir);
    let known: BTreeSet<&str> = existing.iter().map(|k| k.fingerprint.as_str()).collect();
    let new: Vec<&RetiredKey> = keys
        .iter()
        .filter(|k| !known.contains(k.fingerprint.as_str()))
        .collect();
    if new.is_empty() {
        return None;
    }
    let mut text = String::new();
    if existing.is_empty() {
        text.push_str("# Keys retired by keyrotate: they must never be used again.\n");
    } else if let Ok(Bounded::Bytes(bytes)) = fsio::read_bounded(&path, 16 << 20) {
        text.push_str(&String::from_utf8_lossy(&bytes));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    for key in new {
        text.push_str(&key.line());
    }
    Some(text)
}

/// Add `keys` to the record, replacing the file atomically. The store directory must exist.
pub fn record(ssh_dir: &Path, keys: &[RetiredKey]) -> std::io::Result<()> {
    match with_added(ssh_dir, keys) {
        Some(text) => fsio::replace_atomically(
            &retired_path(ssh_dir),
            FileSpec {
                bytes: text.as_bytes(),
                mode: 0o600,
                modified: None,
            },
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_kept_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(STORE_NAME)).unwrap();
        let key = |fp: &str| RetiredKey {
            fingerprint: fp.to_string(),
            retired_at: "2026-11-21T10:15:00Z".to_string(),
            set: "20261121T101500Z".to_string(),
            path: "/h/.ssh/id_rsa_jasmin".to_string(),
        };
        assert!(read(dir.path()).is_empty());
        record(dir.path(), &[key("SHA256:a"), key("SHA256:b")]).unwrap();
        record(dir.path(), &[key("SHA256:b"), key("SHA256:c")]).unwrap();
        let fps: Vec<String> = read(dir.path())
            .into_iter()
            .map(|k| k.fingerprint)
            .collect();
        assert_eq!(fps, ["SHA256:a", "SHA256:b", "SHA256:c"]);
        assert_eq!(read(dir.path())[0], key("SHA256:a"));
    }
}
