//! `keyrotate check` against real SSH directories built with `ssh-keygen`, every field checked
//! against what `ssh-keygen -l` says about the same file.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn pub_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

#[test]
fn every_type_and_format_matches_ssh_keygen() {
    let (_tmp, ssh) = ssh_dir_copy(Some(fixture_dir()));
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1, "unencrypted and weak keys are in the set");
    assert_eq!(
        doc["keys"].as_array().unwrap().len(),
        all_specs().len(),
        "{doc:#}"
    );
    for spec in all_specs() {
        let path = ssh.join(spec.name);
        let e = entry(&doc, &path);
        let want =
            keygen_l(&path).unwrap_or_else(|| panic!("ssh-keygen -l fails on {}", spec.name));
        let ctx = format!("{}: {e:#}", spec.name);
        assert_eq!(
            e["public_path"],
            pub_path(&path).to_string_lossy().as_ref(),
            "{ctx}"
        );
        assert_eq!(e["format"], spec.expected_format(), "{ctx}");
        assert_eq!(e["algorithm"], want.kind.to_lowercase(), "{ctx}");
        assert_eq!(e["bits"], want.bits, "{ctx}");
        assert_eq!(e["fingerprint"], want.fingerprint.as_str(), "{ctx}");
        assert_eq!(e["comment"], want.comment.as_str(), "{ctx}");
        assert_eq!(e["comment"], spec.comment().as_str(), "{ctx}");
        assert_eq!(e["encrypted"], spec.passphrase.is_some(), "{ctx}");
        let rounds = match (spec.expected_format(), spec.passphrase) {
            ("openssh", Some(_)) => serde_json::json!(spec.rounds.unwrap_or(16)),
            _ => serde_json::Value::Null,
        };
        assert_eq!(e["kdf_rounds"], rounds, "{ctx}");
        assert_eq!(e["mode"], "0600", "{ctx}");
        assert_eq!(e["modified"], rfc3339_mtime(&path).as_str(), "{ctx}");
        assert_eq!(e["age_days"], 0, "{ctx}");
        assert_eq!(codes(e), spec.expected_codes(), "{ctx}");
        for finding in e["findings"].as_array().unwrap() {
            let severity = finding["severity"].as_str().unwrap();
            let expected = match finding["code"].as_str().unwrap() {
                "unencrypted-private-key" | "weak-algorithm" => "critical",
                "weak-key-size" | "weak-kdf" => "warning",
                _ => "info",
            };
            assert_eq!(severity, expected, "{ctx}");
            assert!(finding["message"].as_str().unwrap().len() > 40, "{ctx}");
        }
    }
    let summary = &doc["summary"];
    assert_eq!(summary["keys"], all_specs().len());
    let count = |sev: &str| {
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|k| k["findings"].as_array().unwrap())
            .filter(|f| f["severity"] == sev)
            .count()
    };
    assert_eq!(summary["critical"], count("critical"));
    assert_eq!(summary["warning"], count("warning"));
    assert_eq!(summary["info"], count("info"));
}

#[test]
fn the_private_file_alone_reveals_what_it_can() {
    let (_tmp, ssh) = ssh_dir_copy(Some(fixture_dir()));
    for spec in all_specs() {
        fs::remove_file(pub_path(&ssh.join(spec.name))).unwrap();
    }
    let (doc, _) = check_json(&ssh, &[]);
    for spec in all_specs() {
        let path = ssh.join(spec.name);
        let e = entry(&doc, &path);
        let ctx = format!("{}: {e:#}", spec.name);
        assert_eq!(e["public_path"], serde_json::Value::Null, "{ctx}");
        assert!(
            codes(e).contains(&"missing-public-key".to_string()),
            "{ctx}"
        );
        match keygen_l(&path) {
            // ssh-keygen can read it without a passphrase: so must we, with the same answer.
            Some(want) => {
                assert_eq!(e["fingerprint"], want.fingerprint.as_str(), "{ctx}");
                assert_eq!(e["bits"], want.bits, "{ctx}");
                assert_eq!(e["algorithm"], want.kind.to_lowercase(), "{ctx}");
                let comment = if want.comment == "no comment" {
                    serde_json::Value::Null
                } else {
                    want.comment.as_str().into()
                };
                assert_eq!(e["comment"], comment, "{ctx}");
            }
            // Encrypted PEM/PKCS#8 hide the public half; only the armour speaks.
            None => {
                assert!(spec.passphrase.is_some(), "{ctx}");
                assert_eq!(e["fingerprint"], serde_json::Value::Null, "{ctx}");
                assert_eq!(e["encrypted"], true, "{ctx}");
                let algorithm = match spec.expected_format() {
                    "pem" => serde_json::Value::from(spec.key_type),
                    _ => serde_json::Value::Null,
                };
                assert_eq!(e["algorithm"], algorithm, "{ctx}");
            }
        }
    }
}

