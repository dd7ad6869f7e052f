//! PuTTY `.ppk` keys (v2 and v3, plain and encrypted), made by `puttygen` with the committed
//! script `tests/fixtures/putty/make-fixtures.sh`; fingerprints checked with `ssh-keygen -l` on
//! the OpenSSH public keys PuTTYgen exported from the same files.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::path::Path;

use crate::common::*;

#[test]
fn every_putty_fixture_is_described_like_ssh_keygen_describes_its_public_key() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/putty");
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut names = Vec::new();
    for entry in fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ppk") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let dest = ssh.join(path.file_name().unwrap());
            fs::copy(&path, &dest).unwrap();
            set_mode(&dest, 0o600);
            names.push(name);
        }
    }
    names.sort();
    assert_eq!(
        names.len(),
        28,
        "2 versions x 7 key types x plain/encrypted: {names:?}"
    );
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(doc["keys"].as_array().unwrap().len(), names.len());
    for name in &names {
        let path = ssh.join(format!("{name}.ppk"));
        let e = entry(&doc, &path);
        let want = keygen_l(&fixtures.join("expected").join(format!("{name}.pub"))).unwrap();
        let ctx = format!("{name}: {e:#}");
        let encrypted = name.ends_with("-enc");
        assert_eq!(e["format"], "putty", "{ctx}");
        assert_eq!(e["fingerprint"], want.fingerprint.as_str(), "{ctx}");
        assert_eq!(e["bits"], want.bits, "{ctx}");
        assert_eq!(e["algorithm"], want.kind.to_lowercase(), "{ctx}");
        assert_eq!(e["comment"], format!("putty {name}"), "{ctx}");
        assert_eq!(e["encrypted"], encrypted, "{ctx}");
        assert_eq!(e["kdf_rounds"], serde_json::Value::Null, "{ctx}");
        assert_eq!(e["public_path"], serde_json::Value::Null, "{ctx}");
        let mut want_codes = Vec::new();
        if !encrypted {
            want_codes.push("unencrypted-private-key");
        }
        if name.starts_with("dsa") {
            want_codes.push("weak-algorithm");
        }
        if name.starts_with("rsa2048") {
            want_codes.push("weak-key-size");
        }
        want_codes.sort();
        // A .ppk carries its own public key: no missing-public-key.
        assert_eq!(codes(e), want_codes, "{ctx}");
    }
}

#[test]
fn damaged_putty_files_are_unreadable_keys() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/putty");
    let text = fs::read_to_string(fixtures.join("ed25519-v3-enc.ppk")).unwrap();
    let (_tmp, ssh) = ssh_dir_copy(None);
    let cases = [
        ("truncated_header.ppk", text[..30].to_string()),
        (
            "no_public.ppk",
            text.lines().take(3).collect::<Vec<_>>().join("\n"),
        ),
        (
            "bad_count.ppk",
            text.replace("Public-Lines: 2", "Public-Lines: 99999999999"),
        ),
        (
            "short_public.ppk",
            text.replace("Public-Lines: 2", "Public-Lines: 1"),
        ),
        (
            "wrong_alg.ppk",
            text.replace("File-3: ssh-ed25519", "File-3: ssh-rsa"),
        ),
        ("version1.ppk", text.replace("File-3", "File-1")),
    ];
    for (name, body) in &cases {
        fs::write(ssh.join(name), body).unwrap();
        set_mode(&ssh.join(name), 0o600);
    }
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1);
    for (name, _) in &cases {
        let e = entry(&doc, &ssh.join(name));
        assert_eq!(codes(e), ["unreadable-key"], "{name}: {e:#}");
        assert_eq!(e["format"], "putty", "{name}");
    }
}

/// rotate's "the new passphrase must differ" check decrypts PuTTY keys: the fixtures' own
/// passphrase opens them, another does not, a plain key is named as such, and an Argon2 asking
/// for absurd memory is refused before any work.
#[test]
fn the_old_passphrase_check_opens_putty_keys_with_their_passphrase_only() {
    use keyrotate::passphrase::Passphrase;
    use keyrotate::rotate::oldkey::{KdfLimits, Opens, passphrase_opens};
    let pass = |p: &str| Passphrase::new(zeroize::Zeroizing::new(p.as_bytes().to_vec()));
    // make-fixtures.sh writes it with a newline, which PuTTYgen drops.
    let right = pass("putty fixture passphrase 1");
    let wrong = pass("putty fixture passphrase 2");
    let limits = KdfLimits::default();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/putty");
    let mut checked = 0;
    for entry in fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".ppk") {
            continue;
        }
        let bytes = fs::read(&path).unwrap();
        if name.ends_with("-plain.ppk") {
            assert_eq!(
                passphrase_opens(&bytes, &right, &limits),
                Opens::Unencrypted,
                "{name}"
            );
        } else {
            assert_eq!(
                passphrase_opens(&bytes, &right, &limits),
                Opens::Yes,
                "{name}"
            );
            assert_eq!(
                passphrase_opens(&bytes, &wrong, &limits),
                Opens::No,
                "{name}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 28);

    let text = fs::read_to_string(fixtures.join("ed25519-v3-enc.ppk")).unwrap();
    let hostile = text.replace("Argon2-Memory: 8192", "Argon2-Memory: 4294967295");
    let started = std::time::Instant::now();
    match passphrase_opens(hostile.as_bytes(), &right, &limits) {
        Opens::NotChecked(why) => assert!(
            why.contains("4194303 MiB of Argon2 memory, over keyrotate's limit of 1024 MiB"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed().as_millis() < 500,
        "no Argon2 work was done"
    );
}
