//! The successor rule: `rotate`'s new key keeps the current key's type, size, format family,
//! rounds and comment unless an option says otherwise, and its file name unless the name states
//! the old type. Keys made by ssh-keygen and openssl; results checked with `ssh-keygen -l`/`-y`.
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// `rotate --no-agent --json` with the passphrase [`NEW`] and `extra` options.
fn rotate(ssh: &Path, tmp: &Path, extra: &[&str]) -> std::process::Output {
    keyrotate(ssh)
        .args(["rotate", "--no-agent", "--json", "--passphrase-file"])
        .arg(pass_file(tmp, "new", NEW))
        .args(extra)
        .output()
        .unwrap()
}

/// What `ssh-keygen -l` says of the new key, which must open with [`NEW`] only.
fn new_key(path: &Path) -> KeygenL {
    assert!(
        opens_as(path, NEW).is_some(),
        "{} opens with NEW",
        path.display()
    );
    assert!(
        opens_as(path, PASSPHRASE).is_none(),
        "{} opens with the old passphrase",
        path.display()
    );
    keygen_l(path).expect("ssh-keygen -l reads the new key")
}

fn first_line(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

/// Every file under `ssh` with its bytes' digest, mode and time; not the directory itself
/// (its time changes with the lock file) nor the lock file keyrotate leaves.
fn files(ssh: &Path) -> Vec<String> {
    tree_snapshot(ssh)
        .into_iter()
        .filter(|l| !l.starts_with("./.keyrotate.lock") && !l.starts_with("./: "))
        .collect()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ssh = tmp.path().join(".ssh");
    fs::create_dir(&ssh).unwrap();
    set_mode(&ssh, 0o700);
    (tmp, ssh)
}

#[test]
fn a_plain_rotate_keeps_type_size_format_and_comment() {
    // ECDSA-384 in OpenSSH format, RSA-2048 in PEM, Ed25519 with 64 rounds: each stays itself.
    // (file, ssh-keygen type, its options, ssh-keygen -l type, bits, first line)
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, u64, &'a str);
    let cases: [Case; 3] = [
        (
            "id_ecdsa_jasmin",
            "ecdsa",
            &["-b", "384"],
            "ECDSA",
            384,
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ),
        (
            "id_rsa_jasmin",
            "rsa",
            &["-b", "2048", "-m", "PEM"],
            "RSA",
            2048,
            "-----BEGIN RSA PRIVATE KEY-----",
        ),
        (
            "id_ed25519_jasmin",
            "ed25519",
            &["-a", "64"],
            "ED25519",
            256,
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ),
    ];
    for (name, key_type, extra, kind, bits, armour) in cases {
        let (tmp, ssh) = setup();
        let old = keygen(&ssh.join(name), key_type, extra);
        let old_fp = keygen_l(&old).unwrap().fingerprint;
        let doc = json_ok(&rotate(&ssh, tmp.path(), &[]));
        assert_eq!(
            doc["private_key"],
            old.to_str().unwrap(),
            "{name}: same file name"
        );
        let l = new_key(&old);
        assert_ne!(l.fingerprint, old_fp, "{name}: a new key");
        assert_eq!((l.kind.as_str(), l.bits), (kind, bits), "{name}");
        assert_eq!(l.comment, "old@laptop", "{name}: the comment is kept");
        assert_eq!(
            first_line(&old),
            armour,
            "{name}: the format family is kept"
        );
        let pub_line = fs::read_to_string(pub_of(&old)).unwrap();
        assert!(pub_line.trim_end().ends_with(" old@laptop"), "{pub_line}");
        if key_type == "ed25519" {
            let (check, _) = check_json(&ssh, &[]);
            assert_eq!(entry(&check, &old)["kdf_rounds"], 64, "the rounds are kept");
        }
        // Only the new pair is live: nothing else beside key_backup.
        let mut live: Vec<String> = fs::read_dir(&ssh)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        live.sort();
        assert_eq!(
            live,
            [name.to_string(), format!("{name}.pub"), "key_backup".into()]
        );
    }
}

#[test]
fn options_override_what_is_inherited() {
    let (tmp, ssh) = setup();
    let old = keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &["-b", "384"]);
    json_ok(&rotate(
        &ssh,
        tmp.path(),
        &["-b", "256", "-C", "alice@new-laptop"],
    ));
    let l = new_key(&old);
    assert_eq!((l.kind.as_str(), l.bits), ("ECDSA", 256));
    assert_eq!(l.comment, "alice@new-laptop");
    // --format pem on an OpenSSH key.
    let (tmp, ssh) = setup();
    let old = keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &["-b", "256"]);
    json_ok(&rotate(&ssh, tmp.path(), &["--format", "pem"]));
    assert_eq!(first_line(&old), "-----BEGIN EC PRIVATE KEY-----");
    assert_eq!(new_key(&old).bits, 256);
}

