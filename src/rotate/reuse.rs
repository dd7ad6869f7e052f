//! Which keys a new passphrase must not open, and the tries: the service's live old keys and its
//! last [`RETIRED_CHECKED`] retired keys (their copies in the backup store), each tried with the
//! passphrase and its [`Passphrase::whitespace_variants`], in parallel (each try is a KDF run).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::PassphraseCheck;
use super::oldkey::{self, KdfLimits, Opens};
use super::service::OldKey;
use crate::passphrase::Passphrase;
use crate::store::retired::{self, RetiredKey};
use crate::store::{Store, is_set_name};
use crate::sys::fsio;
use crate::text::sanitize;

/// How many of the service's retired keys (the most recently retired) a new passphrase is
/// checked against.
pub const RETIRED_CHECKED: usize = 5;

/// A key the passphrase opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The live key's path, or the retired key's original path.
    pub path: PathBuf,
    /// Set when it is a retired key (its record: fingerprint, when, which backup set).
    pub retired: Option<RetiredKey>,
}

/// What the passphrase is tried on.
enum Subject<'a> {
    Live(&'a OldKey),
    Retired {
        entry: RetiredKey,
        bytes: Zeroizing<Vec<u8>>,
    },
}

impl Subject<'_> {
    fn opens(&self, passphrase: &Passphrase, limits: &KdfLimits) -> Opens {
        match self {
            Subject::Live(k) => k.opens_with(passphrase, limits),
            Subject::Retired { bytes, .. } => oldkey::passphrase_opens(bytes, passphrase, limits),
        }
    }
}

/// `retired key PATH (SHA256:..., retired AT)`, for notes.
fn describe_retired(entry: &RetiredKey) -> String {
    format!(
        "retired key {} ({}, retired {})",
        sanitize(&entry.path),
        sanitize(&entry.fingerprint),
        sanitize(&entry.retired_at)
    )
}

/// Is `path` (a retired key's original path) one of the service's keys: named
/// `id_<anything>_<service>` (or its `.pub`), as [`super::service::service_keys`] finds them?
fn is_service_file(path: &Path, service: &str) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let stem = name.strip_suffix(".pub").unwrap_or(name);
    let suffix = format!("_{service}");
    stem.starts_with("id_") && stem.ends_with(&suffix) && stem.len() > 3 + suffix.len()
}

/// The service's most recently retired keys (newest first, at most [`RETIRED_CHECKED`]), less
/// those still live in `old`. With `-f` (`explicit_file`), the keys retired from `target` only.
fn service_retired(
    entries: Vec<RetiredKey>,
    service: &str,
    target: &Path,
    explicit_file: bool,
    old: &[OldKey],
) -> Vec<RetiredKey> {
    let mut mine: Vec<(usize, RetiredKey)> = entries
        .into_iter()
        .enumerate()
        .filter(|(_, e)| {
            let path = Path::new(&e.path);
            path == target
                || path == crate::generate::public_path_for(target)
                || (!explicit_file && is_service_file(path, service))
        })
        .filter(|(_, e)| !old.iter().any(|k| k.fingerprint() == Some(&e.fingerprint)))
        .collect();
    // RFC 3339 UTC times sort as text; on a tie, the later line of the record is the newer.
    mine.sort_by(|(ia, a), (ib, b)| b.retired_at.cmp(&a.retired_at).then(ib.cmp(ia)));
    mine.into_iter()
        .map(|(_, e)| e)
        .take(RETIRED_CHECKED)
        .collect()
}

/// The retired key's copy in its backup set, verified against the set's `SHA256SUMS` and the
/// record's fingerprint; or why it cannot be had.
fn retired_copy(store: Option<&Store>, entry: &RetiredKey) -> Result<Zeroizing<Vec<u8>>, String> {
    if entry.set.is_empty() {
        return Err("the record names no backup set holding it".to_string());
    }
    let Some(store) = store else {
        return Err(format!(
            "its backup set {} is gone (there is no key_backup directory)",
            sanitize(&entry.set)
        ));
    };
    let Some(name) = Path::new(&entry.path).file_name() else {
        return Err("the record names no file".to_string());
    };
    let dir = store.root().join(&entry.set);
    let copy = dir.join(name);
    let shown = sanitize(&copy.to_string_lossy());
    let exists = is_set_name(&entry.set)
        && fsio::lstat(&dir)
            .map_err(|e| {
                format!(
                    "cannot look at {}: {}",
                    dir.display(),
                    crate::sys::io_reason(&e)
                )
            })?
            .is_some_and(|m| m.is_dir());
    if !exists {
        return Err(format!("its copy {shown} is missing (no such backup set)"));
    }
    let set = store.find(&entry.set).map_err(|e| e.to_string())?;
    let Some(file) = set.files.iter().find(|f| f.name == name) else {
        return Err(format!("its copy {shown} is missing"));
    };
    if !file.intact() {
        return Err(format!(
            "its copy {shown} is damaged (it does not match the set's SHA256SUMS)"
        ));
    }
    let Some(bytes) = &file.bytes else {
        return Err(format!("its copy {shown} cannot be read"));
    };
    if let Some(key) = &file.key
        && key.fingerprint() != entry.fingerprint
    {
        return Err(format!(
            "its copy {shown} is another key ({}) than the record names",
            key.fingerprint()
        ));
    }
    Ok(bytes.clone())
}