#[test]
fn encrypted_openssh_key_without_pub_shows_its_public_half_but_no_comment() {
    // The comment of an encrypted OpenSSH key is inside the ciphertext.
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    let path = generate(&ssh, spec);
    let want = keygen_l(&pub_path(&path)).unwrap();
    fs::remove_file(pub_path(&path)).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    let e = entry(&doc, &path);
    assert_eq!(e["fingerprint"], want.fingerprint.as_str());
    assert_eq!(e["comment"], serde_json::Value::Null);
    assert_eq!(e["kdf_rounds"], 16);
}

#[test]
fn private_keys_readable_by_others_are_critical() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    let path = generate(&ssh, spec);
    for (mode, bad) in [
        (0o644, true),
        (0o640, true),
        (0o604, true),
        (0o660, true),
        (0o600, false),
        (0o400, false),
    ] {
        set_mode(&path, mode);
        let (doc, code) = check_json(&ssh, &[]);
        let e = entry(&doc, &path);
        assert_eq!(e["mode"], format!("{mode:04o}"));
        assert_eq!(
            codes(e).contains(&"insecure-permissions".to_string()),
            bad,
            "mode {mode:o}"
        );
        assert_eq!(code, i32::from(bad), "mode {mode:o}");
        if bad {
            let msg = e["findings"][0]["message"].as_str().unwrap();
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
        }
    }
    // A world-readable .pub is normal.
    set_mode(&pub_path(&path), 0o644);
    assert_eq!(check_json(&ssh, &[]).1, 0);
}

#[test]
fn ssh_dir_writable_by_others_is_a_warning() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    generate(&ssh, spec);
    for (mode, bad) in [
        (0o777, true),
        (0o775, true),
        (0o757, true),
        (0o755, false),
        (0o700, false),
    ] {
        set_mode(&ssh, mode);
        let (doc, code) = check_json(&ssh, &[]);
        assert_eq!(
            codes(&doc).contains(&"insecure-ssh-dir".to_string()),
            bad,
            "mode {mode:o}"
        );
        assert_eq!(code, i32::from(bad), "mode {mode:o}");
        if bad {
            assert_eq!(doc["findings"][0]["severity"], "warning");
        }
    }
}

#[test]
fn a_pub_that_is_not_the_private_keys_half_is_critical() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let a = generate(&ssh, spec("id_ed25519_openssh_enc"));
    let b = generate(&ssh, spec("id_ecdsa256_openssh_enc"));
    let rsa_pem = generate(&ssh, spec("id_rsa3072_pem_enc"));
    let fp_a = keygen_l(&pub_path(&a)).unwrap().fingerprint;
    let fp_b = keygen_l(&pub_path(&b)).unwrap().fingerprint;
    fs::copy(pub_path(&b), pub_path(&a)).unwrap();
    // An encrypted RSA PEM key with an ECDSA .pub: the armour alone proves the mismatch.
    fs::copy(pub_path(&b), pub_path(&rsa_pem)).unwrap();
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1);
    let e = entry(&doc, &a);
    assert_eq!(codes(e), ["public-key-mismatch"]);
    let msg = e["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains(&fp_a) && msg.contains(&fp_b), "{msg}");
    assert_eq!(
        e["fingerprint"],
        fp_a.as_str(),
        "the entry's fingerprint is the private key's"
    );
    let e = entry(&doc, &rsa_pem);
    assert!(
        codes(e).contains(&"public-key-mismatch".to_string()),
        "{e:#}"
    );
    assert_eq!(e["algorithm"], "rsa");
}

