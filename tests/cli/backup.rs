//! `keyrotate backup` and `keyrotate restore` on real SSH directories: every version kept, every
//! set checked with the real `sha256sum -c`, modes and mtimes preserved under any umask, restore
//! round trips checked with `ssh-keygen -y`, and every refusal shown to leave the tree untouched.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn spec(name: &str) -> &'static Spec {
    all_specs().iter().find(|s| s.name == name).unwrap()
}

/// Every path under `dir` with its bytes (or link target), mode and mtime.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            out.insert(path, (content, meta.mode(), meta.mtime()));
        }
    }
    out
}

fn run_json(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn backup_json(ssh: &Path, keys: &[&str]) -> serde_json::Value {
    run_json(keyrotate(ssh).arg("backup").arg("--json").args(keys))
}

fn list_json(ssh: &Path) -> serde_json::Value {
    run_json(keyrotate(ssh).args(["backup", "--list", "--json"]))
}

fn sha256sum_check(set: &Path) {
    let out = Command::new("sha256sum")
        .args(["--strict", "-c", "SHA256SUMS"])
        .current_dir(set)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sha256sum -c failed in {}: {}{}",
        set.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn replace_key(ssh: &Path, name: &str) -> PathBuf {
    let path = ssh.join(name);
    let _ = fs::remove_file(&path);
    let _ = fs::remove_file(ssh.join(format!("{name}.pub")));
    let mut s = *spec("id_ed25519_openssh_enc");
    s.name = Box::leak(name.to_string().into_boxed_str());
    generate(ssh, &s)
}

#[test]
fn repeated_backups_of_a_changing_key_keep_every_version() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut versions = Vec::new();
    for _ in 0..3 {
        let key = replace_key(&ssh, "id_ed25519_jasmin");
        versions.push((fs::read(&key).unwrap(), keygen_l(&key).unwrap().fingerprint));
        let doc = backup_json(&ssh, &[]);
        assert_eq!(doc["files"].as_array().unwrap().len(), 2, "{doc:#}");
    }
    let listing = list_json(&ssh);
    let sets = listing["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 3);
    // Newest first: the last version is in the first set listed.
    for (set, (bytes, fingerprint)) in sets.iter().zip(versions.iter().rev()) {
        let dir = PathBuf::from(set["path"].as_str().unwrap());
        assert_eq!(set["state"], "verified", "{set:#}");
        assert_eq!(fs::read(dir.join("id_ed25519_jasmin")).unwrap(), *bytes);
        assert_eq!(set["files"][0]["fingerprint"], fingerprint.as_str());
        sha256sum_check(&dir);
        assert_eq!(mode_of(&dir), 0o700);
    }
    assert_eq!(mode_of(&ssh.join("key_backup")), 0o700);
    // Same-second runs get suffixes rather than sharing a set.
    let names: Vec<&str> = sets.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique);
}

#[test]
fn copies_keep_bytes_mode_and_mtime_under_any_umask() {
    for umask in ["000", "077", "022"] {
        let (_tmp, ssh) = ssh_dir_copy(None);
        let key = generate(&ssh, spec("id_ecdsa384_openssh_enc"));
        let public = ssh.join("id_ecdsa384_openssh_enc.pub");
        let odd = ssh.join("id_rsa2048_pem");
        fs::copy(fixture_dir().join("id_rsa2048_pem"), &odd).unwrap();
        set_mode(&odd, 0o640);
        for (path, days) in [(&key, 100), (&public, 200), (&odd, 300)] {
            set_mtime(path, days_ago(days));
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask}; exec \"$0\" --ssh-dir \"$1\" backup --json"
            ))
            .arg(bin())
            .arg(&ssh)
            .output()
            .unwrap();
        let doc = json_ok(&out);
        let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
        assert_eq!(mode_of(&set), 0o700, "umask {umask}");
        assert_eq!(mode_of(&ssh.join("key_backup")), 0o700, "umask {umask}");
        for original in [&key, &public, &odd] {
            let copy = set.join(original.file_name().unwrap());
            assert_eq!(fs::read(&copy).unwrap(), fs::read(original).unwrap());
            // Modes are kept, but a private key's copy never keeps group/other bits.
            let want = if original == &odd {
                0o600
            } else {
                mode_of(original)
            };
            assert_eq!(mode_of(&copy), want, "umask {umask}: {}", copy.display());
            let (a, b) = (
                fs::metadata(&copy).unwrap(),
                fs::metadata(original).unwrap(),
            );
            assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
            let entry = doc["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["dest"] == copy.to_string_lossy().as_ref())
                .unwrap();
            assert_eq!(entry["source"], original.to_string_lossy().as_ref());
            assert_eq!(entry["sha256"].as_str().unwrap().len(), 64);
        }
        sha256sum_check(&set);
        // The copy of a private key is readable by ssh-keygen with the original passphrase.
        let copy = set.join(key.file_name().unwrap());
        let derived = run_ok(
            Command::new("ssh-keygen")
                .args(["-y", "-P", PASSPHRASE, "-f"])
                .arg(&copy),
        );
        let want = fs::read_to_string(&public).unwrap();
        assert!(want.starts_with(String::from_utf8(derived.stdout).unwrap().trim()));
    }
}

