//! The passphrase rules of issue 14, for files and standard input (the terminal's are in
//! `terminal.rs`): names of the key, user and host refused; a file's first line without its line
//! ending or byte order mark, whitespace around it refused; a passphrase that differs from an old
//! one only by surrounding whitespace counted as the same; the service's last five retired keys
//! checked as well as the live one; the most bcrypt rounds `generate` accepts checked by `rotate`.
// These tests drive OpenSSH and POSIX permissions: Unix only.
#![cfg(unix)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// Every file under `dir` with its bytes, but the lock file (which any writing command takes).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = file_contents(dir);
    files.retain(|(p, _)| !p.ends_with(".keyrotate.lock"));
    files
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `keyrotate ARGS... --passphrase-file FILE`, with `stdin` piped in when given.
fn run(ssh: &Path, args: &[&str], file: &Path, stdin: Option<&[u8]>) -> Output {
    let mut cmd = keyrotate(ssh);
    cmd.args(args).arg("--passphrase-file").arg(file);
    cmd.timeout(std::time::Duration::from_secs(300));
    if let Some(bytes) = stdin {
        cmd.write_stdin(bytes.to_vec());
    }
    cmd.output().unwrap()
}

/// A file `dir/name` holding exactly `bytes`.
fn raw_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    path
}

/// Exit 2 with `reason` on stderr and a hint, the passphrase itself nowhere in the output.
fn assert_refused(out: &Output, reason: &str, secret: &str, label: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{label}: {err}");
    assert!(err.contains(reason), "{label}: {err}");
    assert!(err.contains("hint:"), "{label}: {err}");
    let secret = secret.trim();
    assert!(
        !err.contains(secret),
        "{label}: the passphrase was shown: {err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(secret),
        "{label}"
    );
}

/// The user name whoami reports (`id -un`).
fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn host_name() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_passphrase_holding_the_key_comment_or_user_name_is_refused_by_generate_and_rotate() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = ssh.join("id_ed25519_jasmin");
    let user = user_name();
    assert!(
        user.len() >= 3,
        "the test needs a user name of 3 or more characters"
    );
    let mut cases = vec![
        (
            "comment",
            "plinth Fourth Floor Lab gusty oboe".to_string(),
            "the key's comment",
        ),
        (
            "user",
            format!("plinth {} gusty oboe marrow", user.to_uppercase()),
            "your user name",
        ),
    ];
    let host = host_name();
    if host.chars().count() >= 3 && !host.to_lowercase().contains(&user.to_lowercase()) {
        cases.push((
            "host",
            format!("plinth {host} gusty oboe marrow"),
            "this computer's host name",
        ));
    }
    for (label, passphrase, reason) in &cases {
        let file = pass_file(tmp.path(), label, passphrase);
        let args = [
            "generate",
            "-t",
            "ed25519",
            "-C",
            "fourth floor lab",
            "--service",
            "jasmin",
        ];
        let out = run(&ssh, &args, &file, None);
        assert_refused(&out, reason, passphrase, label);
        assert!(!key.exists(), "{label}");
    }
    // The same for rotate; nothing changes.
    let old = keygen(&key, "ed25519", &[]);
    let before = tree(&ssh);
    for (label, passphrase, reason) in &cases {
        let file = pass_file(tmp.path(), label, passphrase);
        let args = [
            "rotate",
            "-t",
            "ed25519",
            "-C",
            "Fourth floor lab",
            "--no-agent",
        ];
        let out = run(&ssh, &args, &file, None);
        assert_refused(&out, reason, passphrase, label);
        assert_eq!(
            tree(&ssh),
            before,
            "{label}: a refused rotation changed something"
        );
    }
    // A comment of two characters refuses nothing; the key is made and opens.
    let file = pass_file(tmp.path(), "ok", "plinth ab gusty oboe marrow");
    let out = run(
        &ssh,
        &[
            "rotate",
            "-t",
            "ed25519",
            "-C",
            "ab",
            "--no-agent",
            "--json",
        ],
        &file,
        None,
    );
    json_ok(&out);
    assert!(opens_as(&old, "plinth ab gusty oboe marrow").is_some());
}