#[test]
fn old_keys_are_reported_with_their_age() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    let path = generate(&ssh, spec);
    set_mtime(&path, days_ago(400));
    let (doc, code) = check_json(&ssh, &[]);
    let e = entry(&doc, &path);
    assert_eq!(e["age_days"], 400);
    assert_eq!(e["modified"], rfc3339_mtime(&path).as_str());
    assert_eq!(codes(e), ["old-key"]);
    assert_eq!(e["findings"][0]["severity"], "warning");
    assert_eq!(code, 1);
    let (doc, code) = check_json(&ssh, &["--max-age", "500"]);
    assert!(codes(entry(&doc, &path)).is_empty());
    assert_eq!(code, 0);
    let (doc, _) = check_json(&ssh, &["--max-age", "399"]);
    assert_eq!(codes(entry(&doc, &path)), ["old-key"]);
    // A file from before 1970 or far in the future must not upset anything.
    set_mtime(
        &path,
        std::time::UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 30),
    );
    let (doc, _) = check_json(&ssh, &[]);
    assert!(
        entry(&doc, &path)["modified"]
            .as_str()
            .unwrap()
            .starts_with("1940-")
    );
    set_mtime(
        &path,
        std::time::SystemTime::now() + Duration::from_secs(86_400 * 365 * 5000),
    );
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(entry(&doc, &path)["age_days"], 0);
}

#[test]
fn the_same_key_in_two_files_is_reported_on_both() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    let path = generate(&ssh, spec);
    let copy = ssh.join("id_copy");
    fs::copy(&path, &copy).unwrap();
    fs::copy(pub_path(&path), pub_path(&copy)).unwrap();
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 0, "duplicate-key is info");
    for (p, other) in [(&path, &copy), (&copy, &path)] {
        let e = entry(&doc, p);
        assert_eq!(codes(e), ["duplicate-key"]);
        let msg = e["findings"][0]["message"].as_str().unwrap();
        assert!(msg.contains(&other.display().to_string()), "{msg}");
    }
}

#[test]
fn damaged_keys_of_every_format_are_unreadable_keys() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut damaged = Vec::new();
    for spec in all_specs().iter().filter(|s| s.rounds.is_none()) {
        let src = fixture_dir().join(spec.name);
        let bytes = fs::read(&src).unwrap();
        // Cut in the middle of the base64 body, and just before the END line.
        let end_line = bytes.windows(9).rposition(|w| w == b"-----END ").unwrap();
        for (tag, cut) in [("half", bytes.len() / 2), ("noend", end_line)] {
            let path = ssh.join(format!("{}_{tag}", spec.name));
            fs::write(&path, &bytes[..cut]).unwrap();
            set_mode(&path, 0o600);
            damaged.push((path, spec));
        }
    }
    let junk = ssh.join("id_junk");
    fs::write(
        &junk,
        (0..3000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(ssh.join("not_a_key.bin"), [0u8, 159, 146, 150, 255]).unwrap();
    fs::write(ssh.join("notes.txt"), "my keys are for JASMIN\n").unwrap();
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1);
    for (path, spec) in &damaged {
        let e = entry(&doc, path);
        assert!(
            codes(e).contains(&"unreadable-key".to_string()),
            "{}: {e:#}",
            path.display()
        );
        assert_eq!(e["format"], spec.expected_format(), "{}", path.display());
        assert_eq!(e["fingerprint"], serde_json::Value::Null);
    }
    let e = entry(&doc, &junk);
    assert_eq!(codes(e), ["unreadable-key"]);
    assert_eq!(e["format"], "unknown");
    assert_eq!(
        doc["keys"].as_array().unwrap().len(),
        damaged.len() + 1,
        "files that are not named or armoured as keys are not keys"
    );
}

