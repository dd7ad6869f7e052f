//! The successor rule: a rotated key's replacement keeps what the user had (type, size, format
//! family, bcrypt rounds, comment) unless told otherwise, and keeps its file name unless the
//! name states the old type (`id_<type>`, `id_<type>_<service>`) and the type changes.

use std::path::{Path, PathBuf};

use super::OldKey;
use crate::generate::{self, KeyFormat, KeySpec, KeyType, MAX_ROUNDS};
use crate::keyfile::{Format, KeyAlgorithm};
use crate::text::sanitize;

/// What the command line asked for (`None`: inherit from the current key).
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub key_type: Option<KeyType>,
    pub bits: Option<u32>,
    pub format: Option<KeyFormat>,
    pub rounds: Option<u32>,
    pub comment: Option<String>,
    /// The service profile's defaults, for a key with no current key to inherit from (else RSA,
    /// OpenSSH).
    pub default_type: Option<KeyType>,
    pub default_format: Option<KeyFormat>,
}

/// The new key and where it goes.
#[derive(Debug, Clone)]
pub struct Successor {
    pub spec: KeySpec,
    pub target: PathBuf,
    /// What was not kept, and why (printed as notes).
    pub notes: Vec<String>,
}

/// The type tokens OpenSSH's default file names use (`id_ed25519_sk`), longest first.
const NAME_TYPES: [&str; 6] = ["ed25519_sk", "ecdsa_sk", "ed25519", "ecdsa", "rsa", "dsa"];

/// The key a successor inherits from: among the old keys, the most recently modified one with a
/// private file; else the first (a lone `.pub` of a lost key still says what it was).
pub fn current(old: &[OldKey]) -> Option<&OldKey> {
    old.iter()
        .filter(|k| k.private.is_some())
        .max_by_key(|k| k.facts.modified)
        .or_else(|| old.first())
}

