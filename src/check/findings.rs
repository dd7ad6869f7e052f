//! Policy: a key's facts in, findings out. Pure functions, table-tested; no I/O.

use std::fmt;
use std::path::Path;

use crate::keyfile::certificate::{CertInfo, CertKind, FOREVER};
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
    UnloadableKey,
    InsecureConfig,
    RetiredKey,
    DuplicateKey,
    NoKeys,
    CertificateExpired,
    CertificateExpiring,
    CertificateNotYetValid,
    CertificateKeyMismatch,
    CertificateWeakSignature,
    CertificateNoPrincipals,
}

impl Code {
    pub const ALL: [Code; 22] = [
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
        Code::UnloadableKey,
        Code::InsecureConfig,
        Code::RetiredKey,
        Code::DuplicateKey,
        Code::NoKeys,
        Code::CertificateExpired,
        Code::CertificateExpiring,
        Code::CertificateNotYetValid,
        Code::CertificateKeyMismatch,
        Code::CertificateWeakSignature,
        Code::CertificateNoPrincipals,
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
            Code::UnloadableKey => "unloadable-key",
            Code::InsecureConfig => "insecure-config",
            Code::RetiredKey => "retired-key",
            Code::DuplicateKey => "duplicate-key",
            Code::NoKeys => "no-keys",
            Code::CertificateExpired => "certificate-expired",
            Code::CertificateExpiring => "certificate-expiring",
            Code::CertificateNotYetValid => "certificate-not-yet-valid",
            Code::CertificateKeyMismatch => "certificate-key-mismatch",
            Code::CertificateWeakSignature => "certificate-weak-signature",
            Code::CertificateNoPrincipals => "certificate-no-principals",
        }
    }

    /// Each code has one severity, fixed by the contract.
    pub fn severity(self) -> Severity {
        match self {
            Code::UnencryptedPrivateKey
            | Code::InsecurePermissions
            | Code::WeakAlgorithm
            | Code::PublicKeyMismatch
            | Code::InsecureConfig
            | Code::RetiredKey => Severity::Critical,
            Code::InsecureSshDir
            | Code::WeakKeySize
            | Code::WeakKdf
            | Code::OldKey
            | Code::UnreadableKey
            | Code::UnloadableKey
            | Code::CertificateExpired
            | Code::CertificateNotYetValid
            | Code::CertificateKeyMismatch
            | Code::CertificateWeakSignature
            | Code::CertificateNoPrincipals => Severity::Warning,
            Code::LegacyFormat
            | Code::MissingPublicKey
            | Code::DuplicateKey
            | Code::NoKeys
            | Code::CertificateExpiring => Severity::Info,
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
    /// What a copy through Windows or a mail client did to the file's bytes.
    pub mangling: Mangling,
}

/// What a copy through Windows or a mail client can do to a key file's bytes, as far as OpenSSH
/// cares: keyrotate reads such a file either way, OpenSSH does not always.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mangling {
    /// The file starts with a UTF-8 byte order mark.
    pub bom: bool,
    /// Some line ends in CR LF.
    pub crlf: bool,
}

impl Mangling {
    pub fn of(bytes: &[u8]) -> Self {
        Mangling {
            bom: bytes.starts_with(b"\xEF\xBB\xBF"),
            crlf: bytes.windows(2).any(|w| w == b"\r\n"),
        }
    }

    /// Would OpenSSH refuse a file of `format` that was mangled like this? OpenSSH's own
    /// private-key format must begin exactly with `-----BEGIN OPENSSH PRIVATE KEY-----\n` and end
    /// with the END line and `\n` (`sshkey.c`, `private2_uudecode`), so a BOM or CR LF breaks
    /// it; a public key line may end in CR LF (the CR is taken as part of the comment) but not
    /// start with a BOM; PEM and PKCS#8 go through OpenSSL's PEM reader, which skips both.
    pub fn openssh_refuses(self, format: Format) -> bool {
        match format {
            Format::Openssh => self.bom || self.crlf,
            Format::Public => self.bom,
            _ => false,
        }
    }