#[test]
fn a_passphrase_file_is_its_first_line_without_line_ending_or_byte_order_mark() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let cases: &[(&str, &[u8])] = &[
        ("lf", b"a brand new passphrase of mine\nsecond line\n"),
        ("crlf", b"a brand new passphrase of mine\r\nsecond line\r\n"),
        ("no-newline", b"a brand new passphrase of mine"),
        (
            "bom-crlf",
            b"\xEF\xBB\xBFa brand new passphrase of mine\r\n",
        ),
    ];
    for (i, (label, bytes)) in cases.iter().enumerate() {
        for stdin in [false, true] {
            let key = ssh.join(format!("id_ed25519_k{i}{stdin}"));
            let file = match stdin {
                true => PathBuf::from("-"),
                false => raw_file(tmp.path(), label, bytes),
            };
            let args = ["generate", "-t", "ed25519", "-f", key.to_str().unwrap()];
            let out = run(&ssh, &args, &file, stdin.then_some(*bytes));
            assert_eq!(
                out.status.code(),
                Some(0),
                "{label} {stdin}: {}",
                stderr(&out)
            );
            assert!(opens_as(&key, NEW).is_some(), "{label} {stdin}");
        }
    }
    // A second \r is not part of the line ending: refused (it is whitespace), never dropped.
    let file = raw_file(tmp.path(), "cr-cr", b"a brand new passphrase of mine\r\r\n");
    let key = ssh.join("id_ed25519_crcr");
    let out = run(
        &ssh,
        &["generate", "-t", "ed25519", "-f", key.to_str().unwrap()],
        &file,
        None,
    );
    assert_refused(&out, "ends with whitespace", NEW, "cr-cr");
}

#[test]
fn whitespace_around_a_passphrase_from_a_file_or_stdin_is_refused_naming_the_source() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let cases: &[(&str, String, &str)] = &[
        (
            "leading-space",
            format!(" {NEW}\n"),
            "starts with whitespace",
        ),
        (
            "trailing-space",
            format!("{NEW} \n"),
            "ends with whitespace",
        ),
        (
            "trailing-space-crlf",
            format!("{NEW} \r\n"),
            "ends with whitespace",
        ),
        ("trailing-tab", format!("{NEW}\t\n"), "ends with whitespace"),
        (
            "leading-tab",
            format!("\t{NEW}\n"),
            "starts with whitespace",
        ),
        ("nbsp", format!("{NEW}\u{a0}\n"), "ends with whitespace"),
        (
            "ideographic",
            format!("\u{3000}{NEW}\n"),
            "starts with whitespace",
        ),
        (
            "both",
            format!("  {NEW}  \n"),
            "starts and ends with whitespace",
        ),
        (
            "bom-space",
            format!("\u{feff} {NEW}\n"),
            "starts with whitespace",
        ),
    ];
    let key = ssh.join("id_ed25519_jasmin");
    for (label, text, reason) in cases {
        let file = raw_file(tmp.path(), label, text.as_bytes());
        let out = run(&ssh, &["generate", "-t", "ed25519"], &file, None);
        assert_refused(&out, reason, NEW, label);
        let err = stderr(&out);
        assert!(err.contains(file.to_str().unwrap()), "{label}: {err}");
        assert!(err.contains("ssh-keygen"), "{label}: {err}");
        assert!(err.contains("remove the spaces"), "{label}: {err}");
        assert!(!key.exists(), "{label}");
        let dash = Path::new("-");
        let out = run(
            &ssh,
            &["generate", "-t", "ed25519"],
            dash,
            Some(text.as_bytes()),
        );
        assert_refused(&out, reason, NEW, label);
        assert!(stderr(&out).contains("standard input"), "{label}");
        assert!(!key.exists(), "{label}");
    }
    // rotate applies the same rule, changing nothing.
    keygen(&key, "ed25519", &[]);
    let before = tree(&ssh);
    let file = pass_file(tmp.path(), "rotate", &format!("{NEW} "));
    let out = run(
        &ssh,
        &["rotate", "-t", "ed25519", "--no-agent"],
        &file,
        None,
    );
    assert_refused(&out, "ends with whitespace", NEW, "rotate");
    assert_eq!(tree(&ssh), before);
}

#[test]
fn a_new_passphrase_differing_from_the_old_only_by_surrounding_whitespace_is_refused() {
    // The documented set: one or two trailing spaces, one leading space, a trailing tab.
    for (label, old_passphrase) in [
        ("one trailing space", format!("{NEW} ")),
        ("two trailing spaces", format!("{NEW}  ")),
        ("one leading space", format!(" {NEW}")),
        ("trailing tab", format!("{NEW}\t")),
    ] {
        let (tmp, ssh) = ssh_dir_copy(None);
        let old = ssh.join("id_ed25519_jasmin");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", &old_passphrase, "-f"])
                .arg(&old),
        );
        assert!(opens_as(&old, &old_passphrase).is_some(), "{label}");
        assert!(opens_as(&old, NEW).is_none(), "{label}");
        let before = tree(&ssh);
        let file = pass_file(tmp.path(), "new", NEW);
        let out = run(
            &ssh,
            &["rotate", "-t", "ed25519", "--no-agent"],
            &file,
            None,
        );
        assert_refused(&out, "opens your old key", NEW, label);
        assert_eq!(tree(&ssh), before, "{label}");
    }
    // Outside the set (three trailing spaces) it is a different passphrase.
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = ssh.join("id_ed25519_jasmin");
    let three = format!("{NEW}   ");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", &three, "-f"])
            .arg(&old),
    );
    let file = pass_file(tmp.path(), "new", NEW);
    let out = run(
        &ssh,
        &["rotate", "-t", "ed25519", "--no-agent", "--json"],
        &file,
        None,
    );
    assert_eq!(json_ok(&out)["passphrase_check"], "different");
    assert!(opens_as(&old, NEW).is_some());
}