/// Does `passphrase` (or a whitespace variant of it) open any live old key in `old`, or any of
/// the service's last [`RETIRED_CHECKED`] retired keys of `ssh_dir`?
pub fn check(
    ssh_dir: &Path,
    service: &str,
    target: &Path,
    explicit_file: bool,
    old: &[OldKey],
    passphrase: &Passphrase,
) -> PassphraseCheck {
    let limits = KdfLimits::default();
    let mut not_checked: Vec<String> = Vec::new();
    let mut subjects: Vec<Subject<'_>> = old.iter().map(Subject::Live).collect();
    match retired::read(ssh_dir) {
        Ok(entries) => {
            let retired = service_retired(entries, service, target, explicit_file, old);
            let store = match retired.is_empty() {
                true => Ok(None),
                false => Store::open_existing(ssh_dir).map_err(|e| e.to_string()),
            };
            for entry in retired {
                let copy = store
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|s| retired_copy(s.as_ref(), &entry));
                match copy {
                    Ok(bytes) => subjects.push(Subject::Retired { entry, bytes }),
                    Err(why) => not_checked.push(format!("{}: {why}", describe_retired(&entry))),
                }
            }
        }
        Err(e) => not_checked.push(format!("the retired keys were not checked: {e}")),
    }

    let variants = passphrase.whitespace_variants();
    let tries: Vec<(usize, &Passphrase)> = (0..subjects.len())
        .flat_map(|s| variants.iter().map(move |v| (s, v)))
        .collect();
    // Once one try opens a key, the tries not started yet are skipped: the answer is known.
    let found = AtomicBool::new(false);
    let results: Vec<(usize, Option<Opens>)> = tries
        .par_iter()
        .map(|&(s, v)| {
            if found.load(Ordering::Relaxed) {
                return (s, None);
            }
            let verdict = subjects[s].opens(v, &limits);
            if verdict == Opens::Yes {
                found.store(true, Ordering::Relaxed);
            }
            (s, Some(verdict))
        })
        .collect();
    let verdict_of = |s: usize| -> Opens {
        let mine: Vec<&Opens> = results
            .iter()
            .filter(|(i, _)| *i == s)
            .filter_map(|(_, v)| v.as_ref())
            .collect();
        if mine.contains(&&Opens::Yes) {
            return Opens::Yes;
        }
        if let Some(why) = mine.iter().find(|v| matches!(v, Opens::NotChecked(_))) {
            return (*why).clone();
        }
        match mine.iter().all(|v| **v == Opens::Unencrypted) {
            true => Opens::Unencrypted,
            false => Opens::No,
        }
    };
    let verdicts: Vec<Opens> = (0..subjects.len()).map(verdict_of).collect();
    if let Some(s) = verdicts.iter().position(|v| *v == Opens::Yes) {
        return PassphraseCheck::OpensOld(match &subjects[s] {
            Subject::Live(k) => Opened {
                path: k.path().to_path_buf(),
                retired: None,
            },
            Subject::Retired { entry, .. } => Opened {
                path: PathBuf::from(&entry.path),
                retired: Some(entry.clone()),
            },
        });
    }
    for (subject, verdict) in subjects.iter().zip(&verdicts) {
        if let Opens::NotChecked(why) = verdict {
            let what = match subject {
                Subject::Live(k) => sanitize(&k.path().to_string_lossy()),
                Subject::Retired { entry, .. } => describe_retired(entry),
            };
            not_checked.push(format!("{what}: {why}"));
        }
    }
    let checked_any = verdicts.contains(&Opens::No);
    match (not_checked.is_empty(), checked_any) {
        (false, _) => PassphraseCheck::NotChecked(not_checked),
        (true, true) => PassphraseCheck::Different,
        (true, false) => PassphraseCheck::NothingToCheck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fp: &str, at: &str, path: &str) -> RetiredKey {
        RetiredKey {
            fingerprint: fp.to_string(),
            retired_at: at.to_string(),
            set: "20261121T101500Z".to_string(),
            path: path.to_string(),
        }
    }

    #[test]
    fn the_services_last_five_retired_keys_newest_first() {
        let target = Path::new("/h/.ssh/id_ed25519_jasmin");
        let mut entries = Vec::new();
        for day in 10..20 {
            entries.push(entry(
                &format!("SHA256:j{day}"),
                &format!("2026-11-{day}T10:00:00Z"),
                "/h/.ssh/id_rsa_jasmin",
            ));
        }
        entries.push(entry(
            "SHA256:other",
            "2026-11-30T10:00:00Z",
            "/h/.ssh/id_rsa_archer2",
        ));
        entries.push(entry(
            "SHA256:loose",
            "2026-11-30T10:00:00Z",
            "/h/.ssh/id_jasmin",
        ));
        entries.push(entry(
            "SHA256:pub",
            "2026-11-29T10:00:00Z",
            "/h/.ssh/id_ecdsa_jasmin.pub",
        ));
        let fps = |v: Vec<RetiredKey>| v.into_iter().map(|e| e.fingerprint).collect::<Vec<_>>();
        assert_eq!(
            fps(service_retired(
                entries.clone(),
                "jasmin",
                target,
                false,
                &[]
            )),
            [
                "SHA256:pub",
                "SHA256:j19",
                "SHA256:j18",
                "SHA256:j17",
                "SHA256:j16"
            ]
        );
        // With -f, only what was retired from that path.
        entries.push(entry(
            "SHA256:f",
            "2026-11-01T10:00:00Z",
            "/h/.ssh/id_ed25519_jasmin",
        ));
        assert_eq!(
            fps(service_retired(entries, "jasmin", target, true, &[])),
            ["SHA256:f"]
        );
    }
}
