//! OpenSSH private keys, read from their clear parts (see [`wire::openssh_private`]): the public
//! half from the header, and for an unencrypted key the comment from the private section. Nothing
//! is decrypted and no key is re-derived, which keeps `check` fast; it also reads the ECDSA keys
//! whose scalar OpenSSH stores short (about one P-521 key in four), which ssh-key 0.6.7 refuses.

use ssh_encoding::Decode;
use ssh_key::public::KeyData;

use super::{Broken, Format, Kdf, KeyFile, Protection, PublicInfo, wire};

pub(super) fn parse(binary: &[u8]) -> Result<KeyFile, Broken> {
    let broken = |reason: &str| Broken::new(Format::Openssh, true, reason);
    let info = wire::openssh_private(binary)
        .ok_or_else(|| broken("the OpenSSH key data is damaged or truncated"))?;
    let key_data = KeyData::decode(&mut &info.public_blob[..])
        .map_err(|_| broken("the key's public half is damaged"))?;
    let encrypted = info.cipher != b"none";
    let kdf = match (encrypted, info.rounds) {
        (false, _) => Kdf::None,
        (true, Some(rounds)) => Kdf::Bcrypt { rounds },
        (true, None) => Kdf::Unknown,
    };
    let comment = info
        .comment
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .filter(|c| !c.is_empty());
    Ok(KeyFile {
        format: Format::Openssh,
        private: true,
        public: Some(PublicInfo::new(key_data)),
        algorithm: None,
        comment,
        protection: Some(Protection {
            cipher: String::from_utf8_lossy(info.cipher).into_owned(),
            kdf,
        }),
    })
}

#[cfg(test)]
mod tests {
    use crate::keyfile::{Recognised, recognise};

    const SHORT: &str = include_str!("../../tests/fixtures/ecdsa521_short_scalar");
    const SHORT_FINGERPRINT: &str = "SHA256:CTUF+Ra6Yu3LFzaPf+DJvXXC6tlnP+us3kNkEEL+TTQ";

    #[test]
    fn ssh_key_still_refuses_short_p521_scalars() {
        // Why rotate's passphrase check falls back to the check integers (oldkey.rs), and why
        // this module does not use ssh-key's decoder. When this fails, ssh-key has the fix.
        assert!(ssh_key::PrivateKey::from_openssh(SHORT).is_err());
    }

    #[test]
    fn short_p521_scalar_is_read_with_its_comment() {
        let Recognised::Key(key) = recognise(SHORT.as_bytes()) else {
            panic!("not recognised");
        };
        assert_eq!(
            key.public.as_ref().unwrap().fingerprint(),
            SHORT_FINGERPRINT
        );
        assert_eq!(
            key.comment.as_deref(),
            Some("keyrotate test fixture: short P-521 scalar")
        );
        assert_eq!(key.encrypted(), Some(false));
    }

    #[test]
    fn a_private_section_that_disagrees_with_the_header_is_refused() {
        use base64ct::Encoding;
        let binary = pem::parse(SHORT).unwrap().contents().to_vec();
        assert!(super::parse(&binary).is_ok());
        // The header's public blob, from the committed .pub; Q is its last 133 bytes.
        let line = include_str!("../../tests/fixtures/ecdsa521_short_scalar.pub");
        let blob = base64ct::Base64::decode_vec(line.split_whitespace().nth(1).unwrap()).unwrap();
        let q = &blob[blob.len() - 133..];
        let find = |from: usize, what: &[u8]| {
            from + binary[from..]
                .windows(what.len())
                .position(|w| w == what)
                .unwrap()
        };
        let blob_end = find(0, &blob) + blob.len();
        // The private section repeats Q: damage that copy only.
        let mut damaged = binary.clone();
        damaged[find(blob_end, q)] ^= 1;
        assert!(super::parse(&damaged).is_err());
        // Unequal check integers (what a wrong decryption gives) are refused too.
        let mut checkints = binary.clone();
        checkints[blob_end + 4] ^= 1;
        assert!(super::parse(&checkints).is_err());
    }
}