/// `rotate -t ed25519 --json` of the jasmin key with `passphrase`; its JSON (exit 0 required).
fn rotate_with(ssh: &Path, tmp: &Path, passphrase: &str) -> serde_json::Value {
    let file = pass_file(tmp, "p", passphrase);
    let out = run(
        ssh,
        &["rotate", "-t", "ed25519", "--no-agent", "--json"],
        &file,
        None,
    );
    json_ok(&out)
}

fn sets(ssh: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(ssh.join("key_backup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "RETIRED")
        .collect();
    names.sort();
    names
}

#[test]
fn rotate_refuses_the_passphrase_of_any_of_the_services_last_five_retired_keys() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = ssh.join("id_ed25519_jasmin");
    keygen(&key, "ed25519", &[]);
    let p = |i: usize| format!("plinth gusty oboe marrow {i}");
    let fp0 = keygen_l(&key).unwrap().fingerprint;
    rotate_with(&ssh, tmp.path(), &p(1));
    let fp1 = keygen_l(&key).unwrap().fingerprint;
    rotate_with(&ssh, tmp.path(), &p(2));
    assert!(opens_as(&key, &p(2)).is_some());

    // P1 again: its key is retired, and the refusal names it and when; nothing changes.
    let before = tree(&ssh);
    let sets_before = sets(&ssh);
    let record = fs::read_to_string(ssh.join("key_backup/RETIRED")).unwrap();
    let line = record.lines().find(|l| l.starts_with(&fp1)).unwrap();
    let retired_at = line.split('\t').nth(1).unwrap();
    for (label, passphrase, fp) in [("P1", p(1), &fp1), ("P0", PASSPHRASE.to_string(), &fp0)] {
        let file = pass_file(tmp.path(), "again", &passphrase);
        let out = run(
            &ssh,
            &["rotate", "-t", "ed25519", "--no-agent"],
            &file,
            None,
        );
        assert_refused(&out, "opens your retired key", &passphrase, label);
        let err = stderr(&out);
        assert!(err.contains(key.to_str().unwrap()), "{err}");
        assert!(err.contains(fp.as_str()), "{label}: {err}");
        if label == "P1" {
            assert!(err.contains(retired_at), "{err}");
        }
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(
            tree(&ssh),
            before,
            "{label}: a refused rotation changed something"
        );
        assert_eq!(sets(&ssh), sets_before, "{label}");
        assert!(opens_as(&key, &p(2)).is_some());
    }
    // Four more rotations: the first key (P0) is now the sixth most recently retired, and no
    // longer checked; P1's key, the fifth, still is.
    for i in 3..=6 {
        let doc = rotate_with(&ssh, tmp.path(), &p(i));
        assert_eq!(doc["passphrase_check"], "different", "{i}");
    }
    let file = pass_file(tmp.path(), "again", &p(1));
    let out = run(
        &ssh,
        &["rotate", "-t", "ed25519", "--no-agent"],
        &file,
        None,
    );
    assert_refused(&out, "opens your retired key", &p(1), "P1 after six");
    let doc = rotate_with(&ssh, tmp.path(), PASSPHRASE);
    assert_eq!(doc["passphrase_check"], "different");
    assert!(opens_as(&key, PASSPHRASE).is_some());
}

#[test]
fn a_missing_or_damaged_copy_of_a_retired_key_is_named_never_skipped() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = ssh.join("id_ed25519_jasmin");
    keygen(&key, "ed25519", &[]);
    let first = rotate_with(&ssh, tmp.path(), "plinth gusty oboe marrow 1");
    let first_set = PathBuf::from(first["backup_dir"].as_str().unwrap());
    let second = rotate_with(&ssh, tmp.path(), "plinth gusty oboe marrow 2");
    let second_set = PathBuf::from(second["backup_dir"].as_str().unwrap());
    // The first retired key's copy is deleted, the second's is changed.
    fs::remove_file(first_set.join("id_ed25519_jasmin")).unwrap();
    let copy = second_set.join("id_ed25519_jasmin");
    let mut bytes = fs::read(&copy).unwrap();
    bytes.extend_from_slice(b"\n");
    fs::write(&copy, bytes).unwrap();

    let file = pass_file(tmp.path(), "p3", "plinth gusty oboe marrow 3");
    let out = run(
        &ssh,
        &["rotate", "-t", "ed25519", "--no-agent", "--json"],
        &file,
        None,
    );
    let doc = json_ok(&out);
    let check = doc["passphrase_check"].as_str().unwrap();
    assert!(check.starts_with("not-checked: "), "{check}");
    let missing = format!(
        "{} is missing",
        first_set.join("id_ed25519_jasmin").display()
    );
    assert!(check.contains(&missing), "{check}");
    let damaged = format!("{} is damaged", copy.display());
    assert!(check.contains(&damaged), "{check}");
    let err = stderr(&out);
    assert!(
        err.contains("could not check") && err.contains(&missing),
        "{err}"
    );
}

