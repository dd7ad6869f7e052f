//! A bounds check of SSH wire-format data (RFC 4251 `string`s and `mpint`s) before ssh-key
//! decodes it. ssh-encoding allocates each field's *declared* length (up to 1 MiB) before reading
//! it, so a hostile length field could make a 2 KiB key file cost a megabyte; here every declared
//! length must fit in the bytes actually left, field by field, following the layouts of
//! OpenSSH's PROTOCOL.key and `sshkey_private_serialize`. Nothing is allocated.

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A `string` (or `mpint`): its declared length must fit in what is left.
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    fn strings(&mut self, n: usize) -> Option<()> {
        for _ in 0..n {
            self.string()?;
        }
        Some(())
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Fields after the type name in a public key blob (RFC 4253, RFC 5656, PROTOCOL.u2f).
fn public_fields(key_type: &[u8], c: &mut Cursor<'_>) -> Option<()> {
    match key_type {
        b"ssh-rsa" => c.strings(2),                            // e, n
        b"ssh-dss" => c.strings(4),                            // p, q, g, y
        b"ssh-ed25519" => c.strings(1),                        // public key
        t if t.starts_with(b"ecdsa-sha2-") => c.strings(2),    // curve, Q
        b"sk-ssh-ed25519@openssh.com" => c.strings(2),         // public key, application
        b"sk-ecdsa-sha2-nistp256@openssh.com" => c.strings(3), // curve, Q, application
        _ => None,
    }
}

/// Where an OpenSSH certificate blob (PROTOCOL.certkeys) keeps the two fields ssh-key 0.6
/// refuses to decode: its validity (a `valid_before` of `u64::MAX`, "forever", is above the
/// `i64::MAX` ssh-key accepts) and its signature (an `ssh-rsa` one, SHA-1, has no ssh-key
/// `Algorithm`). Every length is checked against the bytes left, as everywhere here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateLayout<'a> {
    /// Offset of `valid_after`; `valid_before` follows it.
    pub validity_at: usize,
    pub valid_after: u64,
    pub valid_before: u64,
    /// Offset of the signature `string` (the last field).
    pub signature_at: usize,
    pub signature_algorithm: &'a [u8],
    pub signature_blob: &'a [u8],
}

pub fn certificate_layout(blob: &[u8]) -> Option<CertificateLayout<'_>> {
    let mut c = Cursor::new(blob);
    let cert_type = c.string()?;
    let key_type = cert_type.strip_suffix(b"-cert-v01@openssh.com")?;
    let key_type: &[u8] = match key_type {
        b"sk-ssh-ed25519" => b"sk-ssh-ed25519@openssh.com",
        b"sk-ecdsa-sha2-nistp256" => b"sk-ecdsa-sha2-nistp256@openssh.com",
        t => t,
    };
    c.string()?; // nonce
    public_fields(key_type, &mut c)?;
    c.take(8)?; // serial
    c.u32()?; // type
    c.strings(2)?; // key id, principals
    let validity_at = blob.len() - c.data.len();
    let u64_of = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let valid_after = u64_of(c.take(8)?);
    let valid_before = u64_of(c.take(8)?);
    c.strings(4)?; // critical options, extensions, reserved, signature key
    let signature_at = blob.len() - c.data.len();
    let mut signature = Cursor::new(c.string()?);
    if !c.is_empty() {
        return None;
    }
    let signature_algorithm = signature.string()?;
    let signature_blob = signature.string()?;
    Some(CertificateLayout {
        validity_at,
        valid_after,
        valid_before,
        signature_at,
        signature_algorithm,
        signature_blob,
    })
}

/// A public key blob (`.pub` base64, PuTTY public lines, OpenSSH private key header).
pub fn public_blob_ok(blob: &[u8]) -> bool {
    let mut c = Cursor::new(blob);
    (|| {
        let key_type = c.string()?;
        public_fields(key_type, &mut c)?;
        c.is_empty().then_some(())
    })()
    .is_some()
}

/// What the clear parts of an `openssh-key-v1` container say, read without decoding any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpensshInfo<'a> {
    pub cipher: &'a [u8],
    pub kdf: &'a [u8],
    /// bcrypt rounds, when the KDF is bcrypt.
    pub rounds: Option<u32>,
    /// The public key blob of the unencrypted header.
    pub public_blob: &'a [u8],
    /// For an unencrypted key: its comment.
    pub comment: Option<&'a [u8]>,
}

