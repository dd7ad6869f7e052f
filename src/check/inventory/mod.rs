//! Scan an SSH directory: find every key file, pair private keys with their `.pub`, and keep what
//! cannot be read or parsed as findings. Never decrypts, never follows a file it cannot bound.
//!
//! Hostile contents are handled without hanging or reading unbounded data: special files are never
//! opened (and every open is non-blocking, so a file swapped for a FIFO after `stat` cannot hang us
//! either), files over [`MAX_KEY_FILE_SIZE`] are never read, and every read is capped.

mod pair;

pub use pair::agent_findings;
use pair::{mark_duplicates, mark_retired, pair_and_describe};

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::check::findings::{self, Code, Finding, KeyFacts, Mangling, Policy, Severity};
use crate::keyfile::certificate::CertInfo;
use crate::keyfile::{
    self, Format, Kdf, KeyAlgorithm, KeyFile, MAX_KEY_FILE_SIZE, Protection, PublicInfo, Recognised,
};
use crate::store::retired::{self, RetiredKey};
use crate::sys::fsio::{self, Bounded};
use crate::sys::{io_reason, unix_mode};
use ssh_key::HashAlg;
use ssh_key::public::KeyData;

/// Why the SSH directory itself could not be inventoried.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{} is not a directory", .path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read the SSH directory {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The record of retired keys exists but cannot be read: without it `check` could not say
    /// that a retired key is back in use.
    #[error("{source}")]
    Retired {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InventoryError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            InventoryError::NotADirectory { .. } => {
                "point --ssh-dir (or KEYROTATE_SSH_DIR) at your SSH directory, usually ~/.ssh"
                    .to_string()
            }
            InventoryError::Read { path, .. } => format!(
                "check that you own {} and can read it (`ls -ld {}`)",
                path.display(),
                crate::text::shell_path(path)
            ),
            InventoryError::Retired { path, .. } => format!(
                "check the file and the disk it is on (`ls -l {}`); keyrotate keeps its list of \
                 retired keys there",
                crate::text::shell_path(path)
            ),
        }
    }
}

/// Everything `check` knows about one SSH directory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub ssh_dir: PathBuf,
    pub keys: Vec<KeyEntry>,
    /// Findings about the directory as a whole (`insecure-ssh-dir`, `no-keys`).
    pub findings: Vec<Finding>,
    /// The keys `rotate` retired here (from `key_backup/RETIRED`).
    pub retired: Vec<RetiredKey>,
}

/// One key: a private key with its `.pub`, a `.pub` alone, or a file that should be a key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub path: PathBuf,
    pub public_path: Option<PathBuf>,
    pub format: Format,
    pub private: bool,
    pub algorithm: Option<KeyAlgorithm>,
    pub bits: Option<u32>,
    pub fingerprint: Option<String>,
    /// The public half, from the private file or else its `.pub`.
    pub public: Option<PublicInfo>,
    pub comment: Option<String>,
    pub protection: Option<Protection>,
    /// Unix permission bits (`None` on Windows).
    pub mode: Option<u32>,
    pub modified: SystemTime,
    pub age_days: u64,
    /// Where the file points, when it is a symbolic link.
    pub symlink_target: Option<PathBuf>,
    /// The OpenSSH certificates of this key (`<name>-cert.pub`); for a certificate whose key is
    /// not here (format `certificate`), the certificate itself.
    pub certificates: Vec<CertEntry>,
    pub findings: Vec<Finding>,
}

/// One OpenSSH certificate file.
#[derive(Debug, Clone)]
pub struct CertEntry {
    pub path: PathBuf,
    pub info: CertInfo,
}

impl KeyEntry {
    pub fn encrypted(&self) -> Option<bool> {
        self.protection.as_ref().map(|p| p.kdf != Kdf::None)
    }

    /// bcrypt rounds of an encrypted OpenSSH-format key.
    pub fn kdf_rounds(&self) -> Option<u32> {
        match self.protection.as_ref()?.kdf {
            Kdf::Bcrypt { rounds } => Some(rounds),
            _ => None,
        }
    }
}

