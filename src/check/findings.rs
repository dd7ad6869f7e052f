//! Policy: a key's facts in, findings out. Pure functions, table-tested; no I/O.

use std::fmt;
use std::path::Path;

use crate::keyfile::{Format, Kdf, KeyAlgorithm};
use crate::text::shell_path;

/// How bad a finding is. `warning` and `critical` make `check` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// True for the severities that make `check` fail.
    pub fn is_problem(self) -> bool {
        self >= Severity::Warning
    }
}

/// The stable finding codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    UnencryptedPrivateKey,
    InsecurePermissions,
    InsecureSshDir,
    WeakAlgorithm,
    WeakKeySize,
    WeakKdf,
    LegacyFormat,
    OldKey,
    PublicKeyMismatch,
    MissingPublicKey,
    UnreadableKey,
    RetiredKey,
    DuplicateKey,
    NoKeys,
}

impl Code {
    pub const ALL: [Code; 14] = [
        Code::UnencryptedPrivateKey,
        Code::InsecurePermissions,
        Code::InsecureSshDir,
        Code::WeakAlgorithm,
        Code::WeakKeySize,
        Code::WeakKdf,
        Code::LegacyFormat,
        Code::OldKey,
        Code::PublicKeyMismatch,
        Code::MissingPublicKey,
        Code::UnreadableKey,
        Code::RetiredKey,
        Code::DuplicateKey,
        Code::NoKeys,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnencryptedPrivateKey => "unencrypted-private-key",
            Code::InsecurePermissions => "insecure-permissions",
            Code::InsecureSshDir => "insecure-ssh-dir",
            Code::WeakAlgorithm => "weak-algorithm",
            Code::WeakKeySize => "weak-key-size",
            Code::WeakKdf => "weak-kdf",
            Code::LegacyFormat => "legacy-format",
            Code::OldKey => "old-key",
            Code::PublicKeyMismatch => "public-key-mismatch",
            Code::MissingPublicKey => "missing-public-key",
            Code::UnreadableKey => "unreadable-key",
            Code::RetiredKey => "retired-key",
            Code::DuplicateKey => "duplicate-key",
            Code::NoKeys => "no-keys",
        }
    }

    /// Each code has one severity, fixed by the contract.
    pub fn severity(self) -> Severity {
        match self {
            Code::UnencryptedPrivateKey
            | Code::InsecurePermissions
            | Code::WeakAlgorithm
            | Code::PublicKeyMismatch
            | Code::RetiredKey => Severity::Critical,
            Code::InsecureSshDir
            | Code::WeakKeySize
            | Code::WeakKdf
            | Code::OldKey
            | Code::UnreadableKey => Severity::Warning,
            Code::LegacyFormat | Code::MissingPublicKey | Code::DuplicateKey | Code::NoKeys => {
                Severity::Info
            }
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing `check` has to say: what is wrong, why it matters, what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.severity(),
            message: message.into(),
        }
    }
}

/// Facts about one inventory entry that the per-key policy looks at.
#[derive(Debug, Clone)]
pub struct KeyFacts<'a> {
    pub path: &'a Path,
    pub format: Format,
    /// The file holds (or its armour says it holds) a private key.
    pub private: bool,
    /// The private key parsed; false for files that only announce themselves as keys.
    pub parsed: bool,
    pub algorithm: Option<KeyAlgorithm>,
    pub bits: Option<u32>,
    pub kdf: Option<&'a Kdf>,
    /// Unix permission bits of the file; `None` where there are none (Windows).
    pub mode: Option<u32>,
    /// Windows: accounts other than the owner, SYSTEM and Administrators that the file's access
    /// list lets read it (always empty on Unix, where `mode` says it).
    pub other_readers: &'a [String],
    pub age_days: u64,
    /// The `.pub` path, when the pair has one.
    pub public_path: Option<&'a Path>,
}

/// The policy's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_age_days: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_age_days: 365 }
    }
}

fn rotate_hint(path: &Path) -> String {
    format!("keyrotate rotate -f {}", shell_path(path))
}

