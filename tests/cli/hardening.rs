//! Symlinks, races, permissions and secrets, checked on the real binary with real tools:
//! - symlinked keys, SSH directories and backup stores are never written through;
//! - a file appearing while keyrotate writes (strace holds the syscall) is left alone;
//! - under umask 000 and 077, strace shows every file created 0600 and only `.pub` files widened;
//! - the passphrase never appears in any write, send or exec (strace -xx), output or file;
//! - two rotations at once: one wins, the other exits 2 naming the lock, the pair stays whole.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::openssh::Agent;
use crate::common::*;

#[test]
fn symlinked_keys_are_retired_by_content_and_their_targets_left_alone() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let dotfiles = tempfile::tempdir().unwrap();
    let real = dotfiles.path().join("id_ecdsa_jasmin");
    keygen(&real, "ecdsa", &[]);
    let (real_bytes, real_pub) = (fs::read(&real).unwrap(), fs::read(pub_of(&real)).unwrap());
    std::os::unix::fs::symlink(&real, ssh.join("id_ecdsa_jasmin")).unwrap();
    std::os::unix::fs::symlink(pub_of(&real), ssh.join("id_ecdsa_jasmin.pub")).unwrap();
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--json",
            "--passphrase-file",
        ])
        .arg(pass_file(tmp.path(), "passphrase", NEW))
        .output()
        .unwrap();
    let doc = json_ok(&out);
    // The links left the live directory; the files they pointed to are untouched.
    assert!(fs::symlink_metadata(ssh.join("id_ecdsa_jasmin")).is_err());
    assert!(fs::symlink_metadata(ssh.join("id_ecdsa_jasmin.pub")).is_err());
    assert_eq!(fs::read(&real).unwrap(), real_bytes);
    assert_eq!(fs::read(pub_of(&real)).unwrap(), real_pub);
    // The backup holds their content, as regular files.
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(fs::read(set.join("id_ecdsa_jasmin")).unwrap(), real_bytes);
    assert!(
        !fs::symlink_metadata(set.join("id_ecdsa_jasmin"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_symlinked_ssh_dir_is_used_but_a_symlinked_key_backup_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real-ssh");
    fs::create_dir(&real).unwrap();
    set_mode(&real, 0o700);
    let link = tmp.path().join("ssh-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    keygen(&real.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let pass = pass_file(tmp.path(), "passphrase", NEW);
    // Through a symlinked SSH directory, everything lands in the real one.
    let out = keyrotate(&link)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "-q",
            "--passphrase-file",
        ])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(real.join("id_ed25519_jasmin").exists() && real.join("key_backup").is_dir());

    // A key_backup that is a symlink: nothing is ever written through it.
    let elsewhere = tempfile::tempdir().unwrap();
    fs::rename(real.join("key_backup"), tmp.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), real.join("key_backup")).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = walk(&real)
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with(".keyrotate.lock"))
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    let other = tmp.path().join("other-passphrase");
    fs::write(&other, "yet another new passphrase 7\n").unwrap();
    let other = other.to_string_lossy().into_owned();
    let runs: Vec<Vec<&str>> = vec![
        vec![
            "rotate",
            "-t",
            "ecdsa",
            "--no-agent",
            "--passphrase-file",
            &other,
        ],
        vec![
            "generate",
            "-t",
            "ed25519",
            "--force",
            "--passphrase-file",
            &other,
        ],
        vec!["backup"],
        vec!["backup", "--list"],
    ];
    for args in runs {
        let out = keyrotate(&link).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("symbolic link"), "{args:?}: {err}");
        assert_eq!(
            fs::read_dir(elsewhere.path()).unwrap().count(),
            0,
            "{args:?} wrote through the link"
        );
    }
    let after: Vec<(PathBuf, Vec<u8>)> = walk(&real)
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with(".keyrotate.lock"))
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    assert_eq!(before, after, "a refused command changed the live keys");
}

