//! Full disks and I/O errors. Every command that writes is run with too little space at every
//! fill level of a tiny tmpfs (in a private mount namespace, so the host is untouched), and with
//! EIO injected (strace) into each of its fsyncs and renames in turn. Each run must either succeed
//! with the new state whole, or exit 2 naming the file, with the old keys live and unchanged and
//! nothing partial left behind, without needing another command.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A scenario: the command, and how to tell the old state from the new.
struct Scenario {
    name: &'static str,
    args: Vec<String>,
    /// File name (in the SSH directory) -> its content before the command.
    before: Vec<(String, Vec<u8>)>,
    /// A file the successful command must have created or changed.
    changed: &'static str,
}

/// A base SSH directory for every scenario, made with ssh-keygen, plus the passphrase file.
fn scenarios(base_root: &Path) -> Vec<(Scenario, PathBuf)> {
    let pass = base_root.join("new");
    fs::write(&pass, format!("{NEW}\n")).unwrap();
    let pass_args = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("--passphrase-file".into());
        v.push(pass.to_string_lossy().into_owned());
        v
    };
    let make_base = |name: &str, keys: &[(&str, &str)]| -> PathBuf {
        let dir = base_root.join(name);
        fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o700);
        for (kind, file) in keys {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", kind, "-N", PASSPHRASE, "-f"])
                    .arg(dir.join(file)),
            );
        }
        dir
    };
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    let dir = make_base("rotate", &[("ecdsa", "id_ecdsa_jasmin")]);
    out.push((
        Scenario {
            name: "rotate",
            args: pass_args(&["rotate", "-t", "ed25519", "--no-agent", "-q"]),
            before: snapshot(&dir),
            changed: "id_ed25519_jasmin",
        },
        dir,
    ));
    let dir = make_base("generate", &[]);
    out.push((
        Scenario {
            name: "generate",
            args: pass_args(&["generate", "-t", "ed25519", "-q"]),
            before: snapshot(&dir),
            changed: "id_ed25519_jasmin",
        },
        dir,
    ));
    let dir = make_base("force", &[("ed25519", "id_ed25519_jasmin")]);
    out.push((
        Scenario {
            name: "generate --force",
            args: pass_args(&["generate", "-t", "ed25519", "--force", "-q"]),
            before: snapshot(&dir),
            changed: "id_ed25519_jasmin",
        },
        dir,
    ));
    let dir = make_base(
        "backup",
        &[("ed25519", "id_ed25519_jasmin"), ("ecdsa", "id_ecdsa_work")],
    );
    out.push((
        Scenario {
            name: "backup",
            args: vec!["backup".into(), "-q".into()],
            before: snapshot(&dir),
            changed: "key_backup",
        },
        dir,
    ));
    // Restore: version 1 backed up, version 2 live.
    let dir = make_base("restore", &[("ed25519", "id_ed25519_jasmin")]);
    let out_json = Command::new(bin())
        .arg("--ssh-dir")
        .arg(&dir)
        .args(["backup", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out_json.stdout).unwrap();
    let set = Path::new(doc["backup_dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    fs::remove_file(dir.join("id_ed25519_jasmin")).unwrap();
    fs::remove_file(dir.join("id_ed25519_jasmin.pub")).unwrap();
    fs::remove_file(dir.join(".keyrotate.lock")).unwrap();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", PASSPHRASE, "-f"])
            .arg(dir.join("id_ed25519_jasmin")),
    );
    out.push((
        Scenario {
            name: "restore",
            args: vec!["restore".into(), set, "-q".into()],
            before: snapshot(&dir),
            changed: "id_ed25519_jasmin",
        },
        dir,
    ));
    out
}

/// After a failed run: exit 2 naming a file, the old files unchanged, nothing partial.
/// After a successful one: the changed file exists. Returns whether the run succeeded.
fn verify(scenario: &Scenario, ssh: &Path, run: &Output, what: &str, fault_words: &str) -> bool {
    let err = String::from_utf8_lossy(&run.stderr);
    for p in walk(ssh) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".keyrotate-tmp-"),
            "{what}: temporary file left: {}\n{err}",
            p.display()
        );
        assert!(name != ".keyrotate-journal", "{what}: journal left\n{err}");
        assert!(name != "INCOMPLETE", "{what}: unfinished set left\n{err}");
    }
    match run.status.code() {
        Some(0) => {
            assert!(
                ssh.join(scenario.changed).exists(),
                "{what}: succeeded without its change"
            );
            true
        }
        Some(2) => {
            assert!(
                err.contains(fault_words),
                "{what}: the error does not say what happened: {err}"
            );
            assert!(
                err.starts_with("keyrotate: ") && err.contains(&ssh.display().to_string()),
                "{what}: the error names no file: {err}"
            );
            assert!(err.contains("\nhint: "), "{what}: {err}");
            for (name, bytes) in &scenario.before {
                assert_eq!(
                    &fs::read(ssh.join(name)).unwrap_or_default(),
                    bytes,
                    "{what}: {name} changed\n{err}"
                );
            }
            if scenario.name != "backup" {
                assert!(
                    scenario.before.iter().any(|(n, _)| n == scenario.changed)
                        || !ssh.join(scenario.changed).exists(),
                    "{what}: a partial new key was left"
                );
            }
            false
        }
        other => panic!("{what}: exit {other:?}: {err}"),
    }
}

