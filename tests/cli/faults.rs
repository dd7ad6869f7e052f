//! Full disks and I/O errors. Every command that writes is run with too little space at every
//! fill level of a tiny tmpfs (in a private mount namespace, so the host is untouched), and with
//! EIO injected (strace) into each of its fsyncs and renames in turn. Each run must either succeed
//! with the new state whole, or exit 2 naming the file, with the old keys live and unchanged and
//! nothing partial left behind, without needing another command.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

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
    // The test binary holds every module: name the inner test by its full path within it
    // (`faults::full_disk_in_a_private_mount_namespace`), this module's path less the crate.
    let inner = format!(
        "{}::full_disk_in_a_private_mount_namespace",
        module_path!().split_once("::").unwrap().1
    );
    let own_ns = fs::read_link("/proc/self/ns/mnt").unwrap();
    let mut cmd = Command::new("unshare");
    if !is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    let out = cmd
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", &inner, "--ignored", "--nocapture"])
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
