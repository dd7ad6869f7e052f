//! New key pairs: the options checked, the key made from the OS random source with RustCrypto,
//! and encoded exactly as `ssh-keygen` would (OpenSSH format with aes256-ctr and bcrypt-pbkdf, or
//! `-m PEM` with legacy AES-128-CBC encryption). Writing the files is `fsio`'s job.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand_core::CryptoRngCore;
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::{Cipher, EcdsaCurve, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use crate::keyfile::PublicInfo;
use crate::keyfile::pem_legacy;
use crate::passphrase::Passphrase;
use crate::plan::{Content, PlannedChange};
use crate::store::CreatedSet;
use crate::transaction::{self, Change, NewFile, TxError};

/// Key algorithms keyrotate generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
    Ecdsa,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
            KeyType::Ecdsa => "ecdsa",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ed25519 => "Ed25519",
            KeyType::Ecdsa => "ECDSA",
        }
    }
}

/// Private key file formats keyrotate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    Openssh,
    Pem,
    /// PuTTY `.ppk` version 3 (Argon2id, AES-256-CBC, HMAC-SHA-256), as PuTTYgen 0.75+ writes.
    Putty,
}

impl KeyFormat {
    /// How a person would name the format.
    pub fn describe(self) -> &'static str {
        match self {
            KeyFormat::Openssh => "OpenSSH",
            KeyFormat::Pem => "PEM",
            KeyFormat::Putty => "PuTTY",
        }
    }
}

pub const DEFAULT_RSA_BITS: u32 = 4096;
pub const DEFAULT_ECDSA_BITS: u32 = 521;
pub const DEFAULT_ROUNDS: u32 = 16;
/// Beyond this, unlocking the key would take minutes: almost certainly a typo.
pub const MAX_ROUNDS: u32 = 1000;

/// Options that cannot make a key, refused before anything is asked or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("RSA keys must have 2048 to 16384 bits, not {0}")]
    RsaBits(u32),
    #[error("ECDSA keys have 256, 384 or 521 bits, not {0}")]
    EcdsaBits(u32),
    #[error("Ed25519 keys have a fixed size; --bits does not apply")]
    Ed25519Bits,
    #[error("OpenSSH writes Ed25519 keys only in its own format, never PEM")]
    Ed25519Pem,
    #[error("--rounds applies to the OpenSSH format only; PEM has no rounds")]
    PemRounds,
    #[error(
        "--rounds applies to the OpenSSH format only; PuTTY keys use Argon2 with PuTTYgen's settings"
    )]
    PuttyRounds,
    #[error("{0} bcrypt rounds is below OpenSSH's default of 16 and makes a weak key")]
    TooFewRounds(u32),
    #[error(
        "{0} bcrypt rounds would make every use of the key take minutes (the limit is {MAX_ROUNDS})"
    )]
    TooManyRounds(u32),
    #[error("the key comment may not contain line breaks or other control characters")]
    BadComment,
}

impl SpecError {
    pub fn hint(&self) -> &'static str {
        match self {
            SpecError::RsaBits(_) => {
                "use --bits 3072 or --bits 4096 (the default), or --type ecdsa"
            }
            SpecError::EcdsaBits(_) => {
                "use --bits 521 (the default, as JASMIN recommends), 384 or 256"
            }
            SpecError::Ed25519Bits => "drop --bits",
            SpecError::Ed25519Pem => {
                "use --type ecdsa --format pem (JASMIN's NX desktop asks for ECDSA-521 in PEM), or \
                 drop --format pem"
            }
            SpecError::PemRounds => "drop --rounds, or drop --format pem",
            SpecError::PuttyRounds => "drop --rounds, or choose --format openssh",
            SpecError::TooFewRounds(_) | SpecError::TooManyRounds(_) => {
                "drop --rounds to use 16, or choose up to 100 for a slower, stronger key"
            }
            SpecError::BadComment => "give a one-line comment, e.g. -C alice@laptop",
        }
    }
}

/// A checked description of the key to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub key_type: KeyType,
    pub bits: u32,
    pub format: KeyFormat,
    /// bcrypt rounds (OpenSSH format only).
    pub rounds: u32,
    pub comment: String,
}