#[test]
fn a_damaged_pub_is_reported_and_the_private_key_still_described() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ecdsa521_openssh_enc");
    let path = generate(&ssh, spec);
    let want = keygen_l(&path).unwrap();
    let text = fs::read_to_string(pub_path(&path)).unwrap();
    fs::write(pub_path(&path), &text[..text.len() / 2]).unwrap();
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1);
    let e = entry(&doc, &path);
    assert_eq!(codes(e), ["unreadable-key"]);
    assert_eq!(e["fingerprint"], want.fingerprint.as_str());
    let msg = e["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains("ssh-keygen -y -f"), "{msg}");
}

#[test]
fn hostile_directory_contents_never_hang_or_crash() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    let good = generate(&ssh, spec);
    let mkfifo = |name: &str| run_ok(Command::new("mkfifo").arg(ssh.join(name)));
    mkfifo("id_fifo");
    mkfifo("plain_fifo");
    let _control_socket =
        std::os::unix::net::UnixListener::bind(ssh.join("cm-user@host:22")).unwrap();
    let _key_socket = std::os::unix::net::UnixListener::bind(ssh.join("id_socket")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", ssh.join("id_zero")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", ssh.join("random.pub")).unwrap();
    std::os::unix::fs::symlink(ssh.join("nowhere"), ssh.join("id_dangling")).unwrap();
    std::os::unix::fs::symlink(ssh.join("id_loop_b"), ssh.join("id_loop_a")).unwrap();
    std::os::unix::fs::symlink(ssh.join("id_loop_a"), ssh.join("id_loop_b")).unwrap();
    let sparse = fs::File::create(ssh.join("id_sparse")).unwrap();
    sparse.set_len(10 << 30).unwrap();
    let big = fs::File::create(ssh.join("big.log")).unwrap();
    big.set_len((1 << 20) + 1).unwrap();
    let exact = ssh.join("id_exactly_1mib");
    fs::write(&exact, vec![b'A'; 1 << 20]).unwrap();
    let raw_name = std::ffi::OsStr::from_bytes(b"id_\xff\x1b[2Jbad");
    fs::write(ssh.join(raw_name), b"\x1b[2J not a key").unwrap();
    fs::create_dir(ssh.join("id_is_a_directory")).unwrap();
    fs::create_dir(ssh.join("key_backup")).unwrap();
    fs::copy(&good, ssh.join("key_backup").join("id_in_subdir")).unwrap();

    let started = std::time::Instant::now();
    let (doc, code) = check_json(&ssh, &[]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(code, 1);
    let unreadable = [
        "id_fifo",
        "plain_fifo",
        "id_socket",
        "id_zero",
        "random.pub",
        "id_dangling",
        "id_loop_a",
        "id_loop_b",
        "id_sparse",
        "big.log",
        "id_exactly_1mib",
    ];
    for name in unreadable {
        let e = entry(&doc, &ssh.join(name));
        assert_eq!(codes(e), ["unreadable-key"], "{name}: {e:#}");
        assert_eq!(e["format"], "unknown", "{name}");
    }
    let weird = entry(&doc, &ssh.join(raw_name));
    assert_eq!(codes(weird), ["unreadable-key"]);
    assert_eq!(codes(entry(&doc, &good)), Vec::<String>::new());
    // The ControlMaster socket, the directories and the backup are not keys.
    assert_eq!(
        doc["keys"].as_array().unwrap().len(),
        unreadable.len() + 2,
        "{doc:#}"
    );

    // The text report escapes the terminal control sequence in the file name.
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !out.stdout.contains(&0x1b),
        "raw escape reached the terminal"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("named pipe"), "{text}");
    assert!(text.contains("10.0 GiB"), "{text}");
}

