//! PuTTY `.ppk` versions 2 and 3: the public blob, comment and encryption are in the clear.

use super::*;

/// PuTTY `.ppk` versions 2 and 3: the public blob, comment and encryption are in the clear.
pub(super) fn parse_putty(text: &[u8]) -> Recognised {
    let broken = |reason: &str| Recognised::Broken(Broken::new(Format::Putty, true, reason));
    let Ok(text) = std::str::from_utf8(text) else {
        return broken("the PuTTY key file is not valid text");
    };
    let mut lines = text.lines();
    let Some((version, algorithm_name)) = lines
        .next()
        .and_then(|l| l.strip_prefix("PuTTY-User-Key-File-"))
        .and_then(|l| l.split_once(':'))
    else {
        return broken("the PuTTY header line is damaged");
    };
    if version != "2" && version != "3" {
        return broken(&format!(
            "PuTTY key file version {} is not supported (only 2 and 3); re-save it with a current PuTTYgen",
            sanitize(version)
        ));
    }
    let mut encryption = None;
    let mut comment = None;
    let mut public_blob = None;
    let mut private_blob = None;
    let mut mac = None;
    let mut kdf_variant = None;
    let mut argon_passes = None;
    let mut argon_memory = None;
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(": ").or_else(|| line.split_once(':')) else {
            continue;
        };
        let value = value.trim_end_matches('\r');
        match name {
            "Encryption" => encryption = Some(value.to_string()),
            "Comment" => comment = Some(value.to_string()),
            "Key-Derivation" => kdf_variant = Some(value.to_string()),
            "Argon2-Passes" => argon_passes = value.trim().parse().ok(),
            "Argon2-Memory" => argon_memory = value.trim().parse().ok(),
            "Private-MAC" => mac = Some(value.trim().to_string()),
            "Public-Lines" | "Private-Lines" => {
                let Ok(count) = value.trim().parse::<usize>() else {
                    return broken(&format!("the PuTTY {name} count is not a number"));
                };
                let mut b64 = String::new();
                for _ in 0..count {
                    match lines.next() {
                        Some(l) => b64.push_str(l.trim()),
                        None => return broken("the PuTTY key file is truncated"),
                    }
                }
                if name == "Public-Lines" {
                    public_blob = Some(b64);
                } else {
                    private_blob = Some(b64);
                }
            }
            _ => {}
        }
    }
    let Some(encryption) = encryption else {
        return broken("the PuTTY key file has no Encryption line (truncated?)");
    };
    let Some(b64) = public_blob else {
        return broken("the PuTTY key file has no public key (truncated?)");
    };
    // The private half is opaque without the passphrase, but it must be all there.
    let private_ok = private_blob
        .as_deref()
        .and_then(decode_base64)
        .is_some_and(|blob| !blob.is_empty());
    if !private_ok {
        return broken("the PuTTY key file's private key is missing or truncated");
    }
    let mac_len = if version == "2" { 40 } else { 64 };
    if !mac.is_some_and(|m| m.len() == mac_len && m.bytes().all(|b| b.is_ascii_hexdigit())) {
        return broken("the PuTTY key file has no valid Private-MAC line (truncated?)");
    }
    let key_data = match decode_base64(&b64)
        .filter(|blob| wire::public_blob_ok(blob))
        .and_then(|blob| ssh_key::PublicKey::from_bytes(&blob).ok())
    {
        Some(key) => key.key_data().clone(),
        None => return broken("the PuTTY public key is damaged"),
    };
    if key_data.algorithm().as_str() != algorithm_name.trim() {
        return broken("the PuTTY header names a different algorithm from its public key");
    }
    let kdf = if encryption == "none" {
        Kdf::None
    } else if version == "2" {
        Kdf::PuttySha1
    } else {
        Kdf::Argon2 {
            variant: kdf_variant.unwrap_or_else(|| "Argon2".to_string()),
            passes: argon_passes,
            memory_kib: argon_memory,
        }
    };
    let public = PublicInfo::new(key_data);
    Recognised::Key(Box::new(KeyFile {
        format: Format::Putty,
        private: true,
        algorithm: public.algorithm,
        public: Some(public),
        comment: comment.filter(|c| !c.is_empty()),
        protection: Some(Protection {
            cipher: encryption,
            kdf,
        }),
    }))
}