impl KeySpec {
    pub fn new(
        key_type: KeyType,
        bits: Option<u32>,
        format: KeyFormat,
        rounds: Option<u32>,
        comment: String,
    ) -> Result<Self, SpecError> {
        let bits = match (key_type, bits) {
            (KeyType::Rsa, None) => DEFAULT_RSA_BITS,
            (KeyType::Rsa, Some(b)) if (2048..=16384).contains(&b) => b,
            (KeyType::Rsa, Some(b)) => return Err(SpecError::RsaBits(b)),
            (KeyType::Ecdsa, None) => DEFAULT_ECDSA_BITS,
            (KeyType::Ecdsa, Some(b)) if [256, 384, 521].contains(&b) => b,
            (KeyType::Ecdsa, Some(b)) => return Err(SpecError::EcdsaBits(b)),
            (KeyType::Ed25519, None) => 256,
            (KeyType::Ed25519, Some(_)) => return Err(SpecError::Ed25519Bits),
        };
        if key_type == KeyType::Ed25519 && format == KeyFormat::Pem {
            return Err(SpecError::Ed25519Pem);
        }
        let rounds = match (format, rounds) {
            (KeyFormat::Pem, Some(_)) => return Err(SpecError::PemRounds),
            (KeyFormat::Pem, None) => 0,
            (KeyFormat::Putty, Some(_)) => return Err(SpecError::PuttyRounds),
            (KeyFormat::Putty, None) => 0,
            (KeyFormat::Openssh, None) => DEFAULT_ROUNDS,
            (KeyFormat::Openssh, Some(r)) if r < DEFAULT_ROUNDS => {
                return Err(SpecError::TooFewRounds(r));
            }
            (KeyFormat::Openssh, Some(r)) if r > MAX_ROUNDS => {
                return Err(SpecError::TooManyRounds(r));
            }
            (KeyFormat::Openssh, Some(r)) => r,
        };
        if comment.chars().any(char::is_control) {
            return Err(SpecError::BadComment);
        }
        Ok(KeySpec {
            key_type,
            bits,
            format,
            rounds,
            comment,
        })
    }

    /// `id_<type>_<service>`, the file name JASMIN's guidance uses.
    pub fn default_file_name(&self, service: &str) -> String {
        format!("id_{}_{service}", self.key_type.as_str())
    }

    /// "RSA 4096", "ECDSA 521", "Ed25519".
    pub fn describe(&self) -> String {
        match self.key_type {
            KeyType::Ed25519 => self.key_type.display_name().to_string(),
            _ => format!("{} {}", self.key_type.display_name(), self.bits),
        }
    }
}

/// Whether `service` can be part of a file name: letters, digits, `.`, `_`, `-`.
pub fn valid_service_name(service: &str) -> bool {
    !service.is_empty()
        && !service.starts_with('.')
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A new key, encoded and encrypted, ready to be written.
pub struct NewKey {
    /// The private key file's contents (encrypted). Wiped on drop.
    pub private_file: Zeroizing<String>,
    /// The `.pub` file's contents: one OpenSSH line with the comment, ending in a newline.
    pub public_file: String,
    pub public: PublicInfo,
    /// The key itself, unencrypted, for handing to ssh-agent. ssh-key wipes it on drop.
    pub unencrypted: PrivateKey,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("public", &self.public.fingerprint())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("key generation failed: {0}")]
    Crypto(String),
}

fn crypto(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Crypto(e.to_string())
}

fn curve(bits: u32) -> EcdsaCurve {
    match bits {
        256 => EcdsaCurve::NistP256,
        384 => EcdsaCurve::NistP384,
        _ => EcdsaCurve::NistP521,
    }
}

/// The freshly generated secret, in the form its PEM encoding needs.
enum Material {
    /// Kept as the `rsa` crate's key: ssh-key 0.6.7 cannot convert back to it (it passes `p`
    /// twice instead of `p` and `q`).
    Rsa(rsa::RsaPrivateKey),
    Ecdsa(EcdsaKeypair),
    Ed25519(Ed25519Keypair),
}

