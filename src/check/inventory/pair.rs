//! From scanned files to inventory entries: each private key paired with its `.pub`, what
//! the pair says about itself, the policy's findings, and the marks that need the whole
//! directory (retired keys come back, one key in two files).

use super::*;

/// Join each private (or would-be private) file with `<name>.pub`, then describe every entry.
pub(super) fn pair_and_describe(
    scanned: Vec<Scanned>,
    policy: &Policy,
    now: SystemTime,
) -> Vec<KeyEntry> {
    let mut publics: BTreeMap<OsString, Scanned> = BTreeMap::new();
    let mut others = Vec::new();
    let mut certificates = Vec::new();
    for s in scanned {
        if let Content::Certificate(_) = &s.content {
            certificates.push(s);
        } else if s.is_public_side() {
            publics.insert(s.name.clone(), s);
        } else {
            others.push(s);
        }
    }
    let mut entries = Vec::new();
    for private in others {
        let mut pub_name = private.name.clone();
        pub_name.push(".pub");
        let public = publics.remove(&pub_name);
        entries.push(describe(private, public, policy, now));
    }
    for (_, public) in publics {
        entries.push(describe(public, None, policy, now));
    }
    attach_certificates(&mut entries, certificates, now);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    certificate_findings(&mut entries, policy, now);
    entries
}

/// Each `<name>-cert.pub` goes to the entry of `<name>` (or of `<name>.pub` alone); a
/// certificate without one is an entry of its own, of format `certificate`.
fn attach_certificates(entries: &mut Vec<KeyEntry>, certificates: Vec<Scanned>, now: SystemTime) {
    let file_name = |p: &Path| p.file_name().map(|n| n.as_encoded_bytes().to_vec());
    for scanned in certificates {
        let entry = new_entry(&scanned, None, now);
        let Content::Certificate(info) = scanned.content else {
            continue;
        };
        let cert = CertEntry {
            path: scanned.path,
            info: *info,
        };
        let stem = scanned
            .name
            .as_encoded_bytes()
            .strip_suffix(b"-cert.pub")
            .map(<[u8]>::to_vec);
        let owner = stem.and_then(|stem| {
            let mut public = stem.clone();
            public.extend_from_slice(b".pub");
            entries.iter().position(|e| {
                file_name(&e.path).is_some_and(|n| n == stem || n == public)
                    || e.public_path.as_deref().and_then(file_name) == Some(public.clone())
            })
        });
        match owner {
            Some(i) => entries[i].certificates.push(cert),
            None => {
                let mut entry = entry;
                entry.format = Format::Certificate;
                entry.algorithm = cert.info.key.algorithm;
                entry.bits = cert.info.key.bits;
                entry.fingerprint = Some(cert.info.key.fingerprint().to_string());
                entry.public = Some(cert.info.key.clone());
                entry.comment = Some(cert.info.comment.clone()).filter(|c| !c.is_empty());
                entry.certificates.push(cert);
                entries.push(entry);
            }
        }
    }
}

/// The certificate policy's findings, on the entry each certificate belongs to.
fn certificate_findings(entries: &mut [KeyEntry], policy: &Policy, now: SystemTime) {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut found = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let beside = match entry.format {
            Format::Certificate => None,
            _ => entry.fingerprint.as_deref(),
        };
        for cert in &entry.certificates {
            let certified = cert.info.key.fingerprint();
            let certified_key_at = entries
                .iter()
                .find(|e| {
                    e.format != Format::Certificate && e.fingerprint.as_deref() == Some(certified)
                })
                .map(|e| e.path.as_path());
            let location = cert.path.display().to_string();
            let facts = findings::CertFacts {
                location: &location,
                cert: &cert.info,
                beside,
                certified_key_at,
                now,
            };
            found.push((i, findings::certificate_findings(&facts, policy)));
        }
    }
    for (i, list) in found {
        entries[i].findings.extend(list);
    }
}