/// The findings that depend on one key alone.
pub fn key_findings(facts: &KeyFacts<'_>, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let path = facts.path;
    if facts.private {
        if let Some(mode) = facts.mode.filter(|m| m & 0o077 != 0) {
            out.push(Finding::new(
                Code::InsecurePermissions,
                format!(
                    "Other users of this computer can access this private key (mode {mode:04o}), \
                     and OpenSSH refuses to use a key like that. Fix it with `chmod 600 {}`; if \
                     someone may already have copied it, replace it with `{}`.",
                    shell_path(path),
                    rotate_hint(path)
                ),
            ));
        }
        if !facts.other_readers.is_empty() {
            out.push(Finding::new(
                Code::InsecurePermissions,
                format!(
                    "Other users of this computer can read this private key (its access list \
                     lets {} read it), and OpenSSH for Windows refuses to use a key like that. \
                     Fix it (in cmd) with `icacls {} /inheritance:r /grant:r \"%USERNAME%:F\"`; if someone \
                     may already have copied it, replace it with `{}`.",
                    facts.other_readers.join(", "),
                    shell_path(path),
                    rotate_hint(path)
                ),
            ));
        }
        if facts.parsed && facts.kdf == Some(&Kdf::None) {
            out.push(Finding::new(
                Code::UnencryptedPrivateKey,
                format!(
                    "This private key has no passphrase: anyone who gets a copy of the file (a \
                     backup, a shared disk, a lost laptop) can log in as you. Replace it with a \
                     passphrase-protected key: `{}`.",
                    rotate_hint(path)
                ),
            ));
        }
        if let Some(Kdf::Bcrypt { rounds }) = facts.kdf
            && *rounds < 16
        {
            out.push(Finding::new(
                Code::WeakKdf,
                format!(
                    "The passphrase is stretched with only {rounds} bcrypt rounds (OpenSSH's \
                     default is 16), so a stolen copy is cheaper to crack. Replace it with `{}`.",
                    rotate_hint(path)
                ),
            ));
        }
        if facts.format == Format::Pem {
            let kdf_note = if facts.kdf == Some(&Kdf::PemMd5) {
                " Its passphrase protection is the old PEM scheme, a single round of MD5, which \
                 makes a stolen copy fast to crack."
            } else {
                ""
            };
            out.push(Finding::new(
                Code::LegacyFormat,
                format!(
                    "This key is in the legacy PEM format rather than OpenSSH's own \
                     format.{kdf_note} Keep it only if a tool needs PEM (JASMIN's NX desktop does); \
                     otherwise replace it with `{}`.",
                    rotate_hint(path)
                ),
            ));
        }
        if facts.age_days > policy.max_age_days {
            out.push(Finding::new(
                Code::OldKey,
                format!(
                    "This key was last changed {} days ago, more than the {}-day limit: the older a \
                     key, the more copies of it may have leaked. Replace it with `{}`.",
                    facts.age_days,
                    policy.max_age_days,
                    rotate_hint(path)
                ),
            ));
        }
        if facts.parsed && facts.public_path.is_none() && facts.format != Format::Putty {
            out.push(Finding::new(
                Code::MissingPublicKey,
                format!(
                    "There is no {}.pub beside this private key; you need it to upload the key. \
                     Recreate it with `ssh-keygen -y -f {} > {}.pub`.",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    shell_path(path),
                    shell_path(path)
                ),
            ));
        }
    }
    out.extend(algorithm_findings(facts));
    out
}