/// Make the key pair `spec` describes and encrypt it with `passphrase`. `rng` makes Ed25519 and
/// ECDSA keys, salts and IVs; RSA primes come from the OS random source, one search per thread.
pub fn generate(
    spec: &KeySpec,
    passphrase: &Passphrase,
    rng: &mut impl CryptoRngCore,
) -> Result<NewKey, GenerateError> {
    let material = match spec.key_type {
        KeyType::Ed25519 => Material::Ed25519(Ed25519Keypair::random(rng)),
        KeyType::Ecdsa => {
            Material::Ecdsa(EcdsaKeypair::random(rng, curve(spec.bits)).map_err(crypto)?)
        }
        KeyType::Rsa => Material::Rsa(rsa_key(spec.bits)?),
    };
    let keypair = match &material {
        Material::Rsa(key) => KeypairData::from(RsaKeypair::try_from(key).map_err(crypto)?),
        Material::Ecdsa(key) => KeypairData::from(key.clone()),
        Material::Ed25519(key) => KeypairData::from(key.clone()),
    };
    let key = PrivateKey::new(keypair, spec.comment.clone()).map_err(crypto)?;
    let public = PublicInfo::new(key.public_key().key_data().clone());
    let mut public_file = key.public_key().to_openssh().map_err(crypto)?;
    public_file.push('\n');
    let private_file = match spec.format {
        KeyFormat::Openssh => {
            let mut salt = vec![0u8; 16];
            rng.fill_bytes(&mut salt);
            let kdf = ssh_key::Kdf::Bcrypt {
                salt,
                rounds: spec.rounds,
            };
            let checkint = rng.next_u32();
            key.encrypt_with(Cipher::Aes256Ctr, kdf, checkint, passphrase.as_bytes())
                .map_err(crypto)?
                .to_openssh(LineEnding::LF)
                .map_err(crypto)?
        }
        KeyFormat::Pem => {
            let (label, der) = pem_der(&material)?;
            pem_legacy::encrypt(label, &der, passphrase.as_bytes(), rng)
        }
        KeyFormat::Putty => putty_file(&key, passphrase, rng)?,
    };
    Ok(NewKey {
        private_file,
        public_file,
        public,
        unencrypted: key,
    })
}

/// The `.ppk` version 3 file of `key`, encrypted with `passphrase`.
fn putty_file(
    key: &PrivateKey,
    passphrase: &Passphrase,
    rng: &mut impl CryptoRngCore,
) -> Result<Zeroizing<String>, GenerateError> {
    crate::keyfile::putty_crypt::encode_ppk_v3(key, passphrase.as_bytes(), rng).map_err(crypto)
}

/// Why a new key could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum WriteKeyError {
    #[error("{} already exists; keyrotate never overwrites a key without being told to", .path.display())]
    Exists { path: PathBuf },
    #[error("{} ends in .pub; -f names the private key, and its .pub goes beside it", .path.display())]
    PublicPath { path: PathBuf },
    #[error("{} is not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error("the directory {} does not exist", .path.display())]
    NoDirectory { path: PathBuf },
    #[error("{source}")]
    Look {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the SSH directory {}: {}", .path.display(), crate::sys::io_reason(.source))]
    SshDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Transaction(#[from] TxError),
}

impl WriteKeyError {
    pub fn hint(&self) -> String {
        match self {
            WriteKeyError::Exists { .. } => "add --force to replace it (the old key is backed up \
                 first), or run `keyrotate rotate` to replace it the way JASMIN asks"
                .to_string(),
            WriteKeyError::PublicPath { path } => format!(
                "use -f {} (the private key's name; its .pub goes beside it)",
                crate::text::shell_path(&path.with_extension(""))
            ),
            WriteKeyError::NotAFile { .. } => {
                "choose another -f PATH, or move what is there out of the way".to_string()
            }
            WriteKeyError::NoDirectory { path } => format!(
                "create the directory first (`mkdir -p -m 700 {}`), or choose another -f PATH",
                crate::text::shell_path(path)
            ),
            WriteKeyError::Look { .. } => "nothing was changed; check the disk and the file's \
                 permissions (`ls -l`), then run again"
                .to_string(),
            WriteKeyError::SshDir { path, .. } => format!(
                "create it yourself with `mkdir -p -m 700 {}`, or point --ssh-dir at another directory",
                crate::text::shell_path(path)
            ),
            WriteKeyError::Transaction(e) => e.hint(),
        }
    }
}

/// Where a new key went, and where the key it replaced (with `--force`) was saved.
#[derive(Debug, Clone)]
pub struct Written {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub backup: Option<CreatedSet>,
}

/// Words an attacker would try first, counted against the passphrase.
pub fn passphrase_context(spec: &KeySpec, target: &Path) -> Vec<String> {
    let mut words: Vec<String> = vec!["keyrotate".into(), "ssh".into(), "jasmin".into()];
    words.extend(
        spec.comment
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_string),
    );
    if let Ok(user) = whoami::username() {
        words.push(user);
    }
    if let Some(name) = target.file_name() {
        words.push(name.to_string_lossy().into_owned());
    }
    words
}