#[test]
fn a_file_the_user_cannot_read_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let ssh = tmp.path().join("ssh");
    fs::create_dir(&ssh).unwrap();
    let spec = spec("id_ed25519_openssh_enc");
    let path = generate(&ssh, spec);
    set_mode(&path, 0o000);
    let out = if is_root() {
        // Root reads everything: run as nobody, from a copy of the binary nobody can execute.
        set_mode(tmp.path(), 0o755);
        set_mode(&ssh, 0o755);
        let exe = tmp.path().join("keyrotate");
        fs::copy(bin(), &exe).unwrap();
        set_mode(&exe, 0o755);
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .arg("--ssh-dir")
            .arg(&ssh)
            .args(["check", "--json"])
            .output()
            .expect("setpriv runs")
    } else {
        Command::new(bin())
            .arg("--ssh-dir")
            .arg(&ssh)
            .args(["check", "--json"])
            .output()
            .unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = entry(&doc, &path);
    // The .pub is still readable, so the pair is still identified.
    assert!(codes(e).contains(&"unreadable-key".to_string()), "{e:#}");
    let msg = e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "unreadable-key")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("permission denied"), "{msg}");
    assert_eq!(
        e["fingerprint"],
        keygen_l(&pub_path(&path)).unwrap().fingerprint.as_str()
    );
}

#[test]
fn no_ssh_directory_is_no_keys_and_success() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let (doc, code) = check_json(&missing, &[]);
    assert_eq!(code, 0);
    assert_eq!(codes(&doc), ["no-keys"]);
    assert_eq!(doc["findings"][0]["severity"], "info");
    assert_eq!(doc["keys"], serde_json::json!([]));
    assert_eq!(
        doc["summary"],
        serde_json::json!({"keys": 0, "critical": 0, "warning": 0, "info": 1})
    );
    assert!(!missing.exists(), "check must not create the directory");

    let (_tmp, empty) = ssh_dir_copy(None);
    let (doc, code) = check_json(&empty, &[]);
    assert_eq!((code, codes(&doc)), (0, vec!["no-keys".to_string()]));
}

#[test]
fn an_ssh_dir_that_is_a_file_is_an_error_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let out = keyrotate(&file).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("keyrotate: {} is not a directory", file.display())),
        "{err}"
    );
    assert!(err.lines().nth(1).unwrap().starts_with("hint: "), "{err}");
}

#[test]
fn healthy_directory_exits_0_and_quiet_prints_nothing() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ecdsa521_openssh_enc");
    generate(&ssh, spec);
    let out = keyrotate(&ssh).args(["check", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 key in"), "{text}");
    assert!(text.contains("healthy"), "{text}");
    assert!(text.contains("SHA256:"), "{text}");
}

#[test]
fn quiet_prints_one_line_per_problem_and_skips_info() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_rsa2048_pem");
    let path = generate(&ssh, spec);
    set_mode(&path, 0o644);
    let out = keyrotate(&ssh).args(["-q", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // insecure-permissions, unencrypted-private-key, weak-key-size; not legacy-format (info).
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines {
        assert!(line.starts_with(&format!("{}: ", path.display())), "{line}");
    }
    assert!(!text.contains("legacy-format"));
}

#[test]
fn json_has_exactly_the_contract_fields() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh");
    generate(&ssh, spec);
    let out = keyrotate(&ssh)
        .args(["check", "--json", "--color", "always"])
        .output()
        .unwrap();
    assert!(out.stderr.is_empty());
    assert!(!out.stdout.contains(&0x1b), "no colour inside JSON");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys_of = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys_of(&doc), ["findings", "keys", "ssh_dir", "summary"]);
    assert_eq!(doc["ssh_dir"], ssh.to_string_lossy().as_ref());
    assert_eq!(
        keys_of(&doc["summary"]),
        ["critical", "info", "keys", "warning"]
    );
    let e = &doc["keys"][0];
    assert_eq!(
        keys_of(e),
        [
            "age_days",
            "algorithm",
            "bits",
            "certificates",
            "comment",
            "encrypted",
            "findings",
            "fingerprint",
            "format",
            "kdf_rounds",
            "mode",
            "modified",
            "path",
            "public_path",
        ]
    );
    assert_eq!(keys_of(&e["findings"][0]), ["code", "message", "severity"]);
}

