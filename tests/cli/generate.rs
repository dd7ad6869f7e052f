//! `keyrotate generate`: every type, size and format checked with OpenSSH's own tools
//! (`ssh-keygen -y` with the right and a wrong passphrase, `ssh-keygen -l`), a login to a real
//! sshd with the new key (directly and through a real ssh-agent), and every refusal shown to
//! leave nothing behind.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::openssh::{Agent, Sshd, askpass, askpass_env};
use crate::common::*;

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Run `generate --json` with a passphrase file; returns the document.
fn generate_json(ssh: &Path, pass: &Path, args: &[&str]) -> serde_json::Value {
    let out = keyrotate(ssh)
        .args(["generate", "--json", "--passphrase-file"])
        .arg(pass)
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
    assert!(
        out.stderr.is_empty() || args.contains(&"2048"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `ssh-keygen -y -P PASS -f KEY`: the public key line, or None if it refuses.
fn derive_public(key: &Path, passphrase: &str) -> Option<String> {
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// The key type and base64 of a public key line, without its comment.
#[test]
fn every_type_size_and_format_is_what_ssh_keygen_expects() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = pass_file(tmp.path(), "passphrase.txt", PASSPHRASE);
    let cases: &[(&str, &[&str], u64, &str)] = &[
        ("ed25519", &["-t", "ed25519"], 256, "openssh"),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256"], 256, "openssh"),
        ("ecdsa384", &["-t", "ecdsa", "-b", "384"], 384, "openssh"),
        ("ecdsa521", &["-t", "ecdsa"], 521, "openssh"),
        (
            "ecdsa256pem",
            &["-t", "ecdsa", "-b", "256", "--format", "pem"],
            256,
            "pem",
        ),
        (
            "ecdsa384pem",
            &["-t", "ecdsa", "-b", "384", "--format", "pem"],
            384,
            "pem",
        ),
        (
            "ecdsa521pem",
            &["-t", "ecdsa", "--format", "pem"],
            521,
            "pem",
        ),
        ("rsa2048", &["-t", "rsa", "-b", "2048"], 2048, "openssh"),
        ("rsa3072", &["-t", "rsa", "-b", "3072"], 3072, "openssh"),
        ("rsa4096", &["-t", "rsa"], 4096, "openssh"),
        (
            "rsa2048pem",
            &["-t", "rsa", "-b", "2048", "--format", "pem"],
            2048,
            "pem",
        ),
        (
            "rsa3072pem",
            &["-t", "rsa", "-b", "3072", "--format", "pem"],
            3072,
            "pem",
        ),
        ("rsa4096pem", &["-t", "rsa", "--format", "pem"], 4096, "pem"),
        (
            "ed25519rounds",
            &["-t", "ed25519", "-a", "32"],
            256,
            "openssh",
        ),
    ];
    // RSA generation is the slow part: make the keys two at a time. keyrotate takes one run at a
    // time per SSH directory, so each thread works on its own (writing with -f into `ssh`).
    let docs: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(2))
            .enumerate()
            .map(|(i, chunk)| {
                let (ssh, pass) = (&ssh, &pass);
                let lock_dir = tmp.path().join(format!("worker{i}"));
                fs::create_dir(&lock_dir).unwrap();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, args, _, _)| {
                            let path = ssh.join(format!("id_{name}"));
                            let mut all = args.to_vec();
                            all.extend(["-f", path.to_str().unwrap(), "-C", "test@example"]);
                            generate_json(&lock_dir, pass, &all)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let (check, _) = check_json(&ssh, &[]);
    for ((name, _, bits, format), doc) in cases.iter().zip(&docs) {
        let key = ssh.join(format!("id_{name}"));
        let public = ssh.join(format!("id_{name}.pub"));
        assert_eq!(doc["private_key"], key.to_string_lossy().as_ref(), "{name}");
        assert_eq!(
            doc["public_key"],
            public.to_string_lossy().as_ref(),
            "{name}"
        );
        assert_eq!(doc["backup_dir"], serde_json::Value::Null);
        let pub_line = fs::read_to_string(&public).unwrap();
        assert!(
            pub_line.ends_with(" test@example\n"),
            "{name}: {pub_line:?}"
        );
        assert_eq!(doc["public_key_line"], pub_line.trim_end());
        // The right passphrase opens it and gives back the .pub; a wrong one does not.
        let derived = derive_public(&key, PASSPHRASE)
            .unwrap_or_else(|| panic!("{name}: ssh-keygen -y refused"));
        assert_eq!(key_part(&derived), key_part(&pub_line), "{name}");
        assert_eq!(
            derive_public(&key, "not the passphrase at all"),
            None,
            "{name}"
        );
        assert_eq!(derive_public(&key, ""), None, "{name}");
        // ssh-keygen -l agrees on size and fingerprint, from the private file and from the .pub.
        for file in [&key, &public] {
            let l = keygen_l(file).unwrap();
            assert_eq!(l.bits, *bits, "{name}");
            assert_eq!(doc["fingerprint"], l.fingerprint.as_str(), "{name}");
        }
        assert_eq!(mode_of(&key), 0o600, "{name}");
        assert_eq!(mode_of(&public), 0o644, "{name}");
        let text = fs::read_to_string(&key).unwrap();
        match *format {
            "openssh" => assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")),
            _ => {
                let label = if name.starts_with("rsa") { "RSA" } else { "EC" };
                assert!(
                    text.starts_with(&format!(
                        "-----BEGIN {label} PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
                    )),
                    "{name}: {text}"
                );
            }
        }
        // keyrotate check sees a healthy key (PEM is only `legacy-format`, an info).
        let e = entry(&check, &key);
        assert_eq!(e["format"], *format, "{name}");
        assert_eq!(e["encrypted"], true, "{name}");
        let problems: Vec<&str> = e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "info")
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if *bits == 2048 {
            &["weak-key-size"]
        } else {
            &[]
        };
        assert_eq!(problems, expected, "{name}: {e:#}");
    }
    let rounds = entry(&check, &ssh.join("id_ed25519rounds"));
    assert_eq!(rounds["kdf_rounds"], 32);
    assert_eq!(entry(&check, &ssh.join("id_ecdsa521"))["kdf_rounds"], 16);
    // OpenSSH's own format uses aes256-ctr with bcrypt-pbkdf, as ssh-keygen does.
    let text = keyrotate(&ssh).arg("check").output().unwrap().stdout;
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("aes256-ctr, bcrypt-pbkdf, 16 rounds")
    );
}

#[test]
fn default_path_comment_and_text_output() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = pass_file(tmp.path(), "passphrase.txt", PASSPHRASE);
    let out = keyrotate(&ssh)
        .args(["generate", "-t", "ecdsa", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "no spinner or noise when stderr is not a terminal"
    );
    let key = ssh.join("id_ecdsa_jasmin");
    let text = String::from_utf8(out.stdout).unwrap();
    let pub_line = fs::read_to_string(ssh.join("id_ecdsa_jasmin.pub")).unwrap();
    assert!(text.contains(&key.display().to_string()), "{text}");
    assert!(text.contains(pub_line.trim_end()), "{text}");
    assert!(
        text.contains(&keygen_l(&key).unwrap().fingerprint),
        "{text}"
    );
    assert!(!text.contains(PASSPHRASE));
    // The comment is user@host, as ssh-keygen writes it.
    let user = String::from_utf8(run_ok(Command::new("id").arg("-un")).stdout).unwrap();
    let comment = pub_line.split_whitespace().nth(2).unwrap();
    assert!(
        comment.starts_with(&format!("{}@", user.trim())),
        "{comment}"
    );
    // Another service gets its own file.
    keyrotate(&ssh)
        .args([
            "generate",
            "-t",
            "ed25519",
            "--service",
            "archer2",
            "-q",
            "--passphrase-file",
        ])
        .arg(&pass)
        .assert()
        .success()
        .stdout("");
    assert!(ssh.join("id_ed25519_archer2").exists());
}

#[test]
fn a_missing_ssh_dir_is_created_private_and_files_are_born_private_under_any_umask() {
    for umask in ["000", "077", "022"] {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path().join("home").join(".ssh");
        fs::create_dir(tmp.path().join("home")).unwrap();
        let pass = pass_file(tmp.path(), "passphrase.txt", PASSPHRASE);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask}; exec \"$0\" --ssh-dir \"$1\" generate -t ed25519 -q --passphrase-file \"$2\""
            ))
            .arg(bin())
            .arg(&ssh)
            .arg(&pass)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(mode_of(&ssh), 0o700, "umask {umask}");
        assert_eq!(
            mode_of(&ssh.join("id_ed25519_jasmin")),
            0o600,
            "umask {umask}"
        );
        assert_eq!(
            mode_of(&ssh.join("id_ed25519_jasmin.pub")),
            0o644,
            "umask {umask}"
        );
        let leftovers: Vec<_> = fs::read_dir(&ssh)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".keyrotate-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn every_refusal_exits_2_and_writes_nothing() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let good = pass_file(tmp.path(), "passphrase.txt", PASSPHRASE);
    let existing = generate(&ssh, spec("id_ed25519_openssh_enc"));
    let write_pass = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        fs::write(&p, text).unwrap();
        p
    };
    let empty = write_pass("empty", "\n");
    let short = write_pass("short", "Xy7!kq\n");
    let weak = write_pass("weak", "password1234\n");
    let missing_dir = tmp.path().join("no").join("such");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--passphrase-file".into(), empty.display().to_string()],
            "empty",
        ),
        (
            vec!["--passphrase-file".into(), short.display().to_string()],
            "at least 10",
        ),
        (
            vec!["--passphrase-file".into(), weak.display().to_string()],
            "too easy to guess",
        ),
        (vec![], "no terminal"),
        (
            vec![
                "-f".into(),
                existing.display().to_string(),
                "--passphrase-file".into(),
                good.display().to_string(),
            ],
            "already exists",
        ),
        (
            vec![
                "--format".into(),
                "pem".into(),
                "-t".into(),
                "ed25519".into(),
            ],
            "never PEM",
        ),
        (
            vec!["-t".into(), "rsa".into(), "-b".into(), "1024".into()],
            "2048 to 16384",
        ),
        (
            vec!["-t".into(), "ecdsa".into(), "-b".into(), "512".into()],
            "256, 384 or 521",
        ),
        (
            vec!["-t".into(), "ed25519".into(), "-b".into(), "256".into()],
            "fixed size",
        ),
        (vec!["-a".into(), "4".into()], "below OpenSSH's default"),
        (
            vec!["--format".into(), "pem".into(), "-a".into(), "32".into()],
            "PEM has no rounds",
        ),
        (vec!["-C".into(), "two\nlines".into()], "control characters"),
        (
            vec!["--service".into(), "../../etc".into()],
            "cannot be part of a key file name",
        ),
        (
            vec!["-f".into(), format!("{}.pub", existing.display())],
            "ends in .pub",
        ),
        (
            vec!["-f".into(), missing_dir.join("key").display().to_string()],
            "does not exist",
        ),
        (
            vec![
                "--passphrase-file".into(),
                tmp.path().join("nope").display().to_string(),
            ],
            "cannot read the passphrase",
        ),
    ];
    let before = file_contents(tmp.path());
    for (args, message) in &cases {
        let out = keyrotate(&ssh).arg("generate").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(err.contains("\nhint: "), "{args:?}: {err}");
        assert!(
            !err.contains(PASSPHRASE) && !err.contains("password1234"),
            "{err}"
        );
        assert_eq!(
            file_contents(tmp.path()),
            before,
            "{args:?} changed something"
        );
    }
    // The hint for an existing key names both ways forward.
    let out = keyrotate(&ssh)
        .args(["generate", "-f"])
        .arg(&existing)
        .arg("--passphrase-file")
        .arg(&good)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--force") && err.contains("keyrotate rotate"),
        "{err}"
    );
    // No SSH directory is created by a refusal either.
    let fresh = tmp.path().join("fresh-ssh");
    let out = keyrotate(&fresh)
        .args(["generate", "--passphrase-file"])
        .arg(&short)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.exists());
}