    /// What happened to the file, for a message.
    fn cause(self, format: Format) -> &'static str {
        match (self.bom, self.crlf && format != Format::Public) {
            (true, true) => {
                "it starts with a UTF-8 byte order mark (three invisible bytes) and its lines end \
                 in CR LF (Windows line endings)"
            }
            (true, false) => "it starts with a UTF-8 byte order mark (three invisible bytes)",
            _ => "its lines end in CR LF (Windows line endings)",
        }
    }

    /// A command that removes what OpenSSH refuses, keeping the file's mode: perl is on every
    /// Linux distribution and on macOS, whose `sed -i` differs from GNU's.
    fn fix_command(self, format: Format, path: &Path) -> String {
        let script = match (self.bom, self.crlf && format != Format::Public) {
            (true, true) => r"s/^\xEF\xBB\xBF//; s/\r$//",
            (true, false) => r"s/^\xEF\xBB\xBF//",
            _ => r"s/\r$//",
        };
        format!("perl -pi -e '{script}' {}", shell_path(path))
    }
}

/// An `unloadable-key` finding for the public key file `path` (a `.pub` beside a private key, or
/// alone) when OpenSSH would refuse it.
pub fn unloadable_public(path: &Path, mangling: Mangling) -> Option<Finding> {
    if !mangling.openssh_refuses(Format::Public) {
        return None;
    }
    Some(Finding::new(
        Code::UnloadableKey,
        format!(
            "OpenSSH cannot load the public key file {}: {} (as a copy through Windows or a mail \
             client can leave it), so ssh-keygen refuses it (\"not a public key file\") and a \
             server would not accept the line pasted from it. Fix it with `{}`.",
            path.display(),
            mangling.cause(Format::Public),
            mangling.fix_command(Format::Public, path)
        ),
    ))
}

/// Can OpenSSH read this private key at all? Ed25519 in PKCS#8 (what `openssl genpkey` writes)
/// it cannot (`ssh-keygen -y` says "invalid format"): the PKCS#8 path of OpenSSH only knows RSA,
/// ECDSA and DSA.
fn openssh_cannot_read(facts: &KeyFacts<'_>) -> bool {
    facts.format == Format::Pkcs8 && facts.algorithm == Some(KeyAlgorithm::Ed25519)
}

fn unloadable_private(facts: &KeyFacts<'_>) -> Option<Finding> {
    let path = facts.path;
    if openssh_cannot_read(facts) {
        return Some(Finding::new(
            Code::UnloadableKey,
            format!(
                "OpenSSH cannot load this key: it is an Ed25519 key in PKCS#8 format (as openssl \
                 genpkey writes it), which ssh and ssh-keygen refuse (\"invalid format\"). \
                 keyrotate still reads it. Replace it with a key OpenSSH can use: {}.",
                rotate_ed25519_hint(path)
            ),
        ));
    }
    if !facts.mangling.openssh_refuses(facts.format) {
        return None;
    }
    Some(Finding::new(
        Code::UnloadableKey,
        format!(
            "OpenSSH cannot load this key: {} (as a copy through Windows or a mail client can \
             leave it), and OpenSSH reads its own private-key format only from a file that begins \
             with the BEGIN line and has LF line endings, so ssh skips it and ssh-keygen refuses \
             it (\"error in libcrypto\" or \"invalid format\"). keyrotate still reads it. Fix it \
             with `{}` (the file keeps its mode).",
            facts.mangling.cause(facts.format),
            facts.mangling.fix_command(facts.format, path)
        ),
    ))
}

/// The policy's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_age_days: u64,
    /// `certificate-expiring` within this many days (`check --cert-warn-days`).
    pub cert_warn_days: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_age_days: 365,
            cert_warn_days: 7,
        }
    }
}