fn algorithm_findings(facts: &KeyFacts<'_>) -> Option<Finding> {
    let path = facts.path;
    match (facts.algorithm?, facts.bits) {
        (KeyAlgorithm::Dsa, _) => Some(Finding::new(
            Code::WeakAlgorithm,
            format!(
                "DSA keys are no longer safe: OpenSSH turned them off by default in version 7.0 \
                 and recent releases have removed them, and services such as JASMIN refuse them. \
                 Replace it with `{}`.",
                rotate_hint(path)
            ),
        )),
        (KeyAlgorithm::Rsa, Some(bits)) if bits < 2048 => Some(Finding::new(
            Code::WeakAlgorithm,
            format!(
                "A {bits}-bit RSA key is too short to be safe and many servers refuse it. Replace \
                 it with `{}`.",
                rotate_hint(path)
            ),
        )),
        (KeyAlgorithm::Rsa, Some(bits)) if bits < 3072 => Some(Finding::new(
            Code::WeakKeySize,
            format!(
                "A {bits}-bit RSA key is below the 3072 bits now recommended. Replace it with a \
                 stronger key when convenient: `{}`.",
                rotate_hint(path)
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(path: &Path) -> KeyFacts<'_> {
        KeyFacts {
            path,
            format: Format::Openssh,
            private: true,
            parsed: true,
            algorithm: Some(KeyAlgorithm::Ed25519),
            bits: Some(256),
            kdf: Some(&Kdf::Bcrypt { rounds: 16 }),
            mode: Some(0o600),
            other_readers: &[],
            age_days: 10,
            public_path: Some(Path::new("/h/.ssh/id_ed25519.pub")),
        }
    }

    fn codes(f: &KeyFacts<'_>) -> Vec<&'static str> {
        key_findings(f, &Policy::default())
            .iter()
            .map(|x| x.code.as_str())
            .collect()
    }

    #[test]
    fn healthy_key_has_no_findings() {
        let p = Path::new("/h/.ssh/id_ed25519");
        assert!(codes(&facts(p)).is_empty());
    }

    static NO_KDF: Kdf = Kdf::None;
    static WEAK_KDF: Kdf = Kdf::Bcrypt { rounds: 8 };
    static MD5_KDF: Kdf = Kdf::PemMd5;

    #[test]
    fn policy_table() {
        let p = Path::new("/h/.ssh/id x");
        type Tweak = fn(&mut KeyFacts<'_>);
        let cases: &[(Tweak, &[&str])] = &[
            (|f| f.kdf = Some(&NO_KDF), &["unencrypted-private-key"]),
            (|f| f.kdf = Some(&WEAK_KDF), &["weak-kdf"]),
            (|f| f.mode = Some(0o644), &["insecure-permissions"]),
            (|f| f.mode = Some(0o640), &["insecure-permissions"]),
            (|f| f.mode = Some(0o400), &[]),
            (|f| f.mode = None, &[]),
            (
                |f| f.algorithm = Some(KeyAlgorithm::Dsa),
                &["weak-algorithm"],
            ),
            (
                |f| (f.algorithm, f.bits) = (Some(KeyAlgorithm::Rsa), Some(1024)),
                &["weak-algorithm"],
            ),
            (
                |f| (f.algorithm, f.bits) = (Some(KeyAlgorithm::Rsa), Some(2048)),
                &["weak-key-size"],
            ),
            (
                |f| (f.algorithm, f.bits) = (Some(KeyAlgorithm::Rsa), Some(3071)),
                &["weak-key-size"],
            ),
            (
                |f| (f.algorithm, f.bits) = (Some(KeyAlgorithm::Rsa), Some(3072)),
                &[],
            ),
            (|f| f.age_days = 366, &["old-key"]),
            (|f| f.age_days = 365, &[]),
            (|f| f.public_path = None, &["missing-public-key"]),
            (
                |f| (f.format, f.kdf) = (Format::Pem, Some(&MD5_KDF)),
                &["legacy-format"],
            ),
            (
                |f| (f.format, f.kdf) = (Format::Pem, Some(&NO_KDF)),
                &["legacy-format", "unencrypted-private-key"],
            ),
            (|f| f.format = Format::Pkcs8, &[]),
            (|f| (f.format, f.public_path) = (Format::Putty, None), &[]),
            (
                |f| (f.parsed, f.kdf, f.public_path) = (false, None, None),
                &[],
            ),
            (
                |f| {
                    (f.private, f.format, f.kdf) = (false, Format::Public, None);
                    (f.mode, f.age_days) = (Some(0o644), 5000);
                },
                &[],
            ),
            (
                |f| {
                    (f.private, f.format, f.kdf) = (false, Format::Public, None);
                    f.algorithm = Some(KeyAlgorithm::Dsa);
                },
                &["weak-algorithm"],
            ),
        ];
        for (i, (tweak, want)) in cases.iter().enumerate() {
            let mut f = facts(p);
            tweak(&mut f);
            let mut got = codes(&f);
            got.sort();
            assert_eq!(got, *want, "case {i}");
        }
    }

    #[test]
    fn encrypted_pem_message_names_md5() {
        let p = Path::new("/h/.ssh/id_rsa");
        let mut f = facts(p);
        f.format = Format::Pem;
        f.kdf = Some(&Kdf::PemMd5);
        let found = key_findings(&f, &Policy::default());
        assert!(found[0].message.contains("MD5"), "{}", found[0].message);
        f.kdf = Some(&Kdf::None);
        let found = key_findings(&f, &Policy::default());
        let legacy = found.iter().find(|x| x.code == Code::LegacyFormat).unwrap();
        assert!(!legacy.message.contains("MD5"));
    }

    #[test]
    fn every_code_has_the_contract_severity() {
        let critical = [
            "unencrypted-private-key",
            "insecure-permissions",
            "weak-algorithm",
            "public-key-mismatch",
            "retired-key",
        ];
        let warning = [
            "insecure-ssh-dir",
            "weak-key-size",
            "weak-kdf",
            "old-key",
            "unreadable-key",
        ];
        for code in Code::ALL {
            let want = if critical.contains(&code.as_str()) {
                Severity::Critical
            } else if warning.contains(&code.as_str()) {
                Severity::Warning
            } else {
                Severity::Info
            };
            assert_eq!(code.severity(), want, "{code}");
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn hints_quote_paths_with_spaces() {
        let p = Path::new("/h/my keys/id_rsa");
        let mut f = facts(p);
        f.mode = Some(0o644);
        let found = key_findings(&f, &Policy::default());
        assert!(
            found[0].message.contains("chmod 600 '/h/my keys/id_rsa'"),
            "{}",
            found[0].message
        );
    }
}
