//! Helpers shared by the integration tests: run the real binary, make real keys with `ssh-keygen`,
//! and read back what `ssh-keygen -l` says about them.

// Shared by tests/cli/ and tests/alloc.rs, which each use only some of it.
#![allow(dead_code)]

pub mod openssh;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyrotate"))
}

/// The binary with a clean environment for `ssh_dir`: no colour, no inherited SSH dir.
pub fn keyrotate(ssh_dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.env_remove("KEYROTATE_SSH_DIR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("SSH_AUTH_SOCK")
        // No service profiles of the machine's user: KEYROTATE_CONFIG unset, and a config
        // directory (XDG_CONFIG_HOME, which dirs::config_dir reads on Linux) that does not exist.
        .env_remove("KEYROTATE_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent/keyrotate-tests")
        .env("NO_COLOR", "1")
        .arg("--ssh-dir")
        .arg(ssh_dir)
        .timeout(Duration::from_secs(60));
    cmd
}

/// Run `check --json` and return the document and exit code; fails on anything but 0 or 1.
pub fn check_json(ssh_dir: &Path, extra: &[&str]) -> (serde_json::Value, i32) {
    let out = keyrotate(ssh_dir)
        .arg("check")
        .arg("--json")
        .args(extra)
        .output()
        .expect("keyrotate runs");
    let code = out.status.code().expect("exited, not killed");
    assert!(
        code == 0 || code == 1,
        "check exited {code}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (doc, code)
}

/// The entry for `path` in a `check --json` document.
pub fn entry<'a>(doc: &'a serde_json::Value, path: &Path) -> &'a serde_json::Value {
    let want = path.to_string_lossy();
    doc["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|k| k["path"] == *want)
        .unwrap_or_else(|| panic!("no entry for {want} in {doc:#}"))
}

/// The finding codes of an entry (or of the directory when given the whole document), sorted.
pub fn codes(v: &serde_json::Value) -> Vec<String> {
    let mut codes: Vec<String> = v["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_string())
        .collect();
    codes.sort();
    codes
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What `ssh-keygen -l -E sha256 -f PATH` prints, split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeygenL {
    pub bits: u64,
    pub fingerprint: String,
    pub comment: String,
    /// `RSA`, `ED25519`, ... as in the trailing `(TYPE)`.
    pub kind: String,
}

pub fn keygen_l(path: &Path) -> Option<KeygenL> {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8(out.stdout).expect("utf-8");
    let line = line.lines().next()?.trim();
    let (rest, kind) = line.rsplit_once(' ')?;
    let mut parts = rest.splitn(3, ' ');
    let bits = parts.next()?.parse().ok()?;
    let fingerprint = parts.next()?.to_string();
    let comment = parts.next().unwrap_or("").to_string();
    Some(KeygenL {
        bits,
        fingerprint,
        comment,
        kind: kind.trim_matches(|c| c == '(' || c == ')').to_string(),
    })
}

/// One key to make with ssh-keygen.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// `rsa`, `ed25519`, `ecdsa`, `dsa`.
    pub key_type: &'static str,
    pub bits: Option<u32>,
    /// ssh-keygen's `-m`: `RFC4716` (= OpenSSH format for private keys), `PEM`, `PKCS8`.
    pub format: &'static str,
    pub passphrase: Option<&'static str>,
    pub rounds: Option<u32>,
}

pub const PASSPHRASE: &str = "correct horse battery staple 42";

/// The new passphrase the tests give `generate` and `rotate`.
pub const NEW: &str = "a brand new passphrase of mine";

/// A key made by ssh-keygen at `path` (passphrase [`PASSPHRASE`], comment `old@laptop`), with
/// `extra` ssh-keygen options.
pub fn keygen(path: &Path, key_type: &str, extra: &[&str]) -> PathBuf {
    run_ok(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                key_type,
                "-N",
                PASSPHRASE,
                "-C",
                "old@laptop",
                "-f",
            ])
            .arg(path)
            .args(extra),
    );
    path.to_path_buf()
}

/// `PATH.pub`.
pub fn pub_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", path.display()))
}

/// A passphrase file `dir/name` holding `passphrase` and a newline.
pub fn pass_file(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("{passphrase}\n")).unwrap();
    path
}

/// The `type base64` part of a public key line (without its comment).
pub fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The crash, fault and hardening tests drive strace: fail loudly, never skip, without it.
pub fn require_strace() {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "strace is needed: apt-get install strace (.ci/run does)"
    );
}

