//! Crash safety: `rotate` and `generate --force` killed with SIGKILL at every write, fsync,
//! rename, link, unlink and mkdir in turn (strace's syscall fault injection, on the real binary),
//! each followed by one more keyrotate command. Afterwards the live pair must be wholly old or
//! wholly new, the old key must be intact somewhere under the SSH directory, no temporary file or
//! journal may remain, and no private file may be readable by others.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const SYSCALLS: &[&str] = &["write", "fsync", "rename", "linkat", "unlink", "mkdir"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Old,
    New,
}

/// The state every crash must leave once the next command has run.
struct Expect<'a> {
    ssh: &'a Path,
    old_private: PathBuf,
    old_bytes: Vec<u8>,
    old_pub_bytes: Vec<u8>,
    old_fingerprint: String,
    new_private: PathBuf,
    /// Whether the config file takes part (rotate --update-config).
    config: bool,
}

impl Expect<'_> {
    fn check(&self, what: &str) -> Outcome {
        let ssh = self.ssh;
        let all = walk(ssh);
        // The old key is intact somewhere under the SSH directory.
        assert!(
            all.iter()
                .any(|p| p.is_file() && fs::read(p).unwrap() == self.old_bytes),
            "{what}: the old private key is nowhere under the SSH directory"
        );
        let old_pub = PathBuf::from(format!("{}.pub", self.old_private.display()));
        let new_pub = PathBuf::from(format!("{}.pub", self.new_private.display()));
        let retired = fs::read_to_string(ssh.join("key_backup/RETIRED")).unwrap_or_default();
        let config = fs::read_to_string(ssh.join("config")).unwrap_or_default();
        let same_path = self.old_private == self.new_private;
        let live_is_old = self.old_private.exists()
            && fs::read(&self.old_private).unwrap() == self.old_bytes
            && fs::read(&old_pub).unwrap() == self.old_pub_bytes
            && (same_path || (!self.new_private.exists() && !new_pub.exists()));
        if live_is_old {
            assert!(
                !retired.contains(&self.old_fingerprint),
                "{what}: the live old key is recorded as retired"
            );
            if self.config {
                assert!(
                    config.contains("id_ecdsa_jasmin"),
                    "{what}: config does not name the old key"
                );
            }
            return Outcome::Old;
        }
        // Otherwise it must be wholly new: the new pair present and consistent, the old gone.
        assert!(
            self.new_private.exists() && new_pub.exists(),
            "{what}: neither wholly old nor wholly new"
        );
        let derived = opens_as(&self.new_private, NEW);
        assert_eq!(
            derived.as_deref(),
            Some(key_part(&fs::read_to_string(&new_pub).unwrap()).as_str()),
            "{what}: new pair inconsistent"
        );
        if !same_path {
            assert!(
                !self.old_private.exists() && !old_pub.exists(),
                "{what}: old pair still live"
            );
        }
        if self.config {
            assert!(
                retired.contains(&self.old_fingerprint),
                "{what}: old key not recorded as retired"
            );
            assert!(
                config.contains("id_ed25519_jasmin"),
                "{what}: config not updated"
            );
        }
        Outcome::New
    }
}

/// Kill `args` at the n-th call of each syscall in turn (n = 1, 2, ... until a run completes), run
/// one more command, and check the state with `verify`. Returns every outcome.
fn kill_at_every_step(
    base: &Path,
    args: &[String],
    verify: impl Fn(&Path, &str) -> Outcome,
) -> Vec<(String, u32, Outcome)> {
    require_strace();
    let mut outcomes = Vec::new();
    for syscall in SYSCALLS {
        for n in 1..=300u32 {
            let (tmp, ssh) = ssh_dir_copy(Some(base));
            let run = Command::new("strace")
                .args(["-f", "-qq", "-o", "/dev/null", "-e"])
                .arg(format!("trace={syscall}"))
                .arg("-e")
                .arg(format!("inject={syscall}:signal=SIGKILL:when={n}"))
                .arg(bin())
                .arg("--ssh-dir")
                .arg(&ssh)
                .args(args)
                .env("HOME", tmp.path())
                .env_remove("SSH_AUTH_SOCK")
                .output()
                .unwrap();
            let killed = run.status.code().is_none();
            if !killed {
                assert_eq!(
                    run.status.code(),
                    Some(0),
                    "{syscall} #{n}: {}",
                    String::from_utf8_lossy(&run.stderr)
                );
            }
            // One more keyrotate command finishes or undoes what was interrupted.
            let next = Command::new(bin())
                .arg("--ssh-dir")
                .arg(&ssh)
                .args(["check", "--json"])
                .env("HOME", tmp.path())
                .env_remove("SSH_AUTH_SOCK")
                .output()
                .unwrap();
            let code = next.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{syscall} #{n}: check: {}",
                String::from_utf8_lossy(&next.stderr)
            );
            let what = format!("killed at {syscall} #{n}");
            common_invariants(&ssh, &what);
            let outcome = verify(&ssh, &what);
            outcomes.push((syscall.to_string(), n, outcome));
            if !killed {
                assert_eq!(
                    outcome,
                    Outcome::New,
                    "a completed run must leave the new state"
                );
                break;
            }
            assert!(n < 300, "{syscall}: still being killed after 300 calls");
        }
    }
    outcomes
}

