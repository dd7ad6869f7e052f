//! Hostile surroundings, checked on the real binary with real processes, sockets and keys:
//! - a fake ssh-agent on `SSH_AUTH_SOCK` that announces a 4 GiB reply, trickles a byte every
//!   300 ms, stalls, or answers garbage: `check` and `rotate` report it and finish in time,
//!   without a crash, a 4 GiB allocation (run under `prlimit --as`) or a hang;
//! - an old PKCS#8 key (made by ssh-keygen and openssl) whose scrypt parameters ask for hours of
//!   work (p = 127) or 1 GiB of memory: the new-passphrase check is not started, and says so;
//! - core dumps: the running process has a core size limit of 0/0 and is not dumpable (its
//!   `/proc` files belong to root), and SIGQUIT leaves no core file;
//! - terminal spoofing: bidi, zero-width and line-separator characters in key comments and file
//!   names are printed escaped by `check` and `rotate`, never raw.
// These tests drive Unix sockets, rlimits, /proc and POSIX signals: Unix only (CI cross-checks
// that they and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

// ---------------------------------------------------------------------------------------------
// A hostile ssh-agent.

/// How the fake agent misbehaves, once it has read a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Announces a reply of 0xFFFFFFF0 bytes, then sends nothing.
    HugeThenNothing,
    /// Announces a reply of 0xFFFFFFF0 bytes, then sends 64 KiB of it and waits.
    HugeThenSome,
    /// Announces a 256-byte reply, then sends one byte of it every 300 ms, forever.
    Trickle,
    /// Accepts, reads the request, never answers.
    Stall,
    /// A small frame of (seeded pseudo-)random bytes, of no known message type.
    RandomBytes,
    /// A well-formed SSH_AGENT_SUCCESS, to a request that wants a key list.
    WrongType,
    /// SSH2_AGENT_IDENTITIES_ANSWER claiming 4 billion keys, in a 5-byte frame.
    ClaimsBillionsOfKeys,
}

/// A Unix socket in a temp dir, each connection served by a thread in the given mode.
struct FakeAgent {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl FakeAgent {
    fn start(mode: Hostile) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || serve(mode, conn));
                }
            }
        });
        FakeAgent {
            socket,
            stop,
            _dir: dir,
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        // Wake the accept loop so that its thread ends.
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.socket);
    }
}

