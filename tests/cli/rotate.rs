//! `keyrotate rotate` on real SSH directories: the old key backed up byte for byte, the new key
//! opening with the new passphrase only, old passphrases refused with nothing changed, type
//! changes, lost keys, retired keys flagged by `check`, `~/.ssh/config`, and a real ssh-agent and
//! sshd.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::openssh::{Agent, Sshd, askpass};
use crate::common::*;

/// An old JASMIN key made by ssh-keygen: `id_<type>_jasmin`, passphrase [`PASSPHRASE`].
fn old_key(ssh: &Path, key_type: &str, extra: &[&str]) -> PathBuf {
    keygen(&ssh.join(format!("id_{key_type}_jasmin")), key_type, extra)
}

fn rotate_json(ssh: &Path, args: &[&str]) -> serde_json::Value {
    let out = keyrotate(ssh)
        .args(["rotate", "--json", "--no-agent"])
        .args(args)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn opens(key: &Path, passphrase: &str) -> bool {
    Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(key)
        .output()
        .unwrap()
        .status
        .success()
}

/// Every file under `dir` with its bytes, but the lock file (which any writing command takes),
/// for "nothing changed" checks.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = file_contents(dir);
    files.retain(|(p, _)| !p.ends_with(".keyrotate.lock"));
    files
}

#[test]
fn rotate_replaces_the_key_and_keeps_the_old_one_byte_for_byte() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = old_key(&ssh, "ecdsa", &[]);
    let (old_bytes, old_pub) = (fs::read(&old).unwrap(), fs::read(pub_of(&old)).unwrap());
    let old_fp = keygen_l(&old).unwrap().fingerprint;
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let doc = rotate_json(
        &ssh,
        &[
            "-t",
            "ecdsa",
            "--passphrase-file",
            new_pass.to_str().unwrap(),
        ],
    );

    // Same type: the new key takes the old one's name.
    assert_eq!(doc["private_key"], old.to_string_lossy().as_ref());
    assert_eq!(doc["public_key"], pub_of(&old).to_string_lossy().as_ref());
    assert_eq!(doc["retired"], serde_json::json!([old.to_string_lossy()]));
    assert_eq!(doc["agent"], "skipped");
    assert_eq!(doc["passphrase_check"], "different");
    assert_ne!(doc["fingerprint"], old_fp.as_str());
    assert_eq!(
        keygen_l(&old).unwrap().fingerprint,
        doc["fingerprint"].as_str().unwrap()
    );

    // The old pair is in the backup set, byte for byte, and the set verifies.
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(fs::read(set.join("id_ecdsa_jasmin")).unwrap(), old_bytes);
    assert_eq!(fs::read(set.join("id_ecdsa_jasmin.pub")).unwrap(), old_pub);
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&set)
        .output()
        .unwrap();
    assert!(sums.status.success());

    // The new key opens with the new passphrase only, and matches its .pub.
    assert!(opens(&old, NEW));
    assert!(!opens(&old, PASSPHRASE));
    let derived = Command::new("ssh-keygen")
        .args(["-y", "-P", NEW, "-f"])
        .arg(&old)
        .output()
        .unwrap();
    let pub_line = fs::read_to_string(pub_of(&old)).unwrap();
    assert_eq!(
        key_part(&String::from_utf8(derived.stdout).unwrap()),
        key_part(&pub_line)
    );
    assert_eq!(doc["public_key_line"], pub_line.trim_end());

    // check: the live key is healthy; the retired one is on record.
    let (check, code) = check_json(&ssh, &[]);
    assert_eq!(code, 0, "{check:#}");
    let record = fs::read_to_string(ssh.join("key_backup/RETIRED")).unwrap();
    assert!(record.contains(&old_fp), "{record}");
    assert!(
        record.contains(set.file_name().unwrap().to_str().unwrap()),
        "{record}"
    );
}