#[test]
fn named_keys_bring_their_pair_and_paths_work_too() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    generate(&ssh, spec("id_ecdsa256_openssh_enc"));
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = generate(elsewhere.path(), spec("id_ecdsa521_openssh_enc"));
    let doc = backup_json(
        &ssh,
        &["id_ed25519_openssh_enc.pub", outside.to_str().unwrap()],
    );
    let mut names: Vec<String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            Path::new(f["dest"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "id_ecdsa521_openssh_enc",
            "id_ecdsa521_openssh_enc.pub",
            "id_ed25519_openssh_enc",
            "id_ed25519_openssh_enc.pub"
        ]
    );
}

#[test]
fn a_key_that_is_a_symlink_is_backed_up_by_content_and_said_so() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let elsewhere = tempfile::tempdir().unwrap();
    let real = generate(elsewhere.path(), spec("id_ed25519_openssh_enc"));
    let link = ssh.join("id_linked");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = keyrotate(&ssh).arg("backup").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("a symbolic link to {}", real.display())),
        "{text}"
    );
    let listing = list_json(&ssh);
    let set = PathBuf::from(listing["sets"][0]["path"].as_str().unwrap());
    let copy = set.join("id_linked");
    assert!(
        !fs::symlink_metadata(&copy)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&real).unwrap());
}

#[test]
fn restore_round_trips_and_saves_what_it_replaces() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = replace_key(&ssh, "id_ed25519_jasmin");
    let public = ssh.join("id_ed25519_jasmin.pub");
    let (old_key, old_pub) = (fs::read(&key).unwrap(), fs::read(&public).unwrap());
    let old_mtime = fs::metadata(&key).unwrap().mtime();
    let set = backup_json(&ssh, &[])["backup_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let set_name = Path::new(&set)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    // The key is replaced by another one (say, by a plain ssh-keygen run).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    replace_key(&ssh, "id_ed25519_jasmin");
    let newer = fs::read(&key).unwrap();
    assert_ne!(newer, old_key);

    let doc = run_json(keyrotate(&ssh).args(["restore", &set_name, "--json"]));
    assert_eq!(fs::read(&key).unwrap(), old_key);
    assert_eq!(fs::read(&public).unwrap(), old_pub);
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(fs::metadata(&key).unwrap().mtime(), old_mtime);
    let derived = run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", PASSPHRASE, "-f"])
            .arg(&key),
    );
    assert!(
        String::from_utf8(old_pub)
            .unwrap()
            .starts_with(String::from_utf8(derived.stdout).unwrap().trim())
    );

    // The key it replaced was saved first, in a new verified set.
    let saved = PathBuf::from(doc["saved_dir"].as_str().expect("saved_dir"));
    assert_eq!(fs::read(saved.join("id_ed25519_jasmin")).unwrap(), newer);
    sha256sum_check(&saved);
    let actions: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["replaced", "replaced"]);

    // Restoring again changes nothing and saves nothing.
    let again = run_json(keyrotate(&ssh).args(["restore", &set_name, "--json"]));
    assert_eq!(again["saved_dir"], serde_json::Value::Null);
    assert_eq!(list_json(&ssh)["sets"].as_array().unwrap().len(), 2);
    assert!(no_temp_files(&ssh));
}

