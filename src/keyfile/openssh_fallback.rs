//! A narrow stand-in for ssh-key's OpenSSH private key decoder, for the one case it gets wrong.

use ssh_encoding::{Decode, Reader};
use ssh_key::public::KeyData;

use super::{curve_bits, ec_public_from_scalar};

/// ssh-key 0.6 rejects an ECDSA private scalar that OpenSSH stores shorter than the curve size
/// (an mpint drops leading zero bytes: about one P-521 key in four). Upstream fixed this only in
/// the unreleased 0.7 line (RustCrypto/SSH#356). For an unencrypted key, read the container here
/// instead: only the public half and comment are needed, and the scalar is checked against the
/// public point exactly as ssh-key would.
pub(super) fn unencrypted_ecdsa(binary: &[u8]) -> Option<(KeyData, String)> {
    let mut r = binary.strip_prefix(b"openssh-key-v1\0")?;
    let reader = &mut r;
    if String::decode(reader).ok()? != "none" || String::decode(reader).ok()? != "none" {
        return None;
    }
    let _kdf_options = Vec::<u8>::decode(reader).ok()?;
    if u32::decode(reader).ok()? != 1 {
        return None;
    }
    let public = reader
        .read_prefixed(|r| KeyData::decode(r).map_err(|_| ssh_encoding::Error::Length))
        .ok()?;
    let private = Vec::<u8>::decode(reader).ok()?;
    if !reader.is_finished() {
        return None;
    }
    let KeyData::Ecdsa(ec) = &public else {
        return None;
    };
    let p = &mut private.as_slice();
    if u32::decode(p).ok()? != u32::decode(p).ok()? {
        return None;
    }
    if String::decode(p).ok()? != public.algorithm().as_str()
        || String::decode(p).ok()? != ec.curve().as_str()
        || Vec::<u8>::decode(p).ok()? != ec.as_sec1_bytes()
    {
        return None;
    }
    let scalar = zeroize::Zeroizing::new(Vec::<u8>::decode(p).ok()?);
    let comment = String::decode(p).ok()?;
    // What is left is the 1, 2, 3... padding to the cipher block size (8 for "none").
    if p.len() >= 8 || p.iter().enumerate().any(|(i, &b)| usize::from(b) != i + 1) {
        return None;
    }
    let size = (curve_bits(ec.curve()) as usize).div_ceil(8);
    let digits = scalar
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &scalar[i..]);
    if digits.len() > size {
        return None;
    }
    let mut padded = zeroize::Zeroizing::new(vec![0u8; size]);
    padded[size - digits.len()..].copy_from_slice(digits);
    let derived = ec_public_from_scalar(ec.curve(), &padded).ok()?;
    (derived == ec.as_sec1_bytes()).then_some((public, comment))
}

#[cfg(test)]
mod tests {
    use crate::keyfile::{Recognised, recognise};

    const SHORT: &str = include_str!("../../tests/fixtures/ecdsa521_short_scalar");
    const SHORT_FINGERPRINT: &str = "SHA256:CTUF+Ra6Yu3LFzaPf+DJvXXC6tlnP+us3kNkEEL+TTQ";

    #[test]
    fn ssh_key_still_refuses_short_p521_scalars() {
        // When this starts failing, ssh-key has the upstream fix and the fallback can go.
        assert!(ssh_key::PrivateKey::from_openssh(SHORT).is_err());
    }

    #[test]
    fn short_p521_scalar_is_read_with_its_comment() {
        let Recognised::Key(key) = recognise(SHORT.as_bytes()) else {
            panic!("not recognised");
        };
        assert_eq!(key.public.as_ref().unwrap().fingerprint, SHORT_FINGERPRINT);
        assert_eq!(
            key.comment.as_deref(),
            Some("keyrotate test fixture: short P-521 scalar")
        );
        assert_eq!(key.encrypted(), Some(false));
    }

    #[test]
    fn a_scalar_that_does_not_match_the_public_point_is_refused() {
        let pem = pem::parse(SHORT).unwrap();
        let mut binary = pem.contents().to_vec();
        // The scalar sits just before the comment and padding; flip a bit in its last byte.
        let comment = b"keyrotate test fixture: short P-521 scalar";
        let at = binary
            .windows(comment.len())
            .position(|w| w == comment)
            .unwrap()
            - 5;
        binary[at] ^= 1;
        assert!(super::unencrypted_ecdsa(&binary).is_none());
        binary[at] ^= 1;
        assert!(super::unencrypted_ecdsa(&binary).is_some());
    }
}