#[test]
fn a_type_change_retires_the_old_file() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = old_key(&ssh, "rsa", &["-b", "3072"]);
    let old_bytes = fs::read(&old).unwrap();
    let old_fp = keygen_l(&old).unwrap().fingerprint;
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let doc = rotate_json(
        &ssh,
        &[
            "-t",
            "ed25519",
            "--passphrase-file",
            new_pass.to_str().unwrap(),
        ],
    );
    let new = ssh.join("id_ed25519_jasmin");
    assert_eq!(doc["private_key"], new.to_string_lossy().as_ref());
    assert!(
        !old.exists() && !pub_of(&old).exists(),
        "the old pair left the live directory"
    );
    assert!(opens(&new, NEW));
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(fs::read(set.join("id_rsa_jasmin")).unwrap(), old_bytes);
    assert_eq!(doc["retired"], serde_json::json!([old.to_string_lossy()]));
    // Put the retired key back: check flags it, critical.
    fs::copy(set.join("id_rsa_jasmin"), &old).unwrap();
    fs::copy(set.join("id_rsa_jasmin.pub"), pub_of(&old)).unwrap();
    set_mode(&old, 0o600);
    let (check, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1);
    let e = entry(&check, &old);
    assert_eq!(codes(e), ["retired-key"], "{e:#}");
    assert_eq!(e["findings"][0]["severity"], "critical");
    assert!(
        e["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("retired")
    );
    assert_eq!(e["fingerprint"], old_fp.as_str());
    assert!(codes(entry(&check, &new)).is_empty());
}

#[test]
fn a_new_passphrase_that_opens_the_old_key_is_refused_and_nothing_changes() {
    // Each format on its own, so that each decryption is proven: OpenSSH (ssh-key), PEM and
    // PKCS#8 (RustCrypto parts), plus a 3DES PEM key as `openssl genrsa -des3` writes.
    let cases: &[(&str, &[&str])] = &[
        ("openssh", &["-t", "ecdsa"]),
        ("pem", &["-t", "rsa", "-b", "2048", "-m", "PEM"]),
        ("pkcs8", &["-t", "ecdsa", "-m", "PKCS8"]),
    ];
    for (label, keygen_args) in cases {
        let (tmp, ssh) = ssh_dir_copy(None);
        let old = ssh.join("id_old_jasmin");
        run_ok(
            Command::new("ssh-keygen")
                .arg("-q")
                .args(*keygen_args)
                .args(["-N", PASSPHRASE, "-f"])
                .arg(&old),
        );
        assert_refused(&tmp, &ssh, label);
    }
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = ssh.join("id_old_jasmin");
    run_ok(
        Command::new("openssl")
            .args(["genrsa", "-traditional", "-des3", "-passout"])
            .arg(format!("pass:{PASSPHRASE}"))
            .arg("-out")
            .arg(&old)
            .arg("2048"),
    );
    assert!(fs::read_to_string(&old).unwrap().contains("DES-EDE3-CBC"));
    set_mode(&old, 0o600);
    assert_refused(&tmp, &ssh, "pem-3des");
}

/// `rotate` with the old key's passphrase: exit 2, the reason named, nothing changed.
fn assert_refused(tmp: &tempfile::TempDir, ssh: &Path, label: &str) {
    let config = ssh.join("config");
    fs::write(&config, "IdentityFile ~/.ssh/id_old_jasmin\n").unwrap();
    let old_pass = pass_file(tmp.path(), "old", PASSPHRASE);
    let before = tree(ssh);
    let out = keyrotate(ssh)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--update-config",
            "--passphrase-file",
        ])
        .arg(&old_pass)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{label}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("opens your old key"), "{label}: {err}");
    assert!(!err.contains(PASSPHRASE), "{err}");
    assert_eq!(
        tree(ssh),
        before,
        "{label}: a refused rotation changed something"
    );
    assert!(!ssh.join("key_backup").exists(), "{label}");
    // And a different passphrase goes through, checked against the same old key.
    let doc = rotate_json(
        ssh,
        &[
            "-t",
            "ed25519",
            "--passphrase-file",
            pass_file(tmp.path(), "new", NEW).to_str().unwrap(),
        ],
    );
    assert_eq!(doc["passphrase_check"], "different", "{label}");
}