/// Read one request frame (length, then body); false when the client is gone.
fn read_request(conn: &mut UnixStream) -> bool {
    let mut len = [0u8; 4];
    if conn.read_exact(&mut len).is_err() {
        return false;
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > 1 << 20 {
        return false;
    }
    let mut body = vec![0u8; n];
    conn.read_exact(&mut body).is_ok()
}

/// Block until the client closes the connection (or the read fails).
fn wait_for_close(conn: &mut UnixStream) {
    let mut buf = [0u8; 4096];
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
}

/// `n` bytes from a fixed-seed xorshift: random-looking, the same on every run.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn serve(mode: Hostile, mut conn: UnixStream) {
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    let huge = 0xFFFF_FFF0u32.to_be_bytes();
    loop {
        if !read_request(&mut conn) {
            return;
        }
        match mode {
            Hostile::HugeThenNothing => {
                let _ = conn.write_all(&huge);
                return wait_for_close(&mut conn);
            }
            Hostile::HugeThenSome => {
                let _ = conn.write_all(&huge);
                let _ = conn.write_all(&vec![0x0c; 64 << 10]);
                return wait_for_close(&mut conn);
            }
            Hostile::Trickle => {
                if conn.write_all(&256u32.to_be_bytes()).is_err() {
                    return;
                }
                // One byte every 300 ms until the client hangs up (the write then fails).
                loop {
                    std::thread::sleep(Duration::from_millis(300));
                    if conn.write_all(&[0x0c]).is_err() {
                        return;
                    }
                }
            }
            Hostile::Stall => return wait_for_close(&mut conn),
            Hostile::RandomBytes => {
                let mut body = noise(48);
                // Not a message type the agent protocol knows.
                body[0] = 0xc5;
                if conn.write_all(&frame(&body)).is_err() {
                    return;
                }
            }
            Hostile::WrongType => {
                if conn.write_all(&frame(&[6])).is_err() {
                    return;
                }
            }
            Hostile::ClaimsBillionsOfKeys => {
                if conn
                    .write_all(&frame(&[12, 0xff, 0xff, 0xff, 0xf0]))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// `program args... keyrotate --ssh-dir SSH` with the environment `keyrotate()` gives.
fn keyrotate_via(wrapper: &[&str], ssh_dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(bin())
        .env_remove("KEYROTATE_SSH_DIR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .arg("--ssh-dir")
        .arg(ssh_dir)
        .timeout(Duration::from_secs(60));
    cmd
}

/// No address space for a 4 GiB allocation (1 GiB in all): an allocation of what the agent
/// announced aborts the process instead of quietly reserving it.
const LIMITED_MEMORY: &[&str] = &["prlimit", "--as=1073741824", "--"];

/// A run that must have ended by itself with 0 or 1: no signal, no panic, no internal error.
fn assert_clean_exit(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{what}: exited with {:?} (signal {:?}); stderr: {err}",
        out.status.code(),
        out.status.signal()
    );
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{what}: {err}"
    );
}

/// `check --json` against the fake agent, under the 1 GiB address-space limit: a clean exit,
/// well before a hang would end, with `agent.error` saying what happened (returned).
fn check_against(mode: Hostile) -> String {
    let agent = FakeAgent::start(mode);
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let started = Instant::now();
    let out = keyrotate_via(LIMITED_MEMORY, &ssh)
        .args(["check", "--json"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    let took = started.elapsed();
    let what = format!("check against an agent in mode {mode:?}");
    assert_clean_exit(&out, &what);
    // The deadline is 2 s; this only tells an answer from a hang.
    assert!(took < Duration::from_secs(15), "{what}: took {took:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let error = doc["agent"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no agent.error in {doc:#}"))
        .to_string();
    assert!(!error.trim().is_empty(), "{what}: empty agent.error");
    assert!(doc["agent"]["keys"].is_null(), "{what}: {doc:#}");
    eprintln!("{what} ({took:?}): {error}");
    error
}

/// `rotate -t ed25519` WITH its agent step, against the fake agent: the rotation itself
/// succeeds, the new key is live and opens with the new passphrase, and `agent` reports the
/// error; all well within the 5 s agent deadline plus the rotation's own work.
fn rotate_against(mode: Hostile) -> String {
    let agent = FakeAgent::start(mode);
    let (tmp, ssh) = ssh_dir_copy(None);
    let old = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let old_fp = keygen_l(&pub_of(&old)).unwrap().fingerprint;
    let pass = pass_file(tmp.path(), "passphrase", NEW);
    let started = Instant::now();
    let out = keyrotate(&ssh)
        .args(["rotate", "-t", "ed25519", "--json", "--passphrase-file"])
        .arg(&pass)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    let took = started.elapsed();
    let what = format!("rotate against an agent in mode {mode:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{what}: {err}"
    );
    let doc = json_ok(&out);
    assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
    let status = doc["agent"].as_str().expect("agent is a string");
    assert!(status.starts_with("error"), "{what}: agent = {status:?}");
    // The new pair is live: the private key opens with NEW and matches the .pub.
    let derived = run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", NEW, "-f"])
            .arg(&old),
    );
    let live_pub = fs::read_to_string(pub_of(&old)).unwrap();
    assert_eq!(
        key_part(&String::from_utf8(derived.stdout).unwrap()),
        key_part(&live_pub),
        "{what}"
    );
    let new_fp = keygen_l(&pub_of(&old)).unwrap().fingerprint;
    assert_ne!(new_fp, old_fp, "{what}: the old key is still live");
    assert_eq!(doc["fingerprint"], new_fp.as_str(), "{what}");
    eprintln!("{what} ({took:?}): {status}");
    status.to_string()
}

#[test]
fn an_agent_announcing_a_4_gib_reply_is_refused_before_any_allocation() {
    for mode in [Hostile::HugeThenNothing, Hostile::HugeThenSome] {
        let error = check_against(mode);
        assert!(
            error.contains("announced a reply of 4294967280 bytes") && error.contains("262144"),
            "{mode:?}: {error}"
        );
        let status = rotate_against(mode);
        assert!(status.contains("4294967280"), "{mode:?}: {status}");
    }
}

#[test]
fn an_agent_trickling_one_byte_every_300_ms_cannot_hold_keyrotate_past_its_deadline() {
    let error = check_against(Hostile::Trickle);
    assert!(error.contains("did not answer within 2 seconds"), "{error}");
    let status = rotate_against(Hostile::Trickle);
    assert!(
        status.contains("did not answer within 5 seconds"),
        "{status}"
    );
}

#[test]
fn an_agent_that_stalls_is_reported_as_not_answering() {
    let error = check_against(Hostile::Stall);
    assert!(error.contains("did not answer within 2 seconds"), "{error}");
    let status = rotate_against(Hostile::Stall);
    assert!(
        status.contains("did not answer within 5 seconds"),
        "{status}"
    );
}

#[test]
fn an_agent_answering_garbage_is_reported_not_trusted() {
    for mode in [
        Hostile::RandomBytes,
        Hostile::WrongType,
        Hostile::ClaimsBillionsOfKeys,
    ] {
        let error = check_against(mode);
        assert!(error.contains("ssh-agent"), "{mode:?}: {error}");
        let status = rotate_against(mode);
        assert!(status.contains("ssh-agent"), "{mode:?}: {status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Old keys that ask for unbounded KDF work.

/// A DER element: primitive (tag, contents) or constructed (tag, children).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Der {
    Prim(u8, Vec<u8>),
    Cons(u8, Vec<Der>),
}

fn der_parse_all(mut input: &[u8]) -> Vec<Der> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let tag = input[0];
        let (len, header) = match input[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                let len = input[2..2 + k]
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | b as usize);
                (len, 2 + k)
            }
        };
        let content = &input[header..header + len];
        out.push(if tag & 0x20 != 0 {
            Der::Cons(tag, der_parse_all(content))
        } else {
            Der::Prim(tag, content.to_vec())
        });
        input = &input[header + len..];
    }
    out
}

fn der_encode(node: &Der, out: &mut Vec<u8>) {
    let (tag, content) = match node {
        Der::Prim(tag, bytes) => (*tag, bytes.clone()),
        Der::Cons(tag, children) => {
            let mut c = Vec::new();
            for child in children {
                der_encode(child, &mut c);
            }
            (*tag, c)
        }
    };
    out.push(tag);
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        let bytes: Vec<u8> = (content.len() as u64)
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&content);
}