/// One inventory entry: the private (or lone) file `main`, with the `.pub` beside it.
pub(super) fn describe(
    main: Scanned,
    public: Option<Scanned>,
    policy: &Policy,
    now: SystemTime,
) -> KeyEntry {
    let mut entry = new_entry(&main, public.as_ref(), now);
    let (parsed, private_algorithm) = read_main(&mut entry, &main);
    if let Some(public) = &public {
        read_public(&mut entry, &main.path, public, private_algorithm);
    }
    if let Some(info) = &entry.public {
        entry.algorithm = info.algorithm;
        entry.bits = info.bits;
        entry.fingerprint = Some(info.fingerprint().to_string());
    } else {
        entry.algorithm = private_algorithm;
    }
    let findings = policy_findings(&entry, &main, parsed, policy);
    entry.findings.extend(findings);
    entry
}

/// An entry with only what the file system says: paths, mode, time.
pub(super) fn new_entry(main: &Scanned, public: Option<&Scanned>, now: SystemTime) -> KeyEntry {
    let modified = main
        .meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    KeyEntry {
        path: main.path.clone(),
        public_path: public.map(|p| p.path.clone()),
        format: Format::Unknown,
        private: false,
        algorithm: None,
        bits: None,
        fingerprint: None,
        public: None,
        comment: None,
        protection: None,
        // A link that could not be followed has only its own, meaningless, mode.
        mode: main
            .meta
            .as_ref()
            .filter(|m| !m.file_type().is_symlink())
            .and_then(unix_mode),
        modified,
        age_days: age_days(modified, now),
        symlink_target: main.symlink_target.clone(),
        certificates: Vec::new(),
        findings: Vec::new(),
    }
}

/// What the main file says about itself: whether it parsed, and the private key's algorithm.
pub(super) fn read_main(entry: &mut KeyEntry, main: &Scanned) -> (bool, Option<KeyAlgorithm>) {
    match &main.content {
        Content::Key(key) => {
            entry.format = key.format;
            entry.private = key.private;
            entry.public = key.public.clone();
            entry.comment = key.comment.clone();
            entry.protection = key.protection.clone();
            (true, key.algorithm())
        }
        Content::Broken(broken) => {
            entry.format = broken.format;
            entry.private = broken.private.unwrap_or(false);
            if broken.encrypted == Some(true) {
                entry.protection = Some(Protection {
                    cipher: "unknown".to_string(),
                    kdf: Kdf::Unknown,
                });
            }
            let finding = broken_finding(&main.path, entry, &broken.reason);
            entry.findings.push(finding);
            (false, None)
        }
        Content::Unreadable(unreadable) => {
            entry
                .findings
                .push(unreadable_finding(&main.path, unreadable));
            (false, None)
        }
        // Taken apart before pairing (`attach_certificates`).
        Content::Certificate(_) => (false, None),
    }
}