/// Every path under `dir`, recursively (symlinks are listed, not followed).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let is_dir = fs::symlink_metadata(&p).unwrap().is_dir();
        out.push(p.clone());
        if is_dir {
            out.extend(walk(&p));
        }
    }
    out
}

/// Every file under `dir` with its bytes, sorted, for "nothing changed" checks (a missing
/// `dir` has none).
pub fn file_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(file_contents(&p));
            } else {
                out.push((p.clone(), fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// A PEM block with `tag`, `headers` and `body`, re-armoured (for damaged-key tests).
pub fn rearmour(tag: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut pem = pem::Pem::new(tag, body.to_vec());
    for (k, v) in headers {
        pem.headers_mut().add(k, v).unwrap();
    }
    pem::encode(&pem).into_bytes()
}

impl Spec {
    /// The JSON `format` keyrotate must report.
    pub fn expected_format(&self) -> &'static str {
        match (self.key_type, self.format) {
            // OpenSSH 9.2 writes ed25519 keys in its own format whatever -m says.
            ("ed25519", _) | (_, "RFC4716") => "openssh",
            (_, "PEM") => "pem",
            _ => "pkcs8",
        }
    }

    /// The findings keyrotate must report for this key when it is fresh, 0600 and has its .pub.
    pub fn expected_codes(&self) -> Vec<String> {
        let mut codes = Vec::new();
        if self.passphrase.is_none() {
            codes.push("unencrypted-private-key");
        }
        if self.key_type == "dsa" || (self.key_type == "rsa" && self.bits.unwrap_or(3072) < 2048) {
            codes.push("weak-algorithm");
        }
        if self.key_type == "rsa" && (2048..3072).contains(&self.bits.unwrap_or(3072)) {
            codes.push("weak-key-size");
        }
        if self.expected_format() == "pem" {
            codes.push("legacy-format");
        }
        if self.expected_format() == "openssh"
            && self.passphrase.is_some()
            && self.rounds.unwrap_or(16) < 16
        {
            codes.push("weak-kdf");
        }
        let mut codes: Vec<String> = codes.into_iter().map(String::from).collect();
        codes.sort();
        codes
    }

    pub fn comment(&self) -> String {
        format!("{} test key", self.name)
    }
}

pub fn generate(dir: &Path, spec: &Spec) -> PathBuf {
    let path = dir.join(spec.name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        spec.key_type,
        "-m",
        spec.format,
        "-C",
        &spec.comment(),
    ])
    .arg("-N")
    .arg(spec.passphrase.unwrap_or(""))
    .arg("-f")
    .arg(&path);
    if let Some(bits) = spec.bits {
        cmd.arg("-b").arg(bits.to_string());
    }
    if let Some(rounds) = spec.rounds {
        cmd.arg("-a").arg(rounds.to_string());
    }
    run_ok(&mut cmd);
    path
}

/// The spec of [`all_specs`] named `name`.
pub fn spec(name: &str) -> &'static Spec {
    all_specs()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no spec named {name}"))
}

/// The JSON document of a keyrotate run that must have exited 0 (its stderr shown if not).
pub fn json_ok(out: &Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
}

/// Every key type, size and format ssh-keygen 9.2 can write, encrypted and not.
pub fn all_specs() -> &'static [Spec] {
    static SPECS: OnceLock<Vec<Spec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let types: &[(&str, Option<u32>, &str)] = &[
            ("rsa", Some(2048), "rsa2048"),
            ("rsa", Some(3072), "rsa3072"),
            ("ecdsa", Some(256), "ecdsa256"),
            ("ecdsa", Some(384), "ecdsa384"),
            ("ecdsa", Some(521), "ecdsa521"),
            ("dsa", Some(1024), "dsa"),
            ("ed25519", None, "ed25519"),
        ];
        let formats: &[(&str, &str)] =
            &[("RFC4716", "openssh"), ("PEM", "pem"), ("PKCS8", "pkcs8")];
        let mut specs = Vec::new();
        for &(key_type, bits, tname) in types {
            for &(format, fname) in formats {
                if key_type == "ed25519" && format != "RFC4716" {
                    continue;
                }
                for encrypted in [false, true] {
                    let name = format!("id_{tname}_{fname}{}", if encrypted { "_enc" } else { "" });
                    specs.push(Spec {
                        name: Box::leak(name.into_boxed_str()),
                        key_type,
                        bits,
                        format,
                        passphrase: encrypted.then_some(PASSPHRASE),
                        rounds: None,
                    });
                }
            }
        }
        for (rounds, name) in [(8, "id_ed25519_rounds8"), (100, "id_ed25519_rounds100")] {
            specs.push(Spec {
                name,
                key_type: "ed25519",
                bits: None,
                format: "RFC4716",
                passphrase: Some(PASSPHRASE),
                rounds: Some(rounds),
            });
        }
        specs
    })
}

