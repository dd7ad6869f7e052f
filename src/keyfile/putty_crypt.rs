//! PuTTY `.ppk` encryption: check a passphrase against a version 2 or 3 file, and write an
//! encrypted version 3 file as PuTTYgen 0.78 does (`sshpubk.c`, `ppk_save_sb` / `ppk_load_s`;
//! the PuTTY manual, appendix C). Assembled from RustCrypto's `argon2`, `aes`, `cbc`, `hmac`,
//! `sha1` and `sha2`; no primitive is implemented here.
//!
//! Version 3: Argon2 (the file names the flavour, memory, passes, parallelism and salt; no secret
//! key, no associated data) derives 80 bytes: the AES-256-CBC key (32), its IV (16) and the
//! HMAC-SHA-256 key (32). Version 2: the key is SHA-1(0u32 ‖ passphrase) ‖ SHA-1(1u32 ‖
//! passphrase) cut to 32 bytes, the IV is zero, the HMAC-SHA-1 key is
//! SHA-1("putty-private-key-file-mac-key" ‖ passphrase). In both, the MAC covers the algorithm
//! name, the encryption name, the comment, the public blob and the *decrypted, padded* private
//! blob, each as an SSH string; the padding is the first bytes of SHA-1 of the unpadded blob.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use ssh_encoding::{Encode, Writer};
use ssh_key::Mpint;
use zeroize::Zeroizing;

/// PuTTYgen's Argon2 memory, 8 MiB, in KiB.
pub const ARGON2_MEMORY_KIB: u32 = 8192;
/// Argon2 passes keyrotate writes. PuTTYgen picks the number that takes it 100 ms on the machine
/// at hand (`--ppk-param time=100`); a fixed number keeps keyrotate's files alike everywhere and
/// costs no trial runs. Measured on the 2-core development machine: PuTTYgen 0.78 chose 8 to 13
/// there, and 13 passes take keyrotate's release build 110 to 125 ms (the test
/// `argon2_derivation_time` prints it) and PuTTYgen about 250 ms to open.
pub const ARGON2_PASSES: u32 = 13;
/// PuTTYgen's parallelism: its Argon2 is single-threaded, so more lanes would only help an
/// attacker.
pub const ARGON2_PARALLELISM: u32 = 1;
/// PuTTYgen's salt length.
const SALT_LEN: usize = 16;
/// Key, IV and MAC key of version 3.
const V3_KEY_MATERIAL: usize = 32 + 16 + 32;
/// Base64 characters per line, as PuTTYgen wraps them (48 bytes).
const LINE_BYTES: usize = 48;

/// How much Argon2 work one passphrase check may cost; compared before any work starts.
#[derive(Debug, Clone, Copy)]
pub struct Argon2Limits {
    pub max_passes: u32,
    pub max_memory_kib: u32,
    /// Passes times memory (KiB): each pass fills the whole memory again, so 1000 passes of
    /// 1 GiB (each within its own limit) would cost many minutes.
    pub max_work_kib: u64,
}

/// Why a `.ppk` could not be decrypted or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PpkError {
    /// The file does not follow the format (PuTTY would refuse it too).
    #[error("the PuTTY key file is damaged ({0})")]
    Damaged(&'static str),
    /// Version, encryption or key derivation keyrotate does not know.
    #[error("the PuTTY key uses {0}, which keyrotate cannot decrypt")]
    Unsupported(String),
    /// `Encryption: none`: no passphrase opens it.
    #[error("the PuTTY key is not encrypted")]
    NotEncrypted,
    /// The MAC did not match: the passphrase is wrong (or the file was altered).
    #[error("the passphrase does not open this key")]
    WrongPassphrase,
    /// The file asks for more Argon2 work than allowed; nothing was computed.
    #[error("the PuTTY key asks for {what}, over keyrotate's limit of {limit}")]
    OverLimit { what: String, limit: String },
    /// A key keyrotate cannot write as `.ppk`.
    #[error("keyrotate cannot write a {0} key as a PuTTY key")]
    UnsupportedKey(String),
    /// PuTTY's format cannot hold a line break in the comment.
    #[error("the key comment contains a line break, which a PuTTY key file cannot hold")]
    CommentLineBreak,
    #[error("the key could not be encoded: {0}")]
    Encoding(String),
}

