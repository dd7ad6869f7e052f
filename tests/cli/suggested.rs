//! Every command `check` suggests works when run exactly as printed (house style, habit 19).
//!
//! A corpus of SSH directories, each with one kind of trouble, made with the real tools
//! (ssh-keygen, openssl, puttygen). For each: `check --json` and text mode; every backquoted
//! command in a finding message and every `hint:` line is run with `bash -c`, in printed order,
//! in a copy of the directory (keyrotate's own commands with `--dry-run` where they change
//! anything). Each must exit 0, and a command that fixes something must make its finding go away
//! on the next `check`. Each directory also names the codes it must produce, so that a corpus
//! that stopped producing suggestions fails instead of passing with nothing run.
// POSIX permissions, bash and OpenSSH: Unix only.
#![cfg(unix)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

/// One suggested command and the finding that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Suggestion {
    /// The entry's path, or `None` for a directory-level finding.
    path: Option<String>,
    code: String,
    message: String,
    command: String,
}

/// The backquoted spans of a message.
fn backquoted(message: &str) -> Vec<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn suggestions(doc: &serde_json::Value) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let mut add = |path: Option<String>, findings: &serde_json::Value| {
        for f in findings.as_array().unwrap() {
            for command in backquoted(f["message"].as_str().unwrap()) {
                out.push(Suggestion {
                    path: path.clone(),
                    code: f["code"].as_str().unwrap().to_string(),
                    message: f["message"].as_str().unwrap().to_string(),
                    command,
                });
            }
        }
    };
    add(None, &doc["findings"]);
    for key in doc["keys"].as_array().unwrap() {
        add(
            Some(key["path"].as_str().unwrap().to_string()),
            &key["findings"],
        );
    }
    out
}

/// Does `check` still report the finding `s` was suggested by (same path, code and message)?
fn still_reported(ssh: &Path, s: &Suggestion) -> bool {
    let (path, code) = (&s.path, s.code.as_str());
    let (doc, _) = check_json(ssh, &[]);
    let has = |findings: &serde_json::Value| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == code && f["message"] == s.message.as_str())
    };
    match path {
        None => has(&doc["findings"]),
        Some(p) => doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["path"] == p.as_str() && has(&k["findings"])),
    }
}

/// The command as the test runs it: `keyrotate` is the built binary, pointed at `ssh`, with
/// `--dry-run` for the subcommands that would change something.
fn runnable(command: &str, ssh: &Path) -> (String, bool) {
    let Some(rest) = command.strip_prefix("keyrotate ") else {
        return (command.to_string(), false);
    };
    let sub = rest.split_whitespace().next().unwrap_or("");
    let changes = matches!(sub, "rotate" | "generate" | "restore")
        || (sub == "backup" && !rest.contains("--list"));
    let dry = if changes { " --dry-run" } else { "" };
    let ssh = ssh.to_str().expect("temp paths are UTF-8");
    (
        format!("'{}' --ssh-dir '{ssh}' {rest}{dry}", bin().display()),
        true,
    )
}

/// Commands that only look, never fix: their finding stays.
fn only_looks(command: &str) -> bool {
    command.starts_with("ls ")
        || command.starts_with("keyrotate ")
        || command.starts_with("ssh-keygen -L ")
}

fn bash(command: &str, home: &Path) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(command)
        .env("HOME", home)
        .env_remove("KEYROTATE_SSH_DIR")
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
}