/// The `.pub` beside it: fills in what the private file cannot reveal, and must match it.
pub(super) fn read_public(
    entry: &mut KeyEntry,
    main_path: &Path,
    public: &Scanned,
    private_algorithm: Option<KeyAlgorithm>,
) {
    let pub_key = match &public.content {
        Content::Key(pub_key) => {
            entry
                .findings
                .extend(findings::unloadable_public(&public.path, public.mangling));
            pub_key
        }
        Content::Broken(broken) => {
            let finding = broken_public_finding(main_path, &public.path, &broken.reason);
            entry.findings.push(finding);
            return;
        }
        Content::Unreadable(unreadable) => {
            let finding = broken_public_finding(main_path, &public.path, &unreadable.reason);
            entry.findings.push(finding);
            return;
        }
        Content::Certificate(_) => return,
    };
    let pub_info = pub_key.public.clone();
    match (&entry.public, &pub_info) {
        (Some(mine), Some(theirs)) if mine.key_data != theirs.key_data => {
            let finding = mismatch_finding(main_path, &public.path, mine, theirs);
            entry.findings.push(finding);
        }
        (Some(_), _) => {
            // `ssh-keygen -l` prefers the .pub's comment; so do we.
            entry.comment = pub_key.comment.clone().or(entry.comment.take());
        }
        (None, Some(theirs)) => {
            let conflicting = private_algorithm.is_some_and(|alg| Some(alg) != theirs.algorithm);
            if conflicting {
                entry.findings.push(Finding::new(
                    Code::PublicKeyMismatch,
                    format!(
                        "{} holds a {} public key, but this private key is {}: it cannot be this \
                         key's public half, and uploading it would lock you out. Once the key is \
                         decrypted, recreate it with `ssh-keygen -y -f {} > {}.pub`.",
                        public.path.display(),
                        theirs.algorithm.map_or("different", |a| a.display_name()),
                        private_algorithm.map_or("different", |a| a.display_name()),
                        crate::text::shell_path(main_path),
                        crate::text::shell_path(main_path)
                    ),
                ));
            } else {
                entry.public = Some(theirs.clone());
                entry.comment = pub_key.comment.clone().or(entry.comment.take());
            }
        }
        (_, None) => {}
    }
}

/// The policy's findings for the entry's facts.
pub(super) fn policy_findings(
    entry: &KeyEntry,
    main: &Scanned,
    parsed: bool,
    policy: &Policy,
) -> Vec<Finding> {
    let recognisably_private = entry.private
        && matches!(main.content, Content::Key(_) | Content::Broken(_))
        && entry.format != Format::Unknown;
    let facts = KeyFacts {
        path: &entry.path,
        format: entry.format,
        private: recognisably_private,
        parsed,
        algorithm: entry.algorithm,
        bits: entry.bits,
        kdf: entry.protection.as_ref().map(|p| &p.kdf).filter(|_| parsed),
        mode: entry.mode,
        other_readers: &other_readers(&entry.path, recognisably_private),
        age_days: entry.age_days,
        public_path: entry.public_path.as_deref(),
        mangling: main.mangling,
    };
    findings::key_findings(&facts, policy)
}

pub(super) fn broken_finding(path: &Path, entry: &KeyEntry, reason: &str) -> Finding {
    let what = match (entry.format, entry.private) {
        (Format::Unknown, _) => "This file is named like an SSH key, but".to_string(),
        (format, true) => format!("This {} private key cannot be used:", format.describe()),
        (_, false) => "This public key file cannot be used:".to_string(),
    };
    let quoted = crate::text::shell_path(path);
    // `rotate -f` takes a private key's name: it refuses a `.pub`, and a public key alone
    // has no private key to replace.
    let public_side =
        entry.format == Format::Public || path.as_os_str().as_encoded_bytes().ends_with(b".pub");
    let next = match public_side {
        true => format!(
            "Restore it from a backup (`keyrotate backup --list`), or, if it is not a key you \
             need, remove it: `rm {quoted}`"
        ),
        false => format!(
            "Restore it from a backup (`keyrotate backup --list`) or replace it with {}; if it \
             is not a key, move it out of the SSH directory",
            findings::rotate_hint(path)
        ),
    };
    Finding::new(Code::UnreadableKey, format!("{what} {reason}. {next}."))
}

pub(super) fn unreadable_finding(path: &Path, unreadable: &Unreadable) -> Finding {
    let quoted = crate::text::shell_path(path);
    let next = match unreadable.next_step {
        NextStep::MoveAway => {
            "Keys are small regular files: move it out of the SSH directory".to_string()
        }
        NextStep::CheckPermissions => {
            format!("Check its owner and permissions with `ls -l {quoted}`")
        }
        NextStep::FixLink => format!(
            "Point the link at the real key, or remove it if the key is gone: `rm {quoted}` \
             (this removes only the link)"
        ),
    };
    Finding::new(
        Code::UnreadableKey,
        format!(
            "This file cannot be checked: {}. {next}.",
            unreadable.reason
        ),
    )
}

