//! What a hostile environment cannot do to keyrotate (issue "Trust"):
//! - a fake ssh-agent on `SSH_AUTH_SOCK` that announces a 4 GiB reply, trickles, stalls or sends
//!   garbage cannot make `check` or `rotate` allocate, hang or crash;
//! - an old key whose scrypt parameters ask for hours of work is not tried, and says why;
//! - no core file can be written (core limit 0, not dumpable);
//! - bidi controls, zero-width characters and separators in comments and file names are shown
//!   escaped, never obeyed by the terminal.
// These tests drive real sockets, /proc, openssl and OpenSSH: Unix only.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[derive(Debug, Clone, Copy)]
enum Fake {
    /// Announces a reply of 0xFFFFFFF0 bytes.
    Huge,
    /// Announces 100 bytes, then sends one every 300 ms.
    Trickle,
    /// Reads the request and never answers.
    Stall,
    /// Answers with a frame that is no agent message.
    Garbage,
}

/// A fake agent serving every connection on its own thread, in `mode`, for the life of the test.
fn fake_agent(dir: &Path, mode: Fake) -> PathBuf {
    let socket = dir.join(format!("{mode:?}.sock"));
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve(stream, mode));
        }
    });
    socket
}

fn serve(mut stream: UnixStream, mode: Fake) {
    loop {
        // One request: its length, then its body.
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let sent = match mode {
            Fake::Huge => stream
                .write_all(&[0xff, 0xff, 0xff, 0xf0])
                .and_then(|()| stream.write_all(&[12; 64])),
            Fake::Trickle => {
                let mut result = stream.write_all(&[0, 0, 0, 100]);
                while result.is_ok() {
                    std::thread::sleep(Duration::from_millis(300));
                    result = stream.write_all(&[0]);
                }
                result
            }
            Fake::Stall => {
                // Until the client hangs up.
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            Fake::Garbage => {
                stream.write_all(&[0, 0, 0, 9, 12, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4])
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `keyrotate ARGS` with `SSH_AUTH_SOCK` on `socket`, under `prefix` (e.g. prlimit), timed.
fn run_with_agent(prefix: &[&str], ssh: &Path, socket: &Path, args: &[&str]) -> (Output, Duration) {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    cmd.arg("--ssh-dir")
        .arg(ssh)
        .args(args)
        .env("SSH_AUTH_SOCK", socket)
        .env("NO_COLOR", "1")
        .env_remove("KEYROTATE_SSH_DIR")
        .stdin(Stdio::null());
    let start = Instant::now();
    let out = cmd.output().unwrap();
    (out, start.elapsed())
}

#[test]
fn a_hostile_agent_cannot_make_check_allocate_hang_or_crash() {
    let sockets = tempfile::tempdir().unwrap();
    let (_tmp, ssh) = ssh_dir_copy(None);
    keygen(&ssh.join("id_ed25519"), "ed25519", &[]);
    for mode in [Fake::Huge, Fake::Trickle, Fake::Stall, Fake::Garbage] {
        let socket = fake_agent(sockets.path(), mode);
        // Under a 1 GiB address-space limit, a 4 GiB allocation would abort the process.
        let prefix: &[&str] = match mode {
            Fake::Huge => &["prlimit", "--as=1073741824", "--"],
            _ => &[],
        };
        let (out, took) = run_with_agent(prefix, &ssh, &socket, &["check", "--json"]);
        let what = format!("{mode:?}: {}", stderr(&out));
        assert!(matches!(out.status.code(), Some(0 | 1)), "{what}");
        assert!(
            !what.contains("panicked") && !what.contains("internal error"),
            "{what}"
        );
        assert!(took < Duration::from_secs(15), "{what}: took {took:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let error = doc["agent"]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let expected = match mode {
            Fake::Huge => "more than the 262144",
            Fake::Trickle | Fake::Stall => "did not answer within 2 seconds",
            Fake::Garbage => "not a valid agent message",
        };
        assert!(error.contains(expected), "{mode:?}: agent error {error:?}");
    }
}

#[test]
fn a_hostile_agent_cannot_stop_rotate_from_finishing() {
    let sockets = tempfile::tempdir().unwrap();
    for mode in [Fake::Huge, Fake::Trickle, Fake::Stall, Fake::Garbage] {
        let socket = fake_agent(sockets.path(), mode);
        let (tmp, ssh) = ssh_dir_copy(None);
        keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
        let pass = pass_file(tmp.path(), "new", NEW);
        let args = [
            "rotate",
            "-t",
            "ed25519",
            "--json",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ];
        let (out, took) =
            run_with_agent(&["prlimit", "--as=1073741824", "--"], &ssh, &socket, &args);
        let what = format!("{mode:?}: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["agent"].as_str().unwrap().starts_with("error"),
            "{what}: {doc}"
        );
        let opened = Command::new("ssh-keygen")
            .args(["-y", "-P", NEW, "-f"])
            .arg(ssh.join("id_ed25519_jasmin"))
            .output()
            .unwrap();
        assert!(opened.status.success(), "{what}: the new key does not open");
    }
}

/// An encrypted PKCS#8 key made by openssl with scrypt (N, r, p), and its `.pub`.
fn scrypt_key(dir: &Path, name: &str, n: u32, r: u32, p: u32) -> PathBuf {
    let plain = dir.join(format!("{name}.plain"));
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&plain),
    );
    let key = dir.join(name);
    run_ok(
        Command::new("openssl")
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-scrypt"])
            .args(["-scrypt_N", &n.to_string(), "-scrypt_r", &r.to_string()])
            .args(["-scrypt_p", &p.to_string(), "-passout"])
            .arg(format!("pass:{PASSPHRASE}"))
            .arg("-in")
            .arg(&plain)
            .arg("-out")
            .arg(&key),
    );
    set_mode(&key, 0o600);
    let public = run_ok(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&plain));
    fs::write(pub_of(&key), public.stdout).unwrap();
    fs::remove_file(&plain).unwrap();
    key
}

/// Replace the DER bytes `from` (found exactly once) by `to` in the PEM file `key`.
fn patch_der(key: &Path, from: &[u8], to: &[u8]) {
    let block = pem::parse(fs::read(key).unwrap()).unwrap();
    let mut der = block.contents().to_vec();
    let at: Vec<usize> = (0..der.len().saturating_sub(from.len()))
        .filter(|&i| der[i..].starts_with(from))
        .collect();
    assert_eq!(
        at.len(),
        1,
        "scrypt parameters not found once in {}",
        key.display()
    );
    der[at[0]..at[0] + to.len()].copy_from_slice(to);
    fs::write(key, rearmour(block.tag(), &[], &der)).unwrap();
}

fn rotate_f(tmp: &Path, ssh: &Path, key: &Path, passphrase: &str) -> Output {
    keyrotate(ssh)
        .args(["rotate", "-t", "ed25519", "--no-agent", "--json", "-f"])
        .arg(key)
        .arg("--passphrase-file")
        .arg(pass_file(tmp, "passphrase", passphrase))
        .output()
        .unwrap()
}

#[test]
fn an_old_key_whose_scrypt_asks_for_hours_is_not_tried_and_says_why() {
    // Within the limits, the check really runs: the old passphrase is refused as the new one.
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = scrypt_key(&ssh, "id_ecdsa_pkcs8", 16384, 8, 2);
    let out = rotate_f(tmp.path(), &ssh, &key, PASSPHRASE);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("opens your old key"),
        "{}",
        stderr(&out)
    );

    // p = 127: little memory (16 MiB), but 2 GiB of mixing. N, r, p = 02 02 40 00, 02 01 08, 02 01 02.
    patch_der(
        &key,
        &[2, 2, 0x40, 0, 2, 1, 8, 2, 1, 2],
        &[2, 2, 0x40, 0, 2, 1, 8, 2, 1, 0x7f],
    );
    let out = rotate_f(tmp.path(), &ssh, &key, NEW);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("scrypt N=16384, r=8, p=127") && err.contains("limit of 1024 MiB"),
        "{err}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["passphrase_check"]
            .as_str()
            .unwrap()
            .starts_with("not-checked"),
        "{doc}"
    );

    // N = 0x7f00 and r = 127: 504 MiB of memory, over the 256 MiB allowed (openssl itself
    // refuses to make such a key, so the parameters are patched in place; the bound is checked
    // before anything is derived, whatever N is).
    let (tmp, ssh) = ssh_dir_copy(None);
    let key = scrypt_key(&ssh, "id_ecdsa_pkcs8", 16384, 8, 1);
    patch_der(
        &key,
        &[2, 2, 0x40, 0, 2, 1, 8, 2, 1, 1],
        &[2, 2, 0x7f, 0, 2, 1, 0x7f, 2, 1, 1],
    );
    let out = rotate_f(tmp.path(), &ssh, &key, NEW);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("N=32512, r=127, p=1") && err.contains("MiB of memory"),
        "{err}"
    );
}