/// Run generate while strace holds its n-th `linkat` for 1.5 s; meanwhile create `appear`.
fn race(n: u32, appear: &str) {
    require_strace();
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = pass_file(tmp.path(), "passphrase", NEW);
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=linkat", "-e"])
        .arg(format!("inject=linkat:delay_enter=1500000:when={n}"))
        .arg(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args(["generate", "-t", "ed25519", "--passphrase-file"])
        .arg(&pass)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until keyrotate is past its commit point (the journal says so), then race it.
    let journal = ssh.join(".keyrotate-journal");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"committing\"")) {
        assert!(
            Instant::now() < deadline,
            "keyrotate never reached its commit point"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let foreign = ssh.join(appear);
    fs::write(&foreign, "written by something else\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("appeared while keyrotate was writing"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&foreign).unwrap(),
        "written by something else\n"
    );
    let names: Vec<String> = fs::read_dir(&ssh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".keyrotate.lock")
        .collect();
    assert_eq!(
        names,
        [appear.to_string()],
        "only the foreign file remains: {names:?}"
    );
}

#[test]
fn a_key_that_appears_while_keyrotate_writes_is_never_overwritten() {
    // The private key's name taken first; then the .pub's, after our private key was linked.
    race(1, "id_ed25519_jasmin");
    race(2, "id_ed25519_jasmin.pub");
}

/// The syscalls of a run, traced with paths (`-y`), under `umask`.
fn trace(umask: &str, ssh: &Path, home: &Path, args: &[String], out: &Path) -> String {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask}; exec strace -f -qq -y -o \"$0\" -e trace=openat,open,creat,mkdir,mkdirat,chmod,fchmod,fchmodat \"$@\""
        ))
        .arg(out)
        .arg(bin())
        .arg("--ssh-dir")
        .arg(ssh)
        .args(args)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{args:?} under umask {umask}");
    fs::read_to_string(out).unwrap()
}

/// The mode argument of a traced call: the last `, 0NNN` before `) = `.
fn mode_arg(line: &str) -> Option<u32> {
    let call = &line[..line.rfind(") = ")?];
    let last = call.rsplit(", ").next()?;
    u32::from_str_radix(last.trim(), 8).ok()
}

#[test]
fn private_files_are_born_0600_under_any_umask_and_only_pub_files_are_widened() {
    require_strace();
    let mut checked = 0;
    for umask in ["000", "077"] {
        let (tmp, ssh) = ssh_dir_copy(None);
        keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &[]);
        let pass = pass_file(tmp.path(), "passphrase", NEW);
        let p = pass.to_string_lossy().into_owned();
        let runs: Vec<Vec<String>> = vec![
            vec![
                "generate".into(),
                "-t".into(),
                "ed25519".into(),
                "--service".into(),
                "x".into(),
                "--passphrase-file".into(),
                p.clone(),
            ],
            vec![
                "generate".into(),
                "-t".into(),
                "ed25519".into(),
                "--service".into(),
                "x".into(),
                "--force".into(),
                "--passphrase-file".into(),
                p.clone(),
            ],
            vec![
                "rotate".into(),
                "-t".into(),
                "ed25519".into(),
                "--no-agent".into(),
                "--passphrase-file".into(),
                p.clone(),
            ],
            vec!["backup".into()],
        ];
        for (i, args) in runs.iter().enumerate() {
            let text = trace(
                umask,
                &ssh,
                tmp.path(),
                args,
                &tmp.path().join(format!("trace{i}")),
            );
            for line in text.lines() {
                let creates = line.contains("O_CREAT") || line.contains(" creat(");
                if creates && (line.contains(&*ssh.to_string_lossy())) {
                    assert_eq!(
                        mode_arg(line),
                        Some(0o600),
                        "umask {umask}: created wider than 0600: {line}"
                    );
                    checked += 1;
                }
                if line.contains("mkdir") && line.contains(&*ssh.to_string_lossy()) {
                    assert_eq!(mode_arg(line), Some(0o700), "umask {umask}: {line}");
                }
                if line.contains("chmod(") && !line.contains("fchmod(") {
                    panic!(
                        "umask {umask}: a chmod by path (keyrotate only changes its own handles): {line}"
                    );
                }
                if line.contains("fchmod") {
                    let mode = mode_arg(line).unwrap_or_else(|| panic!("{line}"));
                    if mode & 0o077 != 0 {
                        assert!(
                            line.contains(".pub"),
                            "umask {umask}: a non-.pub file widened: {line}"
                        );
                    }
                }
            }
        }
        for p in walk(&ssh) {
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_file()
                && fs::read(&p)
                    .unwrap()
                    .windows(11)
                    .any(|w| w == b"PRIVATE KEY")
            {
                assert_eq!(
                    meta.permissions().mode() & 0o077,
                    0,
                    "umask {umask}: {}",
                    p.display()
                );
            }
        }
    }
    assert!(checked > 30, "only {checked} file creations seen");
}