/// The contents of a DER INTEGER holding `v`.
fn der_uint(v: u64) -> Vec<u8> {
    let mut bytes: Vec<u8> = v
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    if bytes.first().is_none_or(|&b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    bytes
}

fn der_int_value(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// Find the scrypt-params SEQUENCE (salt, N, r, p) under `node`; check that it holds `was`
/// and set it to `now`. Says whether it found one.
fn set_scrypt_params(node: &mut Der, was: (u64, u64, u64), now: (u64, u64, u64)) -> bool {
    let Der::Cons(_, children) = node else {
        return false;
    };
    let is_params = children.len() >= 4
        && matches!(&children[0], Der::Prim(0x04, _))
        && children[1..4]
            .iter()
            .all(|c| matches!(c, Der::Prim(0x02, _)));
    if is_params {
        let value = |c: &Der| match c {
            Der::Prim(_, v) => der_int_value(v),
            Der::Cons(..) => unreachable!(),
        };
        let found = (
            value(&children[1]),
            value(&children[2]),
            value(&children[3]),
        );
        assert_eq!(found, was, "openssl wrote other scrypt parameters");
        children[1] = Der::Prim(0x02, der_uint(now.0));
        children[2] = Der::Prim(0x02, der_uint(now.1));
        children[3] = Der::Prim(0x02, der_uint(now.2));
        return true;
    }
    children.iter_mut().any(|c| set_scrypt_params(c, was, now))
}

/// An ECDSA key made by ssh-keygen (with its `.pub`), then encrypted by openssl as PKCS#8 with
/// scrypt N=16384, r=8, p=2 under [`PASSPHRASE`].
fn scrypt_key(path: &Path) -> PathBuf {
    run_ok(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ecdsa",
                "-m",
                "PKCS8",
                "-N",
                "",
                "-C",
                "old@laptop",
                "-f",
            ])
            .arg(path),
    );
    let encrypted = path.with_extension("encrypting");
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-scrypt",
                "-scrypt_N",
                "16384",
                "-scrypt_r",
                "8",
                "-scrypt_p",
                "2",
                "-passout",
            ])
            .arg(format!("pass:{PASSPHRASE}"))
            .arg("-in")
            .arg(path)
            .arg("-out")
            .arg(&encrypted),
    );
    fs::rename(&encrypted, path).unwrap();
    set_mode(path, 0o600);
    let text = fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    path.to_path_buf()
}