#[test]
fn the_most_bcrypt_rounds_generate_accepts_are_checked_by_rotate() {
    // 1000 = generate::MAX_ROUNDS: the one value that takes a few seconds to try.
    let (tmp, ssh) = ssh_dir_copy(None);
    let file = pass_file(tmp.path(), "new", NEW);
    let out = run(
        &ssh,
        &["generate", "-t", "ed25519", "-a", "1000", "--json"],
        &file,
        None,
    );
    json_ok(&out);
    let key = ssh.join("id_ed25519_jasmin");
    let (check, _) = check_json(&ssh, &[]);
    assert_eq!(entry(&check, &key)["kdf_rounds"], 1000);
    let before = tree(&ssh);
    let out = run(
        &ssh,
        &["rotate", "-t", "ed25519", "--no-agent"],
        &file,
        None,
    );
    assert_refused(&out, "opens your old key", NEW, "1000 rounds");
    assert!(!stderr(&out).contains("not checked"), "{}", stderr(&out));
    assert_eq!(tree(&ssh), before);
}

#[test]
fn with_f_the_retired_keys_checked_are_those_retired_from_that_path() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let p = |i: usize| format!("plinth gusty oboe marrow {i}");
    // A jasmin key, retired once (its passphrase: PASSPHRASE).
    keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    rotate_with(&ssh, tmp.path(), &p(1));
    // A key of its own name, rotated twice with -f.
    let lab = ssh.join("lab_key");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", &p(7), "-f"])
            .arg(&lab),
    );
    let rotate_f = |passphrase: &str| {
        let file = pass_file(tmp.path(), "f", passphrase);
        let args = [
            "rotate",
            "-t",
            "ed25519",
            "-f",
            lab.to_str().unwrap(),
            "--no-agent",
            "--json",
        ];
        run(&ssh, &args, &file, None)
    };
    assert_eq!(json_ok(&rotate_f(&p(8)))["passphrase_check"], "different");
    assert_eq!(json_ok(&rotate_f(&p(9)))["passphrase_check"], "different");
    let before = tree(&ssh);
    let out = rotate_f(&p(7));
    assert_refused(&out, "opens your retired key", &p(7), "-f P7");
    assert!(
        stderr(&out).contains(lab.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(&ssh), before);
    // The jasmin key's retired passphrase is not that path's: accepted.
    let doc = json_ok(&rotate_f(PASSPHRASE));
    assert_eq!(doc["passphrase_check"], "different");
    assert!(opens_as(&lab, PASSPHRASE).is_some());
    // Nor is lab_key one of jasmin's (not named id_*_jasmin).
    let doc = rotate_with(&ssh, tmp.path(), &p(7));
    assert_eq!(doc["passphrase_check"], "different");
}

#[test]
fn a_retired_key_whose_public_half_cannot_be_read_still_guards_its_passphrase() {
    // An encrypted PEM key with no .pub: no fingerprint without the passphrase. It is recorded
    // by its file's digest, and the next rotation may not go back to its passphrase.
    let tmp = tempfile::tempdir().unwrap();
    let ssh = tmp.path().join(".ssh");
    fs::create_dir(&ssh).unwrap();
    let key = keygen(
        &ssh.join("id_ecdsa_jasmin"),
        "ecdsa",
        &["-b", "256", "-m", "PEM"],
    );
    fs::remove_file(pub_of(&key)).unwrap();
    let first = run(
        &ssh,
        &["rotate", "--no-agent", "--json"],
        &pass_file(tmp.path(), "new", NEW),
        None,
    );
    json_ok(&first);
    let record = fs::read_to_string(ssh.join("key_backup/RETIRED")).unwrap();
    assert!(record.contains("\nfile-SHA256:"), "{record}");
    let before = tree(&ssh);
    let again = run(
        &ssh,
        &["rotate", "--no-agent"],
        &pass_file(tmp.path(), "old", PASSPHRASE),
        None,
    );
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("retired"), "{}", stderr(&again));
    assert!(tree(&ssh) == before, "a refused rotation changed files");
    // check never calls a live key retired because of such a record.
    let (doc, _) = check_json(&ssh, &[]);
    assert!(!codes(&doc).contains(&"retired-key".to_string()), "{doc}");
}