/// The successor of `old` (the service's keys, or the pair at `-f file`).
pub fn successor(
    ssh_dir: &Path,
    service: &str,
    file: Option<&Path>,
    old: &[OldKey],
    wanted: &Wanted,
    default_comment: impl FnOnce() -> String,
) -> crate::Result<Successor> {
    let mut notes = Vec::new();
    let cur = current(old);
    let shown = |k: &OldKey| sanitize(&k.path().to_string_lossy());
    // Type and size.
    // The type from the public half, else from what the file states (an encrypted SEC1 key
    // without its .pub still says `EC PRIVATE KEY`); the size only from the public half.
    let inherited = cur.and_then(|k| {
        let algorithm = k
            .key
            .as_ref()
            .and_then(|i| i.algorithm)
            .or(k.facts.algorithm);
        let bits = k.key.as_ref().and_then(|i| i.bits);
        (k.key.is_some() || algorithm.is_some()).then_some((k, algorithm, bits))
    });
    let unknown_size = |k: &OldKey, what: &str| {
        format!(
            "the size of {} cannot be read without its passphrase (and there is no .pub \
             beside it): the new key is {what} (choose with -b)",
            shown(k)
        )
    };
    let (key_type, bits) = match (wanted.key_type, inherited) {
        (Some(KeyType::Ed25519), _) => (KeyType::Ed25519, wanted.bits),
        (Some(t), Some((_, Some(a), bits))) if same_type(t, a) => (t, wanted.bits.or(bits)),
        (Some(t), _) => (t, wanted.bits),
        (None, Some((k, Some(a), bits))) => match a {
            KeyAlgorithm::Ed25519 => (KeyType::Ed25519, wanted.bits),
            KeyAlgorithm::Ecdsa => {
                if bits.is_none() && wanted.bits.is_none() {
                    notes.push(unknown_size(k, "ECDSA 521"));
                }
                (KeyType::Ecdsa, wanted.bits.or(bits))
            }
            KeyAlgorithm::Rsa if bits.is_none() => {
                if wanted.bits.is_none() {
                    notes.push(unknown_size(k, "RSA 4096"));
                }
                (KeyType::Rsa, wanted.bits)
            }
            KeyAlgorithm::Rsa => match bits {
                Some(b) if wanted.bits.is_some() || (2048..=16384).contains(&b) => {
                    (KeyType::Rsa, wanted.bits.or(Some(b)))
                }
                _ => {
                    notes.push(format!(
                        "{} is RSA {}, which keyrotate does not make: the new key is RSA {} \
                         (choose with -t and -b)",
                        shown(k),
                        bits.map(|b| format!("{b}-bit")).unwrap_or_default(),
                        generate::DEFAULT_RSA_BITS
                    ));
                    (KeyType::Rsa, None)
                }
            },
            KeyAlgorithm::Dsa => {
                notes.push(format!(
                    "{} is a DSA key, which OpenSSH no longer accepts: the new key is RSA {} \
                     (choose with -t)",
                    shown(k),
                    generate::DEFAULT_RSA_BITS
                ));
                (KeyType::Rsa, None)
            }
            KeyAlgorithm::Ed25519Sk | KeyAlgorithm::EcdsaSk => {
                return Err(crate::Error::refused(
                    format!(
                        "{} is a FIDO security-key ({}) key: keyrotate cannot make its successor \
                         on the token",
                        shown(k),
                        a.as_str()
                    ),
                    "make the new security key with `ssh-keygen -t ed25519-sk`, or give -t ed25519 \
                     (or rsa, ecdsa) to replace it with a passphrase-protected key file",
                ));
            }
        },
        (None, Some((k, _, _))) => {
            notes.push(format!(
                "the type of {} is not one keyrotate makes: the new key is RSA {} (choose with -t)",
                shown(k),
                generate::DEFAULT_RSA_BITS
            ));
            (KeyType::Rsa, wanted.bits)
        }
        (None, None) => {
            if let Some(k) = cur {
                notes.push(format!(
                    "{} cannot be read, so its type is unknown: the new key is RSA {} (choose \
                     with -t)",
                    shown(k),
                    generate::DEFAULT_RSA_BITS
                ));
                (KeyType::Rsa, wanted.bits)
            } else {
                (wanted.default_type.unwrap_or(KeyType::Rsa), wanted.bits)
            }
        }
    };
    // Format family, rounds, comment.
    let old_format = cur.and_then(|k| k.facts.format);
    let format = match (wanted.format, old_format) {
        (Some(f), _) => f,
        (None, Some(Format::Pem | Format::Pkcs8)) if key_type == KeyType::Ed25519 => {
            if let Some(k) = cur {
                notes.push(format!(
                    "{} is in {} format, which OpenSSH never writes for Ed25519: the new key is in \
                     OpenSSH format",
                    shown(k),
                    old_format.map(Format::describe).unwrap_or("PEM")
                ));
            }
            KeyFormat::Openssh
        }
        (None, Some(Format::Pkcs8)) => {
            if let Some(k) = cur {
                notes.push(format!(
                    "{} is in PKCS#8 format, which keyrotate does not write: the new key is in \
                     OpenSSH format (legacy PEM would protect it with a single round of MD5; give \
                     --format pem if a tool needs PEM)",
                    shown(k)
                ));
            }
            KeyFormat::Openssh
        }
        (None, Some(Format::Pem)) => KeyFormat::Pem,
        (None, Some(Format::Putty)) => KeyFormat::Putty,
        (None, None) if cur.is_none() => wanted.default_format.unwrap_or(KeyFormat::Openssh),
        (None, _) => KeyFormat::Openssh,
    };
    let rounds = match (wanted.rounds, format) {
        (Some(r), _) => Some(r),
        (None, KeyFormat::Openssh) => cur
            .and_then(|k| k.facts.rounds)
            .filter(|r| (generate::DEFAULT_ROUNDS..=MAX_ROUNDS).contains(r)),
        (None, _) => None,
    };
    let comment = match &wanted.comment {
        Some(c) => c.clone(),
        None => cur
            .and_then(|k| k.facts.comment.clone())
            .filter(|c| !c.is_empty() && !c.chars().any(char::is_control))
            .unwrap_or_else(default_comment),
    };
    let spec = KeySpec::new(key_type, bits, format, rounds, comment)?;
    let target = target(ssh_dir, service, file, cur, key_type, &spec, old)?;
    Ok(Successor {
        spec,
        target,
        notes,
    })
}