/// A directory holding every key of [`all_specs`], made once per test binary (RSA is slow).
/// Tests copy it before changing anything.
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Under target/ (cargo clean removes it), one per test process.
        let dir = tempfile::Builder::new()
            .prefix("keys-fixture-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir")
            .keep();
        std::thread::scope(|scope| {
            for chunk in all_specs().chunks(all_specs().len().div_ceil(4)) {
                let dir = &dir;
                scope.spawn(move || {
                    for spec in chunk {
                        generate(dir, spec);
                    }
                });
            }
        });
        dir
    })
}

/// A fresh SSH directory (mode 0700) inside a temp dir, optionally filled from `from`.
pub fn ssh_dir_copy(from: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ssh = tmp.path().join(".ssh");
    fs::create_dir(&ssh).expect("mkdir");
    set_mode(&ssh, 0o700);
    if let Some(from) = from {
        copy_tree(from, &ssh);
    }
    (tmp, ssh)
}

/// Copy the contents of `from` into the existing directory `to`, recursively, keeping file
/// modes and mtimes and directory modes.
pub fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            fs::create_dir(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
            set_mode(&dest, meta.permissions().mode() & 0o7777);
        } else {
            fs::copy(entry.path(), &dest).expect("copy");
            set_mtime(&dest, meta.modified().unwrap());
        }
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn set_mtime(path: &Path, time: std::time::SystemTime) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("open for mtime");
    file.set_modified(time).expect("set mtime");
}

pub fn days_ago(days: u64) -> std::time::SystemTime {
    std::time::SystemTime::now() - Duration::from_secs(days * 86_400 + 3_600)
}

/// `date -u` formatting of a file's mtime, as RFC 3339 — computed by a tool other than ours.
pub fn rfc3339_mtime(path: &Path) -> String {
    let out = run_ok(
        Command::new("date")
            .arg("-u")
            .arg("-r")
            .arg(path)
            .arg("+%Y-%m-%dT%H:%M:%SZ"),
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn is_root() -> bool {
    let out = run_ok(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Everything observable about the tree under `dir` (and `dir` itself): each entry's type, mode,
/// modification time, size and bytes (or link target). Two equal snapshots mean nothing was
/// created, removed, written, chmod-ed or touched, not even a lock file made and deleted again
/// (that would change the directory's own mtime).
pub fn tree_snapshot(dir: &Path) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let describe = |path: &Path| {
        let rel = path.strip_prefix(dir).unwrap().display();
        let meta = fs::symlink_metadata(path).unwrap();
        let what = if meta.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(path).unwrap().display())
        } else if meta.is_dir() {
            "dir".to_string()
        } else {
            // A digest of the bytes keeps a failure message readable.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            fs::read(path).unwrap().hash(&mut h);
            format!("file #{:016x}", h.finish())
        };
        format!(
            "./{rel}: {what} mode {:o} uid {} size {} mtime {}.{}",
            meta.mode(),
            meta.uid(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        )
    };
    let mut paths = walk(dir);
    paths.sort();
    std::iter::once(dir.to_path_buf())
        .chain(paths)
        .map(|p| describe(&p))
        .collect()
}

/// The `type base64` public key `ssh-keygen -y` derives from `key` with `passphrase`, if it
/// opens.
pub fn opens_as(key: &Path, passphrase: &str) -> Option<String> {
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(key)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| key_part(&String::from_utf8(out.stdout).unwrap()))
}

/// `rotate -t ed25519 --no-agent --json` of the service's key, with the passphrase [`NEW`]
/// (from a file in `tmp`); its JSON document (exit 0 required).
pub fn rotate_to_ed25519(ssh: &Path, tmp: &Path) -> serde_json::Value {
    let out = keyrotate(ssh)
        .args([
            "rotate",
            "-t",
            "ed25519",
            "--no-agent",
            "--json",
            "--passphrase-file",
        ])
        .arg(pass_file(tmp, "new", NEW))
        .output()
        .unwrap();
    json_ok(&out)
}