/// Run every suggestion `check` makes for `ssh`, in order; `want` are codes that must be among
/// those with a suggestion. Returns what was run, for the caller's own assertions.
fn run_all_suggestions(ssh: &Path, want: &[&str]) -> Vec<Suggestion> {
    let home = ssh.parent().unwrap();
    let (doc, _) = check_json(ssh, &[]);
    let found = suggestions(&doc);
    // Text mode says the same commands (it is the same messages, escaped for a terminal).
    let text = keyrotate(ssh).arg("check").output().unwrap();
    let stdout = String::from_utf8(text.stdout).unwrap();
    let stderr = String::from_utf8(text.stderr).unwrap();
    for s in &found {
        assert!(
            stdout.contains(&format!("`{}`", s.command)),
            "text mode lacks `{}`:\n{stdout}",
            s.command
        );
    }
    let mut hints: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("hint: "))
        .flat_map(|h| {
            let quoted = backquoted(h);
            if quoted.is_empty() {
                vec![h.to_string()]
            } else {
                quoted
            }
        })
        .collect();
    hints.dedup();
    for &code in want {
        assert!(
            found.iter().any(|s| s.code == code),
            "no suggestion for {code} in {doc:#}"
        );
    }
    let all = found
        .iter()
        .cloned()
        .chain(hints.into_iter().map(|command| Suggestion {
            path: None,
            code: "hint".to_string(),
            message: String::new(),
            command,
        }));
    let mut ran = Vec::new();
    for s in all {
        let (command, is_keyrotate) = runnable(&s.command, ssh);
        let out = bash(&command, home);
        assert!(
            out.status.success(),
            "suggested `{}` ({}) failed ({:?}) as `{command}`:\nstdout: {}\nstderr: {}",
            s.command,
            s.code,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if is_keyrotate {
            // A dry run changes nothing: the finding is still there, and nothing was written.
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("Dry run")
                    || !command.contains("--dry-run")
            );
        } else if !only_looks(&s.command) && s.code != "hint" {
            assert!(
                !still_reported(ssh, &s),
                "`{}` did not make {} go away for {:?}",
                s.command,
                s.code,
                s.path
            );
        }
        ran.push(s);
    }
    ran
}

fn plain_key(ssh: &Path, name: &str, key_type: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["-N", ""];
    args.extend_from_slice(extra);
    keygen(&ssh.join(name), key_type, &args)
}

fn crlf(path: &Path) {
    let text = fs::read(path).unwrap();
    let mut out = Vec::new();
    for &b in &text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    fs::write(path, out).unwrap();
}

fn bom(path: &Path) {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    out.extend(fs::read(path).unwrap());
    fs::write(path, out).unwrap();
}

/// OpenSSH's own verdict: can `ssh-keygen -y` read the private key (`-l` would read the `.pub`
/// beside it instead), or `ssh-keygen -l` the public key?
fn openssh_loads(path: &Path) -> bool {
    if path.as_os_str().as_bytes().ends_with(b".pub") {
        return keygen_l(path).is_some();
    }
    Command::new("ssh-keygen")
        .args(["-y", "-P", PASSPHRASE, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen runs")
        .status
        .success()
}

/// `PATH.pub`, byte for byte.
fn pub_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".pub");
    name.into()
}

#[test]
fn a_lone_public_key() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = plain_key(&ssh, "id_old", "rsa", &["-b", "1024"]);
    fs::remove_file(&key).unwrap();
    let ran = run_all_suggestions(&ssh, &["weak-algorithm"]);
    assert!(ran.iter().all(|s| !s.command.contains("rotate")), "{ran:?}");
}

#[test]
fn an_ed25519_pkcs8_key_openssh_cannot_read() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = ssh.join("id_ed25519_lab");
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key),
    );
    set_mode(&key, 0o600);
    assert!(!openssh_loads(&key));
    let ran = run_all_suggestions(&ssh, &["unloadable-key", "missing-public-key"]);
    assert!(
        ran.iter().all(|s| !s.command.starts_with("ssh-keygen -y")),
        "{ran:?}"
    );
}

#[test]
fn a_key_others_can_read() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    set_mode(&key, 0o644);
    run_all_suggestions(&ssh, &["insecure-permissions"]);
}

#[test]
fn an_unencrypted_key_and_an_old_one() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    plain_key(&ssh, "id_ed25519", "ed25519", &[]);
    let old = keygen(&ssh.join("id_ecdsa_old"), "ecdsa", &[]);
    set_mtime(&old, days_ago(400));
    run_all_suggestions(&ssh, &["unencrypted-private-key", "old-key"]);
}

