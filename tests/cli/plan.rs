//! `--dry-run` and the real run share one plan: a test carries out the steps a dry run printed,
//! by hand (mkdir, `cp -p`, `sha256sum`, `ssh-keygen`, line edits, `rm`, `ssh-add`), in one copy
//! of an SSH directory, lets the real command run in a second copy, and compares the two trees:
//! the same files with the same modes, the same bytes wherever the bytes are not new random key
//! material, the same retired fingerprints, and the same keys in ssh-agent.
// These tests drive OpenSSH and POSIX permissions: Unix only.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::openssh::{Agent, askpass};
use crate::common::*;

const NEW_PASSPHRASE: &str = "plan apple orbit velvet 93";

/// Carry out a dry run's JSON plan in the directory it was made for. `new_key` says how to make
/// the new private key (ssh-keygen arguments); the agent steps go to `agent`.
fn execute(doc: &serde_json::Value, new_key: &[&str], agent: Option<&Agent>, tmp: &Path) {
    let steps = doc["steps"].as_array().expect("steps");
    let mut sets: Vec<PathBuf> = Vec::new();
    let mut fresh: Option<PathBuf> = None;
    for step in steps {
        let action = step["action"].as_str().unwrap();
        let path = PathBuf::from(step["path"].as_str().unwrap());
        let mode = step["mode"]
            .as_str()
            .map(|m| u32::from_str_radix(m, 8).expect("octal mode"));
        match action {
            "create-dir" => {
                fs::create_dir(&path).unwrap();
                set_mode(&path, mode.expect("a directory step names its mode"));
                if path.parent().is_some_and(|p| p.ends_with("key_backup")) {
                    sets.push(path);
                }
            }
            "back-up" => {
                let dest = step["dest"]
                    .as_str()
                    .expect("a back-up step names its copy");
                run_ok(Command::new("cp").arg("-p").arg(&path).arg(dest));
            }
            "create" | "replace" if step["from"].is_string() => {
                let _ = fs::remove_file(&path);
                let from = step["from"].as_str().unwrap();
                run_ok(Command::new("cp").arg("-p").arg(from).arg(&path));
                set_mode(&path, mode.expect("a file step names its mode"));
            }
            "create" | "replace" => {
                let detail = step["detail"].as_str().unwrap();
                let bytes = if detail.contains("new private key") {
                    let made = tmp.join("made-by-hand");
                    let _ = fs::remove_file(&made);
                    let _ = fs::remove_file(pub_of(&made));
                    run_ok(
                        Command::new("ssh-keygen")
                            .args(["-q", "-N", NEW_PASSPHRASE, "-C", "plan@test"])
                            .args(new_key)
                            .arg("-f")
                            .arg(&made),
                    );
                    fresh = Some(made.clone());
                    fs::read(&made).unwrap()
                } else if path.extension().is_some_and(|e| e == "pub") {
                    let made = fresh.as_ref().expect("the private key comes first");
                    fs::read(pub_of(made)).unwrap()
                } else if path.ends_with("config") {
                    // Rewritten by the plan's config steps below; its bytes stay until then.
                    fs::read(&path).unwrap()
                } else {
                    panic!("a step writes a file the test cannot make: {step}");
                };
                let _ = fs::remove_file(&path);
                fs::write(&path, bytes).unwrap();
                set_mode(&path, mode.expect("a file step names its mode"));
            }
            "remove" => fs::remove_file(&path).unwrap(),
            "retire" => {
                if let Some(fp) = step["text"].as_str() {
                    let mut record = fs::read_to_string(&path).unwrap_or_default();
                    record.push_str(&format!("{fp}\n"));
                    fs::write(&path, record).unwrap();
                    set_mode(&path, 0o600);
                }
            }
            "config" => {
                let Some(new_line) = step["text"].as_str() else {
                    continue;
                };
                let line = step["line"].as_u64().expect("a config step names its line") as usize;
                let text = fs::read_to_string(&path).unwrap();
                let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
                let ending = if lines[line - 1].ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                lines[line - 1] = format!("{new_line}{ending}");
                fs::write(&path, lines.concat()).unwrap();
            }
            "agent-remove" => {
                let agent = agent.expect("an agent step without an agent");
                let fp = step["text"].as_str().expect("the fingerprint to remove");
                // The public key to remove is in the backup set (its live copy is gone by now).
                let public = sets
                    .iter()
                    .flat_map(|s| walk(s))
                    .find(|p| {
                        p.extension().is_some_and(|e| e == "pub")
                            && keygen_l(p).is_some_and(|l| l.fingerprint == fp)
                    })
                    .expect("the removed key's .pub is in the backup set");
                let out = Command::new("ssh-add")
                    .arg("-d")
                    .arg(&public)
                    .env("SSH_AUTH_SOCK", &agent.socket)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
            }
            "agent-add" => {
                let agent = agent.expect("an agent step without an agent");
                let made = fresh.as_ref().expect("the new key was made");
                let out = agent.add(made, &askpass(tmp, NEW_PASSPHRASE));
                assert!(out.status.success(), "{out:?}");
            }
            "unchanged" => {}
            other => panic!("unknown step {other}: {step}"),
        }
    }
    // "each copy ... is listed in SHA256SUMS"
    for set in &sets {
        let mut names: Vec<String> = fs::read_dir(set)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let out = run_ok(Command::new("sha256sum").args(&names).current_dir(set));
        fs::write(set.join("SHA256SUMS"), out.stdout).unwrap();
        set_mode(&set.join("SHA256SUMS"), 0o600);
    }
}

