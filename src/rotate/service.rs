//! `rotate`'s view of the SSH directory: the live key pairs that belong to a service
//! (`id_*_<service>`, or one named file), and what it takes to retire them.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::generate::public_path_for;
use crate::keyfile::{self, Format, Kdf, KeyAlgorithm, MAX_KEY_FILE_SIZE, PublicInfo, Recognised};
use crate::passphrase::Passphrase;
use crate::rotate::oldkey::{self, KdfLimits, Opens};
use crate::store::retired::RetiredKey;
use crate::sys::fsio::{self, Bounded};
use crate::text;

/// One live key of the service: a private key and/or its `.pub`.
pub struct OldKey {
    pub private: Option<PathBuf>,
    pub public: Option<PathBuf>,
    /// Its OpenSSH certificates (`<name>-cert.pub`): retired with it, since they certify the
    /// old key and not its successor.
    pub certificates: Vec<PathBuf>,
    /// Its public half, from the private file or the `.pub`.
    pub key: Option<PublicInfo>,
    /// What its successor inherits: the private file's format, the comment (the `.pub`'s first,
    /// as `ssh-keygen -l` prefers it), bcrypt rounds, and when the private file last changed.
    pub facts: KeyFacts,
    /// Files of the pair that are symbolic links, with the file each points to: the retired
    /// key stays there when the link is replaced.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// The private file's bytes, for the passphrase check; wiped on drop.
    private_bytes: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for OldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OldKey")
            .field("private", &self.private)
            .field("public", &self.public)
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl OldKey {
    /// The path that names this key: the private file, or the `.pub` when that is all there is.
    pub fn path(&self) -> &Path {
        self.private
            .as_deref()
            .or(self.public.as_deref())
            .unwrap_or(Path::new(""))
    }

    /// Every live file of the pair, and its certificates.
    pub fn files(&self) -> Vec<PathBuf> {
        self.private
            .iter()
            .chain(self.public.iter())
            .chain(self.certificates.iter())
            .cloned()
            .collect()
    }

    pub fn fingerprint(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.fingerprint())
    }

    /// Does `passphrase` open this key? (bounded; see [`oldkey`]).
    pub fn opens_with(&self, passphrase: &Passphrase, limits: &KdfLimits) -> Opens {
        match &self.private_bytes {
            Some(bytes) => oldkey::passphrase_opens(bytes, passphrase, limits),
            None if self.private.is_some() => {
                Opens::NotChecked("the old private key cannot be read".to_string())
            }
            None => Opens::NotChecked("only the old public key is left".to_string()),
        }
    }

    /// The retired-key record entry (the backup set is filled in when it exists). A key whose
    /// public half cannot be had without its passphrase (an encrypted PEM or PKCS#8 key with no
    /// `.pub`) is recorded by its file's SHA-256 instead, so that its copy is still found and
    /// checked against the next new passphrase; only a key with no readable file is not recorded.
    pub fn retired_record(&self, now: SystemTime) -> Option<RetiredKey> {
        let fingerprint = match (self.fingerprint(), &self.private_bytes) {
            (Some(fp), _) => fp.to_string(),
            (None, Some(bytes)) => crate::store::retired::file_id(bytes),
            (None, None) => return None,
        };
        Some(RetiredKey {
            fingerprint,
            retired_at: text::rfc3339_utc(now),
            set: String::new(),
            path: self.path().to_string_lossy().into_owned(),
        })
    }
}

/// What can be told about an old key without its passphrase.
#[derive(Debug, Clone, Default)]
pub struct KeyFacts {
    pub format: Option<Format>,
    /// The type, where the file states it without its public half (`BEGIN EC PRIVATE KEY`).
    pub algorithm: Option<KeyAlgorithm>,
    pub comment: Option<String>,
    pub rounds: Option<u32>,
    pub modified: Option<SystemTime>,
}

/// Is anything at `path`? "Could not look" is an error naming the path, never "no".
fn exists(path: &Path) -> io::Result<bool> {
    Ok(fsio::lstat(path)?.is_some())
}

/// A key file's bytes (wiped on drop), the public key it reveals, and its facts.
type KeyBytes = (Zeroizing<Vec<u8>>, Option<PublicInfo>, KeyFacts);

/// An I/O error that names the file (the message users see).
fn naming(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::sys::io_reason(&e)
            ),
        )
    }
}