/// What a `.ppk` holds once its MAC checked out.
pub struct DecryptedPpk {
    /// 2 or 3.
    pub version: u8,
    /// The SSH algorithm name of the header line.
    pub algorithm: String,
    /// The comment, as bytes (PuTTY allows any byte but CR and LF).
    pub comment: Vec<u8>,
    /// The public key, in SSH wire format.
    pub public_blob: Vec<u8>,
    /// The private fields, in PuTTY's layout, with the padding still on.
    pub private_blob: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DecryptedPpk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedPpk")
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .field("private_blob", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Does `passphrase` open the encrypted `.ppk` in `bytes`? `Ok(false)` is a wrong passphrase.
pub fn ppk_passphrase_opens(
    bytes: &[u8],
    passphrase: &[u8],
    limits: &Argon2Limits,
) -> Result<bool, PpkError> {
    match decrypt_ppk(bytes, passphrase, limits) {
        Ok(_) => Ok(true),
        Err(PpkError::WrongPassphrase) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Decrypt the encrypted `.ppk` (version 2 or 3) in `bytes` and check its MAC. Argon2's work
/// factors are compared with `limits` before anything is derived.
pub fn decrypt_ppk(
    bytes: &[u8],
    passphrase: &[u8],
    limits: &Argon2Limits,
) -> Result<DecryptedPpk, PpkError> {
    let file = parse(bytes)?;
    if file.encryption != b"aes256-cbc" {
        return match file.encryption {
            b"none" => Err(PpkError::NotEncrypted),
            other => Err(PpkError::Unsupported(format!(
                "the encryption {:?}",
                String::from_utf8_lossy(other)
            ))),
        };
    }
    let mut private_blob = Zeroizing::new(base64_decode(
        &file.private_b64,
        "the private key is not valid base64",
    )?);
    if private_blob.is_empty() || private_blob.len() % 16 != 0 {
        return Err(PpkError::Damaged(
            "the private key is not a whole number of AES blocks",
        ));
    }
    let public_blob = base64_decode(&file.public_b64, "the public key is not valid base64")?;
    let expected_mac = base16ct::mixed::decode_vec(file.mac)
        .map_err(|_| PpkError::Damaged("the Private-MAC is not hexadecimal"))?;

    let keys = match file.version {
        2 => v2_keys(passphrase),
        _ => {
            let kdf = file
                .argon2
                .as_ref()
                .ok_or(PpkError::Damaged("the Argon2 parameters are missing"))?;
            kdf.check(limits)?;
            kdf.derive(passphrase)?
        }
    };
    cbc::Decryptor::<aes::Aes256>::new_from_slices(keys.cipher_key(), keys.iv())
        .expect("AES-256 key and IV have fixed, correct lengths")
        .decrypt_padded_mut::<NoPadding>(&mut private_blob)
        .map_err(|_| PpkError::Damaged("the private key is not a whole number of AES blocks"))?;

    let fields = MacFields {
        algorithm: file.algorithm,
        encryption: file.encryption,
        comment: file.comment,
        public_blob: &public_blob,
        private_blob: &private_blob,
    };
    let matches = match file.version {
        2 => fields.verify::<Hmac<Sha1>>(keys.mac_key(), &expected_mac),
        _ => fields.verify::<Hmac<Sha256>>(keys.mac_key(), &expected_mac),
    };
    if !matches {
        return Err(PpkError::WrongPassphrase);
    }
    Ok(DecryptedPpk {
        version: file.version,
        algorithm: String::from_utf8_lossy(file.algorithm).into_owned(),
        comment: file.comment.to_vec(),
        public_blob,
        private_blob,
    })
}

/// Write `key` as a PuTTY `.ppk` version 3 file, as PuTTYgen 0.78 writes it: LF line endings,
/// base64 in lines of 64 characters, Argon2id with [`ARGON2_MEMORY_KIB`], [`ARGON2_PASSES`] and
/// [`ARGON2_PARALLELISM`], a 16-byte random salt, AES-256-CBC and HMAC-SHA-256. An empty
/// `passphrase` writes an unencrypted file (`Encryption: none`), as PuTTYgen does.
///
/// RSA, Ed25519 and ECDSA (P-256, P-384, P-521) keys; the comment is the key's.
pub fn encode_ppk_v3(
    key: &ssh_key::PrivateKey,
    passphrase: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Zeroizing<String>, PpkError> {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let kdf = Argon2Params {
        flavour: argon2::Algorithm::Argon2id,
        memory_kib: ARGON2_MEMORY_KIB,
        passes: ARGON2_PASSES,
        parallelism: ARGON2_PARALLELISM,
        salt: salt.to_vec(),
    };
    encode_v3_with(key, passphrase, &kdf)
}

fn encode_v3_with(
    key: &ssh_key::PrivateKey,
    passphrase: &[u8],
    kdf: &Argon2Params,
) -> Result<Zeroizing<String>, PpkError> {
    if key.is_encrypted() {
        return Err(PpkError::UnsupportedKey("still encrypted".to_string()));
    }
    let algorithm = key.algorithm();
    let algorithm = algorithm.as_str();
    let comment = key.comment();
    if comment.contains(['\r', '\n']) {
        return Err(PpkError::CommentLineBreak);
    }
    let public_blob = key
        .public_key()
        .to_bytes()
        .map_err(|e| PpkError::Encoding(e.to_string()))?;
    let mut private_blob = private_blob(key)?;

    let encrypted = !passphrase.is_empty();
    let encryption: &str = if encrypted { "aes256-cbc" } else { "none" };
    // Pad to the cipher's block with the start of SHA-1 of the unpadded blob (PuTTY: "this
    // prevents too easy a known-plaintext attack on the last block").
    let block = if encrypted { 16 } else { 1 };
    let padding = (block - private_blob.len() % block) % block;
    let mut digest = Zeroizing::new([0u8; 20]);
    Sha1::new()
        .chain_update(private_blob.as_slice())
        .finalize_into((&mut digest[..]).into());
    private_blob.extend_from_slice(&digest[..padding]);

    let keys = if encrypted {
        kdf.derive(passphrase)?
    } else {
        KeyMaterial(Zeroizing::new(Vec::new()))
    };
    let fields = MacFields {
        algorithm: algorithm.as_bytes(),
        encryption: encryption.as_bytes(),
        comment: comment.as_bytes(),
        public_blob: &public_blob,
        private_blob: &private_blob,
    };
    let mac = fields.compute::<Hmac<Sha256>>(if encrypted { keys.mac_key() } else { &[] });
    if encrypted {
        let len = private_blob.len();
        cbc::Encryptor::<aes::Aes256>::new_from_slices(keys.cipher_key(), keys.iv())
            .expect("AES-256 key and IV have fixed, correct lengths")
            .encrypt_padded_mut::<NoPadding>(&mut private_blob, len)
            .expect("the blob was padded to whole blocks");
    }

    // Reserved once: the text holds the private blob in the clear when unencrypted, and a
    // reallocation would leave a copy behind.
    let capacity = 512 + comment.len() + 2 * (public_blob.len() + private_blob.len());
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    let lines = |len: usize| len.div_ceil(LINE_BYTES);
    out.push_str("PuTTY-User-Key-File-3: ");
    out.push_str(algorithm);
    out.push_str("\nEncryption: ");
    out.push_str(encryption);
    out.push_str("\nComment: ");
    out.push_str(comment);
    out.push_str(&format!("\nPublic-Lines: {}\n", lines(public_blob.len())));
    push_base64_lines(&mut out, &public_blob);
    if encrypted {
        let flavour = match kdf.flavour {
            argon2::Algorithm::Argon2d => "Argon2d",
            argon2::Algorithm::Argon2i => "Argon2i",
            argon2::Algorithm::Argon2id => "Argon2id",
        };
        out.push_str(&format!(
            "Key-Derivation: {flavour}\nArgon2-Memory: {}\nArgon2-Passes: {}\n\
             Argon2-Parallelism: {}\nArgon2-Salt: {}\n",
            kdf.memory_kib,
            kdf.passes,
            kdf.parallelism,
            base16ct::lower::encode_string(&kdf.salt)
        ));
    }
    out.push_str(&format!("Private-Lines: {}\n", lines(private_blob.len())));
    push_base64_lines(&mut out, &private_blob);
    out.push_str("Private-MAC: ");
    out.push_str(&base16ct::lower::encode_string(&mac));
    out.push('\n');
    Ok(out)
}

/// PuTTY's private blob (`ssh_key_private_blob`): RSA `mpint d, p, q, iqmp`; Ed25519 a string
/// of the 32-byte secret (little-endian, as the seed is); ECDSA `mpint` of the scalar.
fn private_blob(key: &ssh_key::PrivateKey) -> Result<Zeroizing<Vec<u8>>, PpkError> {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    let encoding = |e: ssh_encoding::Error| PpkError::Encoding(e.to_string());
    // Reserved once, so no reallocation leaves a copy of the secret behind: the OpenSSH
    // encoding of the whole key pair is longer than PuTTY's private fields plus a block of
    // padding.
    let capacity = key.key_data().encoded_len().unwrap_or(0) + 32;
    let mut blob = Zeroizing::new(Vec::with_capacity(capacity));
    match key.key_data() {
        KeypairData::Rsa(rsa) => {
            let private = &rsa.private;
            for mpint in [&private.d, &private.p, &private.q, &private.iqmp] {
                mpint.encode(&mut *blob).map_err(encoding)?;
            }
        }
        KeypairData::Ed25519(ed) => {
            ed.private.as_ref().encode(&mut *blob).map_err(encoding)?;
        }
        KeypairData::Ecdsa(ecdsa) => {
            let scalar = match ecdsa {
                EcdsaKeypair::NistP256 { private, .. } => private.as_slice(),
                EcdsaKeypair::NistP384 { private, .. } => private.as_slice(),
                EcdsaKeypair::NistP521 { private, .. } => private.as_slice(),
            };
            // A canonical mpint: leading zero bytes stripped, one added if the top bit is set.
            let mpint = Mpint::from_positive_bytes(scalar)
                .map_err(|e| PpkError::Encoding(e.to_string()))?;
            mpint.encode(&mut *blob).map_err(encoding)?;
        }
        other => {
            let name = other
                .algorithm()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|_| "encrypted or unknown".to_string());
            return Err(PpkError::UnsupportedKey(name));
        }
    }
    Ok(blob)
}

fn push_base64_lines(out: &mut String, data: &[u8]) {
    use base64ct::{Base64, Encoding};
    let mut line = Zeroizing::new([0u8; 64]);
    for chunk in data.chunks(LINE_BYTES) {
        let text = Base64::encode(chunk, &mut line[..]).expect("64 characters hold 48 bytes");
        out.push_str(text);
        out.push('\n');
    }
}

fn base64_decode(text: &[u8], damaged: &'static str) -> Result<Vec<u8>, PpkError> {
    use base64ct::{Base64, Encoding};
    let text = std::str::from_utf8(text).map_err(|_| PpkError::Damaged(damaged))?;
    Base64::decode_vec(text).map_err(|_| PpkError::Damaged(damaged))
}

/// The fields the MAC covers, each an SSH string.
struct MacFields<'a> {
    algorithm: &'a [u8],
    encryption: &'a [u8],
    comment: &'a [u8],
    public_blob: &'a [u8],
    private_blob: &'a [u8],
}

/// Feeds `ssh-encoding` straight into the MAC, so the decrypted blob is never copied.
struct MacWriter<M>(M);

impl<M: Mac> Writer for MacWriter<M> {
    fn write(&mut self, bytes: &[u8]) -> ssh_encoding::Result<()> {
        self.0.update(bytes);
        Ok(())
    }
}

impl MacFields<'_> {
    fn mac<M: Mac + hmac::digest::KeyInit>(&self, key: &[u8]) -> M {
        let mut writer =
            MacWriter(<M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length"));
        for field in [
            self.algorithm,
            self.encryption,
            self.comment,
            self.public_blob,
            self.private_blob,
        ] {
            field
                .encode(&mut writer)
                .expect("writing into a MAC cannot fail");
        }
        writer.0
    }

    fn compute<M: Mac + hmac::digest::KeyInit>(&self, key: &[u8]) -> Vec<u8> {
        self.mac::<M>(key).finalize().into_bytes().to_vec()
    }

    /// Constant time, as `hmac` compares.
    fn verify<M: Mac + hmac::digest::KeyInit>(&self, key: &[u8], expected: &[u8]) -> bool {
        self.mac::<M>(key).verify_slice(expected).is_ok()
    }
}

/// Cipher key ‖ IV ‖ MAC key.
struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    fn cipher_key(&self) -> &[u8] {
        &self.0[..32]
    }
    fn iv(&self) -> &[u8] {
        &self.0[32..48]
    }
    fn mac_key(&self) -> &[u8] {
        &self.0[48..]
    }
}

/// Version 2's derivation: plain SHA-1, no salt.
fn v2_keys(passphrase: &[u8]) -> KeyMaterial {
    let mut material = Zeroizing::new(Vec::with_capacity(40 + 16 + 20));
    let mut digest = Zeroizing::new([0u8; 20]);
    for counter in 0u32..2 {
        Sha1::new()
            .chain_update(counter.to_be_bytes())
            .chain_update(passphrase)
            .finalize_into((&mut digest[..]).into());
        material.extend_from_slice(&digest[..]);
    }
    material.truncate(32);
    material.extend_from_slice(&[0u8; 16]);
    Sha1::new()
        .chain_update(b"putty-private-key-file-mac-key")
        .chain_update(passphrase)
        .finalize_into((&mut digest[..]).into());
    material.extend_from_slice(&digest[..]);
    KeyMaterial(material)
}

/// Version 3's Argon2 parameters, as the file states them.
#[derive(Debug, Clone)]
struct Argon2Params {
    flavour: argon2::Algorithm,
    memory_kib: u32,
    passes: u32,
    parallelism: u32,
    salt: Vec<u8>,
}

impl Argon2Params {
    fn check(&self, limits: &Argon2Limits) -> Result<(), PpkError> {
        if self.passes > limits.max_passes {
            return Err(PpkError::OverLimit {
                what: format!("{} Argon2 passes", self.passes),
                limit: format!("{}", limits.max_passes),
            });
        }
        if self.memory_kib > limits.max_memory_kib {
            return Err(PpkError::OverLimit {
                what: format!("{} MiB of Argon2 memory", self.memory_kib >> 10),
                limit: format!("{} MiB", limits.max_memory_kib >> 10),
            });
        }
        let work = u64::from(self.passes).saturating_mul(u64::from(self.memory_kib));
        if work > limits.max_work_kib {
            return Err(PpkError::OverLimit {
                what: format!(
                    "{} Argon2 passes over {} MiB ({} GiB of memory filled)",
                    self.passes,
                    self.memory_kib >> 10,
                    work >> 20
                ),
                limit: format!("{} GiB", limits.max_work_kib >> 20),
            });
        }
        Ok(())
    }

    fn derive(&self, passphrase: &[u8]) -> Result<KeyMaterial, PpkError> {
        let unsupported = |e: argon2::Error| {
            PpkError::Unsupported(format!(
                "Argon2 parameters the Argon2 library refuses ({e}): memory {} KiB, {} passes, \
                 parallelism {}, a {}-byte salt",
                self.memory_kib,
                self.passes,
                self.parallelism,
                self.salt.len()
            ))
        };
        let params = argon2::Params::new(
            self.memory_kib,
            self.passes,
            self.parallelism,
            Some(V3_KEY_MATERIAL),
        )
        .map_err(unsupported)?;
        let argon = argon2::Argon2::new(self.flavour, argon2::Version::V0x13, params);
        let mut material = Zeroizing::new(vec![0u8; V3_KEY_MATERIAL]);
        argon
            .hash_password_into(passphrase, &self.salt, &mut material)
            .map_err(unsupported)?;
        Ok(KeyMaterial(material))
    }
}

/// The fields of a `.ppk`, in the order PuTTY requires them.
struct PpkFile<'a> {
    version: u8,
    algorithm: &'a [u8],
    encryption: &'a [u8],
    comment: &'a [u8],
    public_b64: Vec<u8>,
    argon2: Option<Argon2Params>,
    private_b64: Vec<u8>,
    mac: &'a [u8],
}

/// Read the fields as PuTTY's `ppk_load_s` does: each header in its place, `Name: value`, lines
/// ended by LF, CR LF or CR.
fn parse(bytes: &[u8]) -> Result<PpkFile<'_>, PpkError> {
    let mut lines = Lines(
        bytes
            .split(|&b| b == b'\n' || b == b'\r')
            .filter(|l| !l.is_empty()),
    );
    let first = lines.next()?;
    let (version, algorithm) = if let Some(alg) = first.strip_prefix(b"PuTTY-User-Key-File-3: ") {
        (3, alg)
    } else if let Some(alg) = first.strip_prefix(b"PuTTY-User-Key-File-2: ") {
        (2, alg)
    } else if first.starts_with(b"PuTTY-User-Key-File-") {
        return Err(PpkError::Unsupported(
            "a PuTTY key file version other than 2 and 3".to_string(),
        ));
    } else {
        return Err(PpkError::Damaged(
            "the first line is not a PuTTY key header",
        ));
    };
    let encryption = lines.header("Encryption")?;
    let comment = lines.header("Comment")?;
    let count = line_count(lines.header("Public-Lines")?)?;
    let public_b64 = lines.blob(count)?;
    let argon2 = match (version, encryption) {
        (3, e) if e != b"none" => {
            let flavour = match lines.header("Key-Derivation")? {
                b"Argon2id" => argon2::Algorithm::Argon2id,
                b"Argon2i" => argon2::Algorithm::Argon2i,
                b"Argon2d" => argon2::Algorithm::Argon2d,
                other => {
                    return Err(PpkError::Unsupported(format!(
                        "the key derivation {:?}",
                        String::from_utf8_lossy(other)
                    )));
                }
            };
            let memory_kib = number(lines.header("Argon2-Memory")?)?;
            let passes = number(lines.header("Argon2-Passes")?)?;
            let parallelism = number(lines.header("Argon2-Parallelism")?)?;
            let salt = base16ct::mixed::decode_vec(lines.header("Argon2-Salt")?)
                .map_err(|_| PpkError::Damaged("the Argon2 salt is not hexadecimal"))?;
            Some(Argon2Params {
                flavour,
                memory_kib,
                passes,
                parallelism,
                salt,
            })
        }
        _ => None,
    };
    let count = line_count(lines.header("Private-Lines")?)?;
    let private_b64 = lines.blob(count)?;
    let mac = lines.header("Private-MAC")?;
    Ok(PpkFile {
        version,
        algorithm,
        encryption,
        comment,
        public_b64,
        argon2,
        private_b64,
        mac,
    })
}