/// What must be equal between the hand-run plan and the real run, for every entry under `dir`
/// (backup set names made equal): its kind and mode, its mtime where it is a copy, and its bytes
/// unless they are new key material, a checksum list or a record with dates in it.
fn outcome(dir: &Path, home: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut paths = walk(dir);
    paths.sort();
    let mut sets: Vec<String> = fs::read_dir(dir.join("key_backup"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("20"))
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    let sha = |path: &Path| {
        let bytes = fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes).replace(&*home.to_string_lossy(), "HOME");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&text, &mut h);
        format!("{:016x}", std::hash::Hasher::finish(&h))
    };
    for path in paths {
        let rel = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The lock is how a real run keeps others out while it works, not part of the change.
        if rel == ".keyrotate.lock" {
            continue;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let rel = match parts.as_slice() {
            ["key_backup", set, rest @ ..] if set.starts_with("20") => {
                let n = sets.iter().position(|s| s == set).unwrap();
                format!("key_backup/SET{n}/{}", rest.join("/"))
                    .trim_end_matches('/')
                    .to_string()
            }
            _ => rel,
        };
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let what = if meta.is_dir() {
            format!("dir {mode:o}")
        } else if name == "SHA256SUMS" {
            let listed = fs::read_to_string(&path).unwrap();
            let mut names: Vec<&str> = listed
                .lines()
                .filter_map(|l| l.split("  ").nth(1))
                .collect();
            names.sort();
            let ok = run_ok(
                Command::new("sha256sum")
                    .args(["-c", "--quiet", "SHA256SUMS"])
                    .current_dir(path.parent().unwrap()),
            );
            assert!(ok.status.success());
            format!("sums {mode:o} {names:?}")
        } else if name == "RETIRED" {
            let text = fs::read_to_string(&path).unwrap();
            let mut fps: Vec<&str> = text
                .split_whitespace()
                .filter(|w| w.starts_with("SHA256:"))
                .collect();
            fps.sort();
            format!("record {mode:o} {fps:?}")
        } else if rel.starts_with("key_backup/SET") {
            let mtime = meta.modified().unwrap();
            format!("copy {mode:o} {:?} {}", mtime, sha(&path))
        } else {
            match keygen_l(&path) {
                // A key: what it is, not its random bytes.
                Some(l) if !rel.starts_with("key_backup") && is_new(&path) => {
                    format!("new key {mode:o} {} {}", l.bits, l.kind)
                }
                _ => format!("file {mode:o} {}", sha(&path)),
            }
        };
        out.insert(rel, what);
    }
    out
}

/// A key the run made (the new passphrase opens it), or the `.pub` of one.
fn is_new(path: &Path) -> bool {
    match path.extension().is_some_and(|e| e == "pub") {
        true => is_new(&path.with_extension("")),
        false => opens_as(path, NEW_PASSPHRASE).is_some(),
    }
}

/// Two copies of one SSH directory (in `a` and `b`), each with its own HOME and agent.
struct Twin {
    tmp: tempfile::TempDir,
    ssh: PathBuf,
    agent: Agent,
}