/// Finding counts, as in the JSON `summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub keys: usize,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

impl Inventory {
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .chain(self.keys.iter().flat_map(|k| k.findings.iter()))
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            keys: self.keys.len(),
            ..Summary::default()
        };
        for finding in self.all_findings() {
            match finding.severity {
                Severity::Critical => summary.critical += 1,
                Severity::Warning => summary.warning += 1,
                Severity::Info => summary.info += 1,
            }
        }
        summary
    }

    /// True when some finding is a warning or critical: `check` exits 1.
    pub fn has_problems(&self) -> bool {
        self.all_findings().any(|f| f.severity.is_problem())
    }
}

/// Names that live in an SSH directory but are not keys.
fn is_excluded_name(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    matches!(name, b"config" | b"environment" | b"rc")
        || name.starts_with(b"known_hosts")
        || name.starts_with(b"authorized_keys")
        || name.starts_with(b"authorized_principals")
        || crate::layout::is_own_name(name)
}

/// Names that say "key" even when the contents do not.
fn is_key_like_name(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b"id_") || name.ends_with(b".pub") || name.ends_with(b".ppk")
}

/// What one directory entry turned out to be.
#[derive(Debug)]
enum Content {
    Key(Box<KeyFile>),
    /// Announces itself as a key (armour or name) but cannot be parsed.
    Broken(keyfile::Broken),
    /// An OpenSSH certificate: attached to the key it stands beside.
    Certificate(Box<CertInfo>),
    /// Could not be read at all (special file, too large, permission denied, dangling link).
    Unreadable(Unreadable),
}

/// Why a file could not be read, and what the user should do about it.
#[derive(Debug)]
struct Unreadable {
    reason: String,
    next_step: NextStep,
}

#[derive(Debug, Clone, Copy)]
enum NextStep {
    /// Special or oversized: almost certainly not a key.
    MoveAway,
    /// Permission or I/O trouble.
    CheckPermissions,
    /// A symbolic link that leads nowhere.
    FixLink,
}

impl Unreadable {
    fn new(reason: String, next_step: NextStep) -> Self {
        Unreadable { reason, next_step }
    }
}

#[derive(Debug)]
struct Scanned {
    name: OsString,
    path: PathBuf,
    /// Metadata of what the path resolves to; the link's own when it dangles; `None` when not
    /// even that could be read (an I/O error: the entry is reported, never skipped).
    meta: Option<Metadata>,
    symlink_target: Option<PathBuf>,
    content: Content,
    /// A byte order mark or CR LF endings, which OpenSSH may refuse where keyrotate reads on.
    mangling: Mangling,
}

impl Scanned {
    fn is_pub_name(&self) -> bool {
        self.name.as_encoded_bytes().ends_with(b".pub")
    }

    /// Parsed as a public key, or a `.pub`-named file that failed.
    fn is_public_side(&self) -> bool {
        match &self.content {
            Content::Key(k) => !k.private,
            Content::Broken(b) => {
                b.private == Some(false) || (b.private.is_none() && self.is_pub_name())
            }
            Content::Unreadable(_) => self.is_pub_name(),
            Content::Certificate(_) => false,
        }
    }
}