/// The file's bytes and public key, if it is a readable regular file.
fn read_key(path: &Path) -> io::Result<Option<KeyBytes>> {
    match fsio::read_bounded(path, MAX_KEY_FILE_SIZE) {
        Ok(Bounded::Bytes(bytes)) => {
            let (public, mut facts) = match keyfile::recognise(&bytes) {
                Recognised::Key(k) => {
                    let rounds = match k.protection.as_ref().map(|p| &p.kdf) {
                        Some(Kdf::Bcrypt { rounds }) => Some(*rounds),
                        _ => None,
                    };
                    let facts = KeyFacts {
                        format: Some(k.format),
                        algorithm: k.algorithm(),
                        comment: k.comment.clone(),
                        rounds,
                        modified: None,
                    };
                    (k.public.clone(), facts)
                }
                _ => (None, KeyFacts::default()),
            };
            facts.modified = fsio::lstat(path)
                .ok()
                .flatten()
                .and_then(|m| m.modified().ok());
            Ok(Some((bytes, public, facts)))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(naming(path)(e)),
    }
}

/// The key whose private file is `private_path` (and `.pub` beside it), if either exists.
pub fn key_at(private_path: &Path) -> io::Result<Option<OldKey>> {
    let public_path = public_path_for(private_path);
    let private = exists(private_path)?.then(|| private_path.to_path_buf());
    let public = exists(&public_path)?.then_some(public_path);
    if private.is_none() && public.is_none() {
        return Ok(None);
    }
    let mut key = None;
    let mut private_bytes = None;
    let mut facts = KeyFacts::default();
    if let Some(path) = &private
        && let Some((bytes, info, private_facts)) = read_key(path)?
    {
        key = info;
        private_bytes = Some(bytes);
        facts = private_facts;
    }
    if let Some(path) = &public
        && let Some((_, info, public_facts)) = read_key(path)?
    {
        key = key.or(info);
        // `ssh-keygen -l` shows the .pub's comment; an encrypted OpenSSH key hides its own.
        facts.comment = public_facts.comment.or(facts.comment);
    }
    let mut certificate_path = private_path.as_os_str().to_os_string();
    certificate_path.push("-cert.pub");
    let certificate_path = PathBuf::from(certificate_path);
    let certificates: Vec<PathBuf> = exists(&certificate_path)?
        .then_some(certificate_path)
        .into_iter()
        .collect();
    let mut links = Vec::new();
    for path in private.iter().chain(public.iter()) {
        if fsio::lstat(path)?.is_some_and(|m| m.file_type().is_symlink()) {
            let to = std::fs::read_link(path).map_err(naming(path))?;
            let to = match to.is_absolute() {
                true => to,
                false => path.parent().unwrap_or(Path::new("")).join(to),
            };
            // Named as `ls` would find it: `../elsewhere/key` resolved.
            let to = std::fs::canonicalize(&to).unwrap_or(to);
            links.push((path.clone(), to));
        }
    }
    Ok(Some(OldKey {
        private,
        public,
        certificates,
        key,
        facts,
        links,
        private_bytes,
    }))
}

/// Every live key of `service`: files named `id_<anything>_<service>` (and their `.pub`) in
/// `ssh_dir`, sorted by name.
pub fn service_keys(ssh_dir: &Path, service: &str) -> io::Result<Vec<OldKey>> {
    let suffix = format!("_{service}");
    let mut privates: Vec<PathBuf> = Vec::new();
    let entries = match fsio::list_dir(ssh_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(naming(ssh_dir)(e)),
    };
    for entry in entries {
        let Some(name) = entry.name.to_str().map(str::to_string) else {
            continue;
        };
        let stem = name.strip_suffix(".pub").unwrap_or(&name);
        let matches =
            stem.starts_with("id_") && stem.ends_with(&suffix) && stem.len() > 3 + suffix.len();
        let is_dir = match entry.kind {
            fsio::Kind::Dir => true,
            fsio::Kind::Unknown => fsio::lstat(&entry.path)?.is_some_and(|m| m.is_dir()),
            _ => false,
        };
        if matches && !is_dir {
            let private = ssh_dir.join(stem);
            if !privates.contains(&private) {
                privates.push(private);
            }
        }
    }
    privates.sort();
    let mut keys = Vec::new();
    for private in privates {
        if let Some(key) = key_at(&private)? {
            keys.push(key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn finds_every_pair_of_the_service_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "id_rsa_jasmin",
            "id_rsa_jasmin.pub",
            "id_ecdsa_jasmin.pub",
            "id_ed25519_archer",
            "id_jasmin",
            "my_id_rsa_jasmin",
            "id_rsa_jasmin2",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        fs::create_dir(dir.path().join("id_dir_jasmin")).unwrap();
        let keys = service_keys(dir.path(), "jasmin").unwrap();
        let found: Vec<(Option<String>, Option<String>)> = keys
            .iter()
            .map(|k| {
                let name = |p: &Option<PathBuf>| {
                    p.as_ref()
                        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                };
                (name(&k.private), name(&k.public))
            })
            .collect();
        assert_eq!(
            found,
            [
                (None, Some("id_ecdsa_jasmin.pub".to_string())),
                (
                    Some("id_rsa_jasmin".to_string()),
                    Some("id_rsa_jasmin.pub".to_string())
                ),
            ]
        );
        assert!(
            service_keys(&dir.path().join("missing"), "jasmin")
                .unwrap()
                .is_empty()
        );
    }
}