fn twins(setup: impl Fn(&Path, &Path)) -> (Twin, Twin) {
    let make = || {
        let (tmp, ssh) = ssh_dir_copy(None);
        setup(tmp.path(), &ssh);
        Twin {
            tmp,
            ssh,
            agent: Agent::start(),
        }
    };
    let a = make();
    let b = make();
    // Same bytes and times in both (keys made by ssh-keygen differ: copy a's into b).
    fs::remove_dir_all(&b.ssh).unwrap();
    fs::create_dir(&b.ssh).unwrap();
    set_mode(&b.ssh, 0o700);
    copy_tree(&a.ssh, &b.ssh);
    let rewrite_home = |twin: &Twin| {
        let config = twin.ssh.join("config");
        if let Ok(text) = fs::read_to_string(&config) {
            let a_home = a.tmp.path().to_string_lossy().into_owned();
            let mtime = fs::metadata(&config).unwrap().modified().unwrap();
            fs::write(
                &config,
                text.replace(&a_home, &twin.tmp.path().to_string_lossy()),
            )
            .unwrap();
            set_mtime(&config, mtime);
        }
    };
    rewrite_home(&b);
    (a, b)
}

#[test]
fn rotate_carried_out_from_its_printed_plan_ends_as_the_real_rotate() {
    let (a, b) = twins(|home, ssh| {
        let old = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
        keygen(&ssh.join("id_rsa"), "rsa", &["-b", "3072"]);
        fs::write(
            ssh.join("config"),
            format!(
                "Host jasmin\n  HostName login-01.jasmin.ac.uk\n  IdentityFile {}\n\nHost other\n  IdentityFile ~/.ssh/id_rsa\n",
                old.display()
            ),
        )
        .unwrap();
        set_mode(&ssh.join("config"), 0o640);
        let _ = home;
    });
    for twin in [&a, &b] {
        let old = twin.ssh.join("id_ed25519_jasmin");
        let out = twin.agent.add(&old, &askpass(twin.tmp.path(), PASSPHRASE));
        assert!(out.status.success(), "{out:?}");
    }
    // A key retired earlier: the record is saved and kept, line for line.
    let pass_a = pass_file(a.tmp.path(), "pass", NEW_PASSPHRASE);
    let pass_b = pass_file(b.tmp.path(), "pass", NEW_PASSPHRASE);
    let args = ["rotate", "-t", "ecdsa", "--update-config"];

    let plan = json_ok(
        &keyrotate(&a.ssh)
            .args(args)
            .args(["--dry-run", "--json", "--passphrase-file"])
            .arg(&pass_a)
            .env("HOME", a.tmp.path())
            .env("SSH_AUTH_SOCK", &a.agent.socket)
            .output()
            .unwrap(),
    );
    let actions: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    for wanted in [
        "create-dir",
        "back-up",
        "create",
        "replace",
        "remove",
        "retire",
        "config",
        "agent-remove",
        "agent-add",
    ] {
        assert!(actions.contains(&wanted), "no {wanted} step in {plan}");
    }
    execute(
        &plan,
        &["-t", "ecdsa", "-b", "521"],
        Some(&a.agent),
        a.tmp.path(),
    );

    let real = json_ok(
        &keyrotate(&b.ssh)
            .args(args)
            .args(["--json", "--passphrase-file"])
            .arg(&pass_b)
            .env("HOME", b.tmp.path())
            .env("SSH_AUTH_SOCK", &b.agent.socket)
            .output()
            .unwrap(),
    );
    assert_eq!(real["agent"], "updated", "{real}");

    let by_hand = outcome(&a.ssh, a.tmp.path());
    let by_keyrotate = outcome(&b.ssh, b.tmp.path());
    assert_eq!(
        by_hand, by_keyrotate,
        "the plan carried out by hand and the real run differ"
    );
    // The new key is what each agent holds, and nothing else.
    for twin in [&a, &b] {
        let new = keygen_l(&twin.ssh.join("id_ecdsa_jasmin"))
            .unwrap()
            .fingerprint;
        assert_eq!(twin.agent.fingerprints(), vec![new]);
    }
    // The one config line rewritten names the new key in both, spelled the same way.
    let config = |t: &Twin| {
        fs::read_to_string(t.ssh.join("config"))
            .unwrap()
            .replace(&*t.tmp.path().to_string_lossy(), "HOME")
    };
    assert_eq!(config(&a), config(&b));
    assert!(config(&b).contains("id_ecdsa_jasmin"), "{}", config(&b));
}