#[test]
fn force_backs_up_the_old_pair_and_never_writes_through_a_symlink() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = pass_file(tmp.path(), "passphrase.txt", PASSPHRASE);
    let first = generate_json(&ssh, &pass, &["-t", "ed25519"]);
    let key = PathBuf::from(first["private_key"].as_str().unwrap());
    let old = (
        fs::read(&key).unwrap(),
        fs::read(format!("{}.pub", key.display())).unwrap(),
    );
    let second = generate_json(&ssh, &pass, &["-t", "ed25519", "--force"]);
    assert_ne!(first["fingerprint"], second["fingerprint"]);
    let set = PathBuf::from(second["backup_dir"].as_str().expect("backup_dir"));
    assert_eq!(fs::read(set.join("id_ed25519_jasmin")).unwrap(), old.0);
    assert_eq!(fs::read(set.join("id_ed25519_jasmin.pub")).unwrap(), old.1);
    assert_eq!(
        keygen_l(&key).unwrap().fingerprint,
        second["fingerprint"].as_str().unwrap()
    );

    // A symlink at the target: refused without --force; with it, the link is replaced and the
    // file it points to is left alone.
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    fs::write(&victim, "not yours to overwrite\n").unwrap();
    let target = ssh.join("id_ecdsa_jasmin");
    std::os::unix::fs::symlink(&victim, &target).unwrap();
    let out = keyrotate(&ssh)
        .args(["generate", "-t", "ecdsa", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let doc = generate_json(&ssh, &pass, &["-t", "ecdsa", "--force"]);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "not yours to overwrite\n"
    );
    assert!(
        !fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(mode_of(&target), 0o600);
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(set.join("id_ecdsa_jasmin")).unwrap(),
        "not yours to overwrite\n"
    );
    // A dangling symlink at the .pub name counts as taken, too.
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), ssh.join("id_rsa_jasmin.pub")).unwrap();
    let out = keyrotate(&ssh)
        .args(["generate", "-t", "rsa", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!ssh.join("id_rsa_jasmin").exists());
}