/// Inventory `ssh_dir`. A missing directory is not an error: it yields a `no-keys` finding.
pub fn scan(ssh_dir: &Path, policy: &Policy, now: SystemTime) -> Result<Inventory, InventoryError> {
    let read_err = |source: io::Error| InventoryError::Read {
        path: ssh_dir.to_path_buf(),
        source,
    };
    let mut inventory = Inventory {
        ssh_dir: ssh_dir.to_path_buf(),
        keys: Vec::new(),
        findings: Vec::new(),
        retired: Vec::new(),
    };
    let dir_meta = match fs::metadata(ssh_dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            inventory.findings.push(Finding::new(
                Code::NoKeys,
                format!(
                    "There is no SSH directory at {}, so there are no keys to check. Create a key \
                     with `keyrotate generate`.",
                    ssh_dir.display()
                ),
            ));
            return Ok(inventory);
        }
        Err(e) => return Err(read_err(e)),
    };
    if !dir_meta.is_dir() {
        return Err(InventoryError::NotADirectory {
            path: ssh_dir.to_path_buf(),
        });
    }
    if let Some(uid) = foreign_owner(&dir_meta, &dir_meta) {
        inventory.findings.push(Finding::new(
            Code::InsecureSshDir,
            format!(
                "The SSH directory {} belongs to another user (uid {uid}): they could replace \
                 your keys or your config, and sshd (StrictModes) refuses the authorized_keys \
                 in it. Ask an administrator to give it back to you (with chown).",
                ssh_dir.display(),
            ),
        ));
    }
    if let Some(mode) = unix_mode(&dir_meta).filter(|m| m & 0o022 != 0) {
        inventory.findings.push(Finding::new(
            Code::InsecureSshDir,
            format!(
                "The SSH directory {} can be written by other users (mode {:04o}): they could \
                 replace your keys or your config. Fix it with `chmod 700 {}`.",
                ssh_dir.display(),
                mode & 0o7777,
                crate::text::shell_path(ssh_dir)
            ),
        ));
    }

    inventory
        .findings
        .extend(config_finding(ssh_dir, &dir_meta));

    let mut names = Vec::new();
    for entry in fsio::list_dir(ssh_dir).map_err(read_err)? {
        if !is_excluded_name(&entry.name) {
            // The type comes with the directory entry on most filesystems: no syscall.
            let regular = entry.kind == fsio::Kind::File;
            names.push((entry.name, entry.path, regular));
        }
    }
    // Reading and parsing is most of the work: spread it over the cores.
    let mut scanned: Vec<Scanned> = names
        .into_par_iter()
        .filter_map(|(name, path, regular)| scan_entry(name, path, regular))
        .collect();
    scanned.sort_by(|a, b| a.name.cmp(&b.name));

    inventory.keys = pair_and_describe(scanned, policy, now);
    mark_duplicates(&mut inventory.keys);
    inventory.retired = retired::read(ssh_dir).map_err(|source| InventoryError::Retired {
        path: retired::retired_path(ssh_dir),
        source,
    })?;
    mark_retired(&mut inventory.keys, &inventory.retired);
    for key in &mut inventory.keys {
        key.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    }
    if inventory.keys.is_empty() {
        inventory.findings.push(Finding::new(
            Code::NoKeys,
            format!(
                "No SSH keys found in {}. Create one with `keyrotate generate`.",
                ssh_dir.display()
            ),
        ));
    }
    Ok(inventory)
}

/// The owner of `meta` when it is neither root nor the user the SSH directory is for: the one
/// running keyrotate, or, for root checking someone else's directory, the directory's owner.
/// OpenSSH accepts a user config (`readconf.c`) and sshd each directory up to the home
/// (`misc.c`, `safe_path`) only when owned by root or that user.
#[cfg(unix)]
fn foreign_owner(meta: &Metadata, dir_meta: &Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let me = fsio::current_uid();
    let user = if me == 0 { dir_meta.uid() } else { me };
    (meta.uid() != 0 && meta.uid() != user).then_some(meta.uid())
}

#[cfg(not(unix))]
fn foreign_owner(_meta: &Metadata, _dir_meta: &Metadata) -> Option<u32> {
    None
}

