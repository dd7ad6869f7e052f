//! PEM armour: PKCS#1 RSA, SEC1 EC and OpenSSL DSA (plain or with legacy `Proc-Type`
//! encryption) and PKCS#8 (plain or encrypted), read without a passphrase.

use super::*;

pub(super) fn recognise_pem(bytes: &[u8], label: &str) -> Recognised {
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
pub(super) fn fast_armour(bytes: &[u8], format: Format) -> Option<pem::Pem> {
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

pub(super) fn pem_error_reason(e: &pem::PemError) -> String {
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
pub(super) fn parse_legacy_pem(block: &pem::Pem) -> Result<KeyFile, Broken> {
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

pub(super) fn unencrypted() -> Protection {
    Protection {
        cipher: "none".to_string(),
        kdf: Kdf::None,
    }
}

pub(super) fn damaged(what: &str) -> String {
    format!("the {what} structure inside the armour is damaged or truncated")
}

pub(super) fn mpint(bytes: &[u8]) -> Result<Mpint, String> {
    Mpint::from_positive_bytes(bytes).map_err(|_| "a key number is malformed".to_string())
}

pub(super) fn rsa_from_pkcs1(der: &[u8]) -> Result<KeyData, String> {
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
pub(super) fn ec_from_sec1(
    der: &[u8],
    outer_curve: Option<ObjectIdentifier>,
) -> Result<KeyData, String> {
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

pub(super) fn dsa_from_openssl_der(der: &[u8]) -> Result<KeyData, String> {
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

pub(super) fn parse_pkcs8(block: &pem::Pem) -> Result<KeyFile, Broken> {
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
pub(super) fn pkcs8_protection(der: &[u8]) -> Result<Protection, Broken> {
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

pub(super) fn dsa_from_pkcs8(info: pkcs8::PrivateKeyInfo<'_>) -> Result<KeyData, String> {
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

pub(super) fn ed25519_from_pkcs8(private_key: &[u8]) -> Result<KeyData, String> {
    // RFC 8410: the private key is an OCTET STRING holding the 32-byte seed.
    let seed = der::asn1::OctetStringRef::from_der(private_key).map_err(|_| damaged("Ed25519"))?;
    let seed: [u8; 32] = seed
        .as_bytes()
        .try_into()
        .map_err(|_| "the Ed25519 seed is not 32 bytes".to_string())?;
    let keypair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    Ok(KeyData::Ed25519(keypair.public))
}