#[test]
fn a_lost_key_gets_a_fresh_one() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let doc = rotate_json(
        &ssh,
        &[
            "-t",
            "ecdsa",
            "--passphrase-file",
            new_pass.to_str().unwrap(),
        ],
    );
    assert_eq!(doc["backup_dir"], serde_json::Value::Null);
    assert_eq!(doc["retired"], serde_json::json!([]));
    assert_eq!(doc["passphrase_check"], "no-old-key");
    assert!(opens(&ssh.join("id_ecdsa_jasmin"), NEW));
    // Only the .pub of a lost key is left: it is retired too.
    let (tmp2, ssh2) = ssh_dir_copy(None);
    let old = old_key(&ssh2, "rsa", &["-b", "3072"]);
    let fp = keygen_l(&pub_of(&old)).unwrap().fingerprint;
    fs::remove_file(&old).unwrap();
    let new_pass = pass_file(tmp2.path(), "new", NEW);
    let doc = rotate_json(
        &ssh2,
        &[
            "-t",
            "ed25519",
            "--passphrase-file",
            new_pass.to_str().unwrap(),
        ],
    );
    assert_eq!(
        doc["retired"],
        serde_json::json!([pub_of(&old).to_string_lossy()])
    );
    assert!(!pub_of(&old).exists());
    assert!(
        fs::read_to_string(ssh2.join("key_backup/RETIRED"))
            .unwrap()
            .contains(&fp)
    );
    drop(tmp);
}

#[test]
fn text_output_says_where_to_upload_and_how_to_test() {
    let (tmp, ssh) = ssh_dir_copy(None);
    old_key(&ssh, "ecdsa", &[]);
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "-t",
            "ecdsa",
            "--no-agent",
            "--reason",
            "compromised",
            "--passphrase-file",
        ])
        .arg(&new_pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let pub_line = fs::read_to_string(ssh.join("id_ecdsa_jasmin.pub")).unwrap();
    for wanted in [
        pub_line.trim_end(),
        "https://accounts.jasmin.ac.uk/account/profile/",
        "15 minutes",
        "ssh -i",
        "retired",
        "EVERY place it was authorised",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
    assert!(!text.contains(NEW));
    // A service without a profile gets the generic steps.
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--service",
            "example",
            "--no-agent",
            "--passphrase-file",
        ])
        .arg(&new_pass)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("authorized_keys") && !text.contains("jasmin.ac.uk"),
        "{text}"
    );
}

#[test]
fn config_lines_naming_the_retired_key_are_listed_or_rewritten() {
    let (tmp, ssh) = ssh_dir_copy(None);
    old_key(&ssh, "rsa", &["-b", "3072"]);
    let config = ssh.join("config");
    let original = "Host jasmin\n  User alice\n  IdentityFile ~/.ssh/id_rsa_jasmin\n";
    fs::write(&config, original).unwrap();
    set_mode(&config, 0o640);
    let new_pass = pass_file(tmp.path(), "new", NEW);
    // Without --update-config the line is only reported. (`~` is $HOME, the .ssh's parent here.)
    let (tmp_b, ssh_b) = ssh_dir_copy(Some(&ssh));
    let out = keyrotate(&ssh_b)
        .env("HOME", tmp_b.path())
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--json",
            "--passphrase-file",
        ])
        .arg(&new_pass)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"][0]["line"], 3);
    assert_eq!(doc["config"][0]["updated"], false);
    assert_eq!(fs::read_to_string(ssh_b.join("config")).unwrap(), original);
    drop(tmp_b);
    // With it, the line names the new key, the old config is saved, the mode is kept.
    let home = tmp.path();
    let out = keyrotate(&ssh)
        .env("HOME", home)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--update-config",
            "--json",
            "--passphrase-file",
        ])
        .arg(&new_pass)
        .output()
        .unwrap();
    let doc = json_ok(&out);
    assert_eq!(doc["config"][0]["updated"], true);
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "Host jasmin\n  User alice\n  IdentityFile ~/.ssh/id_ed25519_jasmin\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(fs::read_to_string(set.join("config")).unwrap(), original);
}

