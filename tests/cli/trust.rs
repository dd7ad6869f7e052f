//! The trust promises, each tested the way an outside review broke it (issue "Trust"):
//! - one EIO on the `stat` of a key never makes it "absent" (it would be replaced unsaved);
//! - recovery obeys only a journal that is ours, private and confined to the SSH directory, and
//!   root checking another user's directory writes nothing there;
//! - `key_backup/RETIRED` is saved before it is rewritten, and lines keyrotate does not know are
//!   kept;
//! - Ctrl-C before the commit point undoes the change, after it waits for the whole report;
//! - `--update-config` with a config it cannot read is an error, not a silent success;
//! - a hand-made set holding a symlink is never followed by restore;
//! - a service "key" that is a symlink to nothing or to a device is retired like any other;
//! - an unfinished backup set holding the only copy of a file is kept.
// These tests drive OpenSSH, strace and POSIX permissions: Unix only.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::openssh::Agent;
use crate::common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Does a verified backup set (no INCOMPLETE marker, `sha256sum -c` passes) hold `bytes`?
fn in_verified_set(ssh: &Path, bytes: &[u8]) -> bool {
    let Ok(sets) = fs::read_dir(ssh.join("key_backup")) else {
        return false;
    };
    for set in sets.flatten() {
        let dir = set.path();
        if !dir.is_dir() || dir.join("INCOMPLETE").exists() || !dir.join("SHA256SUMS").exists() {
            continue;
        }
        let sums = Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .unwrap();
        if !sums.status.success() {
            continue;
        }
        let found = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .any(|f| fs::read(f.path()).is_ok_and(|b| b == bytes));
        if found {
            return true;
        }
    }
    false
}

