//! OpenSSH certificates (`*-cert.pub`, PROTOCOL.certkeys): the fields `check` reports, read with
//! ssh-key's `Certificate`. The CA's signature is never verified here: `check` only reports what
//! a certificate says about itself.

use std::collections::BTreeMap;

use ssh_key::HashAlg;
use ssh_key::certificate::Certificate;

use super::PublicInfo;
use super::wire;

/// ssh-key's largest accepted time (`i64::MAX`); OpenSSH writes `u64::MAX` for "forever".
const SSH_KEY_MAX_SECS: u64 = i64::MAX as u64;

/// `valid_before` of a certificate valid forever (`ssh-keygen` without `-V`).
pub const FOREVER: u64 = u64::MAX;

/// Whom a certificate speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    User,
    Host,
}

/// What one certificate says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub kind: CertKind,
    pub key_id: String,
    pub serial: u64,
    pub principals: Vec<String>,
    /// Seconds since the epoch; 0 is "from the beginning".
    pub valid_after: u64,
    /// Seconds since the epoch; [`FOREVER`] is "forever".
    pub valid_before: u64,
    /// `SHA256:` fingerprint of the CA key that signed it.
    pub ca_fingerprint: String,
    /// The signature's algorithm as written, e.g. `rsa-sha2-512`, `ssh-rsa`, `ssh-ed25519`.
    pub signature_algorithm: String,
    pub critical_options: BTreeMap<String, String>,
    pub extensions: Vec<String>,
    /// The key it certifies.
    pub key: PublicInfo,
    pub comment: String,
}

impl Eq for CertInfo {}

impl CertInfo {
    /// Parse a certificate blob (the base64 of a `-cert.pub` line, or an agent identity).
    ///
    /// ssh-key 0.6.7 refuses two things OpenSSH writes every day: a `valid_before` of
    /// `u64::MAX` ("forever", the default of `ssh-keygen -s`) and a signature of algorithm
    /// `ssh-rsa` (SHA-1). Both are read from the wire here, and the copy given to ssh-key has
    /// them replaced by values it accepts (the CA's signature is not verified, so replacing it
    /// changes nothing `check` reports).
    pub fn from_blob(blob: &[u8]) -> Option<CertInfo> {
        let layout = wire::certificate_layout(blob)?;
        let mut patched = blob.to_vec();
        let at = layout.validity_at;
        let clamp = |t: u64| t.min(SSH_KEY_MAX_SECS).to_be_bytes();
        patched[at..at + 8].copy_from_slice(&clamp(layout.valid_after));
        patched[at + 8..at + 16].copy_from_slice(&clamp(layout.valid_before));
        if layout.signature_algorithm == b"ssh-rsa" {
            patched.truncate(layout.signature_at);
            let mut signature = Vec::new();
            put_string(&mut signature, b"rsa-sha2-512");
            put_string(&mut signature, layout.signature_blob);
            put_string(&mut patched, &signature);
        }
        let cert = Certificate::from_bytes(&patched).ok()?;
        Some(CertInfo {
            kind: if cert.cert_type().is_host() {
                CertKind::Host
            } else {
                CertKind::User
            },
            key_id: cert.key_id().to_string(),
            serial: cert.serial(),
            principals: cert.valid_principals().to_vec(),
            valid_after: layout.valid_after,
            valid_before: layout.valid_before,
            ca_fingerprint: cert
                .signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            signature_algorithm: String::from_utf8_lossy(layout.signature_algorithm).into_owned(),
            critical_options: cert.critical_options().0.clone(),
            extensions: cert.extensions().keys().cloned().collect(),
            key: PublicInfo::new(cert.public_key().clone()),
            comment: String::new(),
        })
    }

    /// Signed with SHA-1 RSA, which OpenSSH (8.8 and later) refuses by default.
    pub fn weak_signature(&self) -> bool {
        self.signature_algorithm == "ssh-rsa"
    }

    /// `valid_after`, or `None` for "from the beginning".
    pub fn valid_after_time(&self) -> Option<std::time::SystemTime> {
        (self.valid_after != 0).then(|| epoch_plus(self.valid_after))
    }

    /// `valid_before`, or `None` for "forever".
    pub fn valid_before_time(&self) -> Option<std::time::SystemTime> {
        (self.valid_before != FOREVER).then(|| epoch_plus(self.valid_before))
    }
}

fn epoch_plus(secs: u64) -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(secs))
        .unwrap_or(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(i64::MAX as u64 / 2),
        )
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ssh_key::certificate::Builder;
    use ssh_key::private::{Ed25519Keypair, PrivateKey};

    /// A user certificate for one key, signed by another (fixed seeds), valid 1000..2000, as
    /// its wire blob.
    pub(crate) fn blob() -> Vec<u8> {
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[1; 32]));
        let user = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
        let mut builder =
            Builder::new([7; 16], user.public_key().key_data().clone(), 1000, 2000).unwrap();
        builder.serial(42).unwrap();
        builder.key_id("alice@example").unwrap();
        builder.valid_principal("alice").unwrap();
        builder.extension("permit-pty", "").unwrap();
        builder.sign(&ca).unwrap().to_bytes().unwrap()
    }

    #[test]
    fn fields_come_out_as_written() {
        let cert = CertInfo::from_blob(&blob()).unwrap();
        assert_eq!(cert.kind, CertKind::User);
        assert_eq!(cert.serial, 42);
        assert_eq!(cert.key_id, "alice@example");
        assert_eq!(cert.principals, ["alice"]);
        assert_eq!((cert.valid_after, cert.valid_before), (1000, 2000));
        assert_eq!(cert.signature_algorithm, "ssh-ed25519");
        assert_eq!(cert.extensions, ["permit-pty"]);
        assert!(cert.ca_fingerprint.starts_with("SHA256:"));
        assert!(!cert.weak_signature());
    }

    #[test]
    fn forever_is_read_although_ssh_key_refuses_it() {
        let mut blob = blob();
        let at = wire::certificate_layout(&blob).unwrap().validity_at;
        blob[at + 8..at + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        let cert = CertInfo::from_blob(&blob).unwrap();
        assert_eq!(cert.valid_before, FOREVER);
        assert_eq!(cert.valid_before_time(), None);
    }

    #[test]
    fn an_ssh_rsa_signature_is_read_although_ssh_key_refuses_it() {
        let blob = blob();
        let layout = wire::certificate_layout(&blob).unwrap();
        let mut weak = blob[..layout.signature_at].to_vec();
        let mut signature = Vec::new();
        put_string(&mut signature, b"ssh-rsa");
        put_string(&mut signature, &[0x55; 384]);
        put_string(&mut weak, &signature);
        let cert = CertInfo::from_blob(&weak).unwrap();
        assert_eq!(cert.signature_algorithm, "ssh-rsa");
        assert!(cert.weak_signature());
    }

    #[test]
    fn truncated_or_trailing_bytes_are_refused() {
        let blob = blob();
        for n in 0..blob.len() {
            assert!(CertInfo::from_blob(&blob[..n]).is_none(), "{n}");
        }
        let mut trailing = blob.clone();
        trailing.push(0);
        assert!(CertInfo::from_blob(&trailing).is_none());
    }
}