#[test]
fn a_pem_key_without_its_public_half() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = plain_key(&ssh, "id_rsa", "rsa", &["-b", "3072", "-m", "PEM"]);
    fs::remove_file(pub_of(&key)).unwrap();
    run_all_suggestions(&ssh, &["legacy-format", "missing-public-key"]);
    assert!(openssh_loads(&pub_of(&key)));
}

#[test]
fn a_file_name_that_is_not_utf8() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = ssh.join(OsStr::from_bytes(b"id_\xff\xfekey"));
    keygen(&key, "ed25519", &["-N", ""]);
    fs::remove_file(pub_path(&key)).unwrap();
    // rotate refuses a name that is not UTF-8: check says so rather than suggest it.
    let (doc, _) = check_json(&ssh, &[]);
    let e = entry(&doc, &key);
    let unencrypted = e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "unencrypted-private-key")
        .expect("unencrypted-private-key");
    let message = unencrypted["message"].as_str().unwrap();
    assert!(
        message.contains("UTF-8 name") && backquoted(message).is_empty(),
        "{message}"
    );
    let ran = run_all_suggestions(&ssh, &["missing-public-key"]);
    assert!(
        ran.iter().all(|s| !s.command.contains('\u{fffd}')),
        "{ran:?}"
    );
    // The .pub was made for the real file, byte for byte.
    assert!(openssh_loads(&pub_path(&key)));
}

#[test]
fn a_putty_key() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let empty = ssh.parent().unwrap().join("empty");
    fs::write(&empty, "").unwrap();
    let key = ssh.join("id_work.ppk");
    run_ok(
        Command::new("puttygen")
            .args(["-t", "ed25519", "-q", "--new-passphrase"])
            .arg(&empty)
            .arg("-o")
            .arg(&key),
    );
    set_mode(&key, 0o600);
    run_all_suggestions(&ssh, &["unencrypted-private-key"]);
}

#[test]
fn keys_with_crlf_line_endings() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    // OpenSSH refuses its own format with CR LF; PEM and PKCS#8 it reads (OpenSSL skips the CR),
    // and a .pub too (the CR goes into the comment).
    let openssh = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let pem = keygen(&ssh.join("id_ecdsa"), "ecdsa", &["-m", "PEM"]);
    let pkcs8 = keygen(&ssh.join("id_rsa"), "rsa", &["-b", "3072", "-m", "PKCS8"]);
    let alone = keygen(&ssh.join("id_alone"), "ed25519", &["-N", ""]);
    fs::remove_file(&alone).unwrap();
    for path in [&openssh, &pem, &pkcs8, &pub_of(&alone)] {
        crlf(path);
    }
    assert!(!openssh_loads(&openssh));
    assert!(openssh_loads(&pub_of(&alone)));
    let (doc, _) = check_json(&ssh, &[]);
    for (path, unloadable) in [
        (&openssh, true),
        (&pem, false),
        (&pkcs8, false),
        (&pub_of(&alone), false),
    ] {
        let e = entry(&doc, path);
        assert_eq!(
            codes(e).contains(&"unloadable-key".to_string()),
            unloadable,
            "{e:#}"
        );
        // keyrotate still describes the key.
        assert!(
            e["fingerprint"].as_str().unwrap().starts_with("SHA256:"),
            "{e:#}"
        );
    }
    run_all_suggestions(&ssh, &["unloadable-key"]);
    // The fix leaves a key OpenSSH loads, with the mode it had.
    let out = run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", PASSPHRASE, "-f"])
            .arg(&openssh),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ssh-ed25519 "));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&openssh).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn keys_with_a_byte_order_mark() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let openssh = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let both = plain_key(&ssh, "id_both", "ed25519", &[]);
    let pem = keygen(&ssh.join("id_ecdsa"), "ecdsa", &["-m", "PEM"]);
    let alone = keygen(&ssh.join("id_alone"), "ed25519", &["-N", ""]);
    fs::remove_file(&alone).unwrap();
    crlf(&both);
    for path in [&openssh, &both, &pem, &pub_of(&openssh), &pub_of(&alone)] {
        bom(path);
    }
    for path in [&openssh, &both, &pub_of(&alone)] {
        assert!(!openssh_loads(path), "{path:?}");
    }
    assert!(openssh_loads(&pem));
    let (doc, _) = check_json(&ssh, &[]);
    for (path, unloadable) in [
        (&openssh, true),
        (&both, true),
        (&pem, false),
        (&pub_of(&alone), true),
    ] {
        let e = entry(&doc, path);
        assert_eq!(
            codes(e).contains(&"unloadable-key".to_string()),
            unloadable,
            "{e:#}"
        );
        assert!(
            e["fingerprint"].as_str().unwrap().starts_with("SHA256:"),
            "{e:#}"
        );
    }
    // The OpenSSH key's .pub has a BOM too: one finding for each file, each naming its own fix.
    let unloadable = entry(&doc, &openssh)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "unloadable-key")
        .count();
    assert_eq!(unloadable, 2);
    run_all_suggestions(&ssh, &["unloadable-key"]);
    for path in [&openssh, &pub_of(&openssh), &both, &pub_of(&alone)] {
        assert!(openssh_loads(path), "{path:?} still refused");
    }
}