#[test]
fn a_type_change_renames_a_conventional_name_and_the_config_follows() {
    let (tmp, ssh) = setup();
    let old = keygen(&ssh.join("id_rsa"), "rsa", &["-b", "2048"]);
    let config = ssh.join("config");
    fs::write(&config, "Host lab\n  IdentityFile ~/.ssh/id_rsa\n").unwrap();
    let out = keyrotate(&ssh)
        .env("HOME", tmp.path())
        .args([
            "rotate",
            "--no-agent",
            "--json",
            "--update-config",
            "-t",
            "ecdsa",
            "-f",
        ])
        .arg(&old)
        .arg("--passphrase-file")
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    let doc = json_ok(&out);
    let new = ssh.join("id_ecdsa");
    assert_eq!(doc["private_key"], new.to_str().unwrap());
    assert!(
        !old.exists() && !pub_of(&old).exists(),
        "the old pair left the live directory"
    );
    let l = new_key(&new);
    assert_eq!(
        (l.kind.as_str(), l.bits, l.comment.as_str()),
        ("ECDSA", 521, "old@laptop")
    );
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "Host lab\n  IdentityFile ~/.ssh/id_ecdsa\n"
    );
    // The old pair is in the backup set and recorded as retired.
    let set = Path::new(doc["backup_dir"].as_str().unwrap());
    assert!(opens_as(&set.join("id_rsa"), PASSPHRASE).is_some());

    // A service key: id_rsa_jasmin becomes id_ed25519_jasmin.
    let (tmp, ssh) = setup();
    keygen(&ssh.join("id_rsa_jasmin"), "rsa", &["-b", "2048"]);
    let doc = json_ok(&rotate(&ssh, tmp.path(), &["-t", "ed25519"]));
    assert_eq!(
        doc["private_key"],
        ssh.join("id_ed25519_jasmin").to_str().unwrap()
    );
    assert!(!ssh.join("id_rsa_jasmin").exists());
    assert_eq!(new_key(&ssh.join("id_ed25519_jasmin")).kind, "ED25519");
}

#[test]
fn a_name_that_states_no_type_is_kept_and_another_key_is_never_taken_over() {
    let (tmp, ssh) = setup();
    let old = keygen(&ssh.join("id_work_jasmin"), "rsa", &["-b", "2048"]);
    let doc = json_ok(&rotate(&ssh, tmp.path(), &["-t", "ed25519"]));
    assert_eq!(doc["private_key"], old.to_str().unwrap());
    assert_eq!(new_key(&old).kind, "ED25519");

    // -f id_rsa -t ed25519 while an unrelated id_ed25519 is live: refused, nothing changed.
    let (tmp, ssh) = setup();
    let old = keygen(&ssh.join("id_rsa"), "rsa", &["-b", "2048"]);
    let other = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let before = files(&ssh);
    let out = keyrotate(&ssh)
        .args(["rotate", "--no-agent", "-t", "ed25519", "-f"])
        .arg(&old)
        .arg("--passphrase-file")
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&*other.to_string_lossy()) && stderr.contains("hint:"),
        "{stderr}"
    );
    assert_eq!(files(&ssh), before, "nothing changed");
}

