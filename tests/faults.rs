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

/// The file-system syscalls keyrotate makes (x86_64 Linux names), for the widened fault test.
const FILE_SYSCALLS: &[&str] = &[
    "statx",
    "newfstatat",
    "openat",
    "read",
    "write",
    "getdents64",
    "readlink",
    "readlinkat",
    "rename",
    "renameat2",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "rmdir",
    "fsync",
    "close",
    "mkdir",
    "mkdirat",
    "fchmod",
    "chmod",
    "fchmodat",
    "utimensat",
    "flock",
];

/// A scenario of the widened test: its command (always `--json`) and its old files.
struct Wide {
    name: &'static str,
    args: Vec<String>,
    base: PathBuf,
}

fn wide_scenarios(root: &Path) -> Vec<Wide> {
    let pass = root.join("new");
    fs::write(&pass, format!("{NEW}\n")).unwrap();
    let with_pass = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--json".into(), "--passphrase-file".into()]);
        v.push(pass.to_string_lossy().into_owned());
        v
    };
    let base = |name: &str, keys: &[(&str, &str)]| -> PathBuf {
        let dir = root.join(name).join(".ssh");
        fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o700);
        for (kind, file) in keys {
            keygen(&dir.join(file), kind, &[]);
        }
        dir
    };
    let mut out = vec![
        Wide {
            name: "generate --force",
            args: with_pass(&["generate", "-t", "ed25519", "--force"]),
            base: base("force", &[("ed25519", "id_ed25519_jasmin")]),
        },
        Wide {
            name: "rotate (same name)",
            args: with_pass(&["rotate", "-t", "ed25519", "--no-agent"]),
            base: base("same", &[("ed25519", "id_ed25519_jasmin")]),
        },
        Wide {
            name: "rotate (type change)",
            args: with_pass(&["rotate", "-t", "ed25519", "--no-agent"]),
            base: base("type", &[("ecdsa", "id_ecdsa_jasmin")]),
        },
    ];
    let config = base("config", &[("ecdsa", "id_ecdsa_jasmin")]);
    let text = format!(
        "Host jasmin\n  IdentityFile {}\n",
        config.join("id_ecdsa_jasmin").display()
    );
    fs::write(config.join("config"), text).unwrap();
    out.push(Wide {
        name: "rotate --update-config",
        args: with_pass(&["rotate", "-t", "ed25519", "--no-agent", "--update-config"]),
        base: config,
    });
    out.push(Wide {
        name: "backup",
        args: vec!["backup".into(), "--json".into()],
        base: base(
            "backup",
            &[("ed25519", "id_ed25519_jasmin"), ("ecdsa", "id_ecdsa_work")],
        ),
    });
    // Restore: version 1 in a set, version 2 live.
    let dir = base("restore", &[("ed25519", "id_ed25519_jasmin")]);
    let doc = json_ok(&keyrotate(&dir).args(["backup", "--json"]).output().unwrap());
    let set = Path::new(doc["backup_dir"].as_str().unwrap());
    let set = set.file_name().unwrap().to_string_lossy().into_owned();
    for f in [
        "id_ed25519_jasmin",
        "id_ed25519_jasmin.pub",
        ".keyrotate.lock",
    ] {
        fs::remove_file(dir.join(f)).unwrap();
    }
    keygen(&dir.join("id_ed25519_jasmin"), "ed25519", &[]);
    out.push(Wide {
        name: "restore",
        args: vec!["restore".into(), set, "--json".into()],
        base: dir,
    });
    out
}

/// Every regular file under `dir` with its bytes (the lock file aside: it holds nothing).
fn old_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    file_contents(dir)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".keyrotate.lock"))
        .collect()
}

/// Sets of `ssh`'s store that verify: no INCOMPLETE marker, and `sha256sum -c` passes.
fn verified_sets(ssh: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(ssh.join("key_backup")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.is_dir() && !d.join("INCOMPLETE").exists() && d.join("SHA256SUMS").exists())
        .filter(|d| {
            Command::new("sha256sum")
                .args(["--quiet", "-c", "SHA256SUMS"])
                .current_dir(d)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect()
}

/// The invariant: every old file's bytes are live (anywhere in the SSH directory outside the
/// store) or in a verified set; every old private key found opens with `ssh-keygen -y` and gives
/// its old public key. Returns what is wrong, if anything.
fn old_bytes_kept(ssh: &Path, old: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    let store = ssh.join("key_backup");
    let live: Vec<(PathBuf, Vec<u8>)> = file_contents(ssh)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&store))
        .collect();
    let saved: Vec<(PathBuf, Vec<u8>)> = verified_sets(ssh)
        .iter()
        .flat_map(|s| file_contents(s))
        .chain(
            file_contents(&store)
                .into_iter()
                .filter(|(p, _)| p.parent() == Some(&store)),
        )
        .collect();
    let mut wrong = Vec::new();
    for (path, bytes) in old {
        let found = live.iter().chain(&saved).find(|(_, b)| b == bytes);
        let Some((copy, _)) = found else {
            wrong.push(format!(
                "{} is neither live nor in a verified set",
                path.display()
            ));
            continue;
        };
        let private = String::from_utf8_lossy(bytes).contains("PRIVATE KEY");
        let public = PathBuf::from(format!("{}.pub", path.display()));
        let old_pub = old.iter().find(|(p, _)| *p == public);
        if let (true, Some((_, pub_bytes))) = (private, old_pub) {
            let out = Command::new("ssh-keygen")
                .args(["-y", "-P", PASSPHRASE, "-f"])
                .arg(copy)
                .output()
                .unwrap();
            let derived = key_part(&String::from_utf8_lossy(&out.stdout));
            if !out.status.success() || derived != key_part(&String::from_utf8_lossy(pub_bytes)) {
                wrong.push(format!(
                    "{} (kept as {}) does not open",
                    path.display(),
                    copy.display()
                ));
            }
        }
    }
    wrong
}

/// What a successful run's JSON claims, checked with OpenSSH's tools.
fn success_is_true(name: &str, doc: &serde_json::Value, ssh: &Path) -> Vec<String> {
    let mut wrong = Vec::new();
    let verified = verified_sets(ssh);
    if let Some(dir) = doc["backup_dir"].as_str()
        && !verified.iter().any(|s| s == Path::new(dir))
    {
        wrong.push(format!("backup_dir {dir} is not a verified set"));
    }
    if let Some(private) = doc["private_key"].as_str() {
        let public = doc["public_key"].as_str().unwrap_or_default();
        let out = Command::new("ssh-keygen")
            .args(["-y", "-P", NEW, "-f", private])
            .output()
            .unwrap();
        let on_disk = fs::read_to_string(public).unwrap_or_default();
        if !out.status.success()
            || key_part(&String::from_utf8_lossy(&out.stdout)) != key_part(&on_disk)
        {
            wrong.push(format!("{private} does not open as the key of {public}"));
        }
        let listed = keygen_l(Path::new(public)).map(|l| l.fingerprint);
        if listed.as_deref() != doc["fingerprint"].as_str() {
            wrong.push(format!(
                "fingerprint {} is not ssh-keygen's {listed:?}",
                doc["fingerprint"]
            ));
        }
    }
    if let Some(dir) = doc["saved_dir"].as_str()
        && !verified.iter().any(|s| s == Path::new(dir))
    {
        wrong.push(format!("saved_dir {dir} is not a verified set"));
    }
    // backup and restore: every file listed holds what it says (the copy, or the restored key).
    for item in doc["files"].as_array().into_iter().flatten() {
        let (source, dest) = (item["source"].as_str(), item["dest"].as_str());
        if let (Some(source), Some(dest)) = (source, dest) {
            let (a, b) = (fs::read(source).ok(), fs::read(dest).ok());
            let restored_or_copied = match name {
                "restore" => a.is_some() && a == b,
                _ => b.is_some() && b == a,
            };
            if !restored_or_copied {
                wrong.push(format!("{dest} does not hold the bytes of {source}"));
            }
        }
    }
    wrong
}

