//! `--dry-run` of backup, restore, generate and rotate: the plan names every file that would be
//! copied, created, replaced or moved and every ssh-agent and config change, it refuses what the
//! real run refuses, and it changes nothing at all (a snapshot of the whole tree, modes and
//! mtimes included, and the agent's keys, are the same before and after). Where cheap, the real
//! run then does exactly what the plan said.
// These tests drive OpenSSH and POSIX permissions: Unix only.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::openssh::{Agent, askpass};
use crate::common::*;

/// `(action, path, dest)` of every step of a dry-run JSON plan, after checking its frame.
fn plan_steps(doc: &serde_json::Value, command: &str) -> Vec<(String, String, Option<String>)> {
    assert_eq!(doc["dry_run"], true, "{doc}");
    assert_eq!(doc["command"], command, "{doc}");
    doc["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap().to_string(),
                s["path"].as_str().unwrap().to_string(),
                s["dest"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn paths_of(steps: &[(String, String, Option<String>)], action: &str) -> BTreeSet<String> {
    steps
        .iter()
        .filter(|(a, _, _)| a == action)
        .map(|(_, p, _)| p.clone())
        .collect()
}

fn set_of(paths: &[&Path]) -> BTreeSet<String> {
    paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Run a dry run as JSON and as text; both succeed, and neither changes anything under `root`.
fn dry_run(ssh: &Path, root: &Path, args: &[&str], env: &[(&str, &Path)]) -> serde_json::Value {
    let before = tree_snapshot(root);
    let mut json = keyrotate(ssh);
    json.args(args).arg("--dry-run").arg("--json");
    let mut text = keyrotate(ssh);
    text.args(args).arg("--dry-run");
    for (k, v) in env {
        json.env(k, v);
        text.env(k, v);
    }
    let doc = json_ok(&json.output().unwrap());
    let out = text.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("Dry run: nothing was changed."),
        "{stdout}"
    );
    assert_eq!(tree_snapshot(root), before, "the dry run changed something");
    doc
}

#[test]
fn backup_dry_run_names_every_copy_and_changes_nothing() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let ed = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let ec = keygen(&ssh.join("id_ecdsa_jasmin"), "ecdsa", &[]);
    let doc = dry_run(&ssh, tmp.path(), &["backup"], &[]);
    let steps = plan_steps(&doc, "backup");
    let copied = paths_of(&steps, "back-up");
    assert_eq!(copied, set_of(&[&ed, &pub_of(&ed), &ec, &pub_of(&ec)]));
    // Every copy goes into one new set under key_backup/, keeping its name.
    let set = Path::new(steps.iter().find_map(|s| s.2.as_ref()).unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(set.parent().unwrap(), ssh.join("key_backup"));
    for (action, path, dest) in &steps {
        if action == "back-up" {
            let dest = PathBuf::from(dest.as_ref().unwrap());
            assert_eq!(dest.parent().unwrap(), set);
            assert_eq!(dest.file_name(), Path::new(path).file_name());
        }
    }
    assert!(paths_of(&steps, "create-dir").contains(&set.to_string_lossy().into_owned()));

    // One named key brings its pair; an unknown one is refused as the real run refuses it.
    let doc = dry_run(&ssh, tmp.path(), &["backup", "id_ed25519"], &[]);
    let named = paths_of(&plan_steps(&doc, "backup"), "back-up");
    assert_eq!(named, set_of(&[&ed, &pub_of(&ed)]));
    let before = tree_snapshot(tmp.path());
    let out = keyrotate(&ssh)
        .args(["backup", "--dry-run", "id_nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("id_nope"));
    assert_eq!(tree_snapshot(tmp.path()), before);

    // The real backup copies exactly the files the plan named.
    let real = json_ok(
        &keyrotate(&ssh)
            .arg("backup")
            .arg("--json")
            .output()
            .unwrap(),
    );
    let sources: BTreeSet<String> = real["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources, copied);
}

#[test]
fn restore_dry_run_names_what_it_replaces_saves_and_creates() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let backup = json_ok(&keyrotate(&ssh).args(["backup", "--json"]).output().unwrap());
    let set_dir = PathBuf::from(backup["backup_dir"].as_str().unwrap());
    let set = set_dir.file_name().unwrap().to_str().unwrap().to_string();
    // The live private key is now another key, and the .pub is gone.
    fs::remove_file(&key).unwrap();
    keygen(&key, "ed25519", &[]);
    fs::remove_file(pub_of(&key)).unwrap();

    let doc = dry_run(&ssh, tmp.path(), &["restore", &set], &[]);
    let steps = plan_steps(&doc, "restore");
    assert_eq!(paths_of(&steps, "replace"), set_of(&[&key]));
    assert_eq!(paths_of(&steps, "create"), set_of(&[&pub_of(&key)]));
    // What it replaces is saved first, in a new set (not the one being restored).
    let saved = paths_of(&steps, "back-up");
    assert_eq!(saved, set_of(&[&key]));
    let save_dest = PathBuf::from(steps.iter().find_map(|s| s.2.clone()).unwrap());
    let save_set = save_dest.parent().unwrap();
    assert_ne!(save_set, set_dir);
    assert_eq!(save_set.parent().unwrap(), ssh.join("key_backup"));

    // Unknown set: exit 2, as for the real run, and still nothing changed.
    let before = tree_snapshot(tmp.path());
    let out = keyrotate(&ssh)
        .args(["restore", "20000101T000000Z", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(tree_snapshot(tmp.path()), before);

    // The real restore does what the plan said.
    let real = json_ok(
        &keyrotate(&ssh)
            .args(["restore", &set, "--json"])
            .output()
            .unwrap(),
    );
    let actions: BTreeSet<(String, String)> = real["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["action"].as_str().unwrap().to_string(),
                f["dest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let key_s = key.to_string_lossy().into_owned();
    let pub_s = pub_of(&key).to_string_lossy().into_owned();
    assert_eq!(
        actions,
        BTreeSet::from([
            ("replaced".to_string(), key_s),
            ("restored".to_string(), pub_s)
        ])
    );
    assert!(real["saved_dir"].is_string());
}

#[test]
fn generate_dry_run_asks_nothing_refuses_as_the_real_run_and_changes_nothing() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    // No terminal and no --passphrase-file: the real run would exit 2; a dry run asks nothing.
    let doc = dry_run(
        &ssh,
        tmp.path(),
        &["generate", "-t", "ed25519", "--force"],
        &[],
    );
    let steps = plan_steps(&doc, "generate");
    assert_eq!(paths_of(&steps, "back-up"), set_of(&[&key, &pub_of(&key)]));
    assert_eq!(paths_of(&steps, "replace"), set_of(&[&key, &pub_of(&key)]));
    let notes = doc["notes"].to_string();
    assert!(notes.contains("asked for twice on the terminal"), "{notes}");

    // Without --force an existing key is refused, exactly as without --dry-run.
    let before = tree_snapshot(tmp.path());
    let out = keyrotate(&ssh)
        .args(["generate", "-t", "ed25519", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(tree_snapshot(tmp.path()), before);

    // A missing SSH directory is in the plan, and is still missing afterwards.
    let missing = tmp.path().join("fresh").join(".ssh");
    fs::create_dir(tmp.path().join("fresh")).unwrap();
    let doc = dry_run(&missing, tmp.path(), &["generate", "-t", "ecdsa"], &[]);
    let steps = plan_steps(&doc, "generate");
    assert_eq!(steps[0].0, "create-dir");
    assert_eq!(steps[0].1, missing.to_string_lossy());
    let target = missing.join("id_ecdsa_jasmin");
    assert_eq!(
        paths_of(&steps, "create"),
        set_of(&[&target, &pub_of(&target)])
    );
    assert!(!missing.exists());
}

#[test]
fn rotate_dry_run_plans_backup_swap_retire_config_and_agent_then_the_real_run_matches() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let config = ssh.join("config");
    fs::write(
        &config,
        "Host jasmin\n  HostName login-01.jasmin.ac.uk\n  IdentityFile ~/.ssh/id_ed25519_jasmin\n",
    )
    .unwrap();
    let agent = Agent::start();
    assert!(
        agent
            .add(&old, &askpass(tmp.path(), PASSPHRASE))
            .status
            .success()
    );
    let old_fp = keygen_l(&old).unwrap().fingerprint;
    let loaded = agent.fingerprints();
    assert_eq!(loaded, vec![old_fp.clone()]);

    let args = ["rotate", "-t", "ecdsa", "--update-config"];
    let env = [
        ("SSH_AUTH_SOCK", agent.socket.as_path()),
        ("HOME", tmp.path()),
    ];
    let doc = dry_run(&ssh, tmp.path(), &args, &env);
    assert_eq!(
        agent.fingerprints(),
        loaded,
        "the dry run changed the agent"
    );
    let steps = plan_steps(&doc, "rotate");
    let new = ssh.join("id_ecdsa_jasmin");
    assert_eq!(
        paths_of(&steps, "back-up"),
        set_of(&[&old, &pub_of(&old), &config])
    );
    assert_eq!(paths_of(&steps, "create"), set_of(&[&new, &pub_of(&new)]));
    assert_eq!(paths_of(&steps, "replace"), set_of(&[&config]));
    assert_eq!(paths_of(&steps, "remove"), set_of(&[&old, &pub_of(&old)]));
    let details = |action: &str| -> Vec<String> {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["action"] == action)
            .map(|s| s["detail"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(details("retire")[0].contains(&old_fp));
    assert!(
        details("config")[0].contains("line 3"),
        "{:?}",
        details("config")
    );
    assert!(details("agent-remove")[0].contains(&old_fp));
    assert_eq!(details("agent-add").len(), 1);

    // The real rotation does what the plan said.
    let pass = tmp.path().join("new-pass");
    fs::write(&pass, format!("{NEW}\n")).unwrap();
    let mut real = keyrotate(&ssh);
    real.args(args)
        .arg("--json")
        .arg("--passphrase-file")
        .arg(&pass);
    for (k, v) in env {
        real.env(k, v);
    }
    let done = json_ok(&real.output().unwrap());
    let set = PathBuf::from(done["backup_dir"].as_str().unwrap());
    let mut in_set: Vec<String> = fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_set.sort();
    assert_eq!(
        in_set,
        [
            "SHA256SUMS",
            "config",
            "id_ed25519_jasmin",
            "id_ed25519_jasmin.pub"
        ]
    );
    assert!(!old.exists() && !pub_of(&old).exists());
    assert_eq!(
        agent.fingerprints(),
        vec![keygen_l(&new).unwrap().fingerprint]
    );
    assert!(
        fs::read_to_string(&config)
            .unwrap()
            .contains("id_ecdsa_jasmin")
    );
    // The retired-key record rotate wrote in key_backup/ is not listed as a stray backup.
    assert!(ssh.join("key_backup/RETIRED").exists());
    let list = json_ok(
        &keyrotate(&ssh)
            .args(["backup", "--list", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(list["other"], serde_json::json!([]), "{list}");
}

#[test]
fn rotate_dry_run_without_an_agent_or_a_key_plans_a_fresh_key() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = tmp.path().join("pass");
    let before = tree_snapshot(tmp.path());
    let out = keyrotate(&ssh)
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--dry-run",
            "--json",
            "--passphrase-file",
        ])
        .arg(&pass)
        .output()
        .unwrap();
    let doc = json_ok(&out);
    let steps = plan_steps(&doc, "rotate");
    let new = ssh.join("id_ed25519_jasmin");
    assert_eq!(paths_of(&steps, "create"), set_of(&[&new, &pub_of(&new)]));
    assert!(paths_of(&steps, "back-up").is_empty());
    let notes = doc["notes"].to_string();
    assert!(notes.contains("fresh one"), "{notes}");
    assert!(notes.contains("SSH_AUTH_SOCK is not set"), "{notes}");
    // The passphrase file is only named, not read (it does not even exist).
    assert!(notes.contains(&*pass.to_string_lossy()), "{notes}");
    assert_eq!(tree_snapshot(tmp.path()), before);
}