pub(super) fn broken_public_finding(private: &Path, public: &Path, reason: &str) -> Finding {
    Finding::new(
        Code::UnreadableKey,
        format!(
            "The public key file {} cannot be used: {reason}. Recreate it with \
             `ssh-keygen -y -f {} > {}`.",
            public.display(),
            crate::text::shell_path(private),
            crate::text::shell_path(public)
        ),
    )
}

pub(super) fn mismatch_finding(
    private: &Path,
    public: &Path,
    mine: &PublicInfo,
    theirs: &PublicInfo,
) -> Finding {
    Finding::new(
        Code::PublicKeyMismatch,
        format!(
            "{} is not the public half of this private key (it is {}, the private key is {}): \
             uploading it would lock you out. Recreate it with `ssh-keygen -y -f {} > {}`.",
            public.display(),
            theirs.fingerprint(),
            mine.fingerprint(),
            crate::text::shell_path(private),
            crate::text::shell_path(public)
        ),
    )
}

pub(super) fn retired_when(key: &RetiredKey) -> String {
    let date = key.retired_at.get(..10).unwrap_or("an earlier run");
    match key.set.is_empty() {
        true => format!("on {date}"),
        false => format!("on {date} (a copy is in key_backup/{})", key.set),
    }
}

/// Keys `rotate` retired must not come back: JASMIN refuses a key used before.
pub(super) fn mark_retired(keys: &mut [KeyEntry], retired: &[RetiredKey]) {
    for key in keys.iter_mut() {
        let Some(fp) = &key.fingerprint else { continue };
        if let Some(r) = retired.iter().find(|r| &r.fingerprint == fp) {
            let mut remove = crate::text::shell_path(&key.path);
            if let Some(public) = &key.public_path {
                remove.push(' ');
                remove.push_str(&crate::text::shell_path(public));
            }
            key.findings.push(Finding::new(
                Code::RetiredKey,
                format!(
                    "This key was retired by `keyrotate rotate` {}: services such as JASMIN refuse a \
                     key that was used before, and it may have been compromised. Take it out of use: \
                     `rm {remove}`, and use your current key.",
                    retired_when(r)
                ),
            ));
        }
    }
}

/// Findings for identities in ssh-agent (`agent_keys`) that `rotate` retired.
pub fn agent_findings(agent_keys: &[KeyData], retired: &[RetiredKey]) -> Vec<Finding> {
    let mut out = Vec::new();
    for key in agent_keys {
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        if let Some(r) = retired.iter().find(|r| r.fingerprint == fp) {
            out.push(Finding::new(
                Code::RetiredKey,
                format!(
                    "ssh-agent still holds the key {fp}, retired by `keyrotate rotate` {}: it may \
                     be offered to servers. Remove it with `ssh-add -d` and the key's .pub file, or \
                     empty the agent with `ssh-add -D`.",
                    retired_when(r)
                ),
            ));
        }
    }
    out
}

/// Give every entry that shares its key with another a `duplicate-key` finding naming the others.
pub(super) fn mark_duplicates(keys: &mut [KeyEntry]) {
    let mut by_fingerprint: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        // A lone certificate is not a copy of its key.
        if key.format == Format::Certificate {
            continue;
        }
        if let Some(fp) = &key.fingerprint {
            by_fingerprint.entry(fp.clone()).or_default().push(i);
        }
    }
    for indices in by_fingerprint.values().filter(|v| v.len() > 1) {
        for &i in indices {
            let others: Vec<String> = indices
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| keys[j].path.display().to_string())
                .collect();
            keys[i].findings.push(Finding::new(
                Code::DuplicateKey,
                format!(
                    "The same key is also stored in {}. Keep one copy, so that replacing the key \
                     replaces it everywhere.",
                    others.join(", ")
                ),
            ));
        }
    }
}