/// Facts about one certificate that the certificate policy looks at.
#[derive(Debug, Clone)]
pub struct CertFacts<'a> {
    /// Where the certificate is: a file, or "ssh-agent".
    pub location: &'a str,
    pub cert: &'a CertInfo,
    /// The fingerprint of the key the certificate stands beside, when there is one.
    pub beside: Option<&'a str>,
    /// Where the key it certifies is, when that is somewhere else in the SSH directory.
    pub certified_key_at: Option<&'a Path>,
    /// Seconds since the epoch.
    pub now: u64,
}

/// What to do about a certificate that cannot be used.
const NEW_CERTIFICATE: &str = "Get a new certificate from your certificate authority (for \
                               Isambard, with clifton auth)";

/// The findings of the certificate policy: validity, key, signature, principals.
pub fn certificate_findings(facts: &CertFacts<'_>, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let cert = facts.cert;
    let at = facts.location;
    let date = |secs: u64| {
        crate::text::rfc3339_utc(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs.min(1 << 40)),
        )
    };
    if cert.valid_before != FOREVER && cert.valid_before <= facts.now {
        out.push(Finding::new(
            Code::CertificateExpired,
            format!(
                "The certificate {at} (key ID \"{}\") expired on {}: servers refuse it, and ssh \
                 may fail with a confusing error or offer it before keys that still work. \
                 {NEW_CERTIFICATE}.",
                cert.key_id,
                date(cert.valid_before)
            ),
        ));
    } else if cert.valid_before != FOREVER
        && cert.valid_before - facts.now <= policy.cert_warn_days.saturating_mul(86_400)
    {
        out.push(Finding::new(
            Code::CertificateExpiring,
            format!(
                "The certificate {at} (key ID \"{}\") expires on {}, within {} days. \
                 {NEW_CERTIFICATE} before then.",
                cert.key_id,
                date(cert.valid_before),
                policy.cert_warn_days
            ),
        ));
    }
    if cert.valid_after > facts.now {
        out.push(Finding::new(
            Code::CertificateNotYetValid,
            format!(
                "The certificate {at} (key ID \"{}\") is not valid until {}: servers refuse it \
                 until then. Check this computer's clock, or wait; if it was issued by mistake, \
                 {}.",
                cert.key_id,
                date(cert.valid_after),
                NEW_CERTIFICATE.to_lowercase_first()
            ),
        ));
    }
    let certified = cert.key.fingerprint();
    if let Some(beside) = facts.beside.filter(|b| *b != certified) {
        let whose = match facts.certified_key_at {
            Some(path) => format!("the key {}", path.display()),
            None => "a key that is not in this directory".to_string(),
        };
        out.push(Finding::new(
            Code::CertificateKeyMismatch,
            format!(
                "The certificate {at} certifies {certified}, {whose}, not the key it stands \
                 beside ({beside}): ssh offers it with this key and the server refuses it. \
                 {NEW_CERTIFICATE} for this key, or move the certificate beside the key it \
                 certifies, named after it with -cert.pub. See what it says with {}.",
                look(at)
            ),
        ));
    }
    if cert.weak_signature() {
        out.push(Finding::new(
            Code::CertificateWeakSignature,
            format!(
                "The certificate {at} was signed by its CA with ssh-rsa (RSA with SHA-1), which \
                 OpenSSH 8.8 and later refuse by default. Ask your certificate authority to sign \
                 with rsa-sha2-512 (ssh-keygen -s with -t rsa-sha2-512) and get a new \
                 certificate."
            ),
        ));
    }
    if cert.principals.is_empty() {
        let what = match cert.kind {
            CertKind::User => "any user name",
            CertKind::Host => "any host name",
        };
        out.push(Finding::new(
            Code::CertificateNoPrincipals,
            format!(
                "The certificate {at} (key ID \"{}\") lists no principals, so it claims to be valid \
                 for {what}: OpenSSH refuses it where it trusts the CA for every account \
                 (TrustedUserCAKeys, @cert-authority), and a CA should not issue one. \
                 {NEW_CERTIFICATE} naming your principals.",
                cert.key_id
            ),
        ));
    }
    out
}