struct Lines<I>(I);

impl<'a, I: Iterator<Item = &'a [u8]>> Lines<I> {
    fn next(&mut self) -> Result<&'a [u8], PpkError> {
        self.0.next().ok_or(PpkError::Damaged("it is truncated"))
    }

    /// The value of the header `name`, which must be the next line.
    fn header(&mut self, name: &'static str) -> Result<&'a [u8], PpkError> {
        self.next()?
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b": "))
            .ok_or(PpkError::Damaged(
                "a header line is missing or out of place",
            ))
    }

    /// `count` lines of base64, joined; never more than the file holds.
    fn blob(&mut self, count: usize) -> Result<Vec<u8>, PpkError> {
        let mut joined = Vec::new();
        for _ in 0..count {
            joined.extend_from_slice(self.next()?);
        }
        Ok(joined)
    }
}

/// A `Public-Lines` / `Private-Lines` count, below PuTTY's own bound (`MAX_KEY_BLOB_LINES`).
fn line_count(value: &[u8]) -> Result<usize, PpkError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n < 262_144 / 48)
        .ok_or(PpkError::Damaged("a line count is not a number"))
}

/// An Argon2 parameter: a decimal `u32`, as PuTTY's `str_to_uint32_t` reads it.
fn number(value: &[u8]) -> Result<u32, PpkError> {
    std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or(PpkError::Damaged("an Argon2 parameter is not a number"))
}