#[test]
fn the_passphrase_never_leaves_the_encrypted_key() {
    require_strace();
    let (tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let pass = pass_file(tmp.path(), "passphrase", NEW);
    let agent = Agent::start();
    let log = tmp.path().join("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-xx", "-s", "1000000", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=write,writev,pwrite64,pwritev,sendmsg,sendto,execve",
        ])
        .arg(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args(["rotate", "-t", "ed25519", "--json", "--passphrase-file"])
        .arg(&pass)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traced = fs::read_to_string(&log).unwrap();
    // -xx prints every byte as \xNN: look for the passphrase that way, and for a long piece of it.
    let hex = |s: &str| s.bytes().map(|b| format!("\\x{b:02x}")).collect::<String>();
    assert!(
        traced.contains(&hex("ed25519")),
        "the trace does not show written data"
    );
    for needle in [NEW, &NEW[..12], &NEW[NEW.len() - 12..]] {
        assert!(
            !traced.contains(&hex(needle)),
            "the passphrase was written or sent somewhere"
        );
    }
    // keyrotate runs no other program (so no child sees it in argv or environment).
    assert_eq!(
        traced.matches("execve(").count(),
        1,
        "keyrotate ran another program"
    );
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(NEW));
    }
    // No file other than the passphrase file itself holds it.
    for p in walk(tmp.path()) {
        if p.is_file() && p != pass && p != log {
            let bytes = fs::read(&p).unwrap();
            assert!(
                !bytes.windows(NEW.len()).any(|w| w == NEW.as_bytes()),
                "{} holds the passphrase",
                p.display()
            );
        }
    }
    assert_eq!(
        agent.fingerprints().len(),
        1,
        "the agent path was exercised"
    );
}

#[test]
fn two_rotations_at_once_one_wins_and_the_other_names_the_lock() {
    require_strace();
    let (tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let pass = pass_file(tmp.path(), "passphrase", NEW);
    let other = tmp.path().join("other");
    fs::write(&other, "yet another new passphrase 7\n").unwrap();
    // The first is slowed (each fsync held 100 ms) so that the second surely meets it.
    let first = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync",
            "-e",
            "inject=fsync:delay_enter=100000",
        ])
        .arg(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "-q",
            "--passphrase-file",
        ])
        .arg(&pass)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = ssh.join(".keyrotate-journal");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !journal.exists() {
        assert!(
            Instant::now() < deadline,
            "the first rotation never started its transaction"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let second = keyrotate(&ssh)
        .args([
            "rotate",
            "-t",
            "ecdsa",
            "--no-agent",
            "-q",
            "--passphrase-file",
        ])
        .arg(&other)
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the second did not fail fast"
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&ssh.join(".keyrotate.lock").display().to_string()),
        "{err}"
    );
    // The pair is the first rotation's, whole.
    let new = ssh.join("id_ed25519_jasmin");
    let derived = Command::new("ssh-keygen")
        .args(["-y", "-P", NEW, "-f"])
        .arg(&new)
        .output()
        .unwrap();
    assert!(derived.status.success());
    let pub_line = fs::read_to_string(pub_of(&new)).unwrap();
    assert!(
        pub_line.starts_with(
            String::from_utf8(derived.stdout)
                .unwrap()
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .as_str()
        )
    );
    assert!(!ssh.join("id_ecdsa_jasmin").exists());
}
