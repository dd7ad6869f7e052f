//! Service profiles: `services [--json]`, user profiles in a config file (KEYROTATE_CONFIG)
//! honoured by `rotate` and `generate`, built-ins overridden field by field, malformed configs
//! refused (exit 2 naming file, line and field, nothing written), and a snapshot of each built-in
//! profile's closing instructions after `rotate`.
// ssh-keygen and POSIX paths: Unix only.
#![cfg(unix)]

use std::fs;
use std::path::Path;

use crate::common::*;

const BUILTINS: [&str; 7] = [
    "jasmin",
    "archer2",
    "cosma",
    "isambard",
    "github",
    "gitlab",
    "bitbucket",
];

const LAB: &str = r#"[services.lab]
display_name = "Lab cluster"
upload_url = "https://lab.example.org/keys"
wait_minutes = 5
login = "alice@login.lab.example.org"
key_type = "ed25519"
deploy = ["alice@srv1", "ssh://alice@srv2:2222"]

[services.jasmin]
wait_minutes = 30
"#;

fn with_config(ssh: &Path, config: &Path) -> assert_cmd::Command {
    let mut cmd = keyrotate(ssh);
    cmd.env("KEYROTATE_CONFIG", config);
    cmd
}

fn services_json(ssh: &Path, config: Option<&Path>) -> serde_json::Value {
    let mut cmd = keyrotate(ssh);
    if let Some(c) = config {
        cmd.env("KEYROTATE_CONFIG", c);
    }
    json_ok(&cmd.args(["services", "--json"]).output().unwrap())
}

#[test]
fn services_json_lists_the_seven_builtins_and_no_config() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = services_json(&tmp.path().join("ssh"), None);
    assert_eq!(doc["config"], serde_json::Value::Null);
    let names: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BUILTINS);
    for s in doc["services"].as_array().unwrap() {
        assert_eq!(s["source"], "builtin");
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            9,
            "name display_name source upload_url wait_minutes login key_type key_format deploy: {s}"
        );
    }
    let jasmin = &doc["services"][0];
    assert_eq!(jasmin["key_type"], serde_json::Value::Null);
    assert_eq!(jasmin["key_format"], serde_json::Value::Null);
    assert_eq!(jasmin["wait_minutes"], 15);
    assert_eq!(doc["services"][4]["key_type"], "ed25519");
    // The text table names every built-in too.
    let out = keyrotate(&tmp.path().join("ssh"))
        .arg("services")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for name in BUILTINS {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn a_user_profile_is_listed_and_a_builtin_is_overridden_field_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(&config, LAB).unwrap();
    let doc = services_json(&tmp.path().join("ssh"), Some(&config));
    assert_eq!(doc["config"], config.to_str().unwrap());
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 8);
    let lab = &services[7];
    assert_eq!(
        lab,
        &serde_json::json!({
            "name": "lab", "display_name": "Lab cluster", "source": "config",
            "upload_url": "https://lab.example.org/keys", "wait_minutes": 5,
            "login": "alice@login.lab.example.org", "key_type": "ed25519", "key_format": null,
            "deploy": ["alice@srv1", "ssh://alice@srv2:2222"]
        })
    );
    let jasmin = &services[0];
    assert_eq!(jasmin["source"], "config");
    assert_eq!(jasmin["wait_minutes"], 30);
    // Only wait_minutes was set: the rest is the built-in's.
    assert_eq!(
        jasmin["upload_url"],
        "https://accounts.jasmin.ac.uk/account/profile/"
    );
    assert_eq!(jasmin["display_name"], "JASMIN");
}

