//! Recognise and parse every SSH key file format, never asking for a passphrase and never decrypting.
//! The two exceptions decrypt with a passphrase their caller gives: `pem_legacy` (OpenSSL's
//! traditional PEM encryption) and `putty_crypt` (`.ppk` v2 and v3, and writing v3).
//!
//! Formats: OpenSSH private keys, PEM (PKCS#1 RSA, SEC1 EC, DSA; plain or `Proc-Type: 4,ENCRYPTED`),
//! PKCS#8 (plain or encrypted), PuTTY `.ppk` v2/v3, and public keys (one-line OpenSSH and RFC 4716).
//! Everything here works on bytes already read (bounded by the caller): no I/O, no allocation larger
//! than the input, no panics on hostile input.

pub mod certificate;
mod openssh;
mod pem_keys;
pub mod pem_legacy;
mod public;
mod putty;
pub mod putty_crypt;
mod wire;

use pem_keys::recognise_pem;
use public::{parse_rfc4716_public, recognise_public_line};
use putty::parse_putty;

use crate::text::sanitize;
use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Sequence};
use ssh_key::public::{DsaPublicKey, EcdsaPublicKey, KeyData, RsaPublicKey};
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, Mpint};

/// Largest file we ever treat as a possible key: real keys are a few KiB at most.
pub const MAX_KEY_FILE_SIZE: u64 = 1024 * 1024;

/// Largest DSA prime we derive a public key for (FIPS 186 stops at 3072 bits); beyond that a
/// hostile file could make the modular exponentiation take minutes.
const MAX_DSA_BITS: usize = 3072;

/// The on-disk format of a key file, as reported in `check --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Openssh,
    Pem,
    Pkcs8,
    Putty,
    Public,
    /// An OpenSSH certificate whose key is not in the directory.
    Certificate,
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Openssh => "openssh",
            Format::Pem => "pem",
            Format::Pkcs8 => "pkcs8",
            Format::Putty => "putty",
            Format::Public => "public",
            Format::Certificate => "certificate",
            Format::Unknown => "unknown",
        }
    }

    /// How a person would name the format.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Openssh => "OpenSSH",
            Format::Pem => "PEM",
            Format::Pkcs8 => "PKCS#8",
            Format::Putty => "PuTTY",
            Format::Public => "public key",
            Format::Certificate => "OpenSSH certificate",
            Format::Unknown => "unrecognised",
        }
    }
}

/// Key algorithm families, as reported in `check --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyAlgorithm {
    #[serde(rename = "rsa")]
    Rsa,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "ecdsa")]
    Ecdsa,
    #[serde(rename = "dsa")]
    Dsa,
    #[serde(rename = "ed25519-sk")]
    Ed25519Sk,
    #[serde(rename = "ecdsa-sk")]
    EcdsaSk,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Ecdsa => "ecdsa",
            KeyAlgorithm::Dsa => "dsa",
            KeyAlgorithm::Ed25519Sk => "ed25519-sk",
            KeyAlgorithm::EcdsaSk => "ecdsa-sk",
        }
    }

    /// The name `ssh-keygen -l` prints in brackets.
    pub fn display_name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "RSA",
            KeyAlgorithm::Ed25519 => "ED25519",
            KeyAlgorithm::Ecdsa => "ECDSA",
            KeyAlgorithm::Dsa => "DSA",
            KeyAlgorithm::Ed25519Sk => "ED25519-SK",
            KeyAlgorithm::EcdsaSk => "ECDSA-SK",
        }
    }

    fn from_ssh(algorithm: &Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::Rsa { .. } => Some(KeyAlgorithm::Rsa),
            Algorithm::Ed25519 => Some(KeyAlgorithm::Ed25519),
            Algorithm::Ecdsa { .. } => Some(KeyAlgorithm::Ecdsa),
            Algorithm::Dsa => Some(KeyAlgorithm::Dsa),
            Algorithm::SkEd25519 => Some(KeyAlgorithm::Ed25519Sk),
            Algorithm::SkEcdsaSha2NistP256 => Some(KeyAlgorithm::EcdsaSk),
            _ => None,
        }
    }
}

/// The public half of a key, with the facts `ssh-keygen -l` prints about it.
#[derive(Debug, Clone)]
pub struct PublicInfo {
    pub key_data: KeyData,
    pub algorithm: Option<KeyAlgorithm>,
    pub bits: Option<u32>,
    /// Computed when first asked for: a `.pub` that only confirms its private key never needs it.
    fingerprint: std::sync::OnceLock<String>,
}

impl PartialEq for PublicInfo {
    fn eq(&self, other: &Self) -> bool {
        self.key_data == other.key_data
    }
}

