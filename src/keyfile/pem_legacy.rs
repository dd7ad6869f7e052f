//! OpenSSL's traditional ("legacy") PEM encryption, as `ssh-keygen -m PEM` writes it:
//! `Proc-Type: 4,ENCRYPTED` and `DEK-Info: AES-128-CBC,<IV>`, the key derived from the passphrase
//! with `EVP_BytesToKey(MD5, salt = IV[..8], count = 1)`. Assembled from RustCrypto's `aes`,
//! `cbc` and `md-5`; no cipher is implemented here.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use md5::{Digest, Md5};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// Why a legacy PEM key could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyPemError {
    #[error("the key's DEK-Info header is missing or malformed")]
    BadHeader,
    #[error("the key is encrypted with {0}, which keyrotate cannot decrypt")]
    UnsupportedCipher(String),
    /// Wrong passphrase (or damaged data): the padding did not check out.
    #[error("the passphrase does not open this key")]
    WrongPassphrase,
}

/// `EVP_BytesToKey` with MD5 and one iteration: D1 = MD5(pass ‖ salt), Di = MD5(Di-1 ‖ pass ‖ salt).
fn bytes_to_key(passphrase: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut previous: Option<Zeroizing<Vec<u8>>> = None;
    while key.len() < len {
        let mut md5 = Md5::new();
        if let Some(prev) = &previous {
            md5.update(prev.as_slice());
        }
        md5.update(passphrase);
        md5.update(salt);
        let block = Zeroizing::new(md5.finalize().to_vec());
        key.extend_from_slice(&block);
        previous = Some(block);
    }
    key.truncate(len);
    key
}

/// Encrypt a DER private key (`RSA PRIVATE KEY` or `EC PRIVATE KEY`) exactly as
/// `ssh-keygen -m PEM -N PASSPHRASE` does, returning the whole PEM file.
pub fn encrypt(
    label: &str,
    der: &[u8],
    passphrase: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Zeroizing<String> {
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let key = bytes_to_key(passphrase, &iv[..8], 16);
    let encryptor = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv)
        .expect("AES-128 key and IV have fixed, correct lengths");
    let ciphertext = encryptor.encrypt_padded_vec_mut::<Pkcs7>(der);
    let mut block = pem::Pem::new(label, ciphertext);
    let iv_hex = base16ct::upper::encode_string(&iv);
    let headers = block.headers_mut();
    // Both values are fixed ASCII without a colon or line break; `add` cannot refuse them.
    let _ = headers.add("Proc-Type", "4,ENCRYPTED");
    let _ = headers.add("DEK-Info", &format!("AES-128-CBC,{iv_hex}"));
    let config = pem::EncodeConfig::new()
        .set_line_ending(pem::LineEnding::LF)
        .set_line_wrap(64);
    Zeroizing::new(pem::encode_config(&block, config))
}

/// Decrypt a legacy-encrypted PEM block with `passphrase`, giving its DER.
pub fn decrypt(block: &pem::Pem, passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, LegacyPemError> {
    let dek = block
        .headers()
        .get("DEK-Info")
        .ok_or(LegacyPemError::BadHeader)?;
    let (cipher, iv_hex) = dek.split_once(',').ok_or(LegacyPemError::BadHeader)?;
    let mut iv_buf = [0u8; 16];
    let iv = base16ct::mixed::decode(iv_hex.trim(), &mut iv_buf)
        .map_err(|_| LegacyPemError::BadHeader)?;
    let iv = iv.to_vec();
    let mut buf = Zeroizing::new(block.contents().to_vec());
    fn run<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, LegacyPemError>
    where
        C: aes::cipher::BlockCipher + aes::cipher::BlockDecryptMut + aes::cipher::KeyInit,
    {
        let decryptor =
            cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| LegacyPemError::BadHeader)?;
        decryptor
            .decrypt_padded_mut::<Pkcs7>(buf)
            .map(|plain| plain.len())
            .map_err(|_| LegacyPemError::WrongPassphrase)
    }
    let salt = iv.get(..8).ok_or(LegacyPemError::BadHeader)?;
    let plain_len = match (cipher.trim(), iv.len()) {
        ("AES-128-CBC", 16) => {
            run::<aes::Aes128>(&bytes_to_key(passphrase, salt, 16), &iv, &mut buf)?
        }
        ("AES-192-CBC", 16) => {
            run::<aes::Aes192>(&bytes_to_key(passphrase, salt, 24), &iv, &mut buf)?
        }
        ("AES-256-CBC", 16) => {
            run::<aes::Aes256>(&bytes_to_key(passphrase, salt, 32), &iv, &mut buf)?
        }
        // What `openssl genrsa -des3` and old OpenSSL defaults wrote.
        ("DES-EDE3-CBC", 8) => {
            run::<des::TdesEde3>(&bytes_to_key(passphrase, salt, 24), &iv, &mut buf)?
        }
        ("AES-128-CBC" | "AES-192-CBC" | "AES-256-CBC" | "DES-EDE3-CBC", _) => {
            return Err(LegacyPemError::BadHeader);
        }
        (other, _) => return Err(LegacyPemError::UnsupportedCipher(other.to_string())),
    };
    buf.truncate(plain_len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -md md5 -k secret -S 0102030405060708 -P` (OpenSSL 3.0) prints
        // key=C9E5A1BD216DBE1317E230CEF48F38EE7F0E17AD64022144BCCEC4A1AA2879AB
        let key = bytes_to_key(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        assert_eq!(
            base16ct::upper::encode_string(&key),
            "C9E5A1BD216DBE1317E230CEF48F38EE7F0E17AD64022144BCCEC4A1AA2879AB"
        );
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let der = b"not really DER, but any bytes will do for the cipher".to_vec();
        let text = encrypt(
            "RSA PRIVATE KEY",
            &der,
            b"right passphrase",
            &mut rand_core::OsRng,
        );
        assert!(text.starts_with(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
        ));
        let block = pem::parse(text.as_bytes()).unwrap();
        assert_eq!(
            decrypt(&block, b"right passphrase").unwrap().as_slice(),
            der.as_slice()
        );
        // A wrong passphrase fails the padding check almost always; never returns the plaintext.
        assert_ne!(
            decrypt(&block, b"wrong passphrase")
                .ok()
                .as_deref()
                .map(|v| v.as_slice()),
            Some(der.as_slice())
        );
    }
}