fn no_temp_files(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".keyrotate-tmp-")
    })
}

#[test]
fn restore_brings_back_a_deleted_key_and_private_keys_come_back_0600() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = ssh.join("id_rsa2048_pem");
    fs::copy(fixture_dir().join("id_rsa2048_pem"), &key).unwrap();
    fs::copy(
        fixture_dir().join("id_rsa2048_pem.pub"),
        ssh.join("id_rsa2048_pem.pub"),
    )
    .unwrap();
    set_mode(&key, 0o644);
    set_mode(&ssh.join("id_rsa2048_pem.pub"), 0o644);
    let set = backup_json(&ssh, &[])["backup_dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        mode_of(&Path::new(&set).join("id_rsa2048_pem")),
        0o600,
        "a private key's copy drops group/other bits"
    );
    assert_eq!(mode_of(&Path::new(&set).join("id_rsa2048_pem.pub")), 0o644);
    fs::remove_file(&key).unwrap();
    let name = Path::new(&set).file_name().unwrap().to_str().unwrap();
    let doc = run_json(keyrotate(&ssh).args(["restore", name, "id_rsa2048_pem", "--json"]));
    assert_eq!(doc["saved_dir"], serde_json::Value::Null);
    assert_eq!(mode_of(&key), 0o600, "a restored private key is private");
    assert_eq!(mode_of(&ssh.join("id_rsa2048_pem.pub")), 0o644);
    assert_eq!(
        fs::read(&key).unwrap(),
        fs::read(fixture_dir().join("id_rsa2048_pem")).unwrap()
    );
}

#[test]
fn restore_replaces_a_symlink_without_writing_through_it() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let set = backup_json(&ssh, &[])["backup_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("precious");
    fs::write(&victim, "someone else's file\n").unwrap();
    let key = ssh.join("id_ed25519_openssh_enc");
    fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink(&victim, &key).unwrap();
    let name = Path::new(&set).file_name().unwrap().to_str().unwrap();
    let doc = run_json(keyrotate(&ssh).args(["restore", name, "--json"]));
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "someone else's file\n"
    );
    assert!(!fs::symlink_metadata(&key).unwrap().file_type().is_symlink());
    let saved = PathBuf::from(doc["saved_dir"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(saved.join("id_ed25519_openssh_enc")).unwrap(),
        "someone else's file\n"
    );
}

#[test]
fn a_symlinked_key_backup_is_refused_and_nothing_is_written_through_it() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), ssh.join("key_backup")).unwrap();
    let before = snapshot(&ssh);
    for args in [
        &["backup"][..],
        &["backup", "id_ed25519_openssh_enc"],
        &["backup", "--list"],
        &["restore", "20260101T000000Z"],
    ] {
        let out = keyrotate(&ssh).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("key_backup is a symbolic link"),
            "{args:?}: {err}"
        );
        assert!(err.contains("\nhint: "), "{err}");
        assert_eq!(
            fs::read_dir(elsewhere.path()).unwrap().count(),
            0,
            "{args:?} wrote through the link"
        );
    }
    let mut after = snapshot(&ssh);
    after.remove(&ssh.join(".keyrotate.lock"));
    assert_eq!(before, after);
}

#[test]
fn a_key_backup_owned_by_someone_else_is_refused() {
    if !is_root() {
        eprintln!("a_key_backup_owned_by_someone_else_is_refused: needs root to chown; not run");
        return;
    }
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let store = ssh.join("key_backup");
    fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(65534), Some(65534)).unwrap();
    let out = keyrotate(&ssh).arg("backup").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("owned by another user"));
    assert_eq!(fs::read_dir(&store).unwrap().count(), 0);
}