/// A lost key leaves its name in ~/.ssh/config: `--update-config` points that line at the fresh
/// key too, saving the old config; a line naming another service's key is left alone.
#[test]
fn a_lost_keys_config_line_is_rewritten_to_the_fresh_key() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let config = ssh.join("config");
    let original = "Host jasmin\n  IdentityFile ~/.ssh/id_rsa_jasmin\nHost other\n  IdentityFile ~/.ssh/id_rsa_archer\n";
    fs::write(&config, original).unwrap();
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let out = keyrotate(&ssh)
        .env("HOME", tmp.path())
        .args([
            "rotate",
            "-t",
            "ecdsa",
            "--reason",
            "lost",
            "--update-config",
            "--json",
        ])
        .arg("--passphrase-file")
        .arg(&new_pass)
        .output()
        .unwrap();
    let doc = json_ok(&out);
    assert_eq!(doc["retired"], serde_json::json!([]));
    assert_eq!(doc["config"][0]["line"], 2);
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "Host jasmin\n  IdentityFile ~/.ssh/id_ecdsa_jasmin\nHost other\n  IdentityFile ~/.ssh/id_rsa_archer\n"
    );
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(fs::read_to_string(set.join("config")).unwrap(), original);
}

#[test]
fn an_old_key_asking_for_absurd_kdf_work_does_not_hang_the_check() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = old_key(&ssh, "ed25519", &[]);
    // Set the bcrypt rounds field of the key to 4,000,000,000 (a KDF bomb), as a hostile or
    // damaged file might.
    let block = pem::parse(fs::read(&old).unwrap()).unwrap();
    let mut body = block.contents().to_vec();
    let salt_and_rounds = b"bcrypt";
    let at = body.windows(6).position(|w| w == salt_and_rounds).unwrap() + 6;
    // kdfoptions: string(len) { string salt(16), uint32 rounds }
    let rounds_at = at + 4 + 4 + 16;
    body[rounds_at..rounds_at + 4].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    let bombed = pem::encode_config(
        &pem::Pem::new("OPENSSH PRIVATE KEY", body),
        pem::EncodeConfig::new()
            .set_line_ending(pem::LineEnding::LF)
            .set_line_wrap(70),
    );
    fs::write(&old, bombed).unwrap();
    let (check, _) = check_json(&ssh, &[]);
    assert_eq!(entry(&check, &old)["kdf_rounds"], 4_000_000_000u64);
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let started = std::time::Instant::now();
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--json",
            "--passphrase-file",
        ])
        .arg(&new_pass)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let doc = json_ok(&out);
    let verdict = doc["passphrase_check"].as_str().unwrap();
    assert!(
        verdict.starts_with("not-checked") && verdict.contains("4000000000"),
        "{verdict}"
    );
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(note.contains("could not check"), "{note}");
}