/// Run the scenario in a fresh copy of `base`, under `strace` with `strace_args`.
fn run_traced(
    scenario: &Scenario,
    base: &Path,
    strace_args: &[String],
) -> (tempfile::TempDir, PathBuf, Output) {
    let (tmp, ssh) = ssh_dir_copy(Some(base));
    let run = Command::new("strace")
        .args(["-f", "-qq"])
        .args(strace_args)
        .arg(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args(&scenario.args)
        .env("HOME", tmp.path())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    (tmp, ssh, run)
}

/// How many times the scenario calls `syscall` when nothing goes wrong.
fn count_calls(scenario: &Scenario, base: &Path, syscall: &str) -> u32 {
    let (_tmp, _ssh, run) = run_traced(
        scenario,
        base,
        &["-c".into(), "-e".into(), format!("trace={syscall}")],
    );
    String::from_utf8_lossy(&run.stderr)
        .lines()
        .find(|l| l.split_whitespace().last() == Some(syscall))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|c| c.parse().ok())
        // strace lists only the calls that were made: none at all means zero.
        .unwrap_or(0)
}

#[test]
fn eio_at_every_fsync_and_rename_fails_cleanly_or_completes() {
    require_strace();
    let root = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut points = 0;
    for (scenario, base) in scenarios(root.path()) {
        for syscall in ["fsync", "rename"] {
            let calls = count_calls(&scenario, &base, syscall);
            let mut failed = 0;
            for n in 1..=calls {
                let inject = vec![
                    "-o".into(),
                    "/dev/null".into(),
                    "-e".into(),
                    format!("trace={syscall}"),
                    "-e".into(),
                    format!("inject={syscall}:error=EIO:when={n}"),
                ];
                let (_tmp, ssh, run) = run_traced(&scenario, &base, &inject);
                let what = format!("{}: EIO at {syscall} #{n} of {calls}", scenario.name);
                if !verify(&scenario, &ssh, &run, &what, "input/output error") {
                    failed += 1;
                }
                points += 1;
            }
            report.push(format!(
                "{} {syscall}: {calls} points, {failed} clean exit 2, {} completed",
                scenario.name,
                calls - failed
            ));
        }
    }
    eprintln!("EIO: {points} fault points; {}", report.join("; "));
    assert!(points > 50, "{report:?}");
}

const INNER: &str = "KEYROTATE_TEST_PRIVATE_MOUNT_NS";

/// Runs the test below inside `unshare --mount` (and a user namespace when not root), so that
/// the tmpfs mounts it makes exist only there and vanish with it.
#[test]
fn a_full_disk_at_every_fill_level_fails_cleanly_or_completes() {
    let own_ns = fs::read_link("/proc/self/ns/mnt").unwrap();
    let mut cmd = Command::new("unshare");
    if !is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    let out = cmd
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "full_disk_in_a_private_mount_namespace",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(INNER, own_ns)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{stderr}"
    );
    for line in stderr.lines().filter(|l| l.starts_with("ENOSPC")) {
        eprintln!("{line}");
    }
}

#[test]
#[ignore = "run by a_full_disk_at_every_fill_level_fails_cleanly_or_completes, inside unshare"]
fn full_disk_in_a_private_mount_namespace() {
    // Refuse to mount anything unless this really is a separate mount namespace.
    let outer = std::env::var(INNER)
        .expect("run a_full_disk_at_every_fill_level_fails_cleanly_or_completes instead");
    let here = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(
        here.to_string_lossy(),
        outer,
        "not in a private mount namespace: refusing to mount"
    );

    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut report = Vec::new();
    let mut levels = 0;
    for (scenario, base) in scenarios(root.path()) {
        let mut failed = 0;
        let mut done = false;
        for pages in 1..=200u32 {
            run_ok(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o"])
                    .arg(format!("size={}k,mode=755", pages * 4))
                    .arg("tmpfs")
                    .arg(&mnt),
            );
            let ssh = mnt.join(".ssh");
            let fits = fs::create_dir(&ssh).is_ok()
                && std::panic::catch_unwind(|| copy_tree(&base, &ssh)).is_ok();
            if fits {
                set_mode(&ssh, 0o700);
                let run = Command::new(bin())
                    .arg("--ssh-dir")
                    .arg(&ssh)
                    .args(&scenario.args)
                    .env("HOME", &mnt)
                    .env_remove("SSH_AUTH_SOCK")
                    .output()
                    .unwrap();
                let what = format!("{}: {} KiB tmpfs", scenario.name, pages * 4);
                done = verify(&scenario, &ssh, &run, &what, "no space left on device");
                if !done {
                    failed += 1;
                }
                levels += 1;
            }
            run_ok(Command::new("umount").arg(&mnt));
            if done {
                break;
            }
        }
        assert!(
            done,
            "{}: never succeeded, even with 800 KiB",
            scenario.name
        );
        report.push(format!(
            "{}: {failed} full-disk levels failed cleanly",
            scenario.name
        ));
    }
    eprintln!("ENOSPC: {levels} fill levels; {}", report.join("; "));
}