#[test]
fn a_hand_made_key_backup_is_tightened_and_its_loose_files_listed() {
    // What the manual procedure leaves: `mkdir key_backup; cp id_rsa* key_backup`.
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let store = ssh.join("key_backup");
    fs::create_dir(&store).unwrap();
    set_mode(&store, 0o755);
    fs::copy(ssh.join("id_ed25519_openssh_enc"), store.join("id_rsa")).unwrap();
    backup_json(&ssh, &[]);
    assert_eq!(mode_of(&store), 0o700);
    let listing = list_json(&ssh);
    assert_eq!(listing["sets"].as_array().unwrap().len(), 1);
    assert_eq!(
        listing["other"][0],
        store.join("id_rsa").to_string_lossy().as_ref()
    );
    let text = keyrotate(&ssh)
        .args(["backup", "--list"])
        .output()
        .unwrap()
        .stdout;
    assert!(String::from_utf8(text).unwrap().contains("outside any set"));
}

#[test]
fn unknown_sets_and_keys_exit_2_naming_what_exists_and_change_nothing() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let set = backup_json(&ssh, &[])["backup_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let name = Path::new(&set)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let before = snapshot(&ssh);
    let cases: &[(&[&str], &str)] = &[
        (&["restore", "20200101T000000Z"], &name),
        (&["restore", "../../etc"], &name),
        (&["restore", &name, "id_nope"], "id_ed25519_openssh_enc.pub"),
        (
            &["restore", &name, "../id_x"],
            "restore takes the names of files in the set",
        ),
        (&["backup", "id_nope"], "id_ed25519_openssh_enc"),
    ];
    for (args, mentions) in cases {
        let out = keyrotate(&ssh).args(*args).arg("--json").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("keyrotate: "), "{err}");
        assert!(err.contains(mentions), "{args:?}: {err}");
        assert!(err.contains("\nhint: "), "{err}");
    }
    assert_eq!(before, snapshot(&ssh));
}

#[test]
fn a_damaged_set_is_listed_as_damaged_and_only_its_intact_keys_restore() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    generate(&ssh, spec("id_ecdsa256_openssh_enc"));
    let set = PathBuf::from(backup_json(&ssh, &[])["backup_dir"].as_str().unwrap());
    let name = set.file_name().unwrap().to_str().unwrap().to_string();
    let tampered = set.join("id_ecdsa256_openssh_enc");
    set_mode(&tampered, 0o600);
    let mut bytes = fs::read(&tampered).unwrap();
    bytes[100] ^= 1;
    fs::write(&tampered, bytes).unwrap();
    let listing = list_json(&ssh);
    assert_eq!(listing["sets"][0]["state"], "damaged");
    assert!(
        listing["sets"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("id_ecdsa256_openssh_enc")
    );
    fs::remove_file(ssh.join("id_ecdsa256_openssh_enc")).unwrap();
    fs::remove_file(ssh.join("id_ed25519_openssh_enc")).unwrap();
    let out = keyrotate(&ssh).args(["restore", &name]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    assert!(
        !ssh.join("id_ed25519_openssh_enc").exists(),
        "a refused restore restores nothing"
    );
    run_json(keyrotate(&ssh).args(["restore", &name, "id_ed25519_openssh_enc", "--json"]));
    assert!(ssh.join("id_ed25519_openssh_enc").exists());
}

#[test]
fn an_interrupted_set_is_never_restored_and_the_next_command_removes_it() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let set = PathBuf::from(backup_json(&ssh, &[])["backup_dir"].as_str().unwrap());
    let name = set.file_name().unwrap().to_str().unwrap().to_string();
    // What a backup killed half-way leaves: a set still carrying its INCOMPLETE marker.
    fs::write(set.join("INCOMPLETE"), "").unwrap();
    // While another keyrotate holds the lock, it is shown as incomplete and left alone...
    let lock = ssh.join(".keyrotate.lock");
    let mut holder = Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let listing = list_json(&ssh);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(listing["sets"][0]["state"], "incomplete");
    assert!(set.exists());
    // ... and the next command removes it (its files were only copies of live keys) and says so.
    let out = keyrotate(&ssh).args(["restore", &name]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("removed the unfinished backup set"), "{err}");
    assert!(err.contains("no backup set named"), "{err}");
    assert!(!set.exists());
    assert!(ssh.join("id_ed25519_openssh_enc").exists());
}