// Checked against PuTTYgen itself: it must read what keyrotate writes, and keyrotate must write
// byte for byte what it writes from the same key, parameters and salt.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    /// The passphrase of the encrypted fixtures (`make-fixtures.sh`; PuTTYgen drops the newline).
    const FIXTURE_PASS: &[u8] = b"putty fixture passphrase 1";
    const LIMITS: Argon2Limits = Argon2Limits {
        max_passes: 1_000,
        max_memory_kib: 1 << 20,
        max_work_kib: 8 << 20,
    };

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/putty")
    }

    /// PuTTYgen, or `None` (with the reason printed) where it is not installed; CI installs it.
    fn puttygen() -> Option<Command> {
        match Command::new("puttygen").arg("--version").output() {
            Ok(out) if out.status.success() => Some(Command::new("puttygen")),
            // Like sshd and strace elsewhere: fail loudly, never skip.
            _ => panic!("puttygen is needed: apt-get install putty-tools (.ci/test does)"),
        }
    }

    fn run(cmd: &mut Command) -> Output {
        cmd.output().expect("the tool runs")
    }

    fn ok(cmd: &mut Command) -> Vec<u8> {
        let out = run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A file holding `passphrase` for PuTTYgen's `--old-passphrase` / `--new-passphrase`.
    fn pass_file(dir: &Path, name: &str, passphrase: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, [passphrase, b"\n"].concat()).unwrap();
        path
    }

    /// PuTTYgen's conversion of `ppk` to an OpenSSH private key, parsed.
    fn puttygen_to_openssh(ppk: &Path, pass: &Path, dir: &Path) -> ssh_key::PrivateKey {
        let out = dir.join("converted");
        let _ = fs::remove_file(&out);
        let empty = pass_file(dir, "empty-new", b"");
        ok(puttygen()
            .unwrap()
            .arg(ppk)
            .arg("--old-passphrase")
            .arg(pass)
            .arg("--new-passphrase")
            .arg(empty)
            .args(["-O", "private-openssh-new", "-o"])
            .arg(&out));
        // ssh-key refuses PuTTYgen's rendering (64 columns, its own padding of the private
        // section); ssh-keygen re-saves it as OpenSSH writes it.
        fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        ok(Command::new("ssh-keygen")
            .args(["-p", "-q", "-P", "", "-N", "", "-f"])
            .arg(&out));
        ssh_key::PrivateKey::from_openssh(fs::read(&out).unwrap()).unwrap()
    }

    #[test]
    fn puttygen_fixtures_open_with_their_passphrase_and_not_another() {
        let mut seen = 0;
        for entry in fs::read_dir(fixtures()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".ppk") {
                continue;
            }
            let bytes = fs::read(&path).unwrap();
            if name.ends_with("-plain.ppk") {
                assert_eq!(
                    ppk_passphrase_opens(&bytes, FIXTURE_PASS, &LIMITS),
                    Err(PpkError::NotEncrypted),
                    "{name}"
                );
                continue;
            }
            assert_eq!(
                ppk_passphrase_opens(&bytes, FIXTURE_PASS, &LIMITS),
                Ok(true),
                "{name}"
            );
            for wrong in [
                &b"putty fixture passphrase 2"[..],
                b"",
                b"putty fixture passphrase 1\n",
            ] {
                assert_eq!(
                    ppk_passphrase_opens(&bytes, wrong, &LIMITS),
                    Ok(false),
                    "{name} with {wrong:?}"
                );
            }
            // CR LF line endings, which PuTTY up to 0.74 wrote, read the same.
            let crlf = String::from_utf8(bytes).unwrap().replace('\n', "\r\n");
            assert_eq!(
                ppk_passphrase_opens(crlf.as_bytes(), FIXTURE_PASS, &LIMITS),
                Ok(true),
                "{name} with CR LF"
            );
            seen += 1;
        }
        assert_eq!(seen, 14, "2 versions x 7 key types");
    }

    #[test]
    fn keys_puttygen_makes_with_its_defaults_open() {
        let Some(_) = puttygen() else { return };
        let dir = tempfile::tempdir().unwrap();
        let pass = pass_file(dir.path(), "pass", b"correct horse battery staple");
        let cases: [&[&str]; 5] = [
            &["-t", "ed25519"],
            &["-t", "ed25519", "--ppk-param", "version=2"],
            &["-t", "rsa", "-b", "2048"],
            &["-t", "ecdsa", "-b", "384", "--ppk-param", "kdf=argon2i"],
            &[
                "-t",
                "ecdsa",
                "-b",
                "256",
                "--ppk-param",
                "kdf=argon2d,version=3",
            ],
        ];
        for args in cases {
            let ppk = dir.path().join("k.ppk");
            let _ = fs::remove_file(&ppk);
            ok(puttygen()
                .unwrap()
                .args(args)
                .arg("--new-passphrase")
                .arg(&pass)
                .arg("-o")
                .arg(&ppk));
            let bytes = fs::read(&ppk).unwrap();
            assert_eq!(
                ppk_passphrase_opens(&bytes, b"correct horse battery staple", &LIMITS),
                Ok(true),
                "{args:?}"
            );
            assert_eq!(
                ppk_passphrase_opens(&bytes, b"correct horse battery stapl", &LIMITS),
                Ok(false),
                "{args:?}"
            );
        }
    }

    #[test]
    fn absurd_argon2_work_is_refused_before_any_is_done() {
        let text = fs::read_to_string(fixtures().join("ed25519-v3-enc.ppk")).unwrap();
        let cases = [
            (
                text.replace("Argon2-Memory: 8192", "Argon2-Memory: 4294967295"),
                "4194303 MiB of Argon2 memory",
            ),
            (
                text.replace("Argon2-Passes: 2", "Argon2-Passes: 4294967295"),
                "4294967295 Argon2 passes",
            ),
            // Each within its own limit, together 1000 GiB of memory filled.
            (
                text.replace("Argon2-Passes: 2", "Argon2-Passes: 1000")
                    .replace("Argon2-Memory: 8192", "Argon2-Memory: 1048576"),
                "1000 Argon2 passes over 1024 MiB (1000 GiB of memory filled)",
            ),
        ];
        for (file, what) in cases {
            let started = std::time::Instant::now();
            match decrypt_ppk(file.as_bytes(), FIXTURE_PASS, &LIMITS) {
                Err(PpkError::OverLimit { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
            // 4 GiB of Argon2 memory would take minutes (or fail to allocate).
            assert!(started.elapsed().as_millis() < 500, "{what}");
        }
        // Memory above the limit but not absurd: refused all the same.
        let tight = Argon2Limits {
            max_passes: 1,
            max_memory_kib: 8192,
            max_work_kib: 8192,
        };
        assert!(matches!(
            decrypt_ppk(text.as_bytes(), FIXTURE_PASS, &tight),
            Err(PpkError::OverLimit { .. })
        ));
    }

    #[test]
    fn damaged_and_unsupported_files_are_errors_not_answers() {
        let text = fs::read_to_string(fixtures().join("ed25519-v3-enc.ppk")).unwrap();
        let mac_line = text.lines().last().unwrap().to_string();
        let cases = [
            text.replace("Encryption: aes256-cbc", "Encryption: aes128-ctr"),
            text.replace("Key-Derivation: Argon2id", "Key-Derivation: scrypt"),
            text.replace("Argon2-Passes: 2", "Argon2-Passes: two"),
            text.replace("File-3", "File-4"),
            text.replace(&mac_line, ""),
            text.replace("Private-Lines: 1", "Private-Lines: 2"),
            text.replace(
                "Argon2-Salt: 22347acd6d3c7bfd408dd6a9ee7fa38a",
                "Argon2-Salt: 2234",
            ),
            text.replace("Argon2-Parallelism: 1", "Argon2-Parallelism: 0"),
            text[..text.len() / 2].to_string(),
            String::new(),
        ];
        for (i, file) in cases.iter().enumerate() {
            let answer = ppk_passphrase_opens(file.as_bytes(), FIXTURE_PASS, &LIMITS);
            assert!(
                matches!(answer, Err(PpkError::Damaged(_) | PpkError::Unsupported(_))),
                "case {i}: {answer:?}"
            );
        }
        // A changed comment is covered by the MAC: PuTTY calls that a wrong passphrase.
        let edited = text.replace("Comment: putty ed25519-v3-enc", "Comment: evil");
        assert_eq!(
            ppk_passphrase_opens(edited.as_bytes(), FIXTURE_PASS, &LIMITS),
            Ok(false)
        );
    }

    /// The strongest check of the writer: from the same key, passphrase, Argon2 parameters and
    /// salt, keyrotate writes exactly the file PuTTYgen wrote.
    #[test]
    fn the_writer_reproduces_puttygens_v3_files_byte_for_byte() {
        let Some(_) = puttygen() else { return };
        let dir = tempfile::tempdir().unwrap();
        let pass = pass_file(dir.path(), "pass", FIXTURE_PASS);
        let empty = pass_file(dir.path(), "empty", b"");
        for name in [
            "rsa2048", "rsa3072", "ed25519", "ecdsa256", "ecdsa384", "ecdsa521",
        ] {
            for (kind, passphrase, pass) in
                [("enc", FIXTURE_PASS, &pass), ("plain", &b""[..], &empty)]
            {
                let path = fixtures().join(format!("{name}-v3-{kind}.ppk"));
                let original = fs::read_to_string(&path).unwrap();
                let mut key = puttygen_to_openssh(&path, pass, dir.path());
                key.set_comment(format!("putty {name}-v3-{kind}"));
                let kdf = parse(original.as_bytes())
                    .unwrap()
                    .argon2
                    .unwrap_or(Argon2Params {
                        flavour: argon2::Algorithm::Argon2id,
                        memory_kib: ARGON2_MEMORY_KIB,
                        passes: ARGON2_PASSES,
                        parallelism: ARGON2_PARALLELISM,
                        salt: vec![0; SALT_LEN],
                    });
                let written = encode_v3_with(&key, passphrase, &kdf).unwrap();
                assert_eq!(written.as_str(), original, "{name}-v3-{kind}");
            }
        }
    }

    /// A fresh key from ssh-key (keyrotate's own RSA search is exercised through the binary,
    /// in tests/cli/successor.rs): `key_type` is `rsa`, `ed25519` or `ecdsa`.
    fn new_key(key_type: &str, bits: u32) -> ssh_key::PrivateKey {
        use ssh_key::private::{KeypairData, RsaKeypair};
        use ssh_key::{Algorithm, EcdsaCurve};
        let comment = format!("keyrotate {key_type} {bits}");
        let curve = |bits| match bits {
            256 => EcdsaCurve::NistP256,
            384 => EcdsaCurve::NistP384,
            _ => EcdsaCurve::NistP521,
        };
        let mut key = match key_type {
            "rsa" => {
                let rsa = RsaKeypair::random(&mut rand_core::OsRng, bits as usize).unwrap();
                ssh_key::PrivateKey::new(KeypairData::from(rsa), "").unwrap()
            }
            "ed25519" => {
                ssh_key::PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap()
            }
            _ => ssh_key::PrivateKey::random(
                &mut rand_core::OsRng,
                Algorithm::Ecdsa { curve: curve(bits) },
            )
            .unwrap(),
        };
        key.set_comment(comment);
        key
    }

    /// PuTTYgen's traditional OpenSSH (PEM) conversion of `ppk`, read by OpenSSH's own tools:
    /// `ssh-keygen -y` gives `want`, and a signature made with it verifies under `want`.
    fn converted_key_signs_for(
        ppk: &Path,
        pass: &Path,
        empty: &Path,
        want: &str,
        d: &Path,
        ctx: &str,
    ) {
        // PuTTYgen's traditional OpenSSH (PEM) conversion, then OpenSSH's own tools.
        let converted = d.join("converted.pem");
        let _ = fs::remove_file(&converted);
        ok(puttygen()
            .unwrap()
            .arg(ppk)
            .arg("--old-passphrase")
            .arg(pass)
            .arg("--new-passphrase")
            .arg(empty)
            .args(["-O", "private-openssh", "-o"])
            .arg(&converted));
        let derived = ok(Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&converted));
        let derived = String::from_utf8(derived).unwrap();
        let blob = |line: &str| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(blob(&derived), blob(want), "{ctx}");

        // The private half itself: a signature by the conversion verifies under the
        // original public key (`-Y sign` wants the public key beside the private one).
        fs::write(d.join("converted.pem.pub"), &derived).unwrap();
        let message = d.join("message");
        fs::write(&message, b"keyrotate").unwrap();
        let _ = fs::remove_file(d.join("message.sig"));
        ok(Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "test", "-f"])
            .arg(&converted)
            .arg(&message));
        let signers = d.join("allowed_signers");
        fs::write(&signers, format!("k {want}\n")).unwrap();
        ok(Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "test", "-I", "k", "-f"])
            .arg(&signers)
            .arg("-s")
            .arg(d.join("message.sig"))
            .stdin(fs::File::open(&message).unwrap()));
    }

    /// Every key type keyrotate makes, written by `encode_ppk_v3`, read by PuTTYgen: the same
    /// public key, a refusal of a wrong passphrase, and an OpenSSH conversion that `ssh-keygen`
    /// reads and that signs what the original public key verifies.
    #[test]
    fn puttygen_reads_every_key_type_keyrotate_writes() {
        let Some(_) = puttygen() else { return };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let passphrase = b"new PuTTY passphrase \xc3\xa9";
        let pass = pass_file(d, "pass", passphrase);
        let wrong = pass_file(d, "wrong", b"new PuTTY passphrase");
        let empty = pass_file(d, "empty", b"");
        let keys = [
            ("rsa", 2048),
            ("rsa", 4096),
            ("ed25519", 256),
            ("ecdsa", 256),
            ("ecdsa", 384),
            ("ecdsa", 521),
        ];
        for (key_type, bits) in keys {
            let key = new_key(key_type, bits);
            let ctx = format!("{key_type} {bits}");
            let want = key.public_key().to_openssh().unwrap();
            let text = encode_ppk_v3(&key, passphrase, &mut rand_core::OsRng).unwrap();
            assert!(!text.contains('\r'), "{ctx}: LF only, as PuTTYgen writes");
            assert!(
                text.lines().all(|l| l.len() <= 64 || l.contains(": ")),
                "{ctx}"
            );
            let ppk = d.join("k.ppk");
            fs::write(&ppk, text.as_bytes()).unwrap();

            let public = ok(puttygen()
                .unwrap()
                .arg(&ppk)
                .arg("--old-passphrase")
                .arg(&pass)
                .args(["-O", "public-openssh"]));
            assert_eq!(String::from_utf8(public).unwrap().trim_end(), want, "{ctx}");

            // The public half is in the clear: only a private export needs the passphrase.
            let refused = run(puttygen()
                .unwrap()
                .arg(&ppk)
                .arg("--old-passphrase")
                .arg(&wrong)
                .args(["-O", "private-openssh", "-o"])
                .arg(d.join("refused")));
            assert!(
                !refused.status.success(),
                "{ctx}: a wrong passphrase opened it"
            );
            assert!(
                String::from_utf8_lossy(&refused.stderr).contains("wrong passphrase"),
                "{ctx}: {}",
                String::from_utf8_lossy(&refused.stderr)
            );

            converted_key_signs_for(&ppk, &pass, &empty, &want, d, &ctx);

            // And keyrotate's own check agrees.
            assert_eq!(
                ppk_passphrase_opens(text.as_bytes(), passphrase, &LIMITS),
                Ok(true)
            );
            assert_eq!(
                ppk_passphrase_opens(text.as_bytes(), b"new PuTTY passphrase", &LIMITS),
                Ok(false)
            );
        }
    }

    /// A scalar with leading zero bytes (1 in 256 P-256 keys) is written as the canonical mpint
    /// PuTTY writes, not as ssh-key's fixed-width field.
    #[test]
    fn a_short_ecdsa_scalar_is_a_canonical_mpint() {
        // One leading zero byte; OpenSSH refuses scalars much shorter than the curve.
        let mut bytes = [0x5a; 32];
        bytes[0] = 0;
        let secret = p256::SecretKey::from_slice(&bytes).unwrap();
        let keypair = ssh_key::private::EcdsaKeypair::NistP256 {
            public: p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &secret.public_key(),
                false,
            ),
            private: secret.into(),
        };
        let key = ssh_key::PrivateKey::new(keypair.into(), "short scalar").unwrap();
        let blob = private_blob(&key).unwrap();
        assert_eq!(blob[..4], [0, 0, 0, 31]);
        assert_eq!(blob[4..], bytes[1..]);
        let Some(_) = puttygen() else { return };
        let dir = tempfile::tempdir().unwrap();
        let pass = pass_file(dir.path(), "pass", b"pass");
        let ppk = dir.path().join("k.ppk");
        let text = encode_ppk_v3(&key, b"pass", &mut rand_core::OsRng).unwrap();
        fs::write(&ppk, text.as_bytes()).unwrap();
        let empty = pass_file(dir.path(), "empty", b"");
        let want = key.public_key().to_openssh().unwrap();
        converted_key_signs_for(&ppk, &pass, &empty, &want, dir.path(), "short scalar");
    }

    #[test]
    fn keys_the_writer_cannot_hold_are_refused() {
        let key = new_key("ed25519", 256);
        let mut broken = key.clone();
        broken.set_comment("two\nlines");
        assert_eq!(
            encode_ppk_v3(&broken, b"pass", &mut rand_core::OsRng).unwrap_err(),
            PpkError::CommentLineBreak
        );
        let dsa = ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Dsa);
        if let Ok(dsa) = dsa {
            assert!(matches!(
                encode_ppk_v3(&dsa, b"pass", &mut rand_core::OsRng),
                Err(PpkError::UnsupportedKey(_))
            ));
        }
    }

    /// Not an assertion of speed: prints how long one derivation with the written parameters
    /// takes (`cargo test --release --lib argon2_derivation_time -- --nocapture`).
    #[test]
    fn argon2_derivation_time() {
        let kdf = Argon2Params {
            flavour: argon2::Algorithm::Argon2id,
            memory_kib: ARGON2_MEMORY_KIB,
            passes: ARGON2_PASSES,
            parallelism: ARGON2_PARALLELISM,
            salt: vec![7; SALT_LEN],
        };
        let started = std::time::Instant::now();
        kdf.derive(b"passphrase").unwrap();
        eprintln!(
            "Argon2id, {} KiB, {} passes, parallelism {}: {:?}",
            ARGON2_MEMORY_KIB,
            ARGON2_PASSES,
            ARGON2_PARALLELISM,
            started.elapsed()
        );
    }
}