fn same_type(t: KeyType, a: KeyAlgorithm) -> bool {
    matches!(
        (t, a),
        (KeyType::Rsa, KeyAlgorithm::Rsa)
            | (KeyType::Ed25519, KeyAlgorithm::Ed25519)
            | (KeyType::Ecdsa, KeyAlgorithm::Ecdsa)
    )
}

/// The new key's path: `-f`, the current key's, or `id_<type>_<service>`; renamed when the name
/// states another type than the new key's.
fn target(
    ssh_dir: &Path,
    service: &str,
    file: Option<&Path>,
    cur: Option<&OldKey>,
    key_type: KeyType,
    spec: &KeySpec,
    old: &[OldKey],
) -> crate::Result<PathBuf> {
    let named = match (file, cur) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(k)) => match &k.private {
            Some(p) => p.clone(),
            // A lone `.pub`: the private key it belonged to.
            None => k.path().with_extension(""),
        },
        (None, None) => return Ok(ssh_dir.join(spec.default_file_name(service))),
    };
    let Some(renamed) = renamed(&named, key_type) else {
        return Ok(named);
    };
    // The new name must not take over a live key that is not being rotated.
    let ours = |p: &Path| old.iter().any(|k| k.files().iter().any(|f| f == p));
    for path in [renamed.clone(), generate::public_path_for(&renamed)] {
        if !ours(&path) && crate::sys::fsio::lstat(&path)?.is_some() {
            return Err(crate::Error::refused(
                format!(
                    "the new {} key would be named {} after its type, but that file holds \
                     another key",
                    key_type.display_name(),
                    sanitize(&path.to_string_lossy())
                ),
                format!(
                    "keep the old type (leave out -t), or rotate that key with `keyrotate rotate \
                     -f {}`, or move it aside first",
                    crate::text::shell_path(&renamed)
                ),
            ));
        }
    }
    Ok(renamed)
}

/// `id_rsa_jasmin` → `id_ecdsa_jasmin` for a new ECDSA key; `None` when the name states no type
/// or already the right one.
pub fn renamed(path: &Path, key_type: KeyType) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("id_")?;
    let (token, tail) = NAME_TYPES.iter().find_map(|t| {
        let tail = rest.strip_prefix(t)?;
        (tail.is_empty() || tail.starts_with(['_', '.'])).then_some((*t, tail))
    })?;
    if token == key_type.as_str() {
        return None;
    }
    Some(path.with_file_name(format!("id_{}{tail}", key_type.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_type_only_when_they_state_it() {
        let r = |name: &str, t| renamed(Path::new(name), t).map(|p| p.display().to_string());
        assert_eq!(
            r("/h/.ssh/id_rsa", KeyType::Ecdsa).as_deref(),
            Some("/h/.ssh/id_ecdsa")
        );
        assert_eq!(
            r("/h/.ssh/id_rsa_jasmin", KeyType::Ed25519).as_deref(),
            Some("/h/.ssh/id_ed25519_jasmin")
        );
        assert_eq!(
            r("/h/.ssh/id_ed25519_sk_work", KeyType::Ed25519).as_deref(),
            Some("/h/.ssh/id_ed25519_work")
        );
        assert_eq!(
            r("/h/id_dsa.ppk", KeyType::Rsa).as_deref(),
            Some("/h/id_rsa.ppk")
        );
        assert_eq!(r("/h/.ssh/id_rsa", KeyType::Rsa), None);
        assert_eq!(r("/h/.ssh/id_rsalab", KeyType::Ecdsa), None);
        assert_eq!(r("/h/.ssh/work_key", KeyType::Ecdsa), None);
        assert_eq!(r("/h/.ssh/id_work_jasmin", KeyType::Ecdsa), None);
        assert_eq!(r("/h/.ssh/id_ecdsa_jasmin", KeyType::Ecdsa), None);
    }
}