/// Rewrite the scrypt parameters of the PKCS#8 key at `path` (re-armoured; the encrypted data
/// is left as it is: keyrotate must judge the parameters before deriving anything).
fn patch_scrypt(path: &Path, now: (u64, u64, u64)) {
    let block = pem::parse(fs::read(path).unwrap()).unwrap();
    assert_eq!(block.tag(), "ENCRYPTED PRIVATE KEY");
    let mut tree = der_parse_all(block.contents());
    assert_eq!(tree.len(), 1);
    // The parser and encoder must round-trip openssl's DER before they are trusted to patch it.
    let mut again = Vec::new();
    der_encode(&tree[0], &mut again);
    assert_eq!(again, block.contents(), "DER round trip");
    assert!(
        set_scrypt_params(&mut tree[0], (16384, 8, 2), now),
        "no scrypt parameters in {tree:?}"
    );
    let mut der = Vec::new();
    der_encode(&tree[0], &mut der);
    fs::write(path, rearmour("ENCRYPTED PRIVATE KEY", &[], &der)).unwrap();
    set_mode(path, 0o600);
    // What openssl now reads in the file: the new parameters.
    let parsed = run_ok(Command::new("openssl").args(["asn1parse", "-in"]).arg(path));
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    for v in [now.0, now.1, now.2] {
        assert!(
            parsed.contains(&format!(":{v:02X}\n")) || parsed.contains(&format!(":{v:04X}\n")),
            "{v:X} not in {parsed}"
        );
    }
}

/// `rotate -f KEY -t ed25519 --no-agent --json` with `passphrase` as the new one.
fn rotate_file(tmp: &Path, ssh: &Path, key: &Path, passphrase: &str) -> (Output, Duration) {
    let pass = pass_file(tmp, "new-passphrase", passphrase);
    let started = Instant::now();
    let out = keyrotate(ssh)
        .args(["rotate", "-f"])
        .arg(key)
        .args(["-t", "ed25519", "--no-agent", "--json", "--passphrase-file"])
        .arg(&pass)
        .output()
        .unwrap();
    (out, started.elapsed())
}

/// A rotation of an old key over the limits: exit 0, `not-checked`, the note on stderr names
/// `needle` and the limit; the new key is live.
fn assert_not_checked(now: (u64, u64, u64), needles: &[&str]) {
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = scrypt_key(&ssh.join("id_ecdsa_scrypt"));
    patch_scrypt(&key, now);
    let (out, took) = rotate_file(tmp.path(), &ssh, &key, NEW);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = json_ok(&out);
    let check = doc["passphrase_check"].as_str().unwrap();
    assert!(check.starts_with("not-checked"), "{now:?}: {check}; {err}");
    for needle in needles {
        assert!(err.contains(needle), "{now:?}: no {needle:?} in: {err}");
        assert!(check.contains(needle), "{now:?}: no {needle:?} in: {check}");
    }
    assert!(
        err.contains("could not check that the new passphrase differs"),
        "{err}"
    );
    assert!(
        err.contains(&*key.to_string_lossy()),
        "the note names the key: {err}"
    );
    // No KDF ran: the whole rotation is quick (scrypt with p = 127 takes many seconds).
    assert!(took < Duration::from_secs(20), "{now:?}: took {took:?}");
    // `-t ed25519` renames it after its new type (the successor rule): id_ed25519_scrypt.
    let new = PathBuf::from(doc["private_key"].as_str().unwrap());
    assert_eq!(new, ssh.join("id_ed25519_scrypt"));
    let derived = run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", NEW, "-f"])
            .arg(&new),
    );
    assert_eq!(
        key_part(&String::from_utf8(derived.stdout).unwrap()),
        key_part(&fs::read_to_string(pub_of(&new)).unwrap())
    );
}