/// The main thread's calls of each syscall in `trace_dir` (strace -ff files), numbered as
/// strace's `when=` counts them, keeping those whose line names `ssh` (with -y, fds show paths).
fn eligible_calls(trace_dir: &Path, ssh: &Path) -> Vec<(String, Vec<u32>)> {
    let main = fs::read_dir(trace_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            fs::read_to_string(p)
                .unwrap_or_default()
                .contains("execve(")
        })
        .expect("the main thread's trace");
    let text = fs::read_to_string(main).unwrap();
    let needle = ssh.display().to_string();
    let mut out = Vec::new();
    for syscall in FILE_SYSCALLS {
        let prefix = format!("{syscall}(");
        let mut n = 0;
        let mut eligible = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            n += 1;
            if line.contains(&needle) {
                eligible.push(n);
            }
        }
        out.push((syscall.to_string(), eligible));
    }
    out
}

/// At most `k` of `all`, spread evenly, the first and the last always among them.
fn sample(all: &[u32], k: usize) -> Vec<u32> {
    if all.len() <= k {
        return all.to_vec();
    }
    let mut picked: Vec<u32> = (0..k)
        .map(|i| all[i * (all.len() - 1) / (k - 1).max(1)])
        .collect();
    picked.dedup();
    picked
}

fn run_keyrotate(ssh: &Path, args: &[String], strace: &[String]) -> Output {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq"]).args(strace).arg(bin());
    cmd.arg("--ssh-dir")
        .arg(ssh)
        .args(args)
        .env("HOME", ssh.parent().unwrap())
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("KEYROTATE_SSH_DIR")
        .output()
        .unwrap()
}

/// One injected run, and everything wrong with its outcome.
fn inject_and_check(w: &Wide, syscall: &str, errno: &str, n: u32) -> Vec<String> {
    let (_tmp, ssh) = ssh_dir_copy(Some(&w.base));
    let old = old_files(&ssh);
    let strace = [
        "-o".into(),
        "/dev/null".into(),
        "-e".into(),
        format!("trace={syscall}"),
        "-e".into(),
        format!("inject={syscall}:error={errno}:when={n}"),
    ];
    let out = run_keyrotate(&ssh, &w.args, &strace);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut wrong = Vec::new();
    match out.status.code() {
        Some(0) => match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(doc) => wrong.extend(success_is_true(w.name, &doc, &ssh)),
            Err(e) => wrong.push(format!("exit 0 without its JSON document ({e})")),
        },
        Some(2) => {
            if !err.starts_with("keyrotate: ") || !err.contains("\nhint: ") {
                wrong.push("exit 2 without `keyrotate: ...` and a hint".to_string());
            }
            // The next command finishes or undoes whatever was left.
            let after = run_keyrotate(
                &ssh,
                &["check".into(), "-q".into()],
                &["-o".into(), "/dev/null".into()],
            );
            let after_err = String::from_utf8_lossy(&after.stderr);
            for p in walk(&ssh) {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let kept = after_err.contains("kept the unfinished backup set");
                if name.starts_with(".keyrotate-tmp-")
                    || name == ".keyrotate-journal"
                    || (name == "INCOMPLETE" && !kept)
                {
                    wrong.push(format!(
                        "{} left after the next command: {after_err}",
                        p.display()
                    ));
                }
            }
        }
        other => wrong.push(format!("exit {other:?}")),
    }
    if err.contains("panicked") || err.contains("internal error") {
        wrong.push("a panic".to_string());
    }
    wrong.extend(old_bytes_kept(&ssh, &old));
    wrong
        .into_iter()
        .map(|w_| {
            format!(
                "{}: {errno} at {syscall} #{n}: {w_}\n  stderr: {}",
                w.name,
                err.trim()
            )
        })
        .collect()
}