/// After any crash and one more command: no temporary file, journal or unfinished set; every
/// backup set verifies; no private file is readable by others.
fn common_invariants(ssh: &Path, what: &str) {
    for p in walk(ssh) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".keyrotate-tmp-"),
            "{what}: temporary file left: {}",
            p.display()
        );
        assert!(name != ".keyrotate-journal", "{what}: journal left");
        assert!(
            name != "INCOMPLETE",
            "{what}: unfinished backup set left: {}",
            p.display()
        );
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_file() {
            let text = fs::read(&p).unwrap();
            if text.windows(11).any(|w| w == b"PRIVATE KEY") {
                assert_eq!(
                    meta.permissions().mode() & 0o077,
                    0,
                    "{what}: {} is readable by others",
                    p.display()
                );
            }
        }
        if meta.is_dir() && p.parent().is_some_and(|d| d.ends_with("key_backup")) {
            let sums = Command::new("sha256sum")
                .args(["--quiet", "-c", "SHA256SUMS"])
                .current_dir(&p)
                .output()
                .unwrap();
            assert!(
                sums.status.success(),
                "{what}: set {} does not verify",
                p.display()
            );
        }
    }
}

fn with_passphrase(args: &[&str], pass: &Path) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--passphrase-file".into());
    all.push(pass.to_string_lossy().into_owned());
    all
}