#[test]
fn public_keys_alone_and_rfc4716_are_entries_of_their_own() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_rsa3072_openssh_enc");
    let key = generate(&ssh, spec);
    let want = keygen_l(&pub_path(&key)).unwrap();
    let exported = run_ok(
        Command::new("ssh-keygen")
            .arg("-e")
            .arg("-f")
            .arg(pub_path(&key)),
    );
    let rfc = ssh.join("colleague_rfc4716.pub");
    fs::write(&rfc, &exported.stdout).unwrap();
    let lone = ssh.join("colleague.pub");
    fs::copy(pub_path(&key), &lone).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    for path in [&rfc, &lone] {
        let e = entry(&doc, path);
        assert_eq!(e["format"], "public", "{e:#}");
        assert_eq!(e["public_path"], serde_json::Value::Null);
        assert_eq!(e["fingerprint"], want.fingerprint.as_str());
        assert_eq!(e["bits"], 3072);
        assert_eq!(e["encrypted"], serde_json::Value::Null);
    }
    // ssh-keygen -l reads only the one-line form.
    assert_eq!(keygen_l(&lone).unwrap().fingerprint, want.fingerprint);
}

#[test]
fn certificates_and_ssh_config_files_are_not_keys() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let ca = generate(&ssh, spec("id_ed25519_openssh"));
    fs::rename(&ca, ssh.join("ca")).unwrap();
    fs::rename(pub_path(&ca), ssh.join("ca.pub")).unwrap();
    let key = generate(&ssh, spec("id_ed25519_openssh_enc"));
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(ssh.join("ca"))
            .args(["-I", "test", "-n", "user"])
            .arg(pub_path(&key)),
    );
    assert!(ssh.join("id_ed25519_openssh_enc-cert.pub").exists());
    let pubkey = fs::read_to_string(pub_path(&key)).unwrap();
    fs::write(ssh.join("authorized_keys"), &pubkey).unwrap();
    fs::write(ssh.join("known_hosts"), format!("host.example {pubkey}")).unwrap();
    fs::write(ssh.join("config"), "Host *\n  IdentityFile ~/.ssh/id_rsa\n").unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    let paths: Vec<&str> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| p.ends_with("/ca") || p.ends_with("/id_ed25519_openssh_enc"))
    );
}

#[test]
fn a_symlinked_key_is_checked_through_its_link() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let elsewhere = tempfile::tempdir().unwrap();
    let spec = spec("id_ed25519_openssh_enc");
    let real = generate(elsewhere.path(), spec);
    set_mode(&real, 0o644);
    let link = ssh.join("id_linked");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    std::os::unix::fs::symlink(pub_path(&real), pub_path(&link)).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    let e = entry(&doc, &link);
    assert_eq!(
        e["fingerprint"],
        keygen_l(&real).unwrap().fingerprint.as_str()
    );
    assert_eq!(
        e["mode"], "0644",
        "the mode is the target's, which is what OpenSSH checks"
    );
    assert_eq!(codes(e), ["insecure-permissions"]);
}

#[test]
fn key_comments_are_escaped_on_a_terminal() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh_enc");
    let key = generate(&ssh, spec);
    let line = fs::read_to_string(pub_path(&key)).unwrap();
    let mut parts = line.split_whitespace();
    let evil = format!(
        "{} {} evil\x1b]0;owned\x07\x1b[2J\n",
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    fs::write(pub_path(&key), evil).unwrap();
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07));
    assert!(String::from_utf8_lossy(&out.stdout).contains("evil\\u{1b}"));
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(entry(&doc, &key)["comment"], "evil\x1b]0;owned\x07\x1b[2J");
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh");
    generate(&ssh, spec);
    let run = |args: &[&str], no_color: bool| {
        let mut cmd = keyrotate(&ssh);
        if !no_color {
            cmd.env_remove("NO_COLOR");
        }
        cmd.arg("check").args(args).output().unwrap().stdout
    };
    assert!(run(&["--color", "always"], false).contains(&0x1b));
    assert!(!run(&["--color", "never"], false).contains(&0x1b));
    // Not a terminal, and NO_COLOR: plain either way.
    assert!(!run(&[], false).contains(&0x1b));
    assert!(!run(&[], true).contains(&0x1b));
}