/// The public fields inside a private section, in the order the public blob has them.
fn private_public_fields<'a>(key_type: &[u8], c: &mut Cursor<'a>) -> Option<Vec<&'a [u8]>> {
    let mut fields = Vec::new();
    match key_type {
        b"ssh-rsa" => {
            let n = c.string()?;
            let e = c.string()?;
            c.strings(4)?; // d, iqmp, p, q
            fields.extend([e, n]);
        }
        b"ssh-dss" => {
            for _ in 0..4 {
                fields.push(c.string()?); // p, q, g, y
            }
            c.string()?; // x
        }
        b"ssh-ed25519" => {
            fields.push(c.string()?); // public key
            c.string()?; // private key (seed and public key)
        }
        t if t.starts_with(b"ecdsa-sha2-") => {
            fields.push(c.string()?); // curve
            fields.push(c.string()?); // Q
            c.string()?; // d
        }
        b"sk-ssh-ed25519@openssh.com" => {
            fields.push(c.string()?);
            fields.push(c.string()?); // application
            c.u8()?;
            c.strings(2)?;
        }
        b"sk-ecdsa-sha2-nistp256@openssh.com" => {
            for _ in 0..3 {
                fields.push(c.string()?); // curve, Q, application
            }
            c.u8()?;
            c.strings(2)?;
        }
        _ => return None,
    }
    Some(fields)
}

/// Read an `openssh-key-v1` container, every length checked. For an unencrypted key the private
/// section must be coherent: equal check integers, the same key type as the header, and the same
/// public fields, so that a damaged key is not reported as healthy. (The private scalar itself is
/// not checked against the public key: that costs a scalar multiplication per key, and
/// `ssh-keygen -l` does not check it either.)
pub fn openssh_private(binary: &[u8]) -> Option<OpensshInfo<'_>> {
    let mut c = Cursor::new(binary.strip_prefix(b"openssh-key-v1\0")?);
    let cipher = c.string()?;
    let kdf = c.string()?;
    let kdf_options = c.string()?;
    let mut rounds = None;
    if kdf == b"bcrypt" {
        let mut o = Cursor::new(kdf_options);
        o.string()?; // salt
        rounds = Some(o.u32()?);
        if !o.is_empty() {
            return None;
        }
    }
    if c.u32()? != 1 {
        return None;
    }
    let public_blob = c.string()?;
    if !public_blob_ok(public_blob) {
        return None;
    }
    let private = c.string()?;
    // An AEAD cipher appends its 16-byte tag.
    if c.data.len() > 16 {
        return None;
    }
    let mut comment = None;
    if cipher == b"none" {
        let mut p = Cursor::new(private);
        if p.u32()? != p.u32()? {
            return None;
        }
        let mut blob = Cursor::new(public_blob);
        let key_type = blob.string()?;
        if p.string()? != key_type {
            return None;
        }
        for field in private_public_fields(key_type, &mut p)? {
            if blob.string()? != field {
                return None;
            }
        }
        comment = Some(p.string()?);
        // Padding 1, 2, 3, ... up to the cipher block size.
        let pad_ok = p.data.len() < 32
            && p.data
                .iter()
                .enumerate()
                .all(|(i, &b)| usize::from(b) == i + 1);
        if !pad_ok {
            return None;
        }
    }
    Some(OpensshInfo {
        cipher,
        kdf,
        rounds,
        public_blob,
        comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_length_longer_than_what_is_left_is_refused() {
        let mut blob = string(b"ssh-ed25519");
        blob.extend(string(&[7; 32]));
        assert!(public_blob_ok(&blob));
        let mut hostile = string(b"ssh-ed25519");
        hostile.extend_from_slice(&0x000f_ffffu32.to_be_bytes());
        hostile.extend_from_slice(&[7; 32]);
        assert!(!public_blob_ok(&hostile));
        assert!(!public_blob_ok(&blob[..blob.len() - 1]));
        let mut trailing = blob.clone();
        trailing.push(0);
        assert!(!public_blob_ok(&trailing));
        assert!(!public_blob_ok(&string(b"ssh-unknown")));
    }
}