#[test]
fn a_config_others_can_write() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let config = ssh.join("config");
    fs::write(&config, "Host lab\n  HostName lab.example.org\n").unwrap();
    set_mode(&config, 0o664);
    let (doc, _) = check_json(&ssh, &[]);
    let f = &doc["findings"][0];
    assert_eq!(f["code"], "insecure-config", "{doc:#}");
    assert_eq!(f["severity"], "critical");
    run_all_suggestions(&ssh, &["insecure-config"]);
}

#[test]
fn a_config_owned_by_someone_else() {
    if !is_root() {
        return; // only root can give a file away
    }
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let config = ssh.join("config");
    fs::write(&config, "Host lab\n").unwrap();
    set_mode(&config, 0o644);
    std::os::unix::fs::chown(&config, Some(4242), Some(4242)).unwrap();
    run_all_suggestions(&ssh, &["insecure-config"]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&config).unwrap().uid(), 0);
    assert_eq!(fs::read_to_string(&config).unwrap(), "Host lab\n");
}

#[test]
fn an_ssh_dir_others_can_write() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    set_mode(&ssh, 0o770);
    run_all_suggestions(&ssh, &["insecure-ssh-dir"]);
}

#[test]
fn a_weak_rsa_key() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_rsa"), "rsa", &["-b", "1024"]);
    keygen(&ssh.join("id_rsa_mid"), "rsa", &["-b", "2048"]);
    run_all_suggestions(&ssh, &["weak-algorithm", "weak-key-size"]);
}

#[test]
fn a_broken_lone_public_key() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    fs::write(ssh.join("work.pub"), "ssh-ed25519 AAAAnotbase64!!\n").unwrap();
    let ran = run_all_suggestions(&ssh, &["unreadable-key"]);
    assert!(
        ran.iter().all(|s| !s.command.contains("rotate -f")),
        "{ran:?}"
    );
}

#[test]
fn certificates_that_cannot_be_used() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let ca = plain_key(tmp.path(), "ca", "ed25519", &[]);
    let a = keygen(&ssh.join("id_a"), "ed25519", &[]);
    let b = keygen(&ssh.join("id_b"), "ed25519", &[]);
    for (key, validity) in [(&a, "-1d:+30d"), (&b, "-2w:-1d")] {
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(&ca)
                .args(["-I", "test", "-n", "alice", "-V", validity])
                .arg(pub_of(key)),
        );
    }
    // id_a's certificate beside id_b: a mismatch, whose message shows how to look at it.
    fs::rename(ssh.join("id_a-cert.pub"), ssh.join("id_b-cert.pub")).unwrap();
    run_all_suggestions(&ssh, &["certificate-key-mismatch"]);
}

#[test]
fn every_suggestion_is_extracted() {
    // The extraction itself: backquoted spans, in order, nothing else.
    assert_eq!(
        backquoted("Fix it with `chmod 600 x`; or `rm 'a b'`."),
        ["chmod 600 x", "rm 'a b'"]
    );
    assert!(backquoted("no command here").is_empty());
}