#[test]
fn the_agent_loses_the_old_identity_and_gains_the_new_one_which_logs_in() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = old_key(&ssh, "ecdsa", &[]);
    let agent = Agent::start();
    let added = agent.add(&old, &askpass(tmp.path(), PASSPHRASE));
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let old_fp = keygen_l(&old).unwrap().fingerprint;
    assert_eq!(agent.fingerprints(), vec![old_fp.clone()]);
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let out = keyrotate(&ssh)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["rotate", "-t", "ed25519", "--json", "--passphrase-file"])
        .arg(&new_pass)
        .output()
        .unwrap();
    let doc = json_ok(&out);
    assert_eq!(doc["agent"], "updated");
    let new = ssh.join("id_ed25519_jasmin");
    assert_eq!(
        agent.fingerprints(),
        vec![keygen_l(&new).unwrap().fingerprint]
    );

    // sshd accepts the new key through the agent, in BatchMode (nothing can be asked).
    let sshd = Sshd::start(&[&pub_of(&new)]);
    let sock = agent.socket.as_os_str().to_owned();
    let login = sshd.ssh(&pub_of(&new), &[("SSH_AUTH_SOCK", sock.as_os_str())], true);
    assert_eq!(
        String::from_utf8_lossy(&login.stdout).trim(),
        "logged-in",
        "{}\n{}",
        String::from_utf8_lossy(&login.stderr),
        sshd.log()
    );
    // And the old key is refused: it is not authorised, and the agent no longer has it.
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    let old_login = sshd.ssh(
        &set.join("id_ecdsa_jasmin.pub"),
        &[("SSH_AUTH_SOCK", sock.as_os_str())],
        true,
    );
    assert!(!old_login.status.success());

    // check flags the retired key if it is loaded again.
    let readd = agent.add(
        &set.join("id_ecdsa_jasmin"),
        &askpass(tmp.path(), PASSPHRASE),
    );
    assert!(readd.status.success());
    let out = keyrotate(&ssh)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["check", "--json"])
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(codes(&check), ["retired-key"]);
    assert!(
        check["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&old_fp)
    );
    // check lists what the agent holds: the new key (found in the SSH directory) and the retired
    // one (found nowhere live), in the order ssh-add -l gives them.
    let new_fp = keygen_l(&new).unwrap().fingerprint;
    let listed: Vec<(String, serde_json::Value, bool)> = check["agent"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["fingerprint"].as_str().unwrap().to_string(),
                k["path"].clone(),
                k["retired"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(agent.fingerprints(), [new_fp.clone(), old_fp.clone()]);
    assert_eq!(
        listed,
        [
            (new_fp.clone(), new.to_string_lossy().into(), false),
            (old_fp.clone(), serde_json::Value::Null, true)
        ]
    );
    assert_eq!(check["agent"]["socket"], *agent.socket.to_string_lossy());
    let text = keyrotate(&ssh)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("holds 2 keys:"), "{text}");
    let (_, listing) = text.split_once("holds 2 keys:").unwrap();
    let old_line = listing.lines().find(|l| l.contains(&old_fp)).unwrap();
    assert!(old_line.ends_with("RETIRED"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&new_fp) && l.ends_with(&format!("({})", new.display()))),
        "{text}"
    );
}

#[test]
fn agent_lifetime_is_honoured_and_a_broken_agent_is_only_a_warning() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let agent = Agent::start();
    let new_pass = pass_file(tmp.path(), "new", NEW);
    let out = keyrotate(&ssh)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--agent-lifetime",
            "2",
            "--json",
            "--passphrase-file",
        ])
        .arg(&new_pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(agent.fingerprints().len(), 1);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(
        agent.fingerprints().is_empty(),
        "the lifetime constraint was not applied"
    );

    let dead = tmp.path().join("no-agent.sock");
    let out = keyrotate(&ssh)
        .env("SSH_AUTH_SOCK", &dead)
        .args(["rotate", "-t", "ecdsa", "--json", "--passphrase-file"])
        .arg(pass_file(
            tmp.path(),
            "newer",
            "yet another new passphrase 7",
        ))
        .output()
        .unwrap();
    let doc = json_ok(&out);
    assert!(
        doc["agent"].as_str().unwrap().starts_with("error: "),
        "{doc:#}"
    );
    assert!(opens(
        &ssh.join("id_ecdsa_jasmin"),
        "yet another new passphrase 7"
    ));
}