#[test]
fn passphrase_from_standard_input() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut child = std::process::Command::new(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args([
            "generate",
            "-t",
            "ed25519",
            "--json",
            "--passphrase-file",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSPHRASE}\r\nsecond line is ignored\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = ssh.join("id_ed25519_jasmin");
    assert!(
        derive_public(&key, PASSPHRASE).is_some(),
        "CRLF is stripped from the line"
    );
}

/// Wait until process `pid` catches SIGINT (Linux shows caught signals in /proc/PID/status), so
/// that the test's Ctrl-C cannot arrive before keyrotate is ready for it, however loaded the box.
fn wait_for_sigint_handler(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (2 - 1)) != 0 {
            // Handler installed; give the main thread a moment to reach its read.
            std::thread::sleep(std::time::Duration::from_millis(100));
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keyrotate never installed its handler"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn ctrl_c_while_waiting_for_a_passphrase_exits_130_and_writes_nothing() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut child = std::process::Command::new(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args(["generate", "-t", "ed25519", "--passphrase-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Hold standard input open until keyrotate has exited: closing it would be an empty line.
    let stdin = child.stdin.take();
    wait_for_sigint_handler(child.id());
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let status = child.wait().unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status, status);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_dir(&ssh).unwrap().count(), 0);
}

