//! Recognise and parse every SSH key file format, never asking for a passphrase and never decrypting.
//!
//! Formats: OpenSSH private keys, PEM (PKCS#1 RSA, SEC1 EC, DSA; plain or `Proc-Type: 4,ENCRYPTED`),
//! PKCS#8 (plain or encrypted), PuTTY `.ppk` v2/v3, and public keys (one-line OpenSSH and RFC 4716).
//! Everything here works on bytes already read (bounded by the caller): no I/O, no allocation larger
//! than the input, no panics on hostile input.

mod openssh;
pub mod pem_legacy;
mod wire;

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
    Certificate,
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

fn recognise_pem(bytes: &[u8], label: &str) -> Recognised {
    let format = match label {
        "OPENSSH PRIVATE KEY" => Format::Openssh,
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "DSA PRIVATE KEY" => Format::Pem,
        "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => Format::Pkcs8,
        "SSH2 ENCRYPTED PRIVATE KEY" => {
            return Recognised::Broken(Broken::new(
                Format::Unknown,
                true,
                "this is an ssh.com (SSH2) private key, which OpenSSH cannot use; convert it with `ssh-keygen -i -f FILE`",
            ));
        }
        other if other.ends_with("PRIVATE KEY") => {
            return Recognised::Broken(Broken::new(
                Format::Unknown,
                true,
                format!(
                    "\"{}\" private keys are not an SSH key format",
                    sanitize(other)
                ),
            ));
        }
        _ => return Recognised::NotAKey,
    };
    let block = match fast_armour(bytes, format).map_or_else(|| pem::parse(bytes), Ok) {
        Ok(block) => block,
        Err(e) => {
            let mut broken = Broken::new(format, true, pem_error_reason(&e));
            if format == Format::Pem {
                broken.encrypted = Some(find(bytes, b"Proc-Type: 4,ENCRYPTED").is_some());
            } else if label == "ENCRYPTED PRIVATE KEY" {
                broken.encrypted = Some(true);
            }
            return Recognised::Broken(broken);
        }
    };
    let result = match format {
        Format::Openssh => openssh::parse(block.contents()),
        Format::Pem => parse_legacy_pem(&block),
        _ => parse_pkcs8(&block),
    };
    match result {
        Ok(key) => Recognised::Key(Box::new(key)),
        Err(mut broken) => {
            broken.format = format;
            Recognised::Broken(broken)
        }
    }
}

/// The common, well-formed cases decoded by RustCrypto's pem-rfc7468: OpenSSH's 70-column
/// armour and RFC 7468's 64 columns, without headers. `None` sends everything else (encryption
/// headers, text before the armour, other line widths, damage) to the `pem` crate, which is more
/// lenient and explains what is wrong. This is most of `check`'s speed on a large directory.
fn fast_armour(bytes: &[u8], format: Format) -> Option<pem::Pem> {
    let (label, contents) = match format {
        Format::Openssh => {
            let mut decoder = pem_rfc7468::Decoder::new_wrapped(bytes, 70).ok()?;
            let mut contents = Vec::new();
            decoder.decode_to_end(&mut contents).ok()?;
            (decoder.type_label().to_string(), contents)
        }
        _ => {
            let (label, contents) = pem_rfc7468::decode_vec(bytes).ok()?;
            (label.to_string(), contents)
        }
    };
    Some(pem::Pem::new(label, contents))
}

fn pem_error_reason(e: &pem::PemError) -> String {
    match e {
        pem::PemError::MalformedFraming | pem::PemError::MissingEndTag => {
            "the key's armour has no matching END line: the file looks truncated".to_string()
        }
        pem::PemError::MismatchedTags(..) => {
            "the key's BEGIN and END lines do not match: the file is damaged".to_string()
        }
        pem::PemError::InvalidData(_) | pem::PemError::NotUtf8(_) | pem::PemError::MissingData => {
            "the key's base64 body is damaged".to_string()
        }
        _ => "the key's armour is damaged".to_string(),
    }
}