impl Eq for PublicInfo {}

impl PublicInfo {
    pub fn new(key_data: KeyData) -> Self {
        let algorithm = KeyAlgorithm::from_ssh(&key_data.algorithm());
        let bits = key_bits(&key_data);
        PublicInfo {
            key_data,
            algorithm,
            bits,
            fingerprint: std::sync::OnceLock::new(),
        }
    }

    /// `SHA256:...`, exactly as `ssh-keygen -l -E sha256` prints it.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint
            .get_or_init(|| self.key_data.fingerprint(HashAlg::Sha256).to_string())
    }

    /// The OpenSSH one-line form of this public key, with an optional comment.
    pub fn to_openssh_line(&self, comment: Option<&str>) -> Option<String> {
        let key = ssh_key::PublicKey::new(self.key_data.clone(), comment.unwrap_or(""));
        key.to_openssh().ok()
    }
}

/// How a private key is protected, as far as can be told without the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// Cipher name as the file states it (`aes256-ctr`, `AES-128-CBC`, ...), `none` if plain.
    pub cipher: String,
    pub kdf: Kdf,
}

/// The passphrase-stretching function of an encrypted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kdf {
    None,
    /// OpenSSH format: bcrypt-pbkdf with this many rounds.
    Bcrypt {
        rounds: u32,
    },
    /// Traditional PEM encryption: OpenSSL's EVP_BytesToKey, one round of MD5.
    PemMd5,
    /// PKCS#8 encryption (PKCS#5 PBES2 or PBES1), described as far as it could be read,
    /// e.g. "PBKDF2-HMAC-SHA256, 2048 iterations".
    Pkcs5(String),
    /// PuTTY v2: SHA-1 of the passphrase, no stretching.
    PuttySha1,
    /// Encrypted, but the file is too damaged to say how.
    Unknown,
    /// PuTTY v3: Argon2 (variant, passes, memory KiB).
    Argon2 {
        variant: String,
        passes: Option<u32>,
        memory_kib: Option<u32>,
    },
}

impl Kdf {
    pub fn describe(&self) -> String {
        match self {
            Kdf::None => "no passphrase".to_string(),
            Kdf::Bcrypt { rounds } => format!("bcrypt-pbkdf, {rounds} rounds"),
            Kdf::PemMd5 => "MD5 key derivation (one round)".to_string(),
            Kdf::Pkcs5(description) => description.clone(),
            Kdf::PuttySha1 => "SHA-1 key derivation (no stretching)".to_string(),
            Kdf::Unknown => "unknown key derivation".to_string(),
            Kdf::Argon2 {
                variant,
                passes,
                memory_kib,
            } => {
                let mut s = variant.clone();
                if let Some(p) = passes {
                    s.push_str(&format!(", {p} passes"));
                }
                if let Some(m) = memory_kib {
                    s.push_str(&format!(", {m} KiB"));
                }
                s
            }
        }
    }
}

/// What one key file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub format: Format,
    /// True for private key files (including PuTTY), false for public key files.
    pub private: bool,
    /// The public half, when the file reveals it without a passphrase.
    pub public: Option<PublicInfo>,
    /// The algorithm, when known even without the public half (encrypted PEM says it in its armour).
    pub algorithm: Option<KeyAlgorithm>,
    pub comment: Option<String>,
    /// `None` for public key files.
    pub protection: Option<Protection>,
}

impl KeyFile {
    pub fn encrypted(&self) -> Option<bool> {
        self.protection.as_ref().map(|p| p.kdf != Kdf::None)
    }

    pub fn algorithm(&self) -> Option<KeyAlgorithm> {
        self.public
            .as_ref()
            .and_then(|p| p.algorithm)
            .or(self.algorithm)
    }
}

/// The verdict on a file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognised {
    /// A key, parsed.
    Key(Box<KeyFile>),
    /// Looks like a key (its armour or first line says so) but cannot be parsed.
    Broken(Broken),
    /// An OpenSSH certificate (`*-cert.pub`): belongs to a key, is not one.
    Certificate(Box<certificate::CertInfo>),
    /// Not a key file at all.
    NotAKey,
}

/// A file that announces itself as a key but cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub format: Format,
    /// Whether the armour says private key (`Some(true)`) or public key (`Some(false)`).
    pub private: Option<bool>,
    pub encrypted: Option<bool>,
    /// Lower-case reason, e.g. "the PEM armour has no END line (the file is truncated?)".
    pub reason: String,
}

impl Broken {
    fn new(format: Format, private: bool, reason: impl Into<String>) -> Self {
        Broken {
            format,
            private: Some(private),
            encrypted: None,
            reason: reason.into(),
        }
    }
}