#[test]
fn pkcs8_keys_from_openssl_get_an_openssh_successor_never_a_weaker_pem_one() {
    // keyrotate does not write PKCS#8, and legacy PEM (one round of MD5) would protect the new
    // key worse than PBKDF2 did: both become OpenSSH format, and the note says so.
    for algorithm in ["RSA", "ED25519"] {
        let armour = "-----BEGIN OPENSSH PRIVATE KEY-----";
        let (tmp, ssh) = setup();
        let key = ssh.join("id_lab_jasmin");
        let mut cmd = Command::new("openssl");
        cmd.args(["genpkey", "-algorithm", algorithm]);
        if algorithm == "RSA" {
            cmd.args(["-pkeyopt", "rsa_keygen_bits:2048"]);
        }
        if algorithm == "RSA" {
            cmd.args(["-aes-256-cbc", "-pass", &format!("pass:{PASSPHRASE}")]);
        }
        // An encrypted Ed25519 PKCS#8 key hides even its type; a plain one shows it.
        run_ok(cmd.arg("-out").arg(&key));
        set_mode(&key, 0o600);
        if algorithm == "RSA" {
            // OpenSSH reads encrypted PKCS#8 RSA; give it the .pub check pairs it with.
            let out = run_ok(
                Command::new("ssh-keygen")
                    .args(["-y", "-P", PASSPHRASE, "-f"])
                    .arg(&key),
            );
            let line = String::from_utf8(out.stdout).unwrap();
            fs::write(pub_of(&key), format!("{} lab@openssl\n", line.trim())).unwrap();
        }
        let out = rotate(&ssh, tmp.path(), &[]);
        let doc = json_ok(&out);
        assert_eq!(doc["private_key"], key.to_str().unwrap());
        assert_eq!(first_line(&key), armour, "{algorithm}");
        let l = new_key(&key);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("OpenSSH format"),
            "the change is said: {stderr}"
        );
        match algorithm {
            "RSA" => {
                assert_eq!((l.kind.as_str(), l.bits), ("RSA", 2048));
                assert_eq!(l.comment, "lab@openssl");
            }
            _ => assert_eq!(l.kind, "ED25519"),
        }
    }
}

#[test]
fn service_names_are_case_insensitive() {
    let (tmp, ssh) = setup();
    let old = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "--no-agent",
            "--service",
            "JASMIN",
            "--passphrase-file",
        ])
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("https://accounts.jasmin.ac.uk/account/profile/"),
        "{stdout}"
    );
    assert_eq!(new_key(&old).kind, "ED25519");
}

#[test]
fn a_symlinked_key_names_the_copy_left_behind_with_a_command_that_removes_it() {
    let (tmp, ssh) = setup();
    let vault = tmp.path().join("my keys");
    fs::create_dir(&vault).unwrap();
    let real = keygen(&vault.join("jasmin key"), "ed25519", &[]);
    std::os::unix::fs::symlink(&real, ssh.join("id_ed25519_jasmin")).unwrap();
    std::os::unix::fs::symlink(pub_of(&real), ssh.join("id_ed25519_jasmin.pub")).unwrap();
    let out = rotate(&ssh, tmp.path(), &[]);
    json_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&*real.to_string_lossy()), "{stderr}");
    // The link is now the new key; the old key is still at the link's target.
    let live = ssh.join("id_ed25519_jasmin");
    assert!(
        !fs::symlink_metadata(&live)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    new_key(&live);
    assert!(opens_as(&real, PASSPHRASE).is_some());
    // Each `rm -- ...` the notes print works when run as printed.
    let commands: Vec<&str> = stderr
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with("rm -- "))
        .collect();
    assert_eq!(commands.len(), 2, "{stderr}");
    for c in commands {
        let status = Command::new("bash").args(["-c", c]).status().unwrap();
        assert!(status.success(), "{c}");
    }
    assert!(!real.exists() && !pub_of(&real).exists());
}

#[test]
fn a_config_that_cannot_be_rewritten_gets_the_line_to_write_not_another_rotation() {
    let (tmp, ssh) = setup();
    keygen(&ssh.join("id_rsa_jasmin"), "rsa", &["-b", "2048"]);
    let real_config = tmp.path().join("config");
    fs::write(
        &real_config,
        "Host jasmin\n  IdentityFile ~/.ssh/id_rsa_jasmin\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&real_config, ssh.join("config")).unwrap();
    let out = keyrotate(&ssh)
        .env("HOME", tmp.path())
        .args([
            "rotate",
            "--no-agent",
            "--update-config",
            "-t",
            "ecdsa",
            "--passphrase-file",
        ])
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("run again"), "{all}");
    assert!(
        all.contains("`IdentityFile ~/.ssh/id_ecdsa_jasmin`"),
        "{all}"
    );
}

