//! OpenSSH certificates: `check` reports each with the key it certifies (fields as
//! `ssh-keygen -L` reads them), flags the six certificate troubles, lists the ones ssh-agent
//! holds, and `rotate` retires a key's certificates with it. Certificates are made by
//! `ssh-keygen -s` with a CA made by ssh-keygen; the agent is a real ssh-agent.
// OpenSSH and POSIX permissions: Unix only.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::openssh::Agent;
use crate::common::*;

/// An unencrypted key made by ssh-keygen (a CA, or a key the agent loads without asking).
fn plain(dir: &Path, name: &str, key_type: &str) -> PathBuf {
    let path = dir.join(name);
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", key_type, "-N", "", "-C", name, "-f"])
            .arg(&path),
    );
    path
}

/// `ssh-keygen -s CA ... KEY.pub`; the certificate is `KEY-cert.pub`.
fn certify(ca: &Path, key: &Path, extra: &[&str]) -> PathBuf {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(ca)
            .args(extra)
            .arg(pub_of(key)),
    );
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

/// A CA (kept outside the SSH directory) and an SSH directory.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, ssh) = ssh_dir_copy(None);
    let ca = plain(tmp.path(), "ca", "ed25519");
    (tmp, ssh, ca)
}

/// The `certificates` of the entry for `key`.
fn certs_of<'a>(doc: &'a serde_json::Value, key: &Path) -> &'a Vec<serde_json::Value> {
    entry(doc, key)["certificates"]
        .as_array()
        .expect("certificates array")
}

/// What `ssh-keygen -L -f CERT` says (times in UTC).
struct KeygenCert {
    key_id: String,
    serial: String,
    principals: Vec<String>,
    valid: String,
    signing_ca: String,
}