#[test]
fn a_second_rotate_fails_fast_naming_the_lock() {
    let (tmp, ssh) = ssh_dir_copy(None);
    old_key(&ssh, "ecdsa", &[]);
    let lock = ssh.join(".keyrotate.lock");
    fs::write(&lock, "").unwrap();
    let mut holder = Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = tree(&ssh);
    let out = keyrotate(&ssh)
        .args(["rotate", "-t", "ed25519", "--no-agent", "--passphrase-file"])
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&lock.display().to_string()));
    assert_eq!(tree(&ssh), before);
}

#[test]
fn rotate_with_an_explicit_file() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let elsewhere = ssh.join("work_key");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", PASSPHRASE, "-f"])
            .arg(&elsewhere),
    );
    let keep = old_key(&ssh, "ecdsa", &[]);
    let doc = rotate_json(
        &ssh,
        &[
            "-t",
            "ecdsa",
            "-f",
            elsewhere.to_str().unwrap(),
            "--passphrase-file",
            pass_file(tmp.path(), "n", NEW).to_str().unwrap(),
        ],
    );
    assert_eq!(doc["private_key"], elsewhere.to_string_lossy().as_ref());
    assert_eq!(
        doc["retired"],
        serde_json::json!([elsewhere.to_string_lossy()])
    );
    assert!(opens(&elsewhere, NEW));
    assert!(opens(&keep, PASSPHRASE), "other keys are left alone");
}

/// `--apple-use-keychain` needs Apple's ssh-add: elsewhere it is refused before anything is
/// asked or changed, with a hint.
#[cfg(not(target_os = "macos"))]
#[test]
fn apple_keychain_option_is_refused_off_macos_with_nothing_changed() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = old_key(&ssh, "ed25519", &[]);
    let before = tree_snapshot(tmp.path());
    let out = keyrotate(&ssh)
        .args(["rotate", "-t", "ed25519", "--apple-use-keychain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only on macOS"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(tree_snapshot(tmp.path()), before);
    assert!(old.exists());
    // It contradicts --no-agent.
    let out = keyrotate(&ssh)
        .args(["rotate", "--apple-use-keychain", "--no-agent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// An old key the user cannot read stops rotate before anything is asked or changed, and the
/// error names the file (not a bare "permission denied").
#[test]
fn an_unreadable_old_key_is_named_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let ssh = tmp.path().join("ssh");
    fs::create_dir(&ssh).unwrap();
    let old = old_key(&ssh, "ed25519", &[]);
    let new_pass = pass_file(tmp.path(), "new", NEW);
    set_mode(&old, 0o000);
    let mut cmd = if is_root() {
        // Root reads everything: run as nobody, who owns the directory but not the key.
        set_mode(tmp.path(), 0o755);
        set_mode(&new_pass, 0o644);
        run_ok(Command::new("chown").arg("65534:65534").arg(&ssh));
        let exe = tmp.path().join("keyrotate");
        fs::copy(bin(), &exe).unwrap();
        set_mode(&exe, 0o755);
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
        cmd
    } else {
        Command::new(bin())
    };
    let before = (fs::read(&old).unwrap(), fs::read(pub_of(&old)).unwrap());
    let out = cmd
        .env_remove("SSH_AUTH_SOCK")
        // nobody cannot look into root's config directory: that is an error of its own.
        .env_remove("KEYROTATE_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent/keyrotate-tests")
        .arg("--ssh-dir")
        .arg(&ssh)
        .args(["rotate", "-t", "ed25519", "--passphrase-file"])
        .arg(&new_pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read {}: permission denied", old.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    // Nothing changed (only the lock file, which every writing command takes, is new).
    let after = (fs::read(&old).unwrap(), fs::read(pub_of(&old)).unwrap());
    assert!(after == before, "the old pair changed");
    let mut names: Vec<String> = fs::read_dir(&ssh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".keyrotate.lock",
            "id_ed25519_jasmin",
            "id_ed25519_jasmin.pub"
        ]
    );
}