#[test]
fn what_cannot_be_kept_is_said_and_a_security_key_is_refused() {
    // DSA: OpenSSH no longer accepts it; the successor is RSA 4096, named after its type.
    let (tmp, ssh) = setup();
    keygen(&ssh.join("id_dsa_jasmin"), "dsa", &[]);
    let out = rotate(&ssh, tmp.path(), &[]);
    let doc = json_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DSA") && stderr.contains("RSA 4096"),
        "{stderr}"
    );
    let new = ssh.join("id_rsa_jasmin");
    assert_eq!(doc["private_key"], new.to_str().unwrap());
    let l = new_key(&new);
    assert_eq!(
        (l.kind.as_str(), l.bits, l.comment.as_str()),
        ("RSA", 4096, "old@laptop")
    );
    assert!(!ssh.join("id_dsa_jasmin").exists());

    // A FIDO key (its .pub is all a laptop holds): refused before anything is asked.
    use base64ct::{Base64, Encoding};
    let (tmp, ssh) = setup();
    let mut blob = Vec::new();
    for part in [
        &b"sk-ssh-ed25519@openssh.com"[..],
        &[7u8; 32][..],
        &b"ssh:"[..],
    ] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let line = format!(
        "sk-ssh-ed25519@openssh.com {} old@laptop\n",
        Base64::encode_string(&blob)
    );
    let sk_pub = ssh.join("id_ed25519_sk_jasmin.pub");
    fs::write(&sk_pub, &line).unwrap();
    assert!(
        keygen_l(&sk_pub).is_some(),
        "ssh-keygen reads the crafted line"
    );
    let before = files(&ssh);
    let out = rotate(&ssh, tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("security-key") && stderr.contains("ssh-keygen -t ed25519-sk"),
        "{stderr}"
    );
    assert_eq!(files(&ssh), before, "nothing changed");
    // Told which type to make instead, it goes ahead (named after the new type).
    let doc = json_ok(&rotate(&ssh, tmp.path(), &["-t", "ed25519"]));
    assert_eq!(
        doc["private_key"],
        ssh.join("id_ed25519_jasmin").to_str().unwrap()
    );
}

/// `puttygen KEY -O private-openssh` with `passphrase`: the OpenSSH key it holds, unencrypted,
/// or `None` when puttygen refuses the passphrase.
fn puttygen_open(key: &Path, passphrase: &str, dir: &Path) -> Option<std::path::PathBuf> {
    let old = pass_file(dir, "puttygen-old", passphrase);
    let empty = dir.join("puttygen-empty");
    fs::write(&empty, "").unwrap();
    let out = dir.join("puttygen-out");
    let _ = fs::remove_file(&out);
    let status = Command::new("puttygen")
        .arg(key)
        .args(["-O", "private-openssh", "-o"])
        .arg(&out)
        .arg("--old-passphrase")
        .arg(&old)
        .arg("--new-passphrase")
        .arg(&empty)
        .output()
        .expect("puttygen runs (apt-get install putty-tools; .ci/test does)")
        .status;
    status.success().then_some(out)
}

#[test]
fn a_putty_key_stays_putty_and_opens_in_puttygen_with_the_new_passphrase_only() {
    for (key_type, bits, kind) in [("ed25519", None, "ED25519"), ("rsa", Some("2048"), "RSA")] {
        let (tmp, ssh) = setup();
        let key = ssh.join("lab.ppk");
        let old_pass = pass_file(tmp.path(), "old", PASSPHRASE);
        let mut cmd = Command::new("puttygen");
        cmd.args(["-t", key_type]);
        if let Some(b) = bits {
            cmd.args(["-b", b]);
        }
        run_ok(
            cmd.args(["-C", "putty comment", "-o"])
                .arg(&key)
                .arg("--new-passphrase")
                .arg(&old_pass),
        );
        let old_bytes = fs::read(&key).unwrap();
        // The old passphrase is refused: the check decrypts .ppk keys too.
        let out = keyrotate(&ssh)
            .args(["rotate", "--no-agent", "-f"])
            .arg(&key)
            .arg("--passphrase-file")
            .arg(&old_pass)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key_type}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("opens your old key"));
        assert_eq!(fs::read(&key).unwrap(), old_bytes, "nothing changed");

        let f = key.to_str().unwrap();
        let doc = json_ok(&rotate(&ssh, tmp.path(), &["-f", f]));
        assert_eq!(doc["private_key"], f, "{key_type}: the name is kept");
        assert_eq!(doc["passphrase_check"], "different");
        let text = fs::read_to_string(&key).unwrap();
        assert!(
            text.starts_with(&format!(
                "PuTTY-User-Key-File-3: {}\n",
                doc["public_key_line"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
            )),
            "{text}"
        );
        assert!(text.contains("Key-Derivation: Argon2id\n"), "{text}");
        assert!(
            puttygen_open(&key, PASSPHRASE, tmp.path()).is_none(),
            "the old passphrase does not open it"
        );
        let opened = puttygen_open(&key, NEW, tmp.path()).expect("puttygen opens it with NEW");
        let l = keygen_l(&opened).unwrap();
        assert_eq!(l.fingerprint, doc["fingerprint"].as_str().unwrap());
        assert_eq!(l.kind, kind);
        if let Some(b) = bits {
            assert_eq!(l.bits.to_string(), b);
        }
        // puttygen's OpenSSH export is PEM, which has no comment: read the .ppk's.
        assert!(text.contains("\nComment: putty comment\n"), "{text}");
        // The OpenSSH public line beside it, for upload.
        let line = fs::read_to_string(pub_of(&key)).unwrap();
        assert_eq!(line.trim_end(), doc["public_key_line"].as_str().unwrap());
    }
}