/// A missing SSH directory is created 0700 (its parent must exist).
pub fn ensure_ssh_dir(ssh_dir: &Path) -> Result<(), WriteKeyError> {
    let look = |source| WriteKeyError::Look {
        path: ssh_dir.to_path_buf(),
        source,
    };
    if crate::sys::fsio::is_dir(ssh_dir).map_err(look)? {
        return Ok(());
    }
    crate::sys::fsio::create_private_dir(ssh_dir).map_err(|source| WriteKeyError::SshDir {
        path: ssh_dir.to_path_buf(),
        source,
    })?;
    if let Some(parent) = ssh_dir.parent() {
        let _ = crate::sys::fsio::sync_dir(parent);
    }
    Ok(())
}

/// `<private>.pub`.
pub fn public_path_for(private_path: &Path) -> PathBuf {
    let mut p = private_path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Check that a new key can go to `private_path`: not a `.pub` name, the directory exists, and
/// (unless `replace`) neither file of the pair exists, not even as a dangling symlink.
pub fn check_target(private_path: &Path, replace: bool) -> Result<(), WriteKeyError> {
    if private_path
        .file_name()
        .is_some_and(|n| n.as_encoded_bytes().ends_with(b".pub"))
    {
        return Err(WriteKeyError::PublicPath {
            path: private_path.to_path_buf(),
        });
    }
    let look = |path: &Path, source: std::io::Error| WriteKeyError::Look {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = private_path.parent().filter(|d| !d.as_os_str().is_empty())
        && !crate::sys::fsio::is_dir(dir).map_err(|e| look(dir, e))?
    {
        return Err(WriteKeyError::NoDirectory {
            path: dir.to_path_buf(),
        });
    }
    for path in [private_path.to_path_buf(), public_path_for(private_path)] {
        match crate::sys::fsio::lstat(&path).map_err(|e| look(&path, e))? {
            Some(_) if !replace => return Err(WriteKeyError::Exists { path }),
            Some(meta) if meta.is_dir() => return Err(WriteKeyError::NotAFile { path }),
            _ => {}
        }
    }
    Ok(())
}

/// The plan of a new pair at `private_path` (and `.pub` beside it). With `replace`, an existing
/// pair is first saved in a new verified backup set, then replaced; without it, an existing file
/// at either name is an error and nothing is touched.
pub fn planned_pair(private_path: &Path, replace: bool) -> PlannedChange {
    Change {
        operation: "generate",
        new_files: vec![
            NewFile {
                target: private_path.to_path_buf(),
                bytes: Content::PrivateKey,
                mode: 0o600,
                replace,
                modified: None,
                expect: None,
            },
            NewFile {
                target: public_path_for(private_path),
                bytes: Content::PublicKey,
                mode: 0o644,
                replace,
                modified: None,
                expect: None,
            },
        ],
        remove: Vec::new(),
        retire: Vec::new(),
        backup: replace,
    }
}

/// Put a new key in place at `private_path`, as one crash-safe transaction: the plan of
/// [`planned_pair`], executed with `key`'s files.
pub fn write_new_key(
    ssh_dir: &Path,
    private_path: &Path,
    key: &NewKey,
    replace: bool,
) -> Result<Written, WriteKeyError> {
    check_target(private_path, replace)?;
    let change = planned_pair(private_path, replace)
        .map_content(|c| c.fill(key.private_file.as_bytes(), key.public_file.as_bytes()));
    let committed = transaction::commit(ssh_dir, change, SystemTime::now())?;
    Ok(Written {
        private_path: private_path.to_path_buf(),
        public_path: public_path_for(private_path),
        backup: committed.backup,
    })
}

/// An RSA key of exactly `bits` bits with e = 65537. The two primes are searched for at the same
/// time, one per core, by crypto-primes (a sieve, Miller-Rabin base 2 and a strong Lucas test;
/// about four times faster here than the rsa crate's own search), from the OS random source; the
/// rsa crate then derives the key from them (`from_p_q`: d as NIST SP 800-56B asks) and checks it.
fn rsa_key(bits: u32) -> Result<rsa::RsaPrivateKey, GenerateError> {
    use crypto_bigint::BoxedUint;
    use crypto_primes::hazmat::{SetBits, SmallFactorsSieveFactory};
    use crypto_primes::{Flavor, is_prime, sieve_and_find};
    use rsa::BigUint;
    use rsa::traits::PublicKeyParts;
    use zeroize::Zeroize;

    /// A prime of `bits` bits with its two top bits set, so that the product of two has exactly
    /// the sum of their sizes.
    fn prime(bits: u32) -> Result<Zeroizing<Vec<u8>>, GenerateError> {
        let mut rng = rand_core_010::UnwrapErr(getrandom::SysRng);
        let factory =
            SmallFactorsSieveFactory::new(Flavor::Any, bits, SetBits::TwoMsb).map_err(crypto)?;
        let mut p: BoxedUint = sieve_and_find(&mut rng, factory, |_, c: &BoxedUint| {
            is_prime(Flavor::Any, c)
        })
        .map_err(crypto)?
        .ok_or_else(|| GenerateError::Crypto("no prime found".to_string()))?;
        let bytes = Zeroizing::new(p.to_be_bytes().to_vec());
        p.zeroize();
        Ok(bytes)
    }

    let e = BigUint::from(65_537u32);
    loop {
        let (p, q) = std::thread::scope(|s| {
            let p = s.spawn(|| prime(bits.div_ceil(2)));
            let q = s.spawn(|| prime(bits / 2));
            (p.join(), q.join())
        });
        let thread = |_| GenerateError::Crypto("prime search failed".to_string());
        let (p, q) = (p.map_err(thread)??, q.map_err(thread)??);
        let (p, q) = (BigUint::from_bytes_be(&p), BigUint::from_bytes_be(&q));
        // gcd(e, p - 1) = 1: e is prime, so p mod e must not be 1 (and likewise for q).
        let one = BigUint::from(1u32);
        if &p % &e == one || &q % &e == one {
            continue;
        }
        // FIPS 186-5 A.1.3: |p - q| > 2^(nlen/2 - 100), or n is open to Fermat factoring.
        let gap = if p > q { &p - &q } else { &q - &p };
        if gap.bits() <= (bits as usize / 2).saturating_sub(100) {
            continue;
        }
        let mut key = rsa::RsaPrivateKey::from_p_q(p, q, e.clone()).map_err(crypto)?;
        if key.n().bits() != bits as usize {
            continue;
        }
        key.validate().map_err(crypto)?;
        key.precompute().map_err(crypto)?;
        return Ok(key);
    }
}

/// The unencrypted DER of `ssh-keygen -m PEM`: PKCS#1 for RSA; for ECDSA, SEC1 with the named
/// curve and the public key, as OpenSSL writes it (and needs it: without the curve it refuses).
fn pem_der(material: &Material) -> Result<(&'static str, Zeroizing<Vec<u8>>), GenerateError> {
    match material {
        Material::Rsa(key) => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let der = key.to_pkcs1_der().map_err(crypto)?;
            Ok(("RSA PRIVATE KEY", Zeroizing::new(der.as_bytes().to_vec())))
        }
        Material::Ecdsa(ec) => {
            use der::Encode;
            let oid = match ec.curve() {
                EcdsaCurve::NistP256 => "1.2.840.10045.3.1.7",
                EcdsaCurve::NistP384 => "1.3.132.0.34",
                EcdsaCurve::NistP521 => "1.3.132.0.35",
            };
            let oid = der::asn1::ObjectIdentifier::new(oid).map_err(crypto)?;
            let structure = sec1::EcPrivateKey {
                private_key: ec.private_key_bytes(),
                parameters: Some(sec1::EcParameters::NamedCurve(oid)),
                public_key: Some(ec.public_key_bytes()),
            };
            Ok((
                "EC PRIVATE KEY",
                Zeroizing::new(structure.to_der().map_err(crypto)?),
            ))
        }
        Material::Ed25519(_) => Err(GenerateError::Crypto(
            "only RSA and ECDSA keys can be written in PEM format".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::{Recognised, recognise};

    fn spec(
        t: KeyType,
        bits: Option<u32>,
        f: KeyFormat,
        rounds: Option<u32>,
    ) -> Result<KeySpec, SpecError> {
        KeySpec::new(t, bits, f, rounds, "test@host".to_string())
    }

    #[test]
    fn option_table() {
        use KeyFormat::*;
        use KeyType::*;
        assert_eq!(spec(Rsa, None, Openssh, None).unwrap().bits, 4096);
        assert_eq!(spec(Ecdsa, None, Openssh, None).unwrap().bits, 521);
        assert_eq!(spec(Ecdsa, None, Openssh, None).unwrap().rounds, 16);
        assert_eq!(
            spec(Rsa, Some(1024), Openssh, None),
            Err(SpecError::RsaBits(1024))
        );
        assert_eq!(
            spec(Rsa, Some(32768), Openssh, None),
            Err(SpecError::RsaBits(32768))
        );
        assert_eq!(
            spec(Ecdsa, Some(512), Pem, None),
            Err(SpecError::EcdsaBits(512))
        );
        assert_eq!(
            spec(Ed25519, Some(256), Openssh, None),
            Err(SpecError::Ed25519Bits)
        );
        assert_eq!(spec(Ed25519, None, Pem, None), Err(SpecError::Ed25519Pem));
        assert_eq!(spec(Ecdsa, None, Pem, Some(16)), Err(SpecError::PemRounds));
        assert_eq!(
            spec(Ecdsa, None, Openssh, Some(8)),
            Err(SpecError::TooFewRounds(8))
        );
        assert_eq!(
            spec(Ecdsa, None, Openssh, Some(5000)),
            Err(SpecError::TooManyRounds(5000))
        );
        assert_eq!(spec(Ecdsa, None, Openssh, Some(100)).unwrap().rounds, 100);
        assert_eq!(
            KeySpec::new(Ed25519, None, Openssh, None, "a\nb".into()),
            Err(SpecError::BadComment)
        );
        assert_eq!(
            spec(Ecdsa, None, Openssh, None)
                .unwrap()
                .default_file_name("jasmin"),
            "id_ecdsa_jasmin"
        );
    }

    #[test]
    fn rsa_keys_have_exactly_the_bits_asked_for_and_distant_primes() {
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        for bits in [2048, 2049, 3072] {
            let key = rsa_key(bits).unwrap();
            assert_eq!(key.n().bits(), bits as usize);
            assert_eq!(key.e(), &rsa::BigUint::from(65_537u32));
            let [p, q] = key.primes() else {
                panic!("two primes")
            };
            assert_eq!(&(p * q), key.n());
            assert_ne!(p, q);
            let gap = if p > q { p - q } else { q - p };
            assert!(gap.bits() > bits as usize / 2 - 100);
            key.validate().unwrap();
        }
    }

    #[test]
    fn service_names() {
        for ok in ["jasmin", "my-hpc", "site_2", "a.b"] {
            assert!(valid_service_name(ok), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(!valid_service_name(bad), "{bad}");
        }
    }

    #[test]
    fn generated_keys_are_read_back_by_our_own_parser() {
        let pass = Passphrase::new(Zeroizing::new(b"a test passphrase here".to_vec()));
        for (t, f) in [
            (KeyType::Ed25519, KeyFormat::Openssh),
            (KeyType::Ecdsa, KeyFormat::Openssh),
            (KeyType::Ecdsa, KeyFormat::Pem),
        ] {
            let s = spec(t, None, f, None).unwrap();
            let key = generate(&s, &pass, &mut rand_core::OsRng).unwrap();
            let Recognised::Key(parsed) = recognise(key.private_file.as_bytes()) else {
                panic!("{t:?} {f:?} not recognised");
            };
            assert_eq!(parsed.encrypted(), Some(true));
            if f == KeyFormat::Openssh {
                assert_eq!(
                    parsed.public.unwrap().fingerprint(),
                    key.public.fingerprint()
                );
            }
            assert!(key.public_file.ends_with(" test@host\n"));
            assert!(!format!("{key:?}").contains("PRIVATE"));
        }
    }
}