/// PKCS#1 RSA, SEC1 EC or OpenSSL's DSA structure in PEM armour, maybe with legacy encryption.
fn parse_legacy_pem(block: &pem::Pem) -> Result<KeyFile, Broken> {
    let algorithm = match block.tag() {
        "RSA PRIVATE KEY" => KeyAlgorithm::Rsa,
        "EC PRIVATE KEY" => KeyAlgorithm::Ecdsa,
        _ => KeyAlgorithm::Dsa,
    };
    let proc_type = block.headers().get("Proc-Type");
    if proc_type.is_some_and(|p| p.contains("ENCRYPTED")) {
        let cipher = block
            .headers()
            .get("DEK-Info")
            .and_then(|d| d.split(',').next())
            .unwrap_or("unknown")
            .trim()
            .to_string();
        return Ok(KeyFile {
            format: Format::Pem,
            private: true,
            public: None,
            algorithm: Some(algorithm),
            comment: None,
            protection: Some(Protection {
                cipher,
                kdf: Kdf::PemMd5,
            }),
        });
    }
    let der = block.contents();
    let key_data = match algorithm {
        KeyAlgorithm::Rsa => rsa_from_pkcs1(der),
        KeyAlgorithm::Ecdsa => ec_from_sec1(der, None),
        _ => dsa_from_openssl_der(der),
    }
    .map_err(|reason| Broken::new(Format::Pem, true, reason))?;
    Ok(KeyFile {
        format: Format::Pem,
        private: true,
        public: Some(PublicInfo::new(key_data)),
        algorithm: Some(algorithm),
        comment: None,
        protection: Some(unencrypted()),
    })
}

fn unencrypted() -> Protection {
    Protection {
        cipher: "none".to_string(),
        kdf: Kdf::None,
    }
}

fn damaged(what: &str) -> String {
    format!("the {what} structure inside the armour is damaged or truncated")
}

fn mpint(bytes: &[u8]) -> Result<Mpint, String> {
    Mpint::from_positive_bytes(bytes).map_err(|_| "a key number is malformed".to_string())
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<KeyData, String> {
    let key = pkcs1::RsaPrivateKey::from_der(der).map_err(|_| damaged("PKCS#1 RSA"))?;
    Ok(KeyData::Rsa(RsaPublicKey {
        e: mpint(key.public_exponent.as_bytes())?,
        n: mpint(key.modulus.as_bytes())?,
    }))
}

const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// SEC1 `ECPrivateKey`; the curve comes from its own parameters or, inside PKCS#8, from outside.
fn ec_from_sec1(der: &[u8], outer_curve: Option<ObjectIdentifier>) -> Result<KeyData, String> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|_| damaged("SEC1 EC"))?;
    let curve_oid = key
        .parameters
        .and_then(|p| p.named_curve())
        .or(outer_curve)
        .ok_or_else(|| "the EC key does not name its curve".to_string())?;
    let curve = match curve_oid {
        OID_P256 => EcdsaCurve::NistP256,
        OID_P384 => EcdsaCurve::NistP384,
        OID_P521 => EcdsaCurve::NistP521,
        other => {
            return Err(format!(
                "the EC key uses curve {other}, which SSH does not support (only NIST P-256, P-384 and P-521)"
            ));
        }
    };
    let point = match key.public_key {
        Some(point) => point.to_vec(),
        None => ec_public_from_scalar(curve, key.private_key)?,
    };
    let public = EcdsaPublicKey::from_sec1_bytes(&point)
        .map_err(|_| "the EC public point is invalid".to_string())?;
    if public.curve() != curve {
        return Err("the EC public point does not belong to the key's curve".to_string());
    }
    Ok(KeyData::Ecdsa(public))
}

pub(crate) fn ec_public_from_scalar(curve: EcdsaCurve, scalar: &[u8]) -> Result<Vec<u8>, String> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let bad = |_| "the EC private scalar is invalid".to_string();
    Ok(match curve {
        EcdsaCurve::NistP256 => p256::SecretKey::from_slice(scalar)
            .map_err(bad)?
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
        EcdsaCurve::NistP384 => p384::SecretKey::from_slice(scalar)
            .map_err(bad)?
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
        EcdsaCurve::NistP521 => p521::SecretKey::from_slice(scalar)
            .map_err(bad)?
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
    })
}

