//! Does a new passphrase open an old key? JASMIN asks for a new, *different* passphrase, so
//! `rotate` refuses one that opens the key it replaces. The check is bounded: a key whose KDF asks
//! for absurd work (a hostile bcrypt round count, a huge scrypt) is not tried, and the answer says
//! so instead of hanging.

use der::{Decode, Tagged};
use zeroize::Zeroizing;

use crate::keyfile::pem_legacy::{self, LegacyPemError};
use crate::keyfile::putty_crypt::{self, PpkError};
use crate::keyfile::{self, Format, Recognised};
use crate::passphrase::Passphrase;

/// How much KDF work one check may cost. Every work factor a key file declares is compared
/// with these before any work starts: the file is not trusted to ask for something reasonable.
#[derive(Debug, Clone, Copy)]
pub struct KdfLimits {
    /// bcrypt-pbkdf rounds (OpenSSH format). 16 is the default; `generate -a` allows up to
    /// 1000, which takes a few seconds here.
    pub max_bcrypt_rounds: u32,
    /// PBKDF2 iterations (PKCS#8).
    pub max_pbkdf2_iterations: u32,
    /// scrypt memory, `128 * r * N` bytes (PKCS#8).
    pub max_scrypt_bytes: u64,
    /// scrypt work, `128 * r * N * p` bytes mixed (PKCS#8): `p` runs the whole memory-hard
    /// function again, so a small N with p = 32767 costs hours without using much memory.
    pub max_scrypt_work: u64,
    /// Argon2 passes (PuTTY `.ppk` version 3).
    pub max_argon2_passes: u32,
    /// Argon2 memory in KiB (PuTTY `.ppk` version 3).
    pub max_argon2_memory_kib: u32,
    /// Argon2 passes times memory in KiB: the memory filled in all (8 GiB, some seconds).
    pub max_argon2_work_kib: u64,
}

impl Default for KdfLimits {
    fn default() -> Self {
        KdfLimits {
            max_bcrypt_rounds: crate::generate::MAX_ROUNDS,
            max_pbkdf2_iterations: 5_000_000,
            max_scrypt_bytes: 256 << 20,
            // 1 GiB: OpenSSL's default (N = 16384, r = 8, p = 1) is 16 MiB; this is 64 times it.
            max_scrypt_work: 1 << 30,
            // PuTTYgen's defaults are 1 to a few passes and 8 MiB; its slowest settings stay far below.
            max_argon2_passes: 1_000,
            max_argon2_memory_kib: 1 << 20,
            max_argon2_work_kib: 8 << 20,
        }
    }
}

