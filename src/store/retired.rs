//! The fingerprints of keys that `rotate` retired, kept in `<ssh-dir>/key_backup/RETIRED`, so that
//! `check` can say so if one of them comes back into use (JASMIN refuses any key used before).
//!
//! One line per key: `SHA256:...<TAB>2026-11-21T10:15:00Z<TAB>SET<TAB>original path` (or
//! `file-SHA256:<hex>` first, for a key whose public half could not be read). Only the
//! first field matters when reading; unknown or damaged lines are skipped when reading and kept
//! when the record is rewritten (which only `rotate`'s transaction does, after saving the old
//! record in its backup set).

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use zeroize::Zeroizing;

pub use crate::layout::{RETIRED_NAME, retired_path};
use crate::sys::fsio::{self, Bounded};

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

/// The first field of a key recorded by its file's bytes (its public half could not be read
/// without the passphrase): never equal to a key's fingerprint, so `check` cannot flag it, but
/// `rotate` finds its copy by set and name and checks new passphrases against it.
const FILE_ID: &str = "file-SHA256:";

/// The record's first field for a key known only by its file's bytes.
pub fn file_id(bytes: &[u8]) -> String {
    format!("{FILE_ID}{}", crate::store::sha256_hex(bytes))
}

/// The record is never larger than this; anything bigger is not ours.
const MAX_RECORD_SIZE: u64 = 16 << 20;

/// The record's bytes as they are, `None` when there is no record. A record that cannot be read,
/// or is not a regular file, is an error naming it: a record that could not be read is never
/// taken for an empty one (it would be rewritten without the keys it lists).
pub fn read_bytes(ssh_dir: &Path) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let path = retired_path(ssh_dir);
    let named = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "cannot read the retired-key record {}: {reason}",
                path.display()
            ),
        )
    };
    match fsio::read_bounded(&path, MAX_RECORD_SIZE) {
        Ok(Bounded::Bytes(bytes)) => Ok(Some(bytes)),
        Ok(Bounded::NotRegular) => Err(named("it is not a regular file".to_string())),
        Ok(Bounded::TooLarge(len)) => {
            Err(named(format!("it is {len} bytes, too large to be ours")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "cannot read the retired-key record {}: {}",
                path.display(),
                crate::sys::io_reason(&e)
            ),
        )),
    }
}

/// The keys listed in a record's bytes; lines keyrotate does not recognise are skipped here
/// (and kept, byte for byte, when the record is rewritten).
pub fn parse(bytes: &[u8]) -> Vec<RetiredKey> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let fingerprint = fields.next()?.trim();
            let ours = fingerprint.starts_with("SHA256:") || fingerprint.starts_with(FILE_ID);
            ours.then(|| RetiredKey {
                fingerprint: fingerprint.to_string(),
                retired_at: fields.next().unwrap_or_default().to_string(),
                set: fields.next().unwrap_or_default().to_string(),
                path: fields.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// Every retired key on record (empty when there is no record; an error when it cannot be read).
pub fn read(ssh_dir: &Path) -> io::Result<Vec<RetiredKey>> {
    Ok(read_bytes(ssh_dir)?.map(|b| parse(&b)).unwrap_or_default())
}

/// The keys of `keys` that `current` (the record's bytes, if any) does not list yet.
pub fn not_yet_listed<'a>(current: Option<&[u8]>, keys: &'a [RetiredKey]) -> Vec<&'a RetiredKey> {
    let existing = current.map(parse).unwrap_or_default();
    let known: BTreeSet<&str> = existing.iter().map(|k| k.fingerprint.as_str()).collect();
    let mut new: Vec<&RetiredKey> = Vec::new();
    for key in keys {
        if !known.contains(key.fingerprint.as_str())
            && !new.iter().any(|k| k.fingerprint == key.fingerprint)
        {
            new.push(key);
        }
    }
    new
}

/// The record's new contents: `current` kept byte for byte (every line, recognised or not),
/// then a line for each key of `keys` it does not list yet. `None` when there is nothing new.
pub fn with_added(current: Option<&[u8]>, keys: &[RetiredKey]) -> Option<Vec<u8>> {
    let new = not_yet_listed(current, keys);
    if new.is_empty() {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    match current {
        Some(bytes) if !bytes.is_empty() => {
            out.extend_from_slice(bytes);
            if !bytes.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        _ => {
            out.extend_from_slice(b"# Keys retired by keyrotate: they must never be used again.\n")
        }
    }
    for key in new {
        out.extend_from_slice(key.line().as_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fp: &str) -> RetiredKey {
        RetiredKey {
            fingerprint: fp.to_string(),
            retired_at: "2026-11-21T10:15:00Z".to_string(),
            set: "20261121T101500Z".to_string(),
            path: "/h/.ssh/id_rsa_jasmin".to_string(),
        }
    }

    #[test]
    fn records_are_kept_once_and_read_back() {
        let first = with_added(None, &[key("SHA256:a"), key("SHA256:b")]).unwrap();
        let second = with_added(Some(&first), &[key("SHA256:b"), key("SHA256:c")]).unwrap();
        let fps: Vec<String> = parse(&second).into_iter().map(|k| k.fingerprint).collect();
        assert_eq!(fps, ["SHA256:a", "SHA256:b", "SHA256:c"]);
        assert_eq!(parse(&second)[0], key("SHA256:a"));
        assert!(with_added(Some(&second), &[key("SHA256:a")]).is_none());
    }

    #[test]
    fn a_record_with_no_line_keyrotate_recognises_keeps_its_content() {
        let notes = b"my own notes about old keys\nno trailing newline";
        let out = with_added(Some(notes), &[key("SHA256:a")]).unwrap();
        assert!(out.starts_with(notes), "{}", String::from_utf8_lossy(&out));
        assert_eq!(parse(&out), [key("SHA256:a")]);
    }

    #[cfg(unix)]
    #[test]
    fn a_record_that_cannot_be_read_is_an_error_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(crate::layout::store_dir(dir.path())).unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        std::fs::create_dir(retired_path(dir.path())).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("RETIRED"), "{err}");
    }
}