#[test]
fn a_generated_key_logs_in_to_a_real_sshd_directly_and_through_ssh_agent() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = pass_file(tmp.path(), "passphrase.txt", PASSPHRASE);
    for (kind, args) in [
        ("ecdsa-pem", &["-t", "ecdsa", "--format", "pem"][..]),
        ("ed25519", &["-t", "ed25519"]),
    ] {
        let key = ssh.join(format!("id_{kind}"));
        let mut all = args.to_vec();
        all.extend(["-f", key.to_str().unwrap()]);
        generate_json(&ssh, &pass, &all);
        let public = PathBuf::from(format!("{}.pub", key.display()));
        let sshd = Sshd::start(&[&public]);
        let right = askpass(tmp.path(), PASSPHRASE);
        let wrong = askpass(tmp.path(), "a different passphrase");

        // Directly, the passphrase given through SSH_ASKPASS.
        let env = askpass_env(&right);
        let env: Vec<(&str, &std::ffi::OsStr)> =
            env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let out = sshd.ssh(&key, &env, false);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "logged-in",
            "{kind}: {}\nsshd: {}",
            String::from_utf8_lossy(&out.stderr),
            sshd.log()
        );
        // The wrong passphrase does not get in.
        let env = askpass_env(&wrong);
        let env: Vec<(&str, &std::ffi::OsStr)> =
            env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let out = sshd.ssh(&key, &env, false);
        assert!(
            !out.status.success(),
            "{kind}: a wrong passphrase logged in"
        );

        // Through ssh-agent, in BatchMode (no passphrase can be asked).
        let agent = Agent::start();
        let added = agent.add(&key, &right);
        assert!(
            added.status.success(),
            "{kind}: ssh-add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let fingerprint = keygen_l(&key).unwrap().fingerprint;
        assert_eq!(agent.fingerprints(), vec![fingerprint]);
        let sock = agent.socket.as_os_str().to_owned();
        let out = sshd.ssh(&public, &[("SSH_AUTH_SOCK", sock.as_os_str())], true);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "logged-in",
            "{kind} via agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--passphrase-file <(pass show jasmin)`: a pipe gives its first line, as a file does; a
/// weak passphrase from a file is refused naming the file.
#[test]
fn passphrase_from_a_pipe_and_a_weak_one_named_by_its_file() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let fifo = tmp.path().join("pass.fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            f.write_all(b"pipes carry passphrases quietly\nsecond line\n")
                .unwrap();
        })
    };
    let out = keyrotate(&ssh)
        .args(["generate", "-t", "ed25519", "--passphrase-file"])
        .arg(&fifo)
        .output()
        .unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = ssh.join("id_ed25519_jasmin");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", "pipes carry passphrases quietly", "-f"])
            .arg(&key),
    );

    let weak = tmp.path().join("weak");
    fs::write(&weak, "short\n").unwrap();
    let out = keyrotate(&ssh)
        .args(["generate", "-t", "ed25519", "--force", "--passphrase-file"])
        .arg(&weak)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the passphrase in {} is refused", weak.display())),
        "{stderr}"
    );
}