/// `insecure-config`: ssh stops with "Bad owner or permissions on ~/.ssh/config" when its user
/// config is writable by group or others or owned by another user (`readconf.c`,
/// `read_config_file_depth` with `SSHCONF_CHECKPERM`; it follows a symlink, as we do). A config
/// that cannot be looked at is left alone, as ssh leaves a config it cannot open.
fn config_finding(ssh_dir: &Path, dir_meta: &Metadata) -> Option<Finding> {
    let path = ssh_dir.join("config");
    let meta = fs::metadata(&path).ok().filter(|m| m.is_file())?;
    let quoted = crate::text::shell_path(&path);
    let danger = "ssh stops with \"Bad owner or permissions\" instead of connecting, and whoever \
                  can write it could make your ssh run their commands (ProxyCommand, \
                  LocalCommand, Match exec); other SSH clients read it without this check";
    if let Some(uid) = foreign_owner(&meta, dir_meta) {
        return Some(Finding::new(
            Code::InsecureConfig,
            format!(
                "Your ssh config {} belongs to another user (uid {uid}): {danger}. Read it for \
                 lines you did not write, then replace it with a copy you own: `cp {quoted} \
                 {quoted}.new && chmod 600 {quoted}.new && mv {quoted}.new {quoted}`.",
                path.display()
            ),
        ));
    }
    let mode = unix_mode(&meta).filter(|m| m & 0o022 != 0)?;
    Some(Finding::new(
        Code::InsecureConfig,
        format!(
            "Your ssh config {} can be written by other users (mode {:04o}): {danger}. Read it \
             for lines you did not write, then fix it with `chmod 600 {quoted}`.",
            path.display(),
            mode & 0o7777
        ),
    ))
}

/// Look at one directory entry; `None` when it is not a key and not pretending to be one.
fn scan_entry(name: OsString, path: PathBuf, regular: bool) -> Option<Scanned> {
    if regular {
        // The common case, in one open and one fstat. Anything unexpected (the file changed
        // type meanwhile, say) falls through to the careful path below.
        if let Ok((bounded, meta)) = fsio::read_bounded_with_metadata(&path, MAX_KEY_FILE_SIZE)
            && meta.is_file()
        {
            let (content, mangling) = content_of(&name, bounded)?;
            return Some(Scanned {
                name,
                path,
                meta: Some(meta),
                symlink_target: None,
                content,
                mangling,
            });
        }
    }
    let unreadable =
        |meta: Option<Metadata>, target: Option<PathBuf>, reason: String, next: NextStep| {
            Some(Scanned {
                name: name.clone(),
                path: path.clone(),
                meta,
                symlink_target: target,
                content: Content::Unreadable(Unreadable::new(reason, next)),
                mangling: Mangling::default(),
            })
        };
    // Gone since the listing: nothing to report. Any other error is reported, never skipped:
    // "could not look" is not "absent".
    let lmeta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            let reason = format!("it cannot be examined ({})", io_reason(&e));
            return unreadable(None, None, reason, NextStep::CheckPermissions);
        }
    };
    let symlink_target = match lmeta.file_type().is_symlink() {
        false => None,
        true => match fs::read_link(&path) {
            Ok(target) => Some(target),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                let reason = format!(
                    "it is a symbolic link that cannot be read ({})",
                    io_reason(&e)
                );
                return unreadable(Some(lmeta), None, reason, NextStep::FixLink);
            }
        },
    };
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) => {
            let reason = match &symlink_target {
                Some(t) if e.kind() == io::ErrorKind::NotFound => format!(
                    "it is a symbolic link to {}, which does not exist",
                    crate::text::sanitize(&t.to_string_lossy())
                ),
                Some(t) => format!(
                    "it is a symbolic link to {} that cannot be followed ({})",
                    crate::text::sanitize(&t.to_string_lossy()),
                    io_reason(&e)
                ),
                None => format!("it cannot be examined ({})", io_reason(&e)),
            };
            let next = if symlink_target.is_some() {
                NextStep::FixLink
            } else {
                NextStep::CheckPermissions
            };
            return unreadable(Some(lmeta), symlink_target, reason, next);
        }
    };
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return None;
    }
    if !file_type.is_file() {
        let kind = special_kind(&meta);
        // ssh's ControlMaster sockets often live here; a socket is only news if it is named as a key.
        if kind == "a socket" && !is_key_like_name(&name) {
            return None;
        }
        return unreadable(
            Some(meta),
            symlink_target,
            format!("it is {kind}, not a key file, so keyrotate did not open it"),
            NextStep::MoveAway,
        );
    }
    if meta.len() > MAX_KEY_FILE_SIZE {
        let reason = too_large(meta.len());
        return unreadable(Some(meta), symlink_target, reason, NextStep::MoveAway);
    }
    let (content, mangling) = match fsio::read_bounded(&path, MAX_KEY_FILE_SIZE) {
        Ok(bounded) => content_of(&name, bounded)?,
        Err(e) => (
            Content::Unreadable(Unreadable::new(
                format!("it cannot be read ({})", io_reason(&e)),
                NextStep::CheckPermissions,
            )),
            Mangling::default(),
        ),
    };
    Some(Scanned {
        name,
        path,
        meta: Some(meta),
        symlink_target,
        content,
        mangling,
    })
}