#[test]
fn scrypt_with_p_127_is_not_run_though_its_memory_is_small() {
    // 128 * 8 * 16384 = 16 MiB of memory (within limits), but 127 times over: 2032 MiB mixed.
    assert_not_checked(
        (16384, 8, 127),
        &["p=127", "of mixing", "over keyrotate's limit of 1024 MiB"],
    );
}

#[test]
fn scrypt_with_1_gib_of_memory_is_not_run() {
    // 128 * 8 * 2^20 = 1 GiB of memory, over the 256 MiB limit (p = 1).
    assert_not_checked(
        (1 << 20, 8, 1),
        &["N=1048576", "r=8", "p=1", "of memory", "256 MiB"],
    );
}

#[test]
fn scrypt_within_limits_is_run_and_refuses_the_old_passphrase() {
    // The same openssl key, unpatched (N=16384, r=8, p=2: 32 MiB mixed): the check runs.
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = scrypt_key(&ssh.join("id_ecdsa_scrypt"));
    // The lock file keyrotate leaves behind is not a change.
    let keys = |ssh: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        file_contents(ssh)
            .into_iter()
            .filter(|(p, _)| !p.ends_with(".keyrotate.lock"))
            .collect()
    };
    let before = keys(&ssh);
    let (out, _) = rotate_file(tmp.path(), &ssh, &key, PASSPHRASE);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("opens your old key"), "{err}");
    assert!(!err.contains(PASSPHRASE), "{err}");
    assert!(keys(&ssh) == before, "a refused rotation changed the keys");
    // And a different passphrase is checked against it, and found different.
    let (out, _) = rotate_file(tmp.path(), &ssh, &key, NEW);
    let doc = json_ok(&out);
    assert_eq!(doc["passphrase_check"], "different");
}

// ---------------------------------------------------------------------------------------------
// Core dumps.

/// The hard core-size limit of this (test) process, as prlimit writes it.
fn own_hard_core_limit() -> String {
    let limits = fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line in /proc/self/limits");
    line.split_whitespace().nth(5).unwrap().to_string()
}

/// `(soft, hard)` of "Max core file size" in `/proc/PID/limits`.
fn core_limit_of(pid: u32) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[4].to_string(), fields[5].to_string())
}

/// A process blocked reading a FIFO nobody writes: killed and reaped on drop, whatever happens.
struct Blocked {
    child: Option<Child>,
    _writer: Option<fs::File>,
}

impl Blocked {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGQUIT, then its exit status (within 10 s).
    fn quit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_child(child),
            rustix::process::Signal::QUIT,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "SIGQUIT did not end the process");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spawn `command` (which must end up reading `fifo`) and wait until its reader has the FIFO