fn keygen_cert(cert: &Path) -> KeygenCert {
    let out = run_ok(
        Command::new("ssh-keygen")
            .args(["-L", "-f"])
            .arg(cert)
            .env("TZ", "UTC"),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    let mut principals = Vec::new();
    let mut in_principals = false;
    for line in text.lines() {
        if line.trim().starts_with("Principals:") {
            in_principals = true;
            continue;
        }
        if in_principals {
            if line.starts_with("                ") {
                principals.push(line.trim().to_string());
            } else {
                break;
            }
        }
    }
    KeygenCert {
        key_id: field("Key ID:").trim_matches('"').to_string(),
        serial: field("Serial:"),
        principals,
        valid: field("Valid:"),
        signing_ca: field("Signing CA:"),
    }
}

#[test]
fn a_certificate_is_reported_with_its_key_as_ssh_keygen_reads_it() {
    let (_tmp, ssh, ca) = setup();
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let cert = certify(
        &ca,
        &key,
        &[
            "-I",
            "alice@example.org",
            "-n",
            "alice,bob",
            "-z",
            "4711",
            "-V",
            "-1d:+30d",
            "-O",
            "force-command=/bin/true",
            "-O",
            "no-pty",
        ],
    );
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1, "{doc:#}");
    let certs = certs_of(&doc, &key);
    assert_eq!(certs.len(), 1);
    let c = &certs[0];
    let want = keygen_cert(&cert);
    assert_eq!(c["path"], cert.to_string_lossy().as_ref());
    assert_eq!(c["type"], "user");
    assert_eq!(c["key_id"], want.key_id.as_str());
    assert_eq!(c["serial"].to_string(), want.serial);
    let principals: Vec<&str> = c["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(principals, want.principals);
    assert_eq!(principals, ["alice", "bob"]);
    let (from, to) = want
        .valid
        .strip_prefix("from ")
        .and_then(|v| v.split_once(" to "))
        .expect("a bounded validity");
    assert_eq!(c["valid_after"], format!("{from}Z"));
    assert_eq!(c["valid_before"], format!("{to}Z"));
    let ca_fp = keygen_l(&pub_of(&ca)).unwrap().fingerprint;
    assert_eq!(c["ca_fingerprint"], ca_fp.as_str());
    assert!(want.signing_ca.contains(&ca_fp), "{}", want.signing_ca);
    assert_eq!(c["signature_algorithm"], "ssh-ed25519");
    assert_eq!(
        c["critical_options"],
        serde_json::json!({"force-command": "/bin/true"})
    );
    let extensions: Vec<&str> = c["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(extensions.contains(&"permit-agent-forwarding"));
    assert!(!extensions.contains(&"permit-pty"), "{extensions:?}");
    let entry_codes = codes(entry(&doc, &key));
    assert!(
        !entry_codes.iter().any(|c| c.starts_with("certificate-")),
        "{entry_codes:?}"
    );

    // Text mode shows it under its key.
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let at_key = text.find(&*key.to_string_lossy()).unwrap();
    let at_cert = text
        .find(&format!("certificate: {}", cert.display()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(at_key < at_cert);
    assert!(
        text.contains("key ID \"alice@example.org\", serial 4711"),
        "{text}"
    );
}

#[test]
fn a_key_without_certificates_has_an_empty_list_and_forever_is_null() {
    let (_tmp, ssh, ca) = setup();
    let bare = keygen(&ssh.join("id_rsa"), "ed25519", &[]);
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let cert = certify(&ca, &key, &["-I", "forever", "-n", "alice"]);
    assert_eq!(keygen_cert(&cert).valid, "forever");
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(certs_of(&doc, &bare).len(), 0);
    let c = &certs_of(&doc, &key)[0];
    assert_eq!(c["valid_after"], serde_json::Value::Null);
    assert_eq!(c["valid_before"], serde_json::Value::Null);
    assert_eq!(c["serial"], 0);
}

/// The certificate findings of the entry for `key`, with `extra` check options.
fn cert_codes(ssh: &Path, key: &Path, extra: &[&str]) -> Vec<String> {
    let (doc, _) = check_json(ssh, extra);
    codes(entry(&doc, key))
        .into_iter()
        .filter(|c| c.starts_with("certificate-"))
        .collect()
}

#[test]
fn expired_not_yet_valid_and_expiring_certificates_are_flagged() {
    let (_tmp, ssh, ca) = setup();
    let cases = [
        ("id_expired", "-2w:-1d", vec!["certificate-expired"]),
        ("id_future", "+1d:+2w", vec!["certificate-not-yet-valid"]),
        ("id_expiring", "-1d:+3d", vec!["certificate-expiring"]),
        ("id_fine", "-1d:+30d", vec![]),
    ];
    for (name, validity, _) in &cases {
        let key = keygen(&ssh.join(name), "ed25519", &[]);
        certify(&ca, &key, &["-I", name, "-n", "alice", "-V", validity]);
    }
    let (doc, code) = check_json(&ssh, &[]);
    assert_eq!(code, 1);
    for (name, _, want) in &cases {
        let e = entry(&doc, &ssh.join(name));
        let got: Vec<String> = codes(e)
            .into_iter()
            .filter(|c| c.starts_with("certificate-"))
            .collect();
        assert_eq!(&got, want, "{name}");
        for f in e["findings"].as_array().unwrap() {
            let code = f["code"].as_str().unwrap();
            if code.starts_with("certificate-") {
                let severity = if code == "certificate-expiring" {
                    "info"
                } else {
                    "warning"
                };
                assert_eq!(f["severity"], severity, "{code}");
                assert!(
                    f["message"].as_str().unwrap().contains("new certificate")
                        || code == "certificate-not-yet-valid",
                    "{f}"
                );
            }
        }
    }
    // --cert-warn-days moves the horizon.
    assert!(cert_codes(&ssh, &ssh.join("id_expiring"), &["--cert-warn-days", "1"]).is_empty());
    assert_eq!(
        cert_codes(&ssh, &ssh.join("id_fine"), &["--cert-warn-days", "60"]),
        ["certificate-expiring"]
    );
}

#[test]
fn a_certificate_without_principals_is_flagged() {
    let (_tmp, ssh, ca) = setup();
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    certify(&ca, &key, &["-I", "nobody", "-V", "-1d:+30d"]);
    assert_eq!(cert_codes(&ssh, &key, &[]), ["certificate-no-principals"]);
}

#[test]
fn another_keys_certificate_is_a_mismatch_naming_the_key_it_certifies() {
    let (_tmp, ssh, ca) = setup();
    let a = keygen(&ssh.join("id_a"), "ed25519", &[]);
    let b = keygen(&ssh.join("id_b"), "ed25519", &[]);
    let cert_a = certify(&ca, &a, &["-I", "a", "-n", "alice", "-V", "-1d:+30d"]);
    fs::rename(&cert_a, ssh.join("id_b-cert.pub")).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    let e = entry(&doc, &b);
    let finding = e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "certificate-key-mismatch")
        .unwrap_or_else(|| panic!("{e:#}"));
    assert_eq!(finding["severity"], "warning");
    let message = finding["message"].as_str().unwrap();
    assert!(message.contains(&*a.to_string_lossy()), "{message}");
    assert!(
        message.contains(&keygen_l(&a).unwrap().fingerprint),
        "{message}"
    );
    assert!(certs_of(&doc, &a).is_empty());
}

#[test]
fn a_certificate_signed_with_ssh_rsa_is_flagged() {
    let (tmp, ssh, _) = setup();
    let ca = plain(tmp.path(), "ca_rsa", "rsa");
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args([
            "-t", "ssh-rsa", "-I", "sha1", "-n", "alice", "-V", "-1d:+30d",
        ])
        .arg(pub_of(&key))
        .output()
        .unwrap();
    let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
    if !made.status.success() || !keygen_cert(&cert).signing_ca.contains("using ssh-rsa") {
        eprintln!(
            "skipped: this OpenSSH cannot sign a certificate with ssh-rsa: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        return;
    }
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(certs_of(&doc, &key)[0]["signature_algorithm"], "ssh-rsa");
    assert_eq!(cert_codes(&ssh, &key, &[]), ["certificate-weak-signature"]);

    // rsa-sha2-512, what ssh-keygen signs with by default, is fine.
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args(["-I", "sha2", "-n", "alice", "-V", "-1d:+30d"])
            .arg(pub_of(&key)),
    );
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(
        certs_of(&doc, &key)[0]["signature_algorithm"],
        "rsa-sha2-512"
    );
    assert!(cert_codes(&ssh, &key, &[]).is_empty());
}

#[test]
fn a_lone_certificate_is_an_entry_of_its_own() {
    let (tmp, ssh, ca) = setup();
    let key = keygen(&tmp.path().join("elsewhere"), "ed25519", &[]);
    let cert = certify(&ca, &key, &["-I", "lone", "-n", "alice", "-V", "-2w:-1d"]);
    let lone = ssh.join("id_gone-cert.pub");
    fs::copy(&cert, &lone).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1, "{doc:#}");
    let e = entry(&doc, &lone);
    assert_eq!(e["format"], "certificate");
    assert_eq!(
        e["fingerprint"],
        keygen_l(&key).unwrap().fingerprint.as_str()
    );
    assert_eq!(e["certificates"][0]["key_id"], "lone");
    assert_eq!(codes(e), ["certificate-expired"]);
}

#[test]
fn a_host_certificate_says_host() {
    let (_tmp, ssh, ca) = setup();
    let key = keygen(&ssh.join("ssh_host_ed25519_key"), "ed25519", &[]);
    certify(
        &ca,
        &key,
        &[
            "-h",
            "-I",
            "host",
            "-n",
            "host.example.org",
            "-V",
            "-1d:+30d",
        ],
    );
    let (doc, _) = check_json(&ssh, &[]);
    let c = &certs_of(&doc, &key)[0];
    assert_eq!(c["type"], "host");
    assert_eq!(c["principals"], serde_json::json!(["host.example.org"]));
}

#[test]
fn a_damaged_certificate_is_unreadable_not_a_crash() {
    let (_tmp, ssh, ca) = setup();
    let key = keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    let cert = certify(&ca, &key, &["-I", "x", "-n", "alice"]);
    let text = fs::read_to_string(&cert).unwrap();
    let (kind, rest) = text.split_once(' ').unwrap();
    fs::write(&cert, format!("{kind} {}\n", &rest[..rest.len() / 2])).unwrap();
    let (doc, _) = check_json(&ssh, &[]);
    let e = entry(&doc, &cert);
    assert_eq!(codes(e), ["unreadable-key"]);
}

#[test]
fn certificates_in_ssh_agent_are_listed_and_flagged() {
    let (_tmp, ssh, ca) = setup();
    let key = plain(&ssh, "id_ed25519", "ed25519");
    let cert = certify(
        &ca,
        &key,
        &["-I", "in-agent", "-n", "alice", "-V", "-2w:-1d"],
    );
    let agent = Agent::start();
    // `ssh-add KEY` adds the certificate beside it too.
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(added.status.success());
    assert!(
        String::from_utf8_lossy(&added.stderr).contains("Certificate added"),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // The certificate file leaves: only the agent has it now.
    fs::remove_file(&cert).unwrap();
    let out = keyrotate(&ssh)
        .args(["check", "--json"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["agent"]["error"], serde_json::Value::Null, "{doc:#}");
    let keys = doc["agent"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:#?}");
    let held = keys
        .iter()
        .find(|k| !k["certificate"].is_null())
        .expect("the certificate is listed");
    assert_eq!(
        held["fingerprint"],
        keygen_l(&key).unwrap().fingerprint.as_str()
    );
    assert_eq!(held["certificate"]["key_id"], "in-agent");
    assert_eq!(held["certificate"]["path"], serde_json::Value::Null);
    assert_eq!(codes(&doc), ["certificate-expired"]);
    assert!(
        doc["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ssh-agent")
    );

    let text = keyrotate(&ssh)
        .arg("check")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("certificate: user, key ID \"in-agent\""),
        "{text}"
    );
}

#[test]
fn rotate_retires_a_keys_certificate_with_it() {
    let (tmp, ssh, ca) = setup();
    let key = keygen(&ssh.join("id_ed25519_isambard"), "ed25519", &[]);
    let cert = certify(&ca, &key, &["-I", "old", "-n", "alice", "-V", "-1d:+30d"]);
    let cert_bytes = fs::read(&cert).unwrap();
    let new_pass = pass_file(tmp.path(), "new", NEW);

    let dry = keyrotate(&ssh)
        .args(["rotate", "-f"])
        .arg(&key)
        .args(["--no-agent", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success());
    let plan = String::from_utf8(dry.stdout).unwrap();
    assert!(
        plan.lines()
            .any(|l| l.starts_with("  move out") && l.contains(&*cert.to_string_lossy())),
        "{plan}"
    );
    assert!(cert.exists());

    let out = keyrotate(&ssh)
        .args(["rotate", "-f"])
        .arg(&key)
        .args(["--no-agent", "--passphrase-file"])
        .arg(&new_pass)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("ask your certificate authority for a new certificate for the new key"),
        "{report}"
    );
    assert!(
        !cert.exists(),
        "the old certificate left the live directory"
    );
    let set = walk(&ssh.join("key_backup"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "id_ed25519_isambard-cert.pub")
        })
        .expect("the certificate is in the backup set");
    assert_eq!(fs::read(&set).unwrap(), cert_bytes);
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(set.parent().unwrap())
        .output()
        .unwrap();
    assert!(sums.status.success());
    let (doc, _) = check_json(&ssh, &[]);
    assert!(certs_of(&doc, &key).is_empty());
}

#[test]
fn rotate_takes_the_old_keys_certificate_out_of_ssh_agent() {
    let (tmp, ssh, ca) = setup();
    let key = plain(&ssh, "id_ed25519", "ed25519");
    certify(&ca, &key, &["-I", "old", "-n", "alice", "-V", "-1d:+30d"]);
    let agent = Agent::start();
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(added.status.success());
    let old_fp = keygen_l(&key).unwrap().fingerprint;
    assert_eq!(
        agent
            .fingerprints()
            .iter()
            .filter(|f| **f == old_fp)
            .count(),
        2,
        "the key and its certificate"
    );
    let out = keyrotate(&ssh)
        .args(["rotate", "-f"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(pass_file(tmp.path(), "new", NEW))
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let held = agent.fingerprints();
    assert!(!held.contains(&old_fp), "{held:?}");
    assert!(
        held.contains(&keygen_l(&key).unwrap().fingerprint),
        "{held:?}"
    );
}