/// OpenSSL's traditional DSA private key: SEQUENCE { version, p, q, g, y, x }.
#[derive(Sequence)]
struct OpensslDsaPrivateKey<'a> {
    version: UintRef<'a>,
    p: UintRef<'a>,
    q: UintRef<'a>,
    g: UintRef<'a>,
    y: UintRef<'a>,
    x: UintRef<'a>,
}

fn dsa_from_openssl_der(der: &[u8]) -> Result<KeyData, String> {
    let key = OpensslDsaPrivateKey::from_der(der).map_err(|_| damaged("DSA"))?;
    // Keeps clippy quiet about the unused fields while documenting that they are not needed.
    let _ = (key.version, key.x);
    Ok(KeyData::Dsa(DsaPublicKey {
        p: mpint(key.p.as_bytes())?,
        q: mpint(key.q.as_bytes())?,
        g: mpint(key.g.as_bytes())?,
        y: mpint(key.y.as_bytes())?,
    }))
}

fn parse_pkcs8(block: &pem::Pem) -> Result<KeyFile, Broken> {
    if block.tag() == "ENCRYPTED PRIVATE KEY" {
        // The algorithm and public key are inside the ciphertext; only the `.pub` can tell.
        return Ok(KeyFile {
            format: Format::Pkcs8,
            private: true,
            public: None,
            algorithm: None,
            comment: None,
            protection: Some(pkcs8_protection(block.contents())?),
        });
    }
    let info = pkcs8::PrivateKeyInfo::from_der(block.contents())
        .map_err(|_| Broken::new(Format::Pkcs8, true, damaged("PKCS#8")))?;
    let (key_data, algorithm) = match info.algorithm.oid {
        OID_RSA => (rsa_from_pkcs1(info.private_key), KeyAlgorithm::Rsa),
        OID_EC => (
            ec_from_sec1(info.private_key, info.algorithm.parameters_oid().ok()),
            KeyAlgorithm::Ecdsa,
        ),
        OID_DSA => (dsa_from_pkcs8(info), KeyAlgorithm::Dsa),
        OID_ED25519 => (ed25519_from_pkcs8(info.private_key), KeyAlgorithm::Ed25519),
        other => {
            return Err(Broken::new(
                Format::Pkcs8,
                true,
                format!("the PKCS#8 key's algorithm ({other}) is not one SSH uses"),
            ));
        }
    };
    let key_data = key_data.map_err(|reason| Broken::new(Format::Pkcs8, true, reason))?;
    Ok(KeyFile {
        format: Format::Pkcs8,
        private: true,
        public: Some(PublicInfo::new(key_data)),
        algorithm: Some(algorithm),
        comment: None,
        protection: Some(unencrypted()),
    })
}