/// The command that shows a certificate file, backquoted; nothing for one in ssh-agent.
fn look(location: &str) -> String {
    match location.starts_with("in ssh-agent") {
        true => "`ssh-add -L`".to_string(),
        false => format!("`ssh-keygen -L -f {}`", shell_path(Path::new(location))),
    }
}

trait LowercaseFirst {
    fn to_lowercase_first(&self) -> String;
}

impl LowercaseFirst for str {
    fn to_lowercase_first(&self) -> String {
        let mut chars = self.chars();
        match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// How to replace the key at `path`, as a backquoted command; `rotate` refuses a name that is
/// not UTF-8, so for one of those it says so instead of suggesting a command that fails.
pub fn rotate_hint(path: &Path) -> String {
    rotate_with(path, "")
}

fn rotate_ed25519_hint(path: &Path) -> String {
    rotate_with(path, "-t ed25519 ")
}

fn rotate_with(path: &Path, options: &str) -> String {
    match path.to_str() {
        Some(_) => format!("`keyrotate rotate {options}-f {}`", shell_path(path)),
        None => "keyrotate rotate, once the file has a UTF-8 name (keyrotate cannot work on a \
                 key whose name is not UTF-8)"
            .to_string(),
    }
}

/// What to do about a public key file with no private key beside it: `rotate` needs the private
/// key, so the only local fix is to take the file away.
fn remove_public_hint(path: &Path) -> String {
    format!(
        "If the key is still authorised on servers, remove it there; then remove this file: `rm {}`",
        shell_path(path)
    )
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
                     someone may already have copied it, replace it with {}.",
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
                     may already have copied it, replace it with {}.",
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
                     passphrase-protected key: {}.",
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
                     default is 16), so a stolen copy is cheaper to crack. Replace it with {}.",
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
                     otherwise replace it with {}.",
                    rotate_with(path, "--format openssh ")
                ),
            ));
        }
        if facts.age_days > policy.max_age_days {
            out.push(Finding::new(
                Code::OldKey,
                format!(
                    "This key was last changed {} days ago, more than the {}-day limit: the older a \
                     key, the more copies of it may have leaked. Replace it with {}.",
                    facts.age_days,
                    policy.max_age_days,
                    rotate_hint(path)
                ),
            ));
        }
        if facts.parsed && facts.public_path.is_none() && facts.format != Format::Putty {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let public = shell_path(&public_path_of(path));
            let how = if openssh_cannot_read(facts) {
                format!(
                    "OpenSSH cannot read this key to recreate it; a new pair comes with \
                     {}",
                    rotate_ed25519_hint(path)
                )
            } else if facts.mangling.openssh_refuses(facts.format) {
                format!(
                    "Once OpenSSH can load the key (see unloadable-key), recreate it with \
                     `ssh-keygen -y -f {} > {public}`",
                    shell_path(path)
                )
            } else {
                format!(
                    "Recreate it with `ssh-keygen -y -f {} > {public}`",
                    shell_path(path)
                )
            };
            out.push(Finding::new(
                Code::MissingPublicKey,
                format!(
                    "There is no {}.pub beside this private key; you need it to upload the key. \
                     {how}.",
                    crate::text::sanitize(&name)
                ),
            ));
        }
        out.extend(unloadable_private(facts));
    } else if facts.format == Format::Public {
        out.extend(unloadable_public(path, facts.mangling));
    }
    out.extend(algorithm_findings(facts));
    out
}

/// `<path>.pub`, byte for byte (a name that is not UTF-8 stays what it is).
fn public_path_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".pub");
    name.into()
}