#[test]
fn a_user_profile_drives_rotate_and_generate() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let config = tmp.path().join("config.toml");
    fs::write(&config, LAB).unwrap();
    let pass = pass_file(tmp.path(), "new", NEW);
    // generate --service lab: the profile's key_type is the default.
    let out = with_config(&ssh, &config)
        .args(["generate", "--service", "lab", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = ssh.join("id_ed25519_lab");
    assert_eq!(keygen_l(&made).unwrap().kind, "ED25519");
    // rotate --service lab: its display name, upload URL, wait and login in the instructions.
    let out = with_config(&ssh, &config)
        .args([
            "rotate",
            "--service",
            "LAB",
            "--no-agent",
            "--passphrase-file",
        ])
        .arg(pass_file(
            tmp.path(),
            "newer",
            "yet another brand new passphrase",
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for wanted in [
        "upload the new PUBLIC key to Lab cluster",
        "https://lab.example.org/keys",
        "Allow up to 5 minutes",
        "alice@login.lab.example.org`",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
    assert_eq!(keygen_l(&made).unwrap().kind, "ED25519");
}

#[test]
fn a_builtins_recommended_type_is_generates_default_but_jasmin_keeps_rsa() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let pass = pass_file(tmp.path(), "new", NEW);
    let out = keyrotate(&ssh)
        .args(["generate", "--service", "github", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        keygen_l(&ssh.join("id_ed25519_github")).unwrap().kind,
        "ED25519"
    );
    // jasmin sets no key type: the dry run shows generate's own default, RSA 4096.
    let out = keyrotate(&ssh)
        .args(["generate", "--dry-run", "--service", "jasmin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("id_rsa_jasmin") && text.contains("4096"),
        "{text}"
    );
}

#[test]
fn malformed_configs_are_refused_naming_file_line_and_field() {
    for (name, text, line, field) in [
        ("syntax", "[services.lab]\nlogin = \"alice@b\n", 2, "login"),
        (
            "unknown-field",
            "[services.lab]\ndisplay_name = \"Lab\"\ncolour = \"red\"\n",
            3,
            "colour",
        ),
        (
            "wrong-type",
            "[services.lab]\nwait_minutes = \"soon\"\n",
            2,
            "wait_minutes",
        ),
        (
            "bad-key-type",
            "\n[services.lab]\nkey_type = \"dsa\"\n",
            3,
            "key_type",
        ),
    ] {
        let (tmp, ssh) = ssh_dir_copy(None);
        let config = tmp.path().join(format!("{name}.toml"));
        fs::write(&config, text).unwrap();
        let before = tree_snapshot(&ssh);
        for args in [
            &["services"][..],
            &["generate", "--service", "lab", "--passphrase-file", "-"][..],
            &[
                "rotate",
                "--service",
                "lab",
                "--no-agent",
                "--passphrase-file",
                "-",
            ][..],
        ] {
            let out = with_config(&ssh, &config)
                .args(args)
                .write_stdin(format!("{NEW}\n"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
            let wanted = format!("{} line {line}:", config.display());
            assert!(stderr.contains(&wanted), "{name}: {wanted:?} in {stderr}");
            assert!(
                stderr.contains(&format!("`{field}`")),
                "{name}: {field} in {stderr}"
            );
            assert!(stderr.contains("hint:"), "{stderr}");
            assert_eq!(
                tree_snapshot(&ssh),
                before,
                "{name} {args:?} wrote something"
            );
        }
    }
}

/// KEYROTATE_CONFIG naming a file that does not exist is an error (the user asked for that
/// file); the default path missing is no config at all (every other test runs so).
#[test]
fn keyrotate_config_naming_a_missing_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.toml");
    let out = with_config(&tmp.path().join("ssh"), &missing)
        .arg("services")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("KEYROTATE_CONFIG"), "{stderr}");
    // A directory is unreadable, not absent.
    let out = with_config(&tmp.path().join("ssh"), tmp.path())
        .arg("services")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The closing instructions of `rotate` for each built-in, snapshotted with the temporary
/// directory and the public key line (random) replaced.
#[test]
fn rotate_instructions_of_each_builtin() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    for name in BUILTINS {
        let (tmp, ssh) = ssh_dir_copy(None);
        let out = keyrotate(&ssh)
            .args(["rotate", "--service", name, "-t", "ed25519", "--no-agent"])
            .arg("--passphrase-file")
            .arg(pass_file(tmp.path(), "new", NEW))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let public = fs::read_to_string(ssh.join(format!("id_ed25519_{name}.pub"))).unwrap();
        let steps = text
            .split_once("\n\n")
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .replace(public.trim_end(), "<the new public key line>")
            .replace(ssh.to_str().unwrap(), "~/.ssh");
        settings.set_description(format!(
            "`keyrotate rotate --service {name} -t ed25519` of a fresh key: the closing steps"
        ));
        settings.bind(|| insta::assert_snapshot!(format!("rotate-{name}"), steps));
    }
}

/// The profile's type is `rotate`'s default only where there is no current key: a fresh GitHub
/// key is Ed25519, but an RSA GitHub key's successor is RSA (the successor rule).
#[test]
fn rotate_takes_the_profiles_type_only_without_a_current_key() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "--service",
            "github",
            "--no-agent",
            "--passphrase-file",
        ])
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        keygen_l(&ssh.join("id_ed25519_github")).unwrap().kind,
        "ED25519"
    );
    let old = keygen(&ssh.join("id_rsa_gitlab"), "rsa", &["-b", "2048"]);
    let out = keyrotate(&ssh)
        .args([
            "rotate",
            "--service",
            "gitlab",
            "--no-agent",
            "--passphrase-file",
        ])
        .arg(pass_file(
            tmp.path(),
            "newer",
            "yet another brand new passphrase",
        ))
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = keygen_l(&old).unwrap();
    assert_eq!((new.kind.as_str(), new.bits), ("RSA", 2048));
}
