//! Public keys: one-line OpenSSH (`ssh-ed25519 AAAA... comment`), RFC 4716, certificates.

use super::*;
use certificate::CertInfo;

/// RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`), what PuTTYgen and `ssh-keygen -e` write.
pub(super) fn parse_rfc4716_public(text: &[u8]) -> Recognised {
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

pub(super) fn public_key_file(key_data: KeyData, comment: Option<String>) -> KeyFile {
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
pub(super) fn recognise_public_line(bytes: &[u8]) -> Recognised {
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

/// An OpenSSH certificate line, parsed (see [`CertInfo::from_blob`]); its comment kept.
pub(super) fn recognise_certificate(cert_type: &str, line: &[u8]) -> Recognised {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let blob = words
        .nth(1)
        .and_then(|b64| std::str::from_utf8(b64).ok())
        .and_then(decode_base64)
        .filter(|blob| {
            let name = cert_type.as_bytes();
            blob.len() > 4 + name.len()
                && blob[..4] == (name.len() as u32).to_be_bytes()
                && &blob[4..4 + name.len()] == name
        });
    match blob.as_deref().and_then(CertInfo::from_blob) {
        Some(mut cert) => {
            let comment: Vec<&[u8]> = words.collect();
            cert.comment = String::from_utf8_lossy(&comment.join(&b' ')).into_owned();
            Recognised::Certificate(Box::new(cert))
        }
        None => Recognised::Broken(Broken::new(
            Format::Public,
            false,
            "the OpenSSH certificate is damaged",
        )),
    }
}