/// Recognise and parse a key file from its contents.
pub fn recognise(bytes: &[u8]) -> Recognised {
    let head = trim_start(strip_bom(bytes));
    if head.starts_with(b"PuTTY-User-Key-File-") {
        return parse_putty(head);
    }
    if let Some(label) = pem_label(bytes) {
        return recognise_pem(bytes, label);
    }
    if head.starts_with(b"---- BEGIN SSH2 PUBLIC KEY ----") {
        return parse_rfc4716_public(head);
    }
    recognise_public_line(bytes)
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The label of the first `-----BEGIN <label>-----` line, if any.
fn pem_label(bytes: &[u8]) -> Option<&str> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let start = find(bytes, BEGIN)? + BEGIN.len();
    let rest = &bytes[start..];
    let end = find(&rest[..rest.len().min(80)], b"-----")?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Standard base64, as the key formats use it.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64ct::{Base64, Encoding};
    Base64::decode_vec(text).ok()
}

/// Whether `bytes` hold a private key (parsed, or announced by its armour): such files must
/// never be readable by others, wherever keyrotate writes them.
pub fn looks_private(bytes: &[u8]) -> bool {
    match recognise(bytes) {
        Recognised::Key(key) => key.private,
        Recognised::Broken(broken) => broken.private == Some(true),
        Recognised::Certificate(_) | Recognised::NotAKey => false,
    }
}

/// Key size as `ssh-keygen -l` reports it: RSA and DSA from the modulus, EC from the curve.
pub fn key_bits(key_data: &KeyData) -> Option<u32> {
    match key_data {
        KeyData::Rsa(rsa) => mpint_bits(&rsa.n),
        KeyData::Dsa(dsa) => mpint_bits(&dsa.p),
        KeyData::Ecdsa(ec) => Some(curve_bits(ec.curve())),
        KeyData::Ed25519(_) | KeyData::SkEd25519(_) => Some(256),
        KeyData::SkEcdsaSha2NistP256(_) => Some(256),
        _ => None,
    }
}

pub(crate) fn curve_bits(curve: EcdsaCurve) -> u32 {
    match curve {
        EcdsaCurve::NistP256 => 256,
        EcdsaCurve::NistP384 => 384,
        EcdsaCurve::NistP521 => 521,
    }
}

fn mpint_bits(n: &Mpint) -> Option<u32> {
    let bytes = n.as_positive_bytes()?;
    let first = bytes.iter().position(|&b| b != 0)?;
    let bytes = &bytes[first..];
    let len = u32::try_from(bytes.len()).ok()?;
    Some((len - 1) * 8 + (8 - bytes[0].leading_zeros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0cOaJ2sQZcdVSmmK+2LDsN6vfvX2ItoOCrQHNdH+9J test@example";

    #[test]
    fn public_line_is_recognised_with_comment_and_fingerprint() {
        let Recognised::Key(key) = recognise(ED25519_PUB.as_bytes()) else {
            panic!("not recognised");
        };
        assert_eq!(key.format, Format::Public);
        assert_eq!(key.comment.as_deref(), Some("test@example"));
        let public = key.public.expect("public half");
        assert_eq!(public.algorithm, Some(KeyAlgorithm::Ed25519));
        assert_eq!(public.bits, Some(256));
        assert!(public.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn text_that_is_not_a_key_is_not_a_key() {
        for text in [
            &b""[..],
            b"Host *\n  IdentityFile ~/.ssh/id_rsa\n",
            b"\x00\xff\xfe binary",
            b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(recognise(text), Recognised::NotAKey, "{text:?}");
        }
    }

    #[test]
    fn truncated_public_line_is_broken_not_a_panic() {
        for cut in 0..ED25519_PUB.len() {
            let _ = recognise(&ED25519_PUB.as_bytes()[..cut]);
        }
        assert!(matches!(
            recognise(&ED25519_PUB.as_bytes()[..40]),
            Recognised::Broken(_)
        ));
    }

    #[test]
    fn truncated_pem_armour_is_broken_and_says_private() {
        let Recognised::Broken(b) =
            recognise(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n")
        else {
            panic!("not broken");
        };
        assert_eq!(b.format, Format::Openssh);
        assert_eq!(b.private, Some(true));
        assert!(b.reason.contains("truncated"), "{}", b.reason);
    }

    #[test]
    fn mpint_bits_counts_from_the_top_bit() {
        assert_eq!(
            mpint_bits(&Mpint::from_positive_bytes(&[0x01, 0x00]).unwrap()),
            Some(9)
        );
        assert_eq!(
            mpint_bits(&Mpint::from_positive_bytes(&[0xff]).unwrap()),
            Some(8)
        );
    }
}