/// The pid's `/proc` status line for `field`, e.g. "Max core file size".
fn proc_line(pid: u32, file: &str, field: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .map(str::to_string)
}

/// keyrotate waiting for its passphrase on a FIFO nobody writes, through `prefix`.
fn waiting_keyrotate(dir: &Path, prefix: &[&str]) -> std::process::Child {
    let fifo = dir.join("fifo");
    run_ok(Command::new("mkfifo").arg("-m").arg("666").arg(&fifo));
    let mut cmd = Command::new("prlimit");
    cmd.args(["--core=unlimited:unlimited", "--"])
        .args(prefix)
        .arg(bin());
    let child = cmd
        .arg("--ssh-dir")
        .arg(dir.join("ssh"))
        .args(["generate", "-t", "ed25519", "--passphrase-file"])
        .arg(&fifo)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // prlimit and setpriv exec: the pid becomes keyrotate's once its binary runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_link(format!("/proc/{}/exe", child.id())).ok() != Some(bin()) {
        assert!(Instant::now() < deadline, "keyrotate did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past its start-up (where the limits are set), waiting on the FIFO.
    std::thread::sleep(Duration::from_millis(500));
    child
}

#[test]
fn keyrotate_can_never_write_a_core_file() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o777);
    let mut child = waiting_keyrotate(dir.path(), &[]);
    let pid = child.id();
    let limit = proc_line(pid, "limits", "Max core file size").unwrap();
    let fields: Vec<&str> = limit.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{limit}");
    // A signal that dumps core: none is written where keyrotate runs.
    run_ok(Command::new("kill").args(["-QUIT", &pid.to_string()]));
    let _ = child.wait();
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if !pattern.starts_with('|') {
        let cores: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
            .collect();
        assert!(cores.is_empty(), "a core file was written: {cores:?}");
    }
    // Not dumpable: its /proc files belong to root even when it runs as another user.
    if is_root() {
        fs::remove_file(dir.path().join("fifo")).unwrap();
        let prefix = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        let mut child = waiting_keyrotate(dir.path(), &prefix);
        use std::os::unix::fs::MetadataExt;
        let owner = fs::metadata(format!("/proc/{}/status", child.id()))
            .unwrap()
            .uid();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(owner, 0, "keyrotate running as nobody is still dumpable");
    }
}

#[test]
fn bidi_and_invisible_characters_in_names_and_comments_are_shown_escaped() {
    let (tmp, ssh) = ssh_dir_copy(None);
    let spoof = "id_rsa\u{202e}bup.";
    keygen(
        &ssh.join(spoof),
        "ed25519",
        &["-C", "alice\u{200b}@lap\u{2028}top\u{2066}"],
    );
    let out = keyrotate(&ssh).arg("check").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for raw in ['\u{202e}', '\u{200b}', '\u{2028}', '\u{2066}'] {
        assert!(
            !text.contains(raw),
            "raw U+{:04X} printed: {text}",
            raw as u32
        );
    }
    for escaped in ["\\u{202e}", "\\u{200b}", "\\u{2028}", "\\u{2066}"] {
        assert!(text.contains(escaped), "{escaped} missing: {text}");
    }
    let out = keyrotate(&ssh)
        .args(["rotate", "-t", "ed25519", "--no-agent", "-f"])
        .arg(ssh.join(spoof))
        .arg("--passphrase-file")
        .arg(pass_file(tmp.path(), "new", NEW))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !text.contains('\u{202e}') && text.contains("id_rsa\\u{202e}bup."),
        "{text}"
    );
}