#[test]
fn global_options_go_before_or_after_the_subcommand_and_env_works() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let spec = spec("id_ed25519_openssh");
    generate(&ssh, spec);
    let before = Command::new(bin())
        .arg("--json")
        .arg("--ssh-dir")
        .arg(&ssh)
        .arg("check")
        .output()
        .unwrap();
    let after = Command::new(bin())
        .arg("check")
        .arg("--ssh-dir")
        .arg(&ssh)
        .arg("--json")
        .output()
        .unwrap();
    let env = Command::new(bin())
        .env("KEYROTATE_SSH_DIR", &ssh)
        .args(["check", "--json"])
        .output()
        .unwrap();
    let dir_of = |out: &std::process::Output| {
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["ssh_dir"].clone()
    };
    for out in [&before, &after, &env] {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(dir_of(out), ssh.to_string_lossy().as_ref());
    }
}

#[test]
fn relative_ssh_dir_is_reported_as_absolute() {
    let (tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh"));
    let out = Command::new(bin())
        .current_dir(tmp.path())
        .args(["--ssh-dir", ".ssh", "check", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ssh_dir"], ssh.to_string_lossy().as_ref());
    assert_eq!(
        doc["keys"][0]["path"],
        ssh.join("id_ed25519_openssh").to_string_lossy().as_ref()
    );
}

#[test]
fn default_ssh_dir_is_home_dot_ssh() {
    let (tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh"));
    let out = Command::new(bin())
        .env("HOME", tmp.path())
        .env_remove("KEYROTATE_SSH_DIR")
        .args(["check", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ssh_dir"], ssh.to_string_lossy().as_ref());
}

#[test]
fn p521_key_with_a_short_scalar_is_read_like_ssh_keygen_reads_it() {
    // Regression: ssh-key 0.6.7 refuses about one P-521 key in four (see keyfile/openssh_fallback.rs).
    let (_tmp, ssh) = ssh_dir_copy(None);
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecdsa521_short_scalar");
    let path = ssh.join("id_ecdsa_jasmin");
    fs::copy(&fixture, &path).unwrap();
    set_mode(&path, 0o600);
    let want = keygen_l(&path).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    let e = entry(&doc, &path);
    assert_eq!(e["fingerprint"], want.fingerprint.as_str());
    assert_eq!(e["bits"], 521);
    assert_eq!(e["comment"], want.comment.as_str());
    assert_eq!(codes(e), ["missing-public-key", "unencrypted-private-key"]);
}

/// With `SSH_AUTH_SOCK` set, check lists what the agent holds (here: nothing, then one key that
/// is also a file in the SSH directory); an agent that cannot be reached is reported in the
/// document and does not change the verdict.
#[test]
fn check_lists_the_agents_keys_and_survives_a_dead_agent() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = generate(&ssh, spec("id_ed25519_openssh_enc"));
    let agent = crate::common::openssh::Agent::start();
    let run = |socket: &Path| {
        let out = keyrotate(&ssh)
            .env("SSH_AUTH_SOCK", socket)
            .args(["check", "--json"])
            .output()
            .unwrap();
        (out.status.code(), json_ok_or_one(&out))
    };
    let (code, doc) = run(&agent.socket);
    assert_eq!(doc["agent"]["keys"], serde_json::json!([]));
    assert_eq!(doc["agent"]["error"], serde_json::Value::Null);
    let add = crate::common::openssh::Agent::add(
        &agent,
        &key,
        &crate::common::openssh::askpass(tmp.path(), PASSPHRASE),
    );
    assert!(add.status.success());
    let (code_loaded, doc) = run(&agent.socket);
    assert_eq!(code_loaded, code);
    let listed = &doc["agent"]["keys"][0];
    assert_eq!(listed["fingerprint"], *keygen_l(&key).unwrap().fingerprint);
    assert_eq!(listed["path"], *key.to_string_lossy());
    assert_eq!(listed["retired"], false);
    assert_eq!(listed["algorithm"], "ed25519");

    let (code_dead, doc) = run(&tmp.path().join("no-such-agent.sock"));
    assert_eq!(code_dead, code);
    assert_eq!(doc["agent"]["keys"], serde_json::Value::Null);
    assert!(
        doc["agent"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach ssh-agent")
    );
}

fn json_ok_or_one(out: &std::process::Output) -> serde_json::Value {
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}