fn summary(outcomes: &[(String, u32, Outcome)]) -> String {
    SYSCALLS
        .iter()
        .map(|s| {
            let points = outcomes.iter().filter(|(c, _, _)| c == s).count() - 1;
            let new = outcomes
                .iter()
                .filter(|(c, _, o)| c == s && *o == Outcome::New)
                .count()
                - 1;
            format!(
                "{s}: {points} kill points ({} old, {new} new)",
                points - new
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn rotate_killed_at_every_step_leaves_the_old_or_the_new_key_whole() {
    let base_tmp = tempfile::tempdir().unwrap();
    let base = base_tmp.path().join("base");
    fs::create_dir(&base).unwrap();
    let old = base.join("id_ecdsa_jasmin");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", PASSPHRASE, "-C", "old", "-f"])
            .arg(&old),
    );
    fs::write(
        base.join("config"),
        "Host jasmin\n  IdentityFile ~/.ssh/id_ecdsa_jasmin\n",
    )
    .unwrap();
    let old_bytes = fs::read(&old).unwrap();
    let old_pub_bytes = fs::read(base.join("id_ecdsa_jasmin.pub")).unwrap();
    let old_fingerprint = keygen_l(&old).unwrap().fingerprint;
    let pass = base_tmp.path().join("new");
    fs::write(&pass, format!("{NEW}\n")).unwrap();
    let args = with_passphrase(
        &[
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--update-config",
            "-q",
        ],
        &pass,
    );
    let outcomes = kill_at_every_step(&base, &args, |ssh, what| {
        Expect {
            ssh,
            old_private: ssh.join("id_ecdsa_jasmin"),
            old_bytes: old_bytes.clone(),
            old_pub_bytes: old_pub_bytes.clone(),
            old_fingerprint: old_fingerprint.clone(),
            new_private: ssh.join("id_ed25519_jasmin"),
            config: true,
        }
        .check(what)
    });
    let text = summary(&outcomes);
    eprintln!("rotate: {text}");
    let killed = outcomes.len() - SYSCALLS.len();
    assert!(killed >= 40, "only {killed} kill points: {text}");
    assert!(
        outcomes.iter().any(|(_, _, o)| *o == Outcome::Old),
        "{text}"
    );
    assert!(
        outcomes
            .iter()
            .filter(|(_, _, o)| *o == Outcome::New)
            .count()
            > SYSCALLS.len(),
        "{text}"
    );
}

#[test]
fn generate_force_killed_at_every_step_leaves_the_old_or_the_new_key_whole() {
    let base_tmp = tempfile::tempdir().unwrap();
    let base = base_tmp.path().join("base");
    fs::create_dir(&base).unwrap();
    let old = base.join("id_ed25519_jasmin");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", "old", "-f"])
            .arg(&old),
    );
    let old_bytes = fs::read(&old).unwrap();
    let old_pub_bytes = fs::read(base.join("id_ed25519_jasmin.pub")).unwrap();
    let old_fingerprint = keygen_l(&old).unwrap().fingerprint;
    let pass = base_tmp.path().join("new");
    fs::write(&pass, format!("{NEW}\n")).unwrap();
    let args = with_passphrase(&["generate", "-t", "ed25519", "--force", "-q"], &pass);
    let outcomes = kill_at_every_step(&base, &args, |ssh, what| {
        Expect {
            ssh,
            old_private: ssh.join("id_ed25519_jasmin"),
            old_bytes: old_bytes.clone(),
            old_pub_bytes: old_pub_bytes.clone(),
            old_fingerprint: old_fingerprint.clone(),
            new_private: ssh.join("id_ed25519_jasmin"),
            config: false,
        }
        .check(what)
    });
    let text = summary(&outcomes);
    eprintln!("generate --force: {text}");
    assert!(outcomes.len() - SYSCALLS.len() >= 20, "{text}");
    assert!(
        outcomes.iter().any(|(_, _, o)| *o == Outcome::Old),
        "{text}"
    );
}

#[test]
fn backup_killed_at_every_step_never_touches_the_keys_and_leaves_no_partial_set() {
    let base_tmp = tempfile::tempdir().unwrap();
    let base = base_tmp.path().join("base");
    fs::create_dir(&base).unwrap();
    for (kind, name) in [("ed25519", "id_ed25519_jasmin"), ("ecdsa", "id_ecdsa_work")] {
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", PASSPHRASE, "-f"])
                .arg(base.join(name)),
        );
    }
    let live: Vec<(String, Vec<u8>)> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    let args: Vec<String> = vec!["backup".into(), "-q".into()];
    let outcomes = kill_at_every_step(&base, &args, |ssh, what| {
        for (name, bytes) in &live {
            assert_eq!(
                &fs::read(ssh.join(name)).unwrap(),
                bytes,
                "{what}: {name} changed"
            );
        }
        // Either no set at all, or one complete set holding every key.
        let sets: Vec<PathBuf> = fs::read_dir(ssh.join("key_backup"))
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        match sets.as_slice() {
            [] => Outcome::Old,
            [set] => {
                for (name, bytes) in &live {
                    assert_eq!(
                        &fs::read(set.join(name)).unwrap(),
                        bytes,
                        "{what}: copy of {name}"
                    );
                }
                Outcome::New
            }
            _ => panic!("{what}: more than one set from one backup"),
        }
    });
    let text = summary(&outcomes);
    eprintln!("backup: {text}");
    assert!(outcomes.len() - SYSCALLS.len() >= 20, "{text}");
}

#[test]
fn restore_killed_at_every_step_leaves_the_pair_whole_and_nothing_lost() {
    let base_tmp = tempfile::tempdir().unwrap();
    let base = base_tmp.path().join("base");
    fs::create_dir(&base).unwrap();
    set_mode(&base, 0o700);
    let key = base.join("id_ed25519_jasmin");
    let make = || {
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(base.join("id_ed25519_jasmin.pub"));
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", PASSPHRASE, "-f"])
                .arg(&key),
        );
        (
            fs::read(&key).unwrap(),
            fs::read(base.join("id_ed25519_jasmin.pub")).unwrap(),
        )
    };
    // Version 1 is backed up; version 2 is live when restore runs.
    let v1 = make();
    let out = Command::new(bin())
        .arg("--ssh-dir")
        .arg(&base)
        .args(["backup", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let set = Path::new(doc["backup_dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let v2 = make();
    let _ = fs::remove_file(base.join(".keyrotate.lock"));
    let args: Vec<String> = vec!["restore".into(), set, "-q".into()];
    let outcomes = kill_at_every_step(&base, &args, |ssh, what| {
        let live = (
            fs::read(ssh.join("id_ed25519_jasmin")).unwrap(),
            fs::read(ssh.join("id_ed25519_jasmin.pub")).unwrap(),
        );
        let everything: Vec<Vec<u8>> = walk(ssh)
            .iter()
            .filter(|p| p.is_file())
            .map(|p| fs::read(p).unwrap())
            .collect();
        for (version, (private, _)) in [("v1", &v1), ("v2", &v2)] {
            assert!(
                everything.contains(private),
                "{what}: {version} of the key is lost"
            );
        }
        if live == v2 {
            Outcome::Old
        } else if live == v1 {
            Outcome::New
        } else {
            panic!(
                "{what}: the live pair is neither wholly the old one nor wholly the restored one"
            );
        }
    });
    let text = summary(&outcomes);
    eprintln!("restore: {text}");
    assert!(outcomes.len() - SYSCALLS.len() >= 20, "{text}");
    assert!(
        outcomes.iter().any(|(_, _, o)| *o == Outcome::Old),
        "{text}"
    );
}