#[test]
fn restore_and_generate_carried_out_from_their_printed_plans_end_as_the_real_runs() {
    // restore: one file replaced (its live bytes saved first), one created, one unchanged.
    let (a, b) = twins(|_, ssh| {
        keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
        keygen(&ssh.join("id_ecdsa"), "ecdsa", &[]);
    });
    let mut set = None;
    for twin in [&a, &b] {
        let doc = json_ok(
            &keyrotate(&twin.ssh)
                .args(["backup", "--json"])
                .output()
                .unwrap(),
        );
        let dir = PathBuf::from(doc["backup_dir"].as_str().unwrap());
        // a's name; b's set is renamed to it below.
        set.get_or_insert_with(|| dir.file_name().unwrap().to_string_lossy().into_owned());
        fs::write(twin.ssh.join("id_ed25519"), "changed since\n").unwrap();
        set_mode(&twin.ssh.join("id_ed25519"), 0o600);
        set_mtime(
            &twin.ssh.join("id_ed25519"),
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000),
        );
        fs::remove_file(twin.ssh.join("id_ecdsa.pub")).unwrap();
    }
    let set = set.unwrap();
    // Both sets got the same name only if made in the same second: rename b's to a's.
    let b_set = fs::read_dir(b.ssh.join("key_backup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("20"))
        .unwrap();
    fs::rename(
        b.ssh.join("key_backup").join(&b_set),
        b.ssh.join("key_backup").join(&set),
    )
    .unwrap();
    let plan = json_ok(
        &keyrotate(&a.ssh)
            .args(["restore", &set, "--dry-run", "--json"])
            .output()
            .unwrap(),
    );
    execute(&plan, &[], None, a.tmp.path());
    json_ok(
        &keyrotate(&b.ssh)
            .args(["restore", &set, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        outcome(&a.ssh, a.tmp.path()),
        outcome(&b.ssh, b.tmp.path()),
        "restore: plan by hand and real run differ"
    );

    // generate --force over an existing pair.
    let pass_a = pass_file(a.tmp.path(), "pass", NEW_PASSPHRASE);
    let pass_b = pass_file(b.tmp.path(), "pass", NEW_PASSPHRASE);
    let args = [
        "generate",
        "-t",
        "ed25519",
        "-f",
        "id_ed25519",
        "--force",
        "-C",
        "new@laptop",
        "--passphrase-file",
    ];
    let mut a_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a_args[4] = a.ssh.join("id_ed25519").to_string_lossy().into_owned();
    let mut b_args = a_args.clone();
    b_args[4] = b.ssh.join("id_ed25519").to_string_lossy().into_owned();
    let plan = json_ok(
        &keyrotate(&a.ssh)
            .args(&a_args)
            .arg(&pass_a)
            .args(["--dry-run", "--json"])
            .output()
            .unwrap(),
    );
    execute(&plan, &["-t", "ed25519"], None, a.tmp.path());
    json_ok(
        &keyrotate(&b.ssh)
            .args(&b_args)
            .arg(&pass_b)
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert_eq!(
        outcome(&a.ssh, a.tmp.path()),
        outcome(&b.ssh, b.tmp.path()),
        "generate: plan by hand and real run differ"
    );
}

/// The plan is made before the passphrase is asked for; a config edited while the prompt waits
/// must not be overwritten by the rewrite of the copy read earlier.
#[test]
fn a_config_edited_while_the_passphrase_is_awaited_is_left_alone() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let config = ssh.join("config");
    fs::write(
        &config,
        format!("Host jasmin\n  IdentityFile {}\n", old.display()),
    )
    .unwrap();
    let fifo = tmp.path().join("pass.fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let child = std::process::Command::new(bin())
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .arg("--ssh-dir")
        .arg(&ssh)
        .args([
            "rotate",
            "-t",
            "ecdsa",
            "--update-config",
            "--passphrase-file",
        ])
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is blocked opening the FIFO: the plan (and the config) has been read.
    // (The kernel names that wait `wait_for_partner`, in fs/pipe.c's fifo_open.)
    let wchan = format!("/proc/{}/wchan", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let waiting = || {
        let w = fs::read_to_string(&wchan).unwrap_or_default();
        w.contains("wait_for_partner") || w.contains("fifo")
    };
    while !waiting() {
        assert!(
            std::time::Instant::now() < deadline,
            "rotate never opened the passphrase FIFO"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let edited = format!(
        "Host jasmin\n  IdentityFile {}\n  User alice\n",
        old.display()
    );
    fs::write(&config, &edited).unwrap();
    fs::write(&fifo, format!("{NEW_PASSPHRASE}\n")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("changed while keyrotate was working on it"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        edited,
        "the edit was overwritten"
    );
    // Nothing else changed either: the old pair is live, no new key.
    assert!(opens_as(&old, PASSPHRASE).is_some());
    assert!(keygen_l(&pub_of(&old)).is_some());
    assert!(!ssh.join("id_ecdsa_jasmin").exists());
    assert!(!fs::read_dir(&ssh).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".keyrotate-")
    }));
}