/// EIO and EACCES at sampled occurrences of every file-system syscall keyrotate makes, for
/// `generate --force`, `rotate` (same name, type change, `--update-config`), `backup` and
/// `restore`. Occurrences are counted in the main thread's own trace (strace counts `when=` per
/// syscall and per thread) and only those naming the SSH directory are eligible (not the
/// dynamic loader's). At most `KEYROTATE_FAULT_SAMPLES` (default 3; `all` for every one) are
/// taken per scenario, syscall and error, evenly spread, always the first and the last.
#[test]
fn eio_and_eacces_at_every_file_syscall_keep_every_old_key() {
    require_strace();
    let k = match std::env::var("KEYROTATE_FAULT_SAMPLES").as_deref() {
        Ok("all") => usize::MAX,
        Ok(n) => n
            .parse()
            .expect("KEYROTATE_FAULT_SAMPLES: a number or `all`"),
        Err(_) => 3,
    };
    let root = tempfile::tempdir().unwrap();
    let mut jobs: Vec<(usize, String, &str, u32)> = Vec::new();
    let scenarios = wide_scenarios(root.path());
    let mut report = Vec::new();
    for (i, w) in scenarios.iter().enumerate() {
        let (_tmp, ssh) = ssh_dir_copy(Some(&w.base));
        let traces = tempfile::tempdir().unwrap();
        let strace = [
            "-ff".into(),
            "-y".into(),
            "-o".into(),
            traces.path().join("t").display().to_string(),
            "-e".into(),
            // execve too: it marks the main thread's file.
            format!("trace=execve,{}", FILE_SYSCALLS.join(",")),
        ];
        run_keyrotate(&ssh, &w.args, &strace);
        let mut counted = Vec::new();
        for (syscall, eligible) in eligible_calls(traces.path(), &ssh) {
            if eligible.is_empty() {
                continue;
            }
            counted.push(format!("{syscall} {}", eligible.len()));
            for n in sample(&eligible, k) {
                for errno in ["EIO", "EACCES"] {
                    jobs.push((i, syscall.clone(), errno, n));
                }
            }
        }
        report.push(format!("{}: {}", w.name, counted.join(", ")));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let wrong = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let j = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((i, syscall, errno, n)) = jobs.get(j) else {
                        break;
                    };
                    let found = inject_and_check(&scenarios[*i], syscall, errno, *n);
                    wrong.lock().unwrap().extend(found);
                }
            });
        }
    });
    eprintln!(
        "faults: {} injected runs (at most {k} occurrences per scenario, syscall and error); \
         eligible calls: {}",
        jobs.len(),
        report.join("; ")
    );
    let wrong = wrong.into_inner().unwrap();
    assert!(jobs.len() > 200, "too few fault points: {report:?}");
    assert!(
        wrong.is_empty(),
        "{} violations:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_fault_invariant_checker_sees_a_lost_key() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let old = old_files(&ssh);
    assert!(old_bytes_kept(&ssh, &old).is_empty());
    // A copy in a set that does not verify does not count.
    let set = ssh.join("key_backup").join("20260101T000000Z");
    fs::create_dir_all(&set).unwrap();
    fs::copy(ssh.join("id_ed25519_jasmin"), set.join("id_ed25519_jasmin")).unwrap();
    fs::write(
        set.join("SHA256SUMS"),
        format!("{}  id_ed25519_jasmin\n", "0".repeat(64)),
    )
    .unwrap();
    fs::remove_file(ssh.join("id_ed25519_jasmin")).unwrap();
    let wrong = old_bytes_kept(&ssh, &old);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    // A key kept under another name that does not open as the old key is reported too.
    fs::write(ssh.join("other"), "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let mut fake = old.clone();
    fake[0].1 = fs::read(ssh.join("other")).unwrap();
    assert!(!old_bytes_kept(&ssh, &fake).is_empty());
}

/// EIO and EACCES at every file-system syscall: whatever fails, no old key is ever lost.
///
/// For each scenario a first run traces every file-system syscall (`strace -f -y`); the calls of
/// the main thread whose line names the run's own directory are the ones eligible for injection
/// (the dynamic loader's and libc's calls before `main`, and reads of /proc or /etc, are not).
/// strace counts `when=N` per syscall and per thread, so N is the call's rank among the main
/// thread's calls of that syscall. Then each sampled (syscall, error, N) gets a fresh copy of the
/// scenario's SSH directory and one run with that error injected, and the invariant of
/// [`keep_every_old_key`](every_file_syscall::keep_every_old_key) is checked.
///
/// (A module of its own: its helpers' names are those of the widened test above.)
mod every_file_syscall {
    use std::collections::{BTreeMap, HashMap};
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use crate::common::*;

    /// The file-system syscalls of x86_64 Linux keyrotate may make. Those it makes no eligible
    /// call of (see above) are skipped, and the report says which.
    const FILE_SYSCALLS: &[&str] = &[
        "statx",
        "newfstatat",
        "fstat",
        "lstat",
        "stat",
        "openat",
        "read",
        "getdents64",
        "readlink",
        "readlinkat",
        "rename",
        "renameat",
        "renameat2",
        "link",
        "linkat",
        "unlink",
        "unlinkat",
        "rmdir",
        "fsync",
        "close",
        "mkdir",
        "mkdirat",
        "chmod",
        "fchmod",
        "fchmodat",
        "utimensat",
        "flock",
    ];

    const INJECTED_ERRORS: &[&str] = &["EIO", "EACCES"];

    /// The default number of occurrences injected per (scenario, syscall, error); see [`sample`].
    const DEFAULT_SAMPLES: usize = 4;

    /// The name the restore scenario's backup set is given (a fixed one, so that the set
    /// `restore` saves the replaced key in never collides with it and every run makes the same
    /// calls).
    const RESTORE_SET: &str = "20200101T000000Z";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Generate,
        Rotate,
        Backup,
        Restore,
    }

    /// A command run in a copy of `base`, with `--json` (and `--passphrase-file` when it makes a
    /// key).
    struct Scenario {
        name: &'static str,
        /// Names the scenario's run directories, `<slug>-<5 digits>`: one length for all its
        /// runs, so the traced run and the injected ones make the same calls.
        slug: &'static str,
        kind: Kind,
        base: PathBuf,
        args: Vec<String>,
        /// Whether `--passphrase-file $HOME/new` (holding [`NEW`]) is given.
        new_passphrase: bool,
        /// Whether `<ssh-dir>/config` names `<ssh-dir>/id_ecdsa_jasmin` (written per run, as it
        /// holds the run's own path).
        config: bool,
    }

    fn scenarios(root: &Path) -> Vec<Scenario> {
        let base = |slug: &str, keys: &[(&str, &str)]| -> PathBuf {
            let dir = root.join(format!("base-{slug}"));
            fs::create_dir(&dir).unwrap();
            set_mode(&dir, 0o700);
            for (kind, file) in keys {
                keygen(&dir.join(file), kind, &[]);
            }
            dir
        };
        let args = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
        let rotate = ["rotate", "-t", "ed25519", "--no-agent"];
        let ed25519 = [("ed25519", "id_ed25519_jasmin")];
        let ecdsa = [("ecdsa", "id_ecdsa_jasmin")];

        // Restore: version 1 of the key in a set, version 2 live.
        let restore = base("restore", &ed25519);
        let backup = Command::new(bin())
            .arg("--ssh-dir")
            .arg(&restore)
            .args(["backup", "--json"])
            .env("HOME", root)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("KEYROTATE_SSH_DIR")
            .output()
            .unwrap();
        let doc = json_ok(&backup);
        let set = PathBuf::from(doc["backup_dir"].as_str().expect("a backup set"));
        fs::rename(&set, restore.join("key_backup").join(RESTORE_SET)).unwrap();
        for file in [
            "id_ed25519_jasmin",
            "id_ed25519_jasmin.pub",
            ".keyrotate.lock",
        ] {
            fs::remove_file(restore.join(file)).unwrap();
        }
        keygen(&restore.join("id_ed25519_jasmin"), "ed25519", &[]);

        vec![
            Scenario {
                name: "generate --force",
                slug: "force",
                kind: Kind::Generate,
                base: base("force", &ed25519),
                args: args(&["generate", "-t", "ed25519", "--force"]),
                new_passphrase: true,
                config: false,
            },
            Scenario {
                name: "rotate (same name)",
                slug: "same",
                kind: Kind::Rotate,
                base: base("same", &ed25519),
                args: args(&rotate),
                new_passphrase: true,
                config: false,
            },
            Scenario {
                name: "rotate (ecdsa to ed25519)",
                slug: "type",
                kind: Kind::Rotate,
                base: base("type", &ecdsa),
                args: args(&rotate),
                new_passphrase: true,
                config: false,
            },
            Scenario {
                name: "rotate --update-config",
                slug: "config",
                kind: Kind::Rotate,
                base: base("config", &ecdsa),
                args: args(&[&rotate[..], &["--update-config"]].concat()),
                new_passphrase: true,
                config: true,
            },
            Scenario {
                name: "backup",
                slug: "backup",
                kind: Kind::Backup,
                base: base(
                    "backup",
                    &[("ed25519", "id_ed25519_jasmin"), ("ecdsa", "id_ecdsa_work")],
                ),
                args: args(&["backup"]),
                new_passphrase: false,
                config: false,
            },
            Scenario {
                name: "restore SET",
                slug: "restore",
                kind: Kind::Restore,
                base: restore,
                args: args(&["restore", RESTORE_SET]),
                new_passphrase: false,
                config: false,
            },
        ]
    }

    /// Make the run directory `home` (the run's HOME) with the scenario's SSH directory in it.
    fn prepare_run(scenario: &Scenario, home: &Path) -> PathBuf {
        fs::create_dir(home).unwrap();
        set_mode(home, 0o700);
        let ssh = home.join(".ssh");
        fs::create_dir(&ssh).unwrap();
        set_mode(&ssh, 0o700);
        copy_tree(&scenario.base, &ssh);
        if scenario.config {
            let old = ssh.join("id_ecdsa_jasmin");
            fs::write(
                ssh.join("config"),
                format!("Host jasmin\n  IdentityFile {}\n", old.display()),
            )
            .unwrap();
        }
        if scenario.new_passphrase {
            pass_file(home, "new", NEW);
        }
        ssh
    }

    /// The scenario's command under `strace -f -qq STRACE_ARGS` (and `timeout`, so that a hang
    /// is reported, not waited for), run from `/` so that no `AT_FDCWD</...>` names the run
    /// directory.
    fn command(scenario: &Scenario, home: &Path, strace_args: &[String]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "10", "120", "strace", "-f", "-qq"])
            .args(strace_args)
            .arg(bin())
            .arg("--ssh-dir")
            .arg(home.join(".ssh"))
            .args(&scenario.args)
            .arg("--json");
        if scenario.new_passphrase {
            cmd.arg("--passphrase-file").arg(home.join("new"));
        }
        cmd.env("HOME", home)
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("KEYROTATE_SSH_DIR")
            .env_remove("CLICOLOR_FORCE")
            .current_dir("/");
        cmd
    }

    /// What an `strace -f -o FILE` log says about the traced syscalls.
    #[derive(Debug, Default)]
    struct TracedCalls {
        /// Syscall -> the main thread's calls of it, in order (`when=N` is element N-1), each as
        /// one line (an `<unfinished ...>` call joined with its `<... resumed>` rest).
        main: BTreeMap<String, Vec<String>>,
        /// Syscall -> how many calls each other thread (or process) made of it.
        others: BTreeMap<String, Vec<usize>>,
    }

    /// Parse a log of `strace -f -o FILE -e trace=...,execve`: each line starts with the pid;
    /// the main thread is the one that made the first `execve`.
    fn parse_strace_log(log: &str) -> TracedCalls {
        let mut main: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut others: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
        let mut main_pid: Option<&str> = None;
        let mut pending: HashMap<&str, String> = HashMap::new();
        for line in log.lines() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            if rest.starts_with("+++") || rest.starts_with("---") {
                continue;
            }
            let call = if let Some(resumed) = rest.strip_prefix("<... ") {
                let Some(head) = pending.remove(pid) else {
                    continue;
                };
                let tail = resumed.split_once("resumed>").map_or("", |(_, t)| t);
                format!("{head}{tail}")
            } else if let Some(head) = rest.strip_suffix("<unfinished ...>") {
                pending.insert(pid, head.to_string());
                continue;
            } else {
                rest.to_string()
            };
            let Some((name, _)) = call.split_once('(') else {
                continue;
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if name == "execve" && main_pid.is_none() {
                main_pid = Some(pid);
            }
            let name = name.to_string();
            if Some(pid) == main_pid {
                main.entry(name).or_default().push(call);
            } else {
                *others.entry(name).or_default().entry(pid).or_default() += 1;
            }
        }
        let others = others
            .into_iter()
            .map(|(name, by_pid)| (name, by_pid.into_values().collect()))
            .collect();
        TracedCalls { main, others }
    }

    /// At most `k` of `eligible` (all when `k` is `None`): spread evenly, the first and the last
    /// always among them (with `k` = 1, only the first).
    fn sample(eligible: &[u32], k: Option<usize>) -> Vec<u32> {
        let m = eligible.len();
        let k = match k {
            Some(k) if k < m => k,
            _ => return eligible.to_vec(),
        };
        if k <= 1 {
            return eligible[..k].to_vec();
        }
        let mut out: Vec<u32> = (0..k)
            .map(|i| eligible[(2 * i * (m - 1) + (k - 1)) / (2 * (k - 1))])
            .collect();
        out.dedup();
        out
    }

    /// `KEYROTATE_FAULT_SAMPLES`: a number, or `all` (`None`).
    fn samples_from_env() -> Option<usize> {
        match std::env::var("KEYROTATE_FAULT_SAMPLES") {
            Err(_) => Some(DEFAULT_SAMPLES),
            Ok(v) if v.trim() == "all" => None,
            Ok(v) => match v.trim().parse() {
                Ok(k) if k > 0 => Some(k),
                _ => {
                    panic!("KEYROTATE_FAULT_SAMPLES must be a positive number or `all`, not {v:?}")
                }
            },
        }
    }

    /// A file of the SSH directory before a run, which must survive it.
    #[derive(Debug, Clone)]
    struct OldFile {
        /// Relative to the SSH directory.
        rel: PathBuf,
        bytes: Vec<u8>,
        /// For a private key (a file with a `.pub` beside it): the `type base64` of that `.pub`.
        public: Option<String>,
        /// Whether it lives in a backup set (then only a verified set's copy counts).
        in_set: bool,
    }

    /// The files that must survive a run: the regular files at the top of the SSH directory
    /// (but keyrotate's own lock, journal and temporary files), `key_backup/RETIRED`, and the
    /// files of every backup set (but its `SHA256SUMS` and `INCOMPLETE`).
    fn old_files(ssh: &Path) -> Vec<OldFile> {
        let regular = |dir: &Path| -> Vec<(String, Vec<u8>)> {
            let Ok(entries) = fs::read_dir(dir) else {
                return Vec::new();
            };
            let mut v: Vec<(String, Vec<u8>)> = entries
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, fs::read(e.path()).unwrap())
                })
                .collect();
            v.sort();
            v
        };
        let with_publics = |files: Vec<(String, Vec<u8>)>, under: &Path, in_set: bool| {
            let publics: HashMap<String, String> = files
                .iter()
                .filter_map(|(n, b)| {
                    let private = n.strip_suffix(".pub")?;
                    Some((private.to_string(), key_part(&String::from_utf8_lossy(b))))
                })
                .collect();
            files
                .into_iter()
                .map(|(name, bytes)| OldFile {
                    rel: under.join(&name),
                    public: publics.get(&name).cloned(),
                    bytes,
                    in_set,
                })
                .collect::<Vec<_>>()
        };
        let top = regular(ssh)
            .into_iter()
            .filter(|(n, _)| !n.starts_with(".keyrotate"))
            .collect();
        let mut out = with_publics(top, Path::new(""), false);
        let store = ssh.join("key_backup");
        out.extend(with_publics(
            regular(&store)
                .into_iter()
                .filter(|(n, _)| n == "RETIRED")
                .collect(),
            Path::new("key_backup"),
            false,
        ));
        if let Ok(entries) = fs::read_dir(&store) {
            let mut sets: Vec<_> = entries
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_dir())
                .map(|e| e.file_name())
                .collect();
            sets.sort();
            for set in sets {
                let files = regular(&store.join(&set))
                    .into_iter()
                    .filter(|(n, _)| n != "SHA256SUMS" && n != "INCOMPLETE")
                    .collect();
                out.extend(with_publics(
                    files,
                    &Path::new("key_backup").join(set),
                    true,
                ));
            }
        }
        out
    }

    /// `Ok` when `dir` is a verified backup set: a directory without an `INCOMPLETE` marker
    /// whose `SHA256SUMS` passes `sha256sum -c SHA256SUMS` run inside it.
    fn verified_set(dir: &Path) -> Result<(), String> {
        if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(format!("{} is not a directory", dir.display()));
        }
        if dir.join("INCOMPLETE").exists() {
            return Err(format!("{} is marked INCOMPLETE", dir.display()));
        }
        if !dir.join("SHA256SUMS").is_file() {
            return Err(format!("{} has no SHA256SUMS", dir.display()));
        }
        let out = Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(dir)
            .output()
            .expect("sha256sum runs");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`sha256sum -c SHA256SUMS` fails in {}: {}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn verified_sets(ssh: &Path) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(ssh.join("key_backup")) else {
            return Vec::new();
        };
        let mut sets: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| verified_set(p).is_ok())
            .collect();
        sets.sort();
        sets
    }

    fn sha256_hex(path: &Path) -> Option<String> {
        let out = Command::new("sha256sum").arg(path).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status
            .success()
            .then(|| text.split_whitespace().next().map(str::to_string))?
    }

    /// [`opens_as`] (`ssh-keygen -y -P PASSPHRASE -f FILE`), remembered by the file's bytes and
    /// mode (its result depends on nothing else): the same old key is found again and again
    /// across the runs, and each call costs a bcrypt KDF.
    #[derive(Default)]
    struct KeyOpener(Mutex<HashMap<OpenedBy, Option<String>>>);

    /// A key file's bytes and mode, and the passphrase tried.
    type OpenedBy = (Vec<u8>, u32, String);

    impl KeyOpener {
        /// The `type base64` of the public key of the private key `path`, when it opens.
        fn open(&self, path: &Path, passphrase: &str) -> Option<String> {
            use std::os::unix::fs::PermissionsExt;
            let bytes = fs::read(path).ok()?;
            let mode = fs::metadata(path).ok()?.permissions().mode();
            let key = (bytes, mode, passphrase.to_string());
            if let Some(known) = self.0.lock().unwrap().get(&key) {
                return known.clone();
            }
            let public = opens_as(path, passphrase);
            self.0.lock().unwrap().insert(key, public.clone());
            public
        }
    }

    /// Invariant 1: every old file is live with its bytes, or a file of a verified set holds
    /// them; an old private key's copy opens with the old passphrase to the key of its old
    /// `.pub`. Returns what is wrong.
    fn check_old_files(ssh: &Path, old: &[OldFile], opener: &KeyOpener) -> Vec<String> {
        let mut set_files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for set in verified_sets(ssh) {
            for e in fs::read_dir(&set).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() && e.file_name() != "SHA256SUMS" {
                    set_files.push((e.path(), fs::read(e.path()).unwrap_or_default()));
                }
            }
        }
        let mut problems = Vec::new();
        for f in old {
            let rel = f.rel.display();
            let live = ssh.join(&f.rel);
            let mut copies = Vec::new();
            if !f.in_set
                && fs::symlink_metadata(&live).is_ok_and(|m| m.is_file())
                && fs::read(&live).is_ok_and(|b| b == f.bytes)
            {
                copies.push(live);
            }
            copies.extend(
                set_files
                    .iter()
                    .filter(|(_, b)| *b == f.bytes)
                    .map(|(p, _)| p.clone()),
            );
            if copies.is_empty() {
                let elsewhere: Vec<String> = walk(ssh)
                    .into_iter()
                    .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
                    .filter(|p| fs::read(p).is_ok_and(|b| b == f.bytes))
                    .map(|p| p.strip_prefix(ssh).unwrap().display().to_string())
                    .collect();
                problems.push(if elsewhere.is_empty() {
                    format!("{rel} is lost: its bytes are nowhere in the SSH directory")
                } else {
                    format!(
                        "{rel} is lost: its bytes are neither live nor in a verified backup \
                         set, only in {}",
                        elsewhere.join(", ")
                    )
                });
                continue;
            }
            if let Some(want) = &f.public
                && !copies
                    .iter()
                    .any(|c| opener.open(c, PASSPHRASE).as_ref() == Some(want))
            {
                let copies: Vec<String> = copies.iter().map(|c| c.display().to_string()).collect();
                problems.push(format!(
                    "{rel}: no copy ({}) opens with the old passphrase to the key of its old .pub",
                    copies.join(", ")
                ));
            }
        }
        problems
    }

    /// What a finished or undone command must not leave: temporary files, a journal,
    /// `INCOMPLETE` sets.
    fn leftovers(ssh: &Path) -> Vec<String> {
        let store = ssh.join("key_backup");
        walk(ssh)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(".keyrotate-tmp-")
                    || name == ".keyrotate-journal"
                    || (name == "INCOMPLETE" && p.parent().and_then(Path::parent) == Some(&store))
            })
            .map(|p| p.strip_prefix(ssh).unwrap().display().to_string())
            .collect()
    }

    /// Invariant 2: what the JSON of a run that exited 0 says is true.
    fn check_success_json(
        scenario: &Scenario,
        ssh: &Path,
        old: &[OldFile],
        stdout: &[u8],
        opener: &KeyOpener,
    ) -> Vec<String> {
        let doc: serde_json::Value = match serde_json::from_slice(stdout) {
            Ok(doc) => doc,
            Err(e) => {
                return vec![format!(
                    "stdout is not one JSON document ({e}): {}",
                    String::from_utf8_lossy(stdout)
                )];
            }
        };
        let mut problems = Vec::new();
        let path_of = |field: &str| doc[field].as_str().map(PathBuf::from);
        let mut set_is_verified = |field: &str, required: bool| match path_of(field) {
            Some(dir) => {
                if dir.parent() != Some(&ssh.join("key_backup")) {
                    problems.push(format!(
                        "{field} {} is not a set in key_backup",
                        dir.display()
                    ));
                } else if let Err(e) = verified_set(&dir) {
                    problems.push(format!("{field} is not a verified set: {e}"));
                }
            }
            None if required => problems.push(format!("{field} is {}", doc[field])),
            None => {}
        };
        match scenario.kind {
            Kind::Generate | Kind::Rotate => {
                set_is_verified("backup_dir", false);
                let (Some(private), Some(public)) = (path_of("private_key"), path_of("public_key"))
                else {
                    problems.push(format!("no private_key or public_key in {doc}"));
                    return problems;
                };
                let public_line = fs::read_to_string(&public).map(|l| key_part(&l));
                match (opener.open(&private, NEW), &public_line) {
                    (Some(opened), Ok(line)) if &opened == line => {}
                    (opened, line) => problems.push(format!(
                        "private_key {} does not open with the new passphrase to the key of \
                         public_key {} (opens to {opened:?}; public_key holds {line:?})",
                        private.display(),
                        public.display()
                    )),
                }
                let fingerprint = keygen_l(&public).map(|l| l.fingerprint);
                if fingerprint.as_deref() != doc["fingerprint"].as_str() {
                    problems.push(format!(
                        "fingerprint {} but `ssh-keygen -l` of public_key says {fingerprint:?}",
                        doc["fingerprint"]
                    ));
                }
                if scenario.kind == Kind::Rotate {
                    for retired in doc["retired"].as_array().into_iter().flatten() {
                        let retired = Path::new(retired.as_str().unwrap_or_default());
                        if retired != private && retired.exists() {
                            problems.push(format!("retired {} is still live", retired.display()));
                        }
                    }
                    let new_name = private.file_name().unwrap().to_string_lossy();
                    for entry in doc["config"].as_array().into_iter().flatten() {
                        if entry["updated"] != true {
                            continue;
                        }
                        let path = entry["path"].as_str().unwrap_or_default();
                        let line = entry["line"].as_u64().unwrap_or(0) as usize;
                        let text = fs::read_to_string(path).unwrap_or_default();
                        let now = text.lines().nth(line.wrapping_sub(1)).unwrap_or_default();
                        if !now.contains(&*new_name) {
                            problems.push(format!(
                                "config {path} line {line} is said to be updated but reads \
                                 {now:?}"
                            ));
                        }
                    }
                }
            }
            Kind::Backup => {
                set_is_verified("backup_dir", true);
                let dir = path_of("backup_dir").unwrap_or_default();
                for file in doc["files"].as_array().into_iter().flatten() {
                    let dest = Path::new(file["dest"].as_str().unwrap_or_default());
                    let source = Path::new(file["source"].as_str().unwrap_or_default());
                    let was = source
                        .strip_prefix(ssh)
                        .ok()
                        .and_then(|rel| old.iter().find(|f| f.rel == rel));
                    if dest.parent() != Some(&dir) {
                        problems.push(format!("{} is not in backup_dir", dest.display()));
                    } else if sha256_hex(dest).as_deref() != file["sha256"].as_str() {
                        problems.push(format!(
                            "{} does not have the sha256 listed",
                            dest.display()
                        ));
                    } else if was.is_none_or(|w| fs::read(dest).ok().as_ref() != Some(&w.bytes)) {
                        problems.push(format!(
                            "{} does not hold the old bytes of {}",
                            dest.display(),
                            source.display()
                        ));
                    }
                }
            }
            Kind::Restore => {
                set_is_verified("saved_dir", false);
                if path_of("backup_dir") != Some(ssh.join("key_backup").join(RESTORE_SET)) {
                    problems.push(format!("backup_dir is {}", doc["backup_dir"]));
                }
                for file in doc["files"].as_array().into_iter().flatten() {
                    let dest = Path::new(file["dest"].as_str().unwrap_or_default());
                    let source = Path::new(file["source"].as_str().unwrap_or_default());
                    let (Ok(got), Ok(want)) = (fs::read(dest), fs::read(source)) else {
                        problems.push(format!(
                            "{} or its source {} cannot be read",
                            dest.display(),
                            source.display()
                        ));
                        continue;
                    };
                    if got != want || sha256_hex(dest).as_deref() != file["sha256"].as_str() {
                        problems.push(format!(
                            "{} does not hold the bytes of {} (action {})",
                            dest.display(),
                            source.display(),
                            file["action"]
                        ));
                    }
                }
            }
        }
        problems
    }

    /// Invariant 3's words: `keyrotate: ...`, a `hint: ` line, no panic.
    fn check_failure_stderr(stderr: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !stderr.starts_with("keyrotate: ") {
            problems.push("stderr does not start with `keyrotate: `".to_string());
        }
        if !stderr.lines().any(|l| l.starts_with("hint: ")) {
            problems.push("stderr has no `hint: ` line".to_string());
        }
        if stderr.contains("panicked") || stderr.to_lowercase().contains("internal error") {
            problems.push("stderr shows a panic or internal error".to_string());
        }
        problems
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        /// Exit 0.
        Completed,
        /// Exit 2.
        Failed,
        /// Anything else (the problems say what).
        Other,
    }

    /// Check a run against the invariant; returns the outcome, what is wrong (empty: nothing)
    /// and whether a follow-up `check` was run. `home` is the run's HOME (its SSH directory is
    /// `home/.ssh`), `old` what that held before the run.
    fn keep_every_old_key(
        scenario: &Scenario,
        home: &Path,
        old: &[OldFile],
        run: &Output,
        opener: &KeyOpener,
    ) -> (Outcome, Vec<String>, bool) {
        let ssh = home.join(".ssh");
        let stderr = String::from_utf8_lossy(&run.stderr);
        let mut problems = Vec::new();
        let outcome = match run.status.code() {
            Some(0) => {
                problems.extend(check_success_json(scenario, &ssh, old, &run.stdout, opener));
                Outcome::Completed
            }
            Some(2) => {
                problems.extend(check_failure_stderr(&stderr));
                Outcome::Failed
            }
            Some(124) => {
                problems.push("timed out (120 s)".to_string());
                Outcome::Other
            }
            Some(c) if c > 128 => {
                problems.push(format!("killed by signal {}", c - 128));
                Outcome::Other
            }
            code => {
                use std::os::unix::process::ExitStatusExt;
                problems.push(format!(
                    "exited {code:?} (signal {:?})",
                    run.status.signal()
                ));
                Outcome::Other
            }
        };
        problems.extend(
            check_old_files(&ssh, old, opener)
                .into_iter()
                .map(|p| format!("after the run: {p}")),
        );
        let follow_up = outcome != Outcome::Completed || !leftovers(&ssh).is_empty();
        if follow_up {
            // The next command (any, even `check`) must finish or undo what was interrupted.
            let check = keyrotate(&ssh)
                .env("HOME", home)
                .args(["check", "--json"])
                .output()
                .expect("keyrotate check runs");
            if !matches!(check.status.code(), Some(0 | 1)) {
                problems.push(format!(
                    "the follow-up `check` exited {:?}: {}",
                    check.status.code(),
                    String::from_utf8_lossy(&check.stderr).trim()
                ));
            }
            let still = leftovers(&ssh);
            if !still.is_empty() {
                problems.push(format!(
                    "left behind, even after a follow-up `check`: {}",
                    still.join(", ")
                ));
            }
            problems.extend(
                check_old_files(&ssh, old, opener)
                    .into_iter()
                    .map(|p| format!("after the follow-up check: {p}")),
            );
        }
        (outcome, problems, follow_up)
    }

    /// One injected run.
    struct Job {
        scenario: usize,
        syscall: &'static str,
        errno: &'static str,
        n: u32,
        /// The traced call (the run directory shown as `$HOME`).
        line: String,
        /// Which eligible call it is (1-based), of how many.
        rank: usize,
        eligible: usize,
        /// How many other threads make at least `n` calls of `syscall` (strace injects into
        /// their `n`-th call too: it counts per thread).
        also_hit: usize,
    }

    struct JobResult {
        job: usize,
        outcome: Outcome,
        problems: Vec<String>,
        stderr: String,
        follow_up: bool,
    }

    /// Work through `items` on 2 threads (this machine's cores), `f` taking each item's index.
    fn on_two_threads<T: Send>(items: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= items {
                            break;
                        }
                        let r = f(i);
                        out.lock().unwrap().push((i, r));
                    }
                });
            }
        });
        let mut out = out.into_inner().unwrap();
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }

    fn shorten(s: &str, max: usize) -> String {
        if s.chars().count() <= max {
            s.to_string()
        } else {
            format!("{}...", s.chars().take(max).collect::<String>())
        }
    }

    #[test]
    fn eio_and_eacces_at_every_file_syscall_keep_every_old_key() {
        require_strace();
        let started = Instant::now();
        let k = samples_from_env();
        let root = tempfile::tempdir().unwrap();
        let runs = root.path().join("runs");
        fs::create_dir(&runs).unwrap();
        let scenarios = scenarios(root.path());
        let run_dir = |s: &Scenario, seq: usize| runs.join(format!("{}-{seq:05}", s.slug));
        let mut report = vec![format!(
            "Sampling: per (scenario, syscall, error) at most {} of the eligible occurrences, \
             spread evenly over them, the first and the last always included \
             (KEYROTATE_FAULT_SAMPLES=N or `all`). Eligible: calls of the main thread that name \
             the run's directory in a traced run.",
            k.map_or("all".to_string(), |k| k.to_string())
        )];

        // 1. One traced run per scenario, of every file syscall of the list at once: strace
        // numbers the calls of each syscall separately, so this is the numbering each
        // `-e trace=SYSCALL` run would give.
        let trace_set = format!("trace={},execve", FILE_SYSCALLS.join(","));
        let traces = on_two_threads(scenarios.len(), |i| {
            let s = &scenarios[i];
            let home = run_dir(s, 0);
            prepare_run(s, &home);
            let log = root.path().join(format!("trace-{}.log", s.slug));
            let args: Vec<String> = vec![
                "-y".into(),
                "-o".into(),
                log.to_string_lossy().into_owned(),
                "-e".into(),
                trace_set.clone(),
            ];
            let run = command(s, &home, &args).output().unwrap();
            assert_eq!(
                run.status.code(),
                Some(0),
                "{}: the traced run without a fault fails: {}",
                s.name,
                String::from_utf8_lossy(&run.stderr)
            );
            let calls = parse_strace_log(&fs::read_to_string(&log).unwrap());
            assert!(
                calls.main.contains_key("execve"),
                "{}: no execve in the strace log",
                s.name
            );
            (home.to_string_lossy().into_owned(), calls)
        });

        let mut jobs = Vec::new();
        for (i, (s, (marker, calls))) in scenarios.iter().zip(&traces).enumerate() {
            let mut skipped = Vec::new();
            let mut counted = Vec::new();
            for &syscall in FILE_SYSCALLS {
                let all = calls.main.get(syscall).map_or(&[][..], |v| &v[..]);
                let eligible: Vec<u32> = (1..)
                    .zip(all)
                    .filter(|(_, line)| line.contains(marker.as_str()))
                    .map(|(n, _)| n)
                    .collect();
                let others = calls.others.get(syscall).map_or(&[][..], |v| &v[..]);
                let others_note = if others.is_empty() {
                    String::new()
                } else {
                    format!(" (+ {:?} by other threads)", others)
                };
                if eligible.is_empty() {
                    skipped.push(format!("{syscall} ({} calls{others_note})", all.len()));
                    continue;
                }
                let chosen = sample(&eligible, k);
                counted.push(format!(
                    "{syscall} {}/{}{others_note} -> #{}",
                    eligible.len(),
                    all.len(),
                    chosen
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",#")
                ));
                for &errno in INJECTED_ERRORS {
                    for &n in &chosen {
                        let line = all[n as usize - 1].replace(marker.as_str(), "$HOME");
                        jobs.push(Job {
                            scenario: i,
                            syscall,
                            errno,
                            n,
                            line: shorten(&line, 160),
                            rank: eligible.iter().position(|&e| e == n).unwrap() + 1,
                            eligible: eligible.len(),
                            also_hit: others.iter().filter(|&&c| c >= n as usize).count(),
                        });
                    }
                }
            }
            report.push(format!(
                "{}: eligible/all calls -> injected: {}",
                s.name,
                counted.join("; ")
            ));
            report.push(format!(
                "{}: skipped, no eligible call: {}",
                s.name,
                skipped.join(", ")
            ));
        }

        // 2. The injected runs.
        let opener = KeyOpener::default();
        let results = on_two_threads(jobs.len(), |j| {
            let job = &jobs[j];
            let s = &scenarios[job.scenario];
            let home = run_dir(s, j + 1);
            let ssh = prepare_run(s, &home);
            let old = old_files(&ssh);
            let args: Vec<String> = vec![
                "-o".into(),
                "/dev/null".into(),
                "-e".into(),
                format!("trace={}", job.syscall),
                "-e".into(),
                format!("inject={}:error={}:when={}", job.syscall, job.errno, job.n),
            ];
            let run = command(s, &home, &args).output().unwrap();
            let (outcome, problems, follow_up) = keep_every_old_key(s, &home, &old, &run, &opener);
            let home_str = home.to_string_lossy().into_owned();
            let result = JobResult {
                job: j,
                outcome,
                problems: problems
                    .iter()
                    .map(|p| p.replace(&home_str, "$HOME"))
                    .collect(),
                stderr: String::from_utf8_lossy(&run.stderr)
                    .trim()
                    .replace(&home_str, "$HOME"),
                follow_up,
            };
            fs::remove_dir_all(&home).unwrap();
            result
        });

        // 3. The report.
        let mut violations = Vec::new();
        for (i, s) in scenarios.iter().enumerate() {
            let mine: Vec<&JobResult> = results
                .iter()
                .filter(|r| jobs[r.job].scenario == i)
                .collect();
            let count = |o: Outcome| mine.iter().filter(|r| r.outcome == o).count();
            let bad: Vec<&&JobResult> = mine.iter().filter(|r| !r.problems.is_empty()).collect();
            report.push(format!(
                "{}: {} injected runs: {} failed (exit 2), {} completed (exit 0), {} other; {} \
                 broke the invariant",
                s.name,
                mine.len(),
                count(Outcome::Failed),
                count(Outcome::Completed),
                count(Outcome::Other),
                bad.len()
            ));
            for r in bad {
                let job = &jobs[r.job];
                let also = if job.also_hit > 0 {
                    format!(
                        " (strace also injected into call #{} of {} other thread(s))",
                        job.n, job.also_hit
                    )
                } else {
                    String::new()
                };
                let mut text = format!(
                    "[{}] {} at {} #{} (eligible call {} of {}){also}: {}\n  outcome: {:?}\n",
                    s.name,
                    job.errno,
                    job.syscall,
                    job.n,
                    job.rank,
                    job.eligible,
                    job.line,
                    r.outcome
                );
                for p in &r.problems {
                    text.push_str(&format!("  - {p}\n"));
                }
                text.push_str(&format!(
                    "  stderr: {}\n",
                    r.stderr.replace('\n', "\n          ")
                ));
                violations.push(text);
            }
        }
        report.push(format!(
            "Totals: {} traced runs, {} injected runs (+ {} follow-up `check` runs), {} injected \
             runs broke the invariant; {:.0} s",
            scenarios.len(),
            jobs.len(),
            results.iter().filter(|r| r.follow_up).count(),
            violations.len(),
            started.elapsed().as_secs_f64()
        ));
        eprintln!("{}", report.join("\n"));
        assert!(
            violations.is_empty(),
            "{} of {} injected runs broke the invariant (an old key lost, a false success, or \
             a mess left behind):\n\n{}",
            violations.len(),
            jobs.len(),
            violations.join("\n")
        );
    }

    /// The checker of the test above must be able to fail: a key whose only copy is gone, or is
    /// only in a set that does not verify, or that no longer opens to its old public key, is
    /// reported.
    #[test]
    fn the_old_key_checker_reports_every_way_to_lose_a_key() {
        let (tmp, ssh) = ssh_dir_copy(None);
        let key = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
        let old = old_files(&ssh);
        let names: Vec<String> = old.iter().map(|f| f.rel.display().to_string()).collect();
        assert_eq!(names, ["id_ed25519_jasmin", "id_ed25519_jasmin.pub"]);
        assert!(old[0].public.is_some() && old[1].public.is_none());
        let opener = KeyOpener::default();
        assert_eq!(check_old_files(&ssh, &old, &opener), Vec::<String>::new());

        // The live key deleted: lost.
        let bytes = fs::read(&key).unwrap();
        fs::remove_file(&key).unwrap();
        let problems = check_old_files(&ssh, &old, &opener);
        assert!(
            problems.len() == 1 && problems[0].starts_with("id_ed25519_jasmin is lost"),
            "{problems:?}"
        );

        // A verified set (made by keyrotate itself) holds it: kept.
        fs::write(&key, &bytes).unwrap();
        set_mode(&key, 0o600);
        let doc = json_ok(
            &keyrotate(&ssh)
                .env("HOME", tmp.path())
                .args(["backup", "--json"])
                .output()
                .unwrap(),
        );
        let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
        fs::remove_file(&key).unwrap();
        assert_eq!(check_old_files(&ssh, &old, &opener), Vec::<String>::new());

        // The set marked INCOMPLETE, or failing `sha256sum -c`: lost again, and where it is.
        fs::write(set.join("INCOMPLETE"), "").unwrap();
        let problems = check_old_files(&ssh, &old, &opener);
        assert!(
            problems.len() == 1 && problems[0].contains("only in key_backup/"),
            "{problems:?}"
        );
        fs::remove_file(set.join("INCOMPLETE")).unwrap();
        let sums = fs::read_to_string(set.join("SHA256SUMS")).unwrap();
        let damaged = sums
            .lines()
            .map(|l| {
                let (hash, name) = l.split_once("  ").unwrap();
                let first = if hash.starts_with('0') { "1" } else { "0" };
                format!("{first}{}  {name}\n", &hash[1..])
            })
            .collect::<String>();
        fs::write(set.join("SHA256SUMS"), damaged).unwrap();
        assert!(verified_set(&set).is_err());
        assert_eq!(check_old_files(&ssh, &old, &opener).len(), 1);
        fs::write(set.join("SHA256SUMS"), &sums).unwrap();
        assert_eq!(check_old_files(&ssh, &old, &opener), Vec::<String>::new());

        // Kept bytes that do not open to the old public key (its .pub was another key's).
        let other_key = keygen(&tmp.path().join("other"), "ed25519", &[]);
        let mut other = old.clone();
        other[0].public = Some(key_part(&fs::read_to_string(pub_of(&other_key)).unwrap()));
        let problems = check_old_files(&ssh, &other, &opener);
        assert!(
            problems.len() == 1 && problems[0].contains("opens with the old passphrase"),
            "{problems:?}"
        );

        // What must not be left behind is seen.
        fs::write(ssh.join(".keyrotate-tmp-id_x.1.2"), "").unwrap();
        fs::write(set.join("INCOMPLETE"), "").unwrap();
        assert_eq!(leftovers(&ssh).len(), 2, "{:?}", leftovers(&ssh));

        // Failure messages.
        assert!(
            check_failure_stderr("keyrotate: cannot read x: EIO\nhint: try again\n").is_empty()
        );
        assert_eq!(check_failure_stderr("thread 'main' panicked at x").len(), 3);
    }

    #[test]
    fn fault_sampling_and_strace_log_parsing() {
        let all: Vec<u32> = (1..=10).collect();
        assert_eq!(sample(&all, Some(4)), [1, 4, 7, 10]);
        assert_eq!(sample(&all, Some(2)), [1, 10]);
        assert_eq!(sample(&all, Some(1)), [1]);
        assert_eq!(sample(&all, None), all);
        assert_eq!(sample(&[3, 9], Some(4)), [3, 9]);

        let log = "\
100 execve(\"/bin/keyrotate\", [\"keyrotate\"], 0x1 /* 3 vars */) = 0
100 openat(AT_FDCWD</>, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
101  openat(AT_FDCWD</>, \"/proc/self/cgroup\", O_RDONLY) = 3</proc/1/cgroup>
102  openat(AT_FDCWD</>, \"/a\", O_RDONLY) = 3</a>
102  openat(AT_FDCWD</>, \"/b\", O_RDONLY) = 3</b>
100 openat(AT_FDCWD</>, \"/home/x/.ssh/id\", O_RDONLY <unfinished ...>
101 +++ exited with 0 +++
100 <... openat resumed>) = 4</home/x/.ssh/id>
100 --- SIGCHLD {si_signo=SIGCHLD} ---
100 fsync(4</home/x/.ssh/id>) = 0
";
        let calls = parse_strace_log(log);
        let opens = &calls.main["openat"];
        assert_eq!(opens.len(), 2);
        assert!(opens[1].contains("/home/x/.ssh/id\"") && opens[1].ends_with("</home/x/.ssh/id>"));
        assert_eq!(calls.main["fsync"].len(), 1);
        assert_eq!(calls.others["openat"], [1, 2]);
    }
}