/// strace with an error injected into the `n`th stat-family call on `path` (and only on it).
fn with_stat_error(path: &Path, errno: &str, n: u32, args: &[&str], ssh: &Path) -> Output {
    let calls = "statx,newfstatat,lstat,stat";
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(path)
        .args(["-e", &format!("trace={calls}")])
        .args(["-e", &format!("inject={calls}:error={errno}:when={n}")])
        .arg(bin())
        .arg("--ssh-dir")
        .arg(ssh)
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn an_eio_on_the_stat_of_the_key_never_replaces_it_unsaved() {
    require_strace();
    let (tmp, base) = ssh_dir_copy(None);
    let key = keygen(&base.join("id_ed25519_jasmin"), "ed25519", &[]);
    let old = fs::read(&key).unwrap();
    let old_pub = key_part(&fs::read_to_string(pub_of(&key)).unwrap());
    let pass = pass_file(tmp.path(), "new", NEW);
    let pass = pass.to_str().unwrap();
    let mut failed = 0;
    for (name, args) in [
        (
            "generate --force",
            vec!["generate", "-t", "ed25519", "--force", "--json"],
        ),
        (
            "rotate",
            vec!["rotate", "-t", "ed25519", "--no-agent", "--json"],
        ),
    ] {
        for errno in ["EIO", "EACCES"] {
            for n in 1..=8 {
                let (_t, ssh) = ssh_dir_copy(Some(&base));
                let mut all = args.clone();
                all.extend(["--passphrase-file", pass]);
                let out = with_stat_error(&ssh.join("id_ed25519_jasmin"), errno, n, &all, &ssh);
                let what = format!("{name}: {errno} at stat #{n} of the key: {}", stderr(&out));
                let live = fs::read(ssh.join("id_ed25519_jasmin")).unwrap_or_default();
                // Every byte of the old key is live or in a verified set, whatever happened.
                assert!(
                    live == old || in_verified_set(&ssh, &old),
                    "{what}: old key lost"
                );
                match out.status.code() {
                    Some(0) => {
                        // Success is true: the new key is live and the old one was saved.
                        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                        let private = Path::new(doc["private_key"].as_str().unwrap());
                        assert!(opens_as(private, NEW).is_some(), "{what}");
                        assert!(in_verified_set(&ssh, &old), "{what}: said saved, was not");
                    }
                    Some(2) => {
                        failed += 1;
                        assert_eq!(live, old, "{what}: failed, yet the key changed");
                        assert_eq!(
                            opens_as(&ssh.join("id_ed25519_jasmin"), PASSPHRASE),
                            Some(old_pub.clone())
                        );
                        assert!(stderr(&out).contains("hint: "), "{what}");
                    }
                    other => panic!("{what}: exit {other:?}"),
                }
            }
        }
    }
    // The injected stats really were on the key's path: most runs must have failed.
    assert!(failed >= 8, "only {failed} runs met the injected error");
}

/// A journal as a killed keyrotate would leave it, after its commit point, removing `victim`.
fn journal_removing(victim: &Path) -> String {
    let sha = {
        let out = run_ok(Command::new("sha256sum").arg(victim));
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    };
    serde_json::json!({
        "version": 1,
        "operation": "rotate",
        "started": "2026-11-21T10:15:00Z",
        "phase": "committing",
        "staged": [],
        "replaced": [],
        "removed": [{"path": victim, "sha256": sha}],
        "backup_set": null
    })
    .to_string()
}

fn plant(ssh: &Path, journal: &str, mode: u32) -> PathBuf {
    let path = ssh.join(".keyrotate-journal");
    fs::write(&path, journal).unwrap();
    set_mode(&path, mode);
    path
}

#[test]
fn a_planted_journal_naming_files_outside_the_ssh_directory_is_refused() {
    let (tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    // Outside the directory, through `..`, and the store directory itself.
    let sneaky = ssh.join("..").join("victim");
    for target in [victim.clone(), sneaky] {
        let journal = plant(
            &ssh,
            &journal_removing(&victim)
                .replace(&victim.display().to_string(), &target.display().to_string()),
            0o600,
        );
        let before = tree_snapshot(tmp.path());
        // check (a read-only command) says so and goes on; nothing is touched.
        let out = keyrotate(&ssh).args(["check", "-q"]).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("will not act on the journal"),
            "{}",
            stderr(&out)
        );
        assert_eq!(tree_snapshot(tmp.path()), before, "check changed something");
        // A changing command refuses, exit 2, and says how to clear it.
        let out = keyrotate(&ssh).args(["backup"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("not a file keyrotate changes"), "{err}");
        assert!(err.contains(&format!("rm {}", journal.display())), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
        assert!(journal.exists());
        fs::remove_file(&journal).unwrap();
    }
}

#[test]
fn a_journal_others_could_have_written_is_refused() {
    let (tmp, ssh) = ssh_dir_copy(None);
    // A file inside the directory, so that only ownership and modes can stop it.
    let victim = ssh.join("id_precious");
    fs::write(&victim, "precious\n").unwrap();
    let text = journal_removing(&victim);
    // A journal writable by the group, then a journal in a group-writable SSH directory.
    let journal = plant(&ssh, &text, 0o620);
    let out = keyrotate(&ssh).args(["backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("can be written by other users"),
        "{}",
        stderr(&out)
    );
    assert!(victim.exists());
    set_mode(&journal, 0o600);
    set_mode(&ssh, 0o770);
    let out = keyrotate(&ssh).args(["backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the SSH directory"),
        "{}",
        stderr(&out)
    );
    assert!(victim.exists());
    // In a private directory it is still refused: it would remove a file that is in no
    // verified backup set (a journal keyrotate wrote always saves first).
    set_mode(&ssh, 0o700);
    let out = keyrotate(&ssh).args(["check", "-q"]).output().unwrap();
    assert!(
        stderr(&out).contains("in no verified backup set"),
        "{}",
        stderr(&out)
    );
    assert!(victim.exists() && journal.exists());
    // With the file saved in a verified set that the journal names, it is a real recovery.
    fs::remove_file(&journal).unwrap();
    let doc = json_ok(
        &keyrotate(&ssh)
            .args(["backup", "id_precious", "--json"])
            .output()
            .unwrap(),
    );
    let set = Path::new(doc["backup_dir"].as_str().unwrap())
        .file_name()
        .unwrap();
    let with_set = text.replace(
        "\"backup_set\":null",
        &format!("\"backup_set\":\"{}\"", set.to_str().unwrap()),
    );
    assert_ne!(with_set, text);
    let journal = plant(&ssh, &with_set, 0o600);
    let out = keyrotate(&ssh).args(["check", "-q"]).output().unwrap();
    assert!(stderr(&out).contains("was finished"), "{}", stderr(&out));
    assert!(!victim.exists() && !journal.exists());
    // Owned by another user: refused (only root can make one here).
    if is_root() {
        fs::write(&victim, "precious\n").unwrap();
        let journal = plant(&ssh, &text, 0o600);
        run_ok(Command::new("chown").arg("65534").arg(&journal));
        let out = keyrotate(&ssh).args(["backup"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("owned by uid 65534"),
            "{}",
            stderr(&out)
        );
        assert!(victim.exists());
    }
    drop(tmp);
}

#[test]
fn root_checking_another_users_directory_writes_nothing_there() {
    if !is_root() {
        eprintln!("skipped: needs root to make another user's directory");
        return;
    }
    let (tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let victim = ssh.join("id_ed25519_jasmin.pub");
    plant(&ssh, &journal_removing(&victim), 0o600);
    fs::write(ssh.join(".keyrotate-tmp-left.1.0"), "x").unwrap();
    run_ok(Command::new("chown").args(["-R", "65534:65534"]).arg(&ssh));
    let before = tree_snapshot(tmp.path());
    for args in [
        &["check"][..],
        &["check", "-q"],
        &["check", "--json"],
        &["backup", "--list"],
    ] {
        let out = keyrotate(&ssh).args(args).output().unwrap();
        assert!(!stderr(&out).contains("internal error"), "{}", stderr(&out));
        assert_eq!(
            tree_snapshot(tmp.path()),
            before,
            "{args:?} wrote into the directory"
        );
    }
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    assert!(
        stderr(&out).contains("belongs to another user"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_retired_record_keyrotate_does_not_recognise_is_saved_and_kept() {
    let (tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let store = ssh.join("key_backup");
    fs::create_dir(&store).unwrap();
    set_mode(&store, 0o700);
    let notes = "my own notes: the laptop key went in the river\nno newline at the end";
    fs::write(store.join("RETIRED"), notes).unwrap();
    set_mode(&store.join("RETIRED"), 0o600);
    let doc = rotate_to_ed25519(&ssh, tmp.path());
    let record = fs::read_to_string(store.join("RETIRED")).unwrap();
    assert!(record.starts_with(notes), "{record}");
    assert!(record.contains("SHA256:"), "{record}");
    // The record it replaced is in the rotation's verified set, byte for byte.
    let set = PathBuf::from(doc["backup_dir"].as_str().unwrap());
    assert_eq!(fs::read_to_string(set.join("RETIRED")).unwrap(), notes);
    assert!(in_verified_set(&ssh, notes.as_bytes()));
    // Restoring that set puts the keys back, never the old record (it would forget the key
    // retired since).
    let name = set.file_name().unwrap().to_str().unwrap();
    let out = keyrotate(&ssh)
        .args(["restore", name, "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!ssh.join("RETIRED").exists());
    assert!(
        fs::read_to_string(store.join("RETIRED"))
            .unwrap()
            .contains("SHA256:")
    );
    assert!(ssh.join("id_ecdsa_jasmin").exists());
    // A record that cannot be read stops check and rotate, naming it; nothing is rewritten.
    fs::remove_file(store.join("RETIRED")).unwrap();
    fs::create_dir(store.join("RETIRED")).unwrap();
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RETIRED"), "{}", stderr(&out));
}

#[test]
fn update_config_with_a_config_it_cannot_read_fails_before_changing_anything() {
    let (tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let pass = pass_file(tmp.path(), "new", NEW);
    let key = fs::read(ssh.join("id_ecdsa_jasmin")).unwrap();
    // Too large to be an ssh config, and (as a directory) not a file at all.
    let mut big = format!(
        "Host jasmin\n  IdentityFile {}\n",
        ssh.join("id_ecdsa_jasmin").display()
    );
    big.push_str(&"# padding\n".repeat(500_000));
    for make in [0, 1] {
        let config = ssh.join("config");
        match make {
            0 => fs::write(&config, &big).unwrap(),
            _ => {
                fs::remove_file(&config).unwrap();
                fs::create_dir(&config).unwrap();
            }
        }
        let out = keyrotate(&ssh)
            .args([
                "rotate",
                "-t",
                "ed25519",
                "--no-agent",
                "--update-config",
                "--passphrase-file",
            ])
            .arg(&pass)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&config.display().to_string()) && err.contains("hint: "),
            "{err}"
        );
        assert_eq!(fs::read(ssh.join("id_ecdsa_jasmin")).unwrap(), key);
        assert!(!ssh.join("id_ed25519_jasmin").exists());
        assert!(!ssh.join("key_backup").exists(), "{err}");
    }
}

#[test]
fn restore_never_follows_a_symlink_in_a_hand_made_set() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let set = ssh.join("key_backup").join("20260101T000000Z");
    fs::create_dir_all(&set).unwrap();
    set_mode(&ssh.join("key_backup"), 0o700);
    std::os::unix::fs::symlink("/etc/passwd", set.join("id_x.pub")).unwrap();
    let sha = run_ok(Command::new("sha256sum").arg("/etc/passwd"));
    let sha = &String::from_utf8(sha.stdout).unwrap()[..64];
    fs::write(set.join("SHA256SUMS"), format!("{sha}  id_x.pub\n")).unwrap();
    let out = keyrotate(&ssh)
        .args(["restore", "20260101T000000Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(!ssh.join("id_x.pub").exists());
}

#[test]
fn a_service_key_that_is_a_dangling_or_device_symlink_is_retired_not_left_live() {
    for target in ["/nonexistent/id_rsa_jasmin", "/dev/null"] {
        let (tmp, ssh) = ssh_dir_copy(None);
        std::os::unix::fs::symlink(target, ssh.join("id_rsa_jasmin")).unwrap();
        keygen(&tmp.path().join("elsewhere"), "rsa", &["-b", "2048"]);
        fs::copy(
            pub_of(&tmp.path().join("elsewhere")),
            ssh.join("id_rsa_jasmin.pub"),
        )
        .unwrap();
        let doc = rotate_to_ed25519(&ssh, tmp.path());
        assert!(
            fs::symlink_metadata(ssh.join("id_rsa_jasmin")).is_err(),
            "{target}: the link survived the rotation"
        );
        assert!(!ssh.join("id_rsa_jasmin.pub").exists(), "{target}");
        assert!(opens_as(&ssh.join("id_ed25519_jasmin"), NEW).is_some());
        assert!(
            doc["retired"].to_string().contains("id_rsa_jasmin"),
            "{doc}"
        );
    }
}

#[test]
fn recovery_keeps_an_unfinished_set_holding_the_only_copy_of_a_file() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let store = ssh.join("key_backup");
    let only = store.join("20260101T000000Z");
    let copy = store.join("20260101T000001Z");
    for set in [&only, &copy] {
        fs::create_dir_all(set).unwrap();
        fs::write(set.join("INCOMPLETE"), "interrupted\n").unwrap();
    }
    set_mode(&store, 0o700);
    // One set holds a key that is no longer live; the other a copy of a live one.
    fs::write(only.join("id_gone"), "the only copy\n").unwrap();
    fs::write(ssh.join("id_live"), "live\n").unwrap();
    fs::write(copy.join("id_live"), "live\n").unwrap();
    let out = keyrotate(&ssh).args(["check", "-q"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(
        fs::read_to_string(only.join("id_gone")).unwrap(),
        "the only copy\n",
        "{err}"
    );
    assert!(
        err.contains("kept the unfinished backup set key_backup/20260101T000000Z"),
        "{err}"
    );
    assert!(!copy.exists(), "{err}");
    assert!(
        err.contains("removed the unfinished backup set key_backup/20260101T000001Z"),
        "{err}"
    );
}

/// rotate with SIGINT delivered (by strace) at its `n`th rename, with a real ssh-agent.
fn rotate_interrupted_at_rename(
    n: u32,
    base: &Path,
    pass: &Path,
) -> (Output, PathBuf, Agent, tempfile::TempDir) {
    let (tmp, ssh) = ssh_dir_copy(Some(base));
    let agent = Agent::start();
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=rename,renameat,renameat2",
        ])
        .args([
            "-e",
            &format!("inject=rename,renameat,renameat2:signal=SIGINT:when={n}"),
        ])
        .arg(bin())
        .arg("--ssh-dir")
        .arg(&ssh)
        .args(["rotate", "-t", "ed25519", "--json", "--passphrase-file"])
        .arg(pass)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (out, ssh, agent, tmp)
}

#[test]
fn ctrl_c_before_the_commit_point_undoes_and_after_it_finishes_the_report() {
    require_strace();
    let (tmp, base) = ssh_dir_copy(None);
    let old = keygen(&base.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let old_bytes = fs::read(&old).unwrap();
    let pass = pass_file(tmp.path(), "new", NEW);
    let (mut undone, mut finished) = (0, 0);
    for n in 1..=7 {
        let (out, ssh, agent, _t) = rotate_interrupted_at_rename(n, &base, &pass);
        let err = stderr(&out);
        let what = format!("SIGINT at rename #{n}: {err}");
        assert!(!ssh.join(".keyrotate-journal").exists(), "{what}");
        match out.status.code() {
            Some(130) if err.contains("before the change was committed") => {
                undone += 1;
                assert_eq!(
                    fs::read(ssh.join("id_ecdsa_jasmin")).unwrap(),
                    old_bytes,
                    "{what}"
                );
                assert!(!ssh.join("id_ed25519_jasmin").exists(), "{what}");
                assert!(out.stdout.is_empty(), "{what}");
            }
            Some(130) if err.contains("after the change was committed") => {
                finished += 1;
                // The whole report was printed, and what it says is true.
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("{what}: no report ({e})"));
                let line = doc["public_key_line"].as_str().unwrap();
                let new = ssh.join("id_ed25519_jasmin");
                assert_eq!(
                    opens_as(&new, NEW).as_deref(),
                    Some(key_part(line).as_str()),
                    "{what}"
                );
                assert!(!ssh.join("id_ecdsa_jasmin").exists(), "{what}");
                assert_eq!(doc["agent"], "updated", "{what}");
                let fp = doc["fingerprint"].as_str().unwrap();
                assert!(agent.fingerprints().iter().any(|f| f == fp), "{what}");
            }
            // The rotation's renames were all done before this one: no interrupt at all.
            Some(0) => {}
            other => panic!("{what}: exit {other:?}"),
        }
    }
    assert!(
        undone > 0 && finished > 0,
        "undone {undone}, finished {finished}"
    );
}

#[test]
fn a_passphrase_openssh_cannot_type_is_refused() {
    let (tmp, ssh) = ssh_dir_copy(None);
    for bytes in [
        &b"a brand new passphrase\0 of mine\n"[..],
        b"a brand new\x1b[A passphrase\n",
        b"a brand new \xff\xfe passphrase\n",
    ] {
        let file = tmp.path().join("untypable");
        fs::write(&file, bytes).unwrap();
        let out = keyrotate(&ssh)
            .args(["generate", "-t", "ed25519", "--passphrase-file"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("prompt cannot take"),
            "{}",
            stderr(&out)
        );
        assert!(!ssh.join("id_ed25519_jasmin").exists());
    }
}