/// The sentence shown when a key asks for more work than keyrotate allows.
fn over_limit(what: String, limit: String) -> Opens {
    Opens::NotChecked(format!(
        "the old key asks for {what}, over keyrotate's limit of {limit}, so the check was not \
         started (it could take hours)"
    ))
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opens {
    /// The passphrase opens the key.
    Yes,
    /// It does not.
    No,
    /// The key is not encrypted: no passphrase opens it, so there is nothing to compare.
    Unencrypted,
    /// No answer, and why (lower case, for "could not check: ...").
    NotChecked(String),
}

/// Try `passphrase` on the key file `bytes`.
pub fn passphrase_opens(bytes: &[u8], passphrase: &Passphrase, limits: &KdfLimits) -> Opens {
    match keyfile::recognise(bytes) {
        Recognised::Key(key) if key.encrypted() == Some(false) => Opens::Unencrypted,
        Recognised::Key(key) => match key.format {
            Format::Openssh => openssh(bytes, passphrase, limits),
            Format::Pem => legacy_pem(bytes, passphrase),
            Format::Pkcs8 => pkcs8(bytes, passphrase, limits),
            Format::Putty => putty(bytes, passphrase, limits),
            Format::Public | Format::Certificate | Format::Unknown => {
                Opens::NotChecked("it is not a private key".to_string())
            }
        },
        _ => Opens::NotChecked("the old key file cannot be read as a key".to_string()),
    }
}

/// PuTTY `.ppk` v2 or v3: the MAC, keyed from the passphrase, decides. Argon2's passes and
/// memory are compared with the limits before any work.
fn putty(bytes: &[u8], passphrase: &Passphrase, limits: &KdfLimits) -> Opens {
    let argon2 = putty_crypt::Argon2Limits {
        max_passes: limits.max_argon2_passes,
        max_memory_kib: limits.max_argon2_memory_kib,
        max_work_kib: limits.max_argon2_work_kib,
    };
    match putty_crypt::ppk_passphrase_opens(bytes, passphrase.as_bytes(), &argon2) {
        Ok(true) => Opens::Yes,
        Ok(false) => Opens::No,
        Err(PpkError::NotEncrypted) => Opens::Unencrypted,
        Err(PpkError::OverLimit { what, limit }) => over_limit(what, limit),
        Err(e) => Opens::NotChecked(e.to_string()),
    }
}

fn openssh(bytes: &[u8], passphrase: &Passphrase, limits: &KdfLimits) -> Opens {
    let Ok(block) = pem::parse(bytes) else {
        return Opens::NotChecked("the old key is damaged".to_string());
    };
    let Ok(key) = ssh_key::PrivateKey::from_bytes(block.contents()) else {
        return Opens::NotChecked("the old key is damaged".to_string());
    };
    if let ssh_key::Kdf::Bcrypt { rounds, .. } = key.kdf()
        && *rounds > limits.max_bcrypt_rounds
    {
        return over_limit(
            format!("{rounds} bcrypt rounds"),
            format!("{} rounds", limits.max_bcrypt_rounds),
        );
    }
    match key.decrypt(passphrase.as_bytes()) {
        Ok(_) => Opens::Yes,
        // Wrong passphrase: the check integers (or the AEAD tag) did not match.
        Err(ssh_key::Error::Crypto) => Opens::No,
        // Decrypted, checkints matched, but ssh-key 0.6.7 cannot parse the key inside (it
        // refuses short ECDSA scalars): the passphrase is right. Confirm by the checkints alone.
        Err(_) => checkints_match(&key, passphrase),
    }
}

/// OpenSSH's own test of a passphrase: the two check integers at the start of the decrypted
/// private section are equal.
fn checkints_match(key: &ssh_key::PrivateKey, passphrase: &Passphrase) -> Opens {
    let cipher = key.cipher();
    let Some(ciphertext) = key.key_data().encrypted() else {
        return Opens::Unencrypted;
    };
    let Ok((k, iv)) = key.kdf().derive_key_and_iv(cipher, passphrase.as_bytes()) else {
        return Opens::NotChecked("the old key's encryption is not supported".to_string());
    };
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    if cipher.has_tag() {
        // An AEAD cipher already authenticated the data inside `decrypt`.
        return Opens::Yes;
    }
    if cipher.decrypt(&k, &iv, &mut buffer, None).is_err() || buffer.len() < 8 {
        return Opens::NotChecked("the old key is damaged".to_string());
    }
    match buffer[..4] == buffer[4..8] {
        true => Opens::Yes,
        false => Opens::No,
    }
}

fn legacy_pem(bytes: &[u8], passphrase: &Passphrase) -> Opens {
    let Ok(block) = pem::parse(bytes) else {
        return Opens::NotChecked("the old key is damaged".to_string());
    };
    match pem_legacy::decrypt(&block, passphrase.as_bytes()) {
        // Padding can come out right by chance (about 1 in 256): the DER must parse too.
        Ok(der) => match der_is_key(block.tag(), &der) {
            true => Opens::Yes,
            false => Opens::No,
        },
        Err(LegacyPemError::WrongPassphrase) => Opens::No,
        Err(e) => Opens::NotChecked(e.to_string()),
    }
}

fn der_is_key(tag: &str, der: &[u8]) -> bool {
    match tag {
        "RSA PRIVATE KEY" => pkcs1::RsaPrivateKey::from_der(der).is_ok(),
        "EC PRIVATE KEY" => sec1::EcPrivateKey::from_der(der).is_ok(),
        _ => der::asn1::AnyRef::from_der(der).is_ok_and(|any| any.tag() == der::Tag::Sequence),
    }
}

fn pkcs8(bytes: &[u8], passphrase: &Passphrase, limits: &KdfLimits) -> Opens {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2};
    let Ok(block) = pem::parse(bytes) else {
        return Opens::NotChecked("the old key is damaged".to_string());
    };
    let Ok(info) = pkcs8::EncryptedPrivateKeyInfo::from_der(block.contents()) else {
        return Opens::NotChecked(
            "the old key uses a PKCS#8 scheme keyrotate cannot read".to_string(),
        );
    };
    let EncryptionScheme::Pbes2(params) = &info.encryption_algorithm else {
        return Opens::NotChecked("the old key uses legacy PBES1 encryption".to_string());
    };
    match &params.kdf {
        pbes2::Kdf::Pbkdf2(p) if p.iteration_count > limits.max_pbkdf2_iterations => {
            return over_limit(
                format!("{} PBKDF2 iterations", p.iteration_count),
                format!("{}", limits.max_pbkdf2_iterations),
            );
        }
        pbes2::Kdf::Scrypt(s) => {
            let (n, r, p) = (s.cost_parameter, s.block_size, s.parallelization);
            let memory = 128u64.saturating_mul(u64::from(r)).saturating_mul(n);
            let work = memory.saturating_mul(u64::from(p));
            let mib = |b: u64| b >> 20;
            if memory > limits.max_scrypt_bytes {
                return over_limit(
                    format!("scrypt N={n}, r={r}, p={p}: {} MiB of memory", mib(memory)),
                    format!("{} MiB", mib(limits.max_scrypt_bytes)),
                );
            }
            if work > limits.max_scrypt_work {
                return over_limit(
                    format!("scrypt N={n}, r={r}, p={p}: {} MiB of mixing", mib(work)),
                    format!("{} MiB", mib(limits.max_scrypt_work)),
                );
            }
        }
        _ => {}
    }
    match info.decrypt(passphrase.as_bytes()) {
        Ok(doc) => match pkcs8::PrivateKeyInfo::from_der(doc.as_bytes()) {
            Ok(_) => Opens::Yes,
            Err(_) => Opens::No,
        },
        // pkcs5 0.7.1 reports bad padding (a wrong passphrase) as `EncryptFailed`.
        Err(pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        )) => Opens::No,
        Err(pkcs8::Error::EncryptedPrivateKey(_)) => {
            Opens::NotChecked("the old key's PKCS#8 encryption is not supported".to_string())
        }
        Err(_) => Opens::No,
    }
}