fn algorithm_findings(facts: &KeyFacts<'_>) -> Option<Finding> {
    let path = facts.path;
    // `rotate` replaces a private key; for a public key alone there is nothing to rotate.
    // The successor keeps a size keyrotate makes (RSA 2048 stays 2048): say the size to take.
    let replace_with = |what: &str, options: &str| match facts.private {
        true => format!("{what} {}.", rotate_with(path, options)),
        false => format!("{}.", remove_public_hint(path)),
    };
    let replace = |what: &str| replace_with(what, "");
    match (facts.algorithm?, facts.bits) {
        (KeyAlgorithm::Dsa, _) => Some(Finding::new(
            Code::WeakAlgorithm,
            format!(
                "DSA keys are no longer safe: OpenSSH turned them off by default in version 7.0 \
                 and recent releases have removed them, and services such as JASMIN refuse them. \
                 {}",
                replace("Replace it with")
            ),
        )),
        (KeyAlgorithm::Rsa, Some(bits)) if bits < 2048 => Some(Finding::new(
            Code::WeakAlgorithm,
            format!(
                "A {bits}-bit RSA key is too short to be safe and many servers refuse it. {}",
                replace("Replace it with")
            ),
        )),
        (KeyAlgorithm::Rsa, Some(bits)) if bits < 3072 => Some(Finding::new(
            Code::WeakKeySize,
            format!(
                "A {bits}-bit RSA key is below the 3072 bits now recommended. {}",
                replace_with(
                    "Replace it with a stronger key when convenient:",
                    "-b 4096 "
                )
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_policy_table() {
        let blob = crate::keyfile::certificate::tests::blob();
        let base = CertInfo::from_blob(&blob).unwrap();
        let day = 86_400;
        let policy = Policy::default();
        let mine = base.key.fingerprint().to_string();
        // (valid_after, valid_before, principals, beside, now) -> codes
        type Case<'a> = (u64, u64, bool, Option<&'a str>, u64, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (0, FOREVER, true, Some(&mine), 100 * day, vec![]),
            (
                0,
                10 * day,
                true,
                None,
                20 * day,
                vec!["certificate-expired"],
            ),
            (
                0,
                10 * day,
                true,
                None,
                10 * day,
                vec!["certificate-expired"],
            ),
            (
                0,
                10 * day,
                true,
                None,
                3 * day,
                vec!["certificate-expiring"],
            ),
            (0, 10 * day, true, None, 3 * day - 1, vec![]),
            (
                5 * day,
                FOREVER,
                true,
                None,
                day,
                vec!["certificate-not-yet-valid"],
            ),
            (
                0,
                FOREVER,
                false,
                None,
                day,
                vec!["certificate-no-principals"],
            ),
            (
                0,
                FOREVER,
                true,
                Some("SHA256:other"),
                day,
                vec!["certificate-key-mismatch"],
            ),
        ];
        for (after, before, principals, beside, now, want) in cases {
            let mut cert = base.clone();
            cert.valid_after = after;
            cert.valid_before = before;
            if !principals {
                cert.principals.clear();
            }
            let facts = CertFacts {
                location: "/h/.ssh/id_x-cert.pub",
                cert: &cert,
                beside,
                certified_key_at: None,
                now,
            };
            let got: Vec<&str> = certificate_findings(&facts, &policy)
                .iter()
                .map(|f| f.code.as_str())
                .collect();
            assert_eq!(got, want, "{after} {before} {principals} {beside:?} {now}");
        }
        let mut weak = base.clone();
        weak.signature_algorithm = "ssh-rsa".to_string();
        (weak.valid_after, weak.valid_before) = (0, FOREVER);
        let facts = CertFacts {
            location: "in ssh-agent (\"me\")",
            cert: &weak,
            beside: None,
            certified_key_at: None,
            now: 0,
        };
        let found = certificate_findings(&facts, &policy);
        assert_eq!(found[0].code, Code::CertificateWeakSignature);
        assert_eq!(found[0].severity, Severity::Warning);
    }

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
            mangling: Mangling::default(),
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
            // OpenSSH reads RSA, ECDSA and DSA in PKCS#8, not Ed25519.
            (|f| f.format = Format::Pkcs8, &["unloadable-key"]),
            (
                |f| (f.format, f.algorithm) = (Format::Pkcs8, Some(KeyAlgorithm::Ecdsa)),
                &[],
            ),
            // A BOM or CR LF breaks OpenSSH's own format, not PEM or PKCS#8 (OpenSSL skips them).
            (|f| f.mangling.crlf = true, &["unloadable-key"]),
            (|f| f.mangling.bom = true, &["unloadable-key"]),
            (
                |f| (f.mangling.bom, f.mangling.crlf) = (true, true),
                &["unloadable-key"],
            ),
            (
                |f| {
                    (f.format, f.kdf) = (Format::Pem, Some(&MD5_KDF));
                    (f.mangling.bom, f.mangling.crlf) = (true, true);
                },
                &["legacy-format"],
            ),
            (
                |f| {
                    (f.format, f.algorithm) = (Format::Pkcs8, Some(KeyAlgorithm::Rsa));
                    (f.bits, f.mangling.crlf) = (Some(4096), true);
                },
                &[],
            ),
            // A public key line may end in CR LF, not start with a BOM.
            (
                |f| {
                    (f.private, f.format, f.kdf) = (false, Format::Public, None);
                    f.mangling.crlf = true;
                },
                &[],
            ),
            (
                |f| {
                    (f.private, f.format, f.kdf) = (false, Format::Public, None);
                    f.mangling.bom = true;
                },
                &["unloadable-key"],
            ),
            (
                |f| (f.mangling.crlf, f.public_path) = (true, None),
                &["missing-public-key", "unloadable-key"],
            ),
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
            "insecure-config",
            "retired-key",
        ];
        let warning = [
            "insecure-ssh-dir",
            "weak-key-size",
            "weak-kdf",
            "old-key",
            "unreadable-key",
            "unloadable-key",
            "certificate-expired",
            "certificate-not-yet-valid",
            "certificate-key-mismatch",
            "certificate-weak-signature",
            "certificate-no-principals",
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
    fn unloadable_key_names_the_cause_and_a_fix_for_it() {
        let p = Path::new("/h/.ssh/id_ed25519");
        let message = |bom, crlf| {
            let mut f = facts(p);
            f.mangling = Mangling { bom, crlf };
            let found = key_findings(&f, &Policy::default());
            found[0].message.clone()
        };
        let crlf = message(false, true);
        assert!(
            crlf.contains("CR LF") && !crlf.contains("byte order"),
            "{crlf}"
        );
        assert!(
            crlf.contains(r"`perl -pi -e 's/\r$//' /h/.ssh/id_ed25519`"),
            "{crlf}"
        );
        let bom = message(true, false);
        assert!(
            bom.contains("byte order mark") && !bom.contains("CR LF"),
            "{bom}"
        );
        assert!(bom.contains(r"`perl -pi -e 's/^\xEF\xBB\xBF//' /h/.ssh/id_ed25519`"));
        let both = message(true, true);
        assert!(both.contains(r"'s/^\xEF\xBB\xBF//; s/\r$//'"), "{both}");
    }

    #[test]
    fn a_lone_public_key_is_never_told_to_rotate() {
        let p = Path::new("/h/.ssh/old.pub");
        let mut f = facts(p);
        (f.private, f.format, f.kdf, f.public_path) = (false, Format::Public, None, None);
        f.algorithm = Some(KeyAlgorithm::Dsa);
        let found = key_findings(&f, &Policy::default());
        assert!(!found[0].message.contains("rotate"), "{}", found[0].message);
        assert!(found[0].message.contains("`rm /h/.ssh/old.pub`"));
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