/// What a file's contents make it, and how they were mangled in transit; `None` when it is not
/// a key and not named like one.
fn content_of(name: &OsStr, bounded: Bounded) -> Option<(Content, Mangling)> {
    let mangling = match &bounded {
        Bounded::Bytes(bytes) => Mangling::of(bytes),
        _ => Mangling::default(),
    };
    let content = match bounded {
        Bounded::Bytes(bytes) => match keyfile::recognise(&bytes) {
            Recognised::Key(key) => Content::Key(key),
            Recognised::Broken(broken) => Content::Broken(broken),
            Recognised::Certificate(cert) => Content::Certificate(cert),
            Recognised::NotAKey if is_key_like_name(name) => Content::Broken(keyfile::Broken {
                format: Format::Unknown,
                private: None,
                encrypted: None,
                reason: "its contents are not in any SSH key format".to_string(),
            }),
            Recognised::NotAKey => return None,
        },
        Bounded::NotRegular => Content::Unreadable(Unreadable::new(
            "it stopped being a regular file while keyrotate looked at it".to_string(),
            NextStep::MoveAway,
        )),
        Bounded::TooLarge(len) => {
            Content::Unreadable(Unreadable::new(too_large(len), NextStep::MoveAway))
        }
    };
    Some((content, mangling))
}

fn too_large(len: u64) -> String {
    let mib = len as f64 / (1024.0 * 1024.0);
    let size = if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    };
    format!("it is {size}, far larger than any key file, so keyrotate did not read it")
}

#[cfg(unix)]
fn special_kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_meta: &Metadata) -> &'static str {
    "a special file"
}

/// Windows: who else the access list of a private key file lets read it; an access list that
/// cannot be read is reported as such (could not look is not "nobody"). Unix: empty, since the
/// mode says it.
fn other_readers(path: &Path, private: bool) -> Vec<String> {
    #[cfg(windows)]
    if private {
        return crate::sys::winacl::other_readers(path).unwrap_or_else(|e| {
            vec![format!(
                "anyone (its access list cannot be read: {})",
                io_reason(&e)
            )]
        });
    }
    let _ = (path, private);
    Vec::new()
}

fn age_days(modified: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(modified)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_and_key_like_names() {
        for name in [
            "config",
            "known_hosts",
            "known_hosts.old",
            "authorized_keys2",
            ".keyrotate.lock",
        ] {
            assert!(is_excluded_name(OsStr::new(name)), "{name}");
        }
        for name in ["id_rsa", "config.bak", "mykey"] {
            assert!(!is_excluded_name(OsStr::new(name)), "{name}");
        }
        assert!(is_key_like_name(OsStr::new("id_x")));
        assert!(is_key_like_name(OsStr::new("work.pub")));
        assert!(is_key_like_name(OsStr::new("putty.ppk")));
        assert!(!is_key_like_name(OsStr::new("notes.txt")));
    }

    #[test]
    fn age_is_whole_days_and_never_negative() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10 * 86_400);
        assert_eq!(age_days(SystemTime::UNIX_EPOCH, now), 10);
        assert_eq!(age_days(now + std::time::Duration::from_secs(5), now), 0);
        let almost = now - std::time::Duration::from_secs(86_399);
        assert_eq!(age_days(almost, now), 0);
    }

    #[test]
    fn io_reason_drops_os_error_numbers() {
        let e = io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&e), "permission denied");
    }
}
