//! Crash safety: `rotate` and `generate --force` killed with SIGKILL at every write, fsync,
//! rename, link, unlink and mkdir in turn (strace's syscall fault injection, on the real binary),
//! each followed by one more keyrotate command. Afterwards the live pair must be wholly old or
//! wholly new, the old key must be intact somewhere under the SSH directory, no temporary file or
//! journal may remain, and no private file may be readable by others.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const NEW: &str = "a brand new passphrase of mine";
const SYSCALLS: &[&str] = &["write", "fsync", "rename", "linkat", "unlink", "mkdir"];

fn require_strace() {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "strace is needed for the crash tests: apt-get install strace (.ci/run does)"
    );
}

/// Every path under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        out.push(p.clone());
        if meta.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn opens(key: &Path, passphrase: &str) -> Option<String> {
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(key)
        .output()
        .unwrap();
    out.status.success().then(|| {
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn key_part(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

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
        for p in &all {
            let name = p.file_name().unwrap().to_string_lossy();
            assert!(
                !name.starts_with(".keyrotate-tmp-"),
                "{what}: temporary file left: {}",
                p.display()
            );
            assert!(name != ".keyrotate-journal", "{what}: journal left");
            let meta = fs::symlink_metadata(p).unwrap();
            if meta.is_file() {
                let text = fs::read(p).unwrap();
                if text.windows(11).any(|w| w == b"PRIVATE KEY") {
                    assert_eq!(
                        meta.permissions().mode() & 0o077,
                        0,
                        "{what}: {} is readable by others",
                        p.display()
                    );
                }
            }
        }
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
        let derived = opens(&self.new_private, NEW);
        assert_eq!(
            derived.as_deref(),
            Some(key_part(&new_pub).as_str()),
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
/// one more command, and check the state. Returns every outcome.
fn kill_at_every_step(
    base: &Path,
    args: &[&str],
    expect: impl Fn(&Path) -> Expect<'_>,
) -> Vec<(String, u32, Outcome)> {
    require_strace();
    let pass_dir = tempfile::tempdir().unwrap();
    let pass = pass_dir.path().join("new");
    fs::write(&pass, format!("{NEW}\n")).unwrap();
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
                .arg("--passphrase-file")
                .arg(&pass)
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
            let outcome = expect(&ssh).check(&what);
            outcomes.push((syscall.to_string(), n, outcome));
            if !killed {
                assert_eq!(
                    outcome,
                    Outcome::New,
                    "a completed run must leave the new key"
                );
                break;
            }
            assert!(n < 300, "{syscall}: still being killed after 300 calls");
        }
    }
    outcomes
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
    let outcomes = kill_at_every_step(
        &base,
        &[
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--update-config",
            "-q",
        ],
        |ssh| Expect {
            ssh,
            old_private: ssh.join("id_ecdsa_jasmin"),
            old_bytes: old_bytes.clone(),
            old_pub_bytes: old_pub_bytes.clone(),
            old_fingerprint: old_fingerprint.clone(),
            new_private: ssh.join("id_ed25519_jasmin"),
            config: true,
        },
    );
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
    let outcomes = kill_at_every_step(
        &base,
        &["generate", "-t", "ed25519", "--force", "-q"],
        |ssh| Expect {
            ssh,
            old_private: ssh.join("id_ed25519_jasmin"),
            old_bytes: old_bytes.clone(),
            old_pub_bytes: old_pub_bytes.clone(),
            old_fingerprint: old_fingerprint.clone(),
            new_private: ssh.join("id_ed25519_jasmin"),
            config: false,
        },
    );
    let text = summary(&outcomes);
    eprintln!("generate --force: {text}");
    assert!(outcomes.len() - SYSCALLS.len() >= 20, "{text}");
    assert!(
        outcomes.iter().any(|(_, _, o)| *o == Outcome::Old),
        "{text}"
    );
}