#[test]
fn a_full_disk_leaves_no_partial_set_and_names_the_file() {
    if !is_root() {
        eprintln!(
            "a_full_disk_leaves_no_partial_set_and_names_the_file: needs root for unshare -m; not run"
        );
        return;
    }
    // A 96 KiB tmpfs in a private mount namespace: the host is untouched.
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size=96k tmpfs "$MNT"
        mkdir -m 700 "$MNT/.ssh"
        # Two 40 KiB files named like keys: the second copy cannot fit.
        head -c 40000 /dev/urandom > "$MNT/.ssh/id_a"
        head -c 40000 /dev/urandom > "$MNT/.ssh/id_b"
        set +e
        "$BIN" --ssh-dir "$MNT/.ssh" backup
        echo "exit=$?"
        ls -A "$MNT/.ssh/key_backup"
        sha256sum "$MNT/.ssh/id_a" "$MNT/.ssh/id_b" | cut -c1-64
    "#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("MNT", &mnt)
        .env("BIN", bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("exit=2"), "{stdout}{stderr}");
    assert!(stderr.contains("keyrotate: could not write"), "{stderr}");
    assert!(stderr.contains("/key_backup/"), "names the file: {stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    // No set, partial or otherwise, is left in key_backup.
    let after_exit: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("exit="))
        .skip(1)
        .collect();
    assert_eq!(
        after_exit.len(),
        2,
        "key_backup is empty; then two checksums: {stdout}"
    );
    assert!(
        !fs::read_dir(&mnt).unwrap().any(|_| true),
        "the tmpfs was private to the namespace"
    );
}

#[test]
fn a_second_keyrotate_fails_fast_naming_the_lock() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    generate(&ssh, spec("id_ed25519_openssh_enc"));
    let set = backup_json(&ssh, &[])["backup_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let name = Path::new(&set)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let before = snapshot(&ssh);
    // util-linux flock(1) holds the same kind of lock (flock(2)) for as long as `sleep` runs.
    let lock = ssh.join(".keyrotate.lock");
    let mut holder = Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for args in [&["backup"][..], &["restore", &name]] {
        let started = std::time::Instant::now();
        let out = keyrotate(&ssh).args(args).output().unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "fails fast"
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&lock.display().to_string()), "{err}");
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(before, snapshot(&ssh), "nothing changed while locked out");
    backup_json(&ssh, &[]);
}

/// A directory named as a key is refused as such, with a hint about what to name instead.
#[test]
fn a_directory_named_as_a_key_is_refused_saying_so() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    fs::create_dir(ssh.join("id_rsa_dir")).unwrap();
    let out = keyrotate(&ssh)
        .args(["backup", "id_rsa_dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("id_rsa_dir: it is a directory"), "{stderr}");
    assert!(
        stderr.contains("hint: name key files, not directories"),
        "{stderr}"
    );
    assert!(!ssh.join("key_backup").exists());
}

#[test]
fn a_loop_of_symlinks_is_skipped_with_a_note_not_the_end_of_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let ssh = tmp.path().join(".ssh");
    fs::create_dir(&ssh).unwrap();
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    // id_rsa -> id_rsa: open() fails with ELOOP.
    std::os::unix::fs::symlink("id_rsa", ssh.join("id_rsa")).unwrap();
    let out = keyrotate(&ssh).args(["backup", "--json"]).output().unwrap();
    let doc = json_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("id_rsa") && stderr.contains("loop"),
        "{stderr}"
    );
    let files: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    assert!(files.contains(&key.to_str().unwrap()), "{files:?}");
    let set = Path::new(doc["backup_dir"].as_str().unwrap());
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(set)
        .output()
        .unwrap();
    assert!(sums.status.success());
}