/// Name the cipher and KDF of an encrypted PKCS#8 key. A scheme the pkcs5 crate does not know
/// (old PBES1 variants) is still an encrypted key, just not described.
fn pkcs8_protection(der: &[u8]) -> Result<Protection, Broken> {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2};
    let unknown = || Protection {
        cipher: "unknown".to_string(),
        kdf: Kdf::Pkcs5("unrecognised PKCS#5 scheme".to_string()),
    };
    if der::asn1::AnyRef::from_der(der).is_err() {
        return Err(Broken::new(
            Format::Pkcs8,
            true,
            damaged("encrypted PKCS#8"),
        ));
    }
    let Ok(info) = pkcs8::EncryptedPrivateKeyInfo::from_der(der) else {
        return Ok(unknown());
    };
    let EncryptionScheme::Pbes2(params) = &info.encryption_algorithm else {
        return Ok(Protection {
            cipher: "PBES1".to_string(),
            kdf: Kdf::Pkcs5("PBES1 (legacy single-DES/RC2 key derivation)".to_string()),
        });
    };
    let cipher = match params.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { .. } => "aes-128-cbc",
        pbes2::EncryptionScheme::Aes192Cbc { .. } => "aes-192-cbc",
        pbes2::EncryptionScheme::Aes256Cbc { .. } => "aes-256-cbc",
        _ => "unknown",
    };
    let kdf = match &params.kdf {
        pbes2::Kdf::Pbkdf2(p) => {
            let prf = match p.prf {
                pbes2::Pbkdf2Prf::HmacWithSha1 => "SHA1",
                pbes2::Pbkdf2Prf::HmacWithSha224 => "SHA224",
                pbes2::Pbkdf2Prf::HmacWithSha256 => "SHA256",
                pbes2::Pbkdf2Prf::HmacWithSha384 => "SHA384",
                pbes2::Pbkdf2Prf::HmacWithSha512 => "SHA512",
                _ => "unknown",
            };
            format!("PBKDF2-HMAC-{prf}, {} iterations", p.iteration_count)
        }
        pbes2::Kdf::Scrypt(_) => "scrypt".to_string(),
        _ => "unrecognised key derivation".to_string(),
    };
    Ok(Protection {
        cipher: cipher.to_string(),
        kdf: Kdf::Pkcs5(kdf),
    })
}

fn dsa_from_pkcs8(info: pkcs8::PrivateKeyInfo<'_>) -> Result<KeyData, String> {
    let params = info
        .algorithm
        .parameters
        .ok_or_else(|| "the DSA key has no domain parameters".to_string())?;
    let p_len = params
        .decode_as::<DsaParams<'_>>()
        .map_err(|_| damaged("DSA"))?
        .p
        .as_bytes()
        .len();
    if p_len * 8 > MAX_DSA_BITS {
        return Err(format!(
            "the DSA key is larger than {MAX_DSA_BITS} bits, which no SSH implementation accepts"
        ));
    }
    let signing = dsa::SigningKey::try_from(info).map_err(|_| damaged("DSA"))?;
    let verifying = signing.verifying_key();
    let c = verifying.components();
    Ok(KeyData::Dsa(DsaPublicKey {
        p: mpint(&c.p().to_bytes_be())?,
        q: mpint(&c.q().to_bytes_be())?,
        g: mpint(&c.g().to_bytes_be())?,
        y: mpint(&verifying.y().to_bytes_be())?,
    }))
}

#[derive(Sequence)]
struct DsaParams<'a> {
    p: UintRef<'a>,
    q: UintRef<'a>,
    g: UintRef<'a>,
}

fn ed25519_from_pkcs8(private_key: &[u8]) -> Result<KeyData, String> {
    // RFC 8410: the private key is an OCTET STRING holding the 32-byte seed.
    let seed = der::asn1::OctetStringRef::from_der(private_key).map_err(|_| damaged("Ed25519"))?;
    let seed: [u8; 32] = seed
        .as_bytes()
        .try_into()
        .map_err(|_| "the Ed25519 seed is not 32 bytes".to_string())?;
    let keypair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    Ok(KeyData::Ed25519(keypair.public))
}