/// open: then a writer can open it without blocking. The writer is kept open, so that the
/// reader stays blocked in its read.
fn start_blocked(mut command: Command, fifo: &Path) -> Blocked {
    use std::os::unix::fs::OpenOptionsExt;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut blocked = Blocked {
        child: Some(child),
        _writer: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // O_NONBLOCK: ENXIO until a reader has the FIFO open.
        if let Ok(w) = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            blocked._writer = Some(w);
            return blocked;
        }
        let child = blocked.child.as_mut().unwrap();
        if child.try_wait().unwrap().is_some() {
            let out = blocked.child.take().unwrap().wait_with_output().unwrap();
            panic!(
                "{command:?} ended before it read the FIFO ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} never opened the FIFO"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What one blocked process showed.
struct Seen {
    core_limit: (String, String),
    status_owner: u32,
    uid: u32,
    exit: std::process::ExitStatus,
    /// Files the crash left in the working directory.
    left_behind: Vec<PathBuf>,
}

/// Run `program args...` as the end of `prlimit --core=LIMIT -- env --default-signal=QUIT --
/// [setpriv ... --]`, blocked on a FIFO; look at it through /proc; SIGQUIT it.
fn blocked_in(as_nobody: bool, program: &Path, args: &[&std::ffi::OsStr], fifo: &Path) -> Seen {
    use std::os::unix::fs::MetadataExt;
    let cwd = tempfile::tempdir().unwrap();
    if as_nobody {
        std::os::unix::fs::chown(cwd.path(), Some(65534), Some(65534)).unwrap();
    }
    let limit = own_hard_core_limit();
    assert_ne!(
        limit, "0",
        "this test needs a core limit above 0 to raise (the hard limit here is 0)"
    );
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--core={limit}:{limit}"))
        .arg("--")
        // A QUIT ignored by whoever started the tests must not hide the core dump.
        .args(["env", "--default-signal=QUIT", "--"]);
    if as_nobody {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]);
    }
    cmd.arg(program)
        .args(args)
        .current_dir(cwd.path())
        .env_remove("KEYROTATE_SSH_DIR")
        .env_remove("SSH_AUTH_SOCK")
        // nobody cannot look into root's config directory (an error of its own).
        .env_remove("KEYROTATE_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent/keyrotate-tests")
        .env("NO_COLOR", "1");
    let mut blocked = start_blocked(cmd, fifo);
    let pid = blocked.pid();
    // prlimit, env and setpriv exec: the pid is now the program's own.
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe.canonicalize().unwrap(),
        program.canonicalize().unwrap(),
        "pid {pid} is not {}",
        program.display()
    );
    let core_limit = core_limit_of(pid);
    let status_path = format!("/proc/{pid}/status");
    let status_owner = fs::metadata(&status_path).unwrap().uid();
    let uid: u32 = fs::read_to_string(&status_path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    let exit = blocked.quit();
    let left_behind = fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    Seen {
        core_limit,
        status_owner,
        uid,
        exit,
        left_behind,
    }
}

/// Is `core_pattern` a plain file name, so that a core would land in the working directory?
fn core_pattern_is_plain_name() -> bool {
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    !pattern.is_empty() && !pattern.starts_with('|') && !pattern.contains('/')
}

#[test]
fn core_dumps_are_disabled_while_keyrotate_waits_for_its_passphrase() {
    let plain_pattern = core_pattern_is_plain_name();
    let mut runs = vec![false];
    if is_root() {
        runs.push(true);
    }
    for as_nobody in runs {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path().join(".ssh");
        let fifo = tmp.path().join("passphrase.fifo");
        run_ok(Command::new("mkfifo").arg(&fifo));
        if as_nobody {
            for p in [tmp.path(), &fifo] {
                std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
            }
        }
        let who = if as_nobody {
            "as uid 65534"
        } else {
            "as myself"
        };

        // The control: a program that does nothing about core dumps, started the same way,
        // shows what the checks below would see if keyrotate did nothing either.
        let cat = PathBuf::from("/bin/cat");
        let control = blocked_in(as_nobody, &cat, &[fifo.as_os_str()], &fifo);
        assert_ne!(control.core_limit.0, "0", "{who}: the control's core limit");
        if as_nobody {
            assert_eq!(control.uid, 65534, "{who}: setpriv did not change the uid");
            assert_eq!(
                control.status_owner, 65534,
                "{who}: a dumpable process's /proc files are its own"
            );
        }
        if plain_pattern && !control.exit.core_dumped() {
            eprintln!(
                "note: {who}: the control `cat` left no core on SIGQUIT here ({}); the \
                 no-core checks below are weaker",
                control.exit
            );
        }

        let seen = blocked_in(
            as_nobody,
            &bin(),
            &[
                "--ssh-dir".as_ref(),
                ssh.as_os_str(),
                "generate".as_ref(),
                "-t".as_ref(),
                "ed25519".as_ref(),
                "--passphrase-file".as_ref(),
                fifo.as_os_str(),
            ],
            &fifo,
        );
        assert_eq!(
            seen.core_limit,
            ("0".to_string(), "0".to_string()),
            "{who}: Max core file size of keyrotate (soft, hard)"
        );
        if as_nobody {
            assert_eq!(seen.uid, 65534, "{who}");
            assert_eq!(
                seen.status_owner, 0,
                "{who}: keyrotate is dumpable (its /proc/PID/status belongs to uid {})",
                seen.status_owner
            );
        }
        assert_eq!(
            seen.exit.signal(),
            Some(libc::SIGQUIT),
            "{who}: {}",
            seen.exit
        );
        if plain_pattern {
            assert!(!seen.exit.core_dumped(), "{who}: keyrotate dumped core");
            assert!(
                seen.left_behind.is_empty(),
                "{who}: keyrotate left {:?}",
                seen.left_behind
            );
        }
        // Nothing was generated: keyrotate never got its passphrase.
        assert!(
            !ssh.join("id_ed25519_jasmin").exists(),
            "{who}: a key was written"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Terminal spoofing.

/// The characters that must never reach a terminal raw, and how keyrotate writes them instead.
const SPOOFING: &[(char, &str)] = &[
    ('\u{202e}', "\\u{202e}"),
    ('\u{200b}', "\\u{200b}"),
    ('\u{2028}', "\\u{2028}"),
];

fn assert_no_raw_spoofing(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    for (c, _) in SPOOFING {
        assert!(
            !text.contains(*c),
            "{what} holds a raw U+{:04X}: {text:?}",
            *c as u32
        );
    }
}

#[test]
fn bidi_and_invisible_characters_in_comments_and_file_names_are_printed_escaped() {
    let (tmp, ssh) = ssh_dir_copy(None);
    // A comment that reverses what follows it, hides a character and fakes a line break.
    let comment = "alice\u{202e}moc.evil\u{200b}@laptop\u{2028}trusted";
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", comment, "-f"])
            .arg(ssh.join("id_ed25519_comment")),
    );
    // A private key named so that it shows as `id_rsa.pub` on a bidi terminal.
    let spoof_name = "id_rsa\u{202e}bup.";
    let spoofed = keygen(&ssh.join(spoof_name), "ed25519", &[]);
    assert!(spoofed.exists());

    let out = keyrotate(&ssh).arg("check").output().unwrap();
    assert_clean_exit(&out, "check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_no_raw_spoofing(&out.stdout, "check stdout");
    assert_no_raw_spoofing(&out.stderr, "check stderr");
    assert!(
        stdout.contains("id_rsa\\u{202e}bup."),
        "check does not name the file escaped: {stdout}"
    );
    assert!(
        stdout.contains("alice\\u{202e}moc.evil\\u{200b}@laptop\\u{2028}trusted"),
        "check does not show the comment escaped: {stdout}"
    );

    // Rotating the spoofed file itself, in text: its name (and a new comment as hostile as
    // the old) never reach the terminal raw.
    let pass = pass_file(tmp.path(), "passphrase", NEW);
    let out = keyrotate(&ssh)
        .args(["rotate", "-f"])
        .arg(&spoofed)
        .args(["-t", "ed25519", "--no-agent", "-C"])
        .arg("new\u{202e}key\u{200b}x\u{2028}y")
        .arg("--passphrase-file")
        .arg(&pass)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_raw_spoofing(&out.stdout, "rotate stdout");
    assert_no_raw_spoofing(&out.stderr, "rotate stderr");
    assert!(
        stdout.contains("id_rsa\\u{202e}bup."),
        "rotate does not name the file escaped: {stdout}"
    );
    assert!(
        stdout.contains("new\\u{202e}key\\u{200b}x\\u{2028}y"),
        "rotate does not show the new key's comment escaped: {stdout}"
    );
    for (_, escaped) in SPOOFING {
        assert!(stdout.contains(escaped), "{escaped} missing: {stdout}");
    }
    // The key really is the rotated one (the file itself, not a look-alike).
    run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", NEW, "-f"])
            .arg(&spoofed),
    );
}