#[test]
fn generate_writes_putty_keys_that_puttygen_opens() {
    let (tmp, ssh) = setup();
    let key = ssh.join("laptop.ppk");
    let out = keyrotate(&ssh)
        .args([
            "generate",
            "--json",
            "--format",
            "putty",
            "-t",
            "ecdsa",
            "-b",
            "384",
            "-C",
            "alice@win",
            "-f",
        ])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    let doc = json_ok(&out);
    let opened = puttygen_open(&key, NEW, tmp.path()).expect("puttygen opens it");
    let l = keygen_l(&opened).unwrap();
    assert_eq!((l.kind.as_str(), l.bits), ("ECDSA", 384));
    assert_eq!(l.fingerprint, doc["fingerprint"].as_str().unwrap());
    assert!(puttygen_open(&key, PASSPHRASE, tmp.path()).is_none());
    // check describes it as PuTTY, encrypted with Argon2id.
    let (check, _) = check_json(&ssh, &[]);
    let e = entry(&check, &key);
    assert_eq!(
        (e["format"].as_str(), e["encrypted"].as_bool()),
        (Some("putty"), Some(true))
    );
    // --rounds is for bcrypt only.
    let out = keyrotate(&ssh)
        .args(["generate", "--format", "putty", "-a", "64", "-f"])
        .arg(ssh.join("other.ppk"))
        .arg("--passphrase-file")
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

#[test]
fn an_encrypted_pem_key_without_its_pub_keeps_its_type_and_name() {
    let (tmp, ssh) = setup();
    let key = keygen(
        &ssh.join("id_ecdsa_jasmin"),
        "ecdsa",
        &["-b", "384", "-m", "PEM"],
    );
    fs::remove_file(pub_of(&key)).unwrap();
    let out = rotate(&ssh, tmp.path(), &[]);
    let doc = json_ok(&out);
    assert_eq!(doc["private_key"], key.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ECDSA 521"),
        "the size it takes is said: {stderr}"
    );
    assert_eq!(first_line(&key), "-----BEGIN EC PRIVATE KEY-----");
    let l = new_key(&key);
    assert_eq!((l.kind.as_str(), l.bits), ("ECDSA", 521));
}

#[test]
fn a_config_others_can_write_is_said_when_rotate_rewrites_it() {
    let (tmp, ssh) = setup();
    keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let config = ssh.join("config");
    fs::write(
        &config,
        "Host jasmin\n  IdentityFile ~/.ssh/id_ed25519_jasmin\n",
    )
    .unwrap();
    set_mode(&config, 0o666);
    let out = keyrotate(&ssh)
        .env("HOME", tmp.path())
        .args([
            "rotate",
            "--no-agent",
            "--update-config",
            "-t",
            "ecdsa",
            "--passphrase-file",
        ])
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let chmod = format!("`chmod 600 {}`", config.display());
    assert!(
        stderr.contains("writable by others") && stderr.contains(&chmod),
        "{stderr}"
    );
    // The printed command works, and check then has nothing to say about the config.
    let c = chmod.trim_matches('`');
    assert!(
        Command::new("bash")
            .args(["-c", c])
            .status()
            .unwrap()
            .success()
    );
    let (doc, _) = check_json(&ssh, &[]);
    assert!(
        !codes(&doc).contains(&"insecure-config".to_string()),
        "{doc}"
    );
}