/// PuTTY `.ppk` versions 2 and 3: the public blob, comment and encryption are in the clear.
fn parse_putty(text: &[u8]) -> Recognised {
    let broken = |reason: &str| Recognised::Broken(Broken::new(Format::Putty, true, reason));
    let Ok(text) = std::str::from_utf8(text) else {
        return broken("the PuTTY key file is not valid text");
    };
    let mut lines = text.lines();
    let Some((version, algorithm_name)) = lines
        .next()
        .and_then(|l| l.strip_prefix("PuTTY-User-Key-File-"))
        .and_then(|l| l.split_once(':'))
    else {
        return broken("the PuTTY header line is damaged");
    };
    if version != "2" && version != "3" {
        return broken(&format!(
            "PuTTY key file version {} is not supported (only 2 and 3); re-save it with a current PuTTYgen",
            sanitize(version)
        ));
    }
    let mut encryption = None;
    let mut comment = None;
    let mut public_blob = None;
    let mut private_blob = None;
    let mut mac = None;
    let mut kdf_variant = None;
    let mut argon_passes = None;
    let mut argon_memory = None;
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(": ").or_else(|| line.split_once(':')) else {
            continue;
        };
        let value = value.trim_end_matches('\r');
        match name {
            "Encryption" => encryption = Some(value.to_string()),
            "Comment" => comment = Some(value.to_string()),
            "Key-Derivation" => kdf_variant = Some(value.to_string()),
            "Argon2-Passes" => argon_passes = value.trim().parse().ok(),
            "Argon2-Memory" => argon_memory = value.trim().parse().ok(),
            "Private-MAC" => mac = Some(value.trim().to_string()),
            "Public-Lines" | "Private-Lines" => {
                let Ok(count) = value.trim().parse::<usize>() else {
                    return broken(&format!("the PuTTY {name} count is not a number"));
                };
                let mut b64 = String::new();
                for _ in 0..count {
                    match lines.next() {
                        Some(l) => b64.push_str(l.trim()),
                        None => return broken("the PuTTY key file is truncated"),
                    }
                }
                if name == "Public-Lines" {
                    public_blob = Some(b64);
                } else {
                    private_blob = Some(b64);
                }
            }
            _ => {}
        }
    }
    let Some(encryption) = encryption else {
        return broken("the PuTTY key file has no Encryption line (truncated?)");
    };
    let Some(b64) = public_blob else {
        return broken("the PuTTY key file has no public key (truncated?)");
    };
    // The private half is opaque without the passphrase, but it must be all there.
    let private_ok = private_blob
        .as_deref()
        .and_then(decode_base64)
        .is_some_and(|blob| !blob.is_empty());
    if !private_ok {
        return broken("the PuTTY key file's private key is missing or truncated");
    }
    let mac_len = if version == "2" { 40 } else { 64 };
    if !mac.is_some_and(|m| m.len() == mac_len && m.bytes().all(|b| b.is_ascii_hexdigit())) {
        return broken("the PuTTY key file has no valid Private-MAC line (truncated?)");
    }
    let key_data = match decode_base64(&b64)
        .filter(|blob| wire::public_blob_ok(blob))
        .and_then(|blob| ssh_key::PublicKey::from_bytes(&blob).ok())
    {
        Some(key) => key.key_data().clone(),
        None => return broken("the PuTTY public key is damaged"),
    };
    if key_data.algorithm().as_str() != algorithm_name.trim() {
        return broken("the PuTTY header names a different algorithm from its public key");
    }
    let kdf = if encryption == "none" {
        Kdf::None
    } else if version == "2" {
        Kdf::PuttySha1
    } else {
        Kdf::Argon2 {
            variant: kdf_variant.unwrap_or_else(|| "Argon2".to_string()),
            passes: argon_passes,
            memory_kib: argon_memory,
        }
    };
    let public = PublicInfo::new(key_data);
    Recognised::Key(Box::new(KeyFile {
        format: Format::Putty,
        private: true,
        algorithm: public.algorithm,
        public: Some(public),
        comment: comment.filter(|c| !c.is_empty()),
        protection: Some(Protection {
            cipher: encryption,
            kdf,
        }),
    }))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64ct::{Base64, Encoding};
    Base64::decode_vec(text).ok()
}

/// RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`), what PuTTYgen and `ssh-keygen -e` write.
fn parse_rfc4716_public(text: &[u8]) -> Recognised {
    let broken = |reason: &str| Recognised::Broken(Broken::new(Format::Public, false, reason));
    let Ok(text) = std::str::from_utf8(text) else {
        return broken("the public key file is not valid text");
    };
    let mut comment = None;
    let mut b64 = String::new();
    let mut ended = false;
    let mut continued_header = false;
    for line in text.lines().skip(1) {
        let line = line.trim();
        if line.starts_with("---- END SSH2 PUBLIC KEY ----") {
            ended = true;
            break;
        }
        if continued_header {
            continued_header = line.ends_with('\\');
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("Comment") {
                comment = Some(value.trim().trim_matches('"').to_string());
            }
            continued_header = line.ends_with('\\');
            continue;
        }
        b64.push_str(line);
    }
    if !ended {
        return broken("the public key has no END line: the file looks truncated");
    }
    match decode_base64(&b64)
        .filter(|blob| wire::public_blob_ok(blob))
        .and_then(|blob| ssh_key::PublicKey::from_bytes(&blob).ok())
    {
        Some(key) => Recognised::Key(Box::new(public_key_file(key.key_data().clone(), comment))),
        None => broken("the public key data is damaged"),
    }
}

fn public_key_file(key_data: KeyData, comment: Option<String>) -> KeyFile {
    let public = PublicInfo::new(key_data);
    KeyFile {
        format: Format::Public,
        private: false,
        algorithm: public.algorithm,
        public: Some(public),
        comment: comment.filter(|c| !c.is_empty()),
        protection: None,
    }
}

/// SSH public key algorithm names that start a `.pub` line.
const PUBLIC_KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One-line OpenSSH public keys (`ssh-ed25519 AAAA... comment`); the first key line counts.
fn recognise_public_line(bytes: &[u8]) -> Recognised {
    let text = strip_bom(bytes);
    let line = text
        .split(|&b| b == b'\n')
        .map(|l| trim_start(l.strip_suffix(b"\r").unwrap_or(l)))
        .find(|l| !l.is_empty() && !l.starts_with(b"#"));
    let Some(line) = line else {
        return Recognised::NotAKey;
    };
    let first_word = line
        .split(|b| b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    let Ok(first_word) = std::str::from_utf8(first_word) else {
        return Recognised::NotAKey;
    };
    if first_word.ends_with("-cert-v01@openssh.com") {
        return recognise_certificate(first_word, line);
    }
    if !PUBLIC_KEY_TYPES.contains(&first_word) {
        return Recognised::NotAKey;
    }
    let blob_ok = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .nth(1)
        .and_then(|b64| std::str::from_utf8(b64).ok())
        .and_then(decode_base64)
        .is_some_and(|blob| wire::public_blob_ok(&blob));
    let parsed = std::str::from_utf8(line)
        .ok()
        .filter(|_| blob_ok)
        .and_then(|l| ssh_key::PublicKey::from_openssh(l.trim_end()).ok());
    match parsed {
        Some(key) => {
            let comment = Some(key.comment().to_string());
            Recognised::Key(Box::new(public_key_file(key.key_data().clone(), comment)))
        }
        None => Recognised::Broken(Broken::new(
            Format::Public,
            false,
            "the public key line is damaged or truncated",
        )),
    }
}

/// An OpenSSH certificate line. Only its framing is checked: ssh-key 0.6 refuses certificates
/// valid "forever" (the usual case), and `check` has no use for their contents yet.
fn recognise_certificate(cert_type: &str, line: &[u8]) -> Recognised {
    let blob = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .nth(1)
        .and_then(|b64| std::str::from_utf8(b64).ok())
        .and_then(decode_base64);
    let framed = blob.as_deref().is_some_and(|blob| {
        let name = cert_type.as_bytes();
        blob.len() > 4 + name.len()
            && blob[..4] == (name.len() as u32).to_be_bytes()
            && &blob[4..4 + name.len()] == name
    });
    if framed {
        Recognised::Certificate
    } else {
        Recognised::Broken(Broken::new(
            Format::Public,
            false,
            "the OpenSSH certificate is damaged",
        ))
    }
}

/// Whether `bytes` hold a private key (parsed, or announced by its armour): such files must
/// never be readable by others, wherever keyrotate writes them.
pub fn looks_private(bytes: &[u8]) -> bool {
    match recognise(bytes) {
        Recognised::Key(key) => key.private,
        Recognised::Broken(broken) => broken.private == Some(true),
        Recognised::Certificate | Recognised::NotAKey => false,
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
