//! Passphrases typed on a real terminal (a pty made the child's controlling terminal with
//! util-linux `setsid --ctty`): asked twice, never echoed, re-asked on weakness or mismatch, and
//! Ctrl-C leaves the terminal's echo on and exits 130.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

struct Pty {
    master: File,
    output: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl Pty {
    fn spawn(args: &[&str]) -> Pty {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        // Every test of the crate shares this process: keep the master out of the children the
        // others spawn meanwhile (every other descriptor here is close-on-exec already).
        rustix::io::fcntl_setfd(&master, rustix::io::FdFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        let child = Command::new("setsid")
            .args(["--ctty", "--wait"])
            .arg(bin())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            output,
            child,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Wait until the terminal shows `needle` `count` times.
    fn wait_for(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?}; terminal: {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
        self.master.write_all(b"\r").unwrap();
    }

    fn exit_code(mut self) -> (Option<i32>, String, File) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.text(), self.master);
            }
            assert!(
                Instant::now() < deadline,
                "keyrotate did not exit: {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_passphrase_is_asked_twice_and_never_echoed() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut pty = Pty::spawn(&[
        "--ssh-dir",
        ssh.to_str().unwrap(),
        "generate",
        "-t",
        "ed25519",
    ]);
    // A weak one is refused with the reason, and asked again.
    pty.wait_for("New passphrase", 1);
    pty.type_line("password1234");
    pty.wait_for("New passphrase", 2);
    // A mismatch is caught, and asked again.
    pty.type_line(PASSPHRASE);
    pty.wait_for("again", 1);
    pty.type_line("correct horse battery staple 43");
    pty.wait_for("New passphrase", 3);
    pty.type_line(PASSPHRASE);
    pty.wait_for("again", 2);
    pty.type_line(PASSPHRASE);
    let (code, text, _) = pty.exit_code();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("too easy to guess"), "{text}");
    assert!(text.contains("did not match"), "{text}");
    assert!(
        !text.contains(PASSPHRASE),
        "the passphrase was echoed: {text}"
    );
    assert!(
        !text.contains("password1234"),
        "the weak passphrase was echoed: {text}"
    );
    assert!(text.contains("Generated a new Ed25519 key pair"), "{text}");
    let key = ssh.join("id_ed25519_jasmin");
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", PASSPHRASE, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the key does not open with the passphrase typed"
    );
}

#[test]
fn ctrl_c_at_the_prompt_exits_130_with_echo_back_on() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let mut pty = Pty::spawn(&[
        "--ssh-dir",
        ssh.to_str().unwrap(),
        "generate",
        "-t",
        "ed25519",
    ]);
    pty.wait_for("New passphrase", 1);
    pty.master.write_all(b"half a passphr").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    pty.master.write_all(&[0x03]).unwrap(); // Ctrl-C
    let (code, text, master) = pty.exit_code();
    assert_eq!(code, Some(130), "{text}");
    assert!(!text.contains("half a passphr"), "{text}");
    let termios = rustix::termios::tcgetattr(&master).unwrap();
    assert!(
        termios
            .local_modes
            .contains(rustix::termios::LocalModes::ECHO),
        "the terminal was left without echo"
    );
    assert_eq!(
        std::fs::read_dir(&ssh).unwrap().count(),
        0,
        "nothing was written"
    );
}

#[test]
fn whitespace_around_a_typed_passphrase_is_refused_and_asked_again() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    let key = keygen(&ssh.join("id_ed25519_jasmin"), "ed25519", &[]);
    let mut pty = Pty::spawn(&[
        "--ssh-dir",
        ssh.to_str().unwrap(),
        "rotate",
        "-t",
        "ed25519",
        "--no-agent",
    ]);
    pty.wait_for("New passphrase", 1);
    pty.type_line(&format!(" {NEW}"));
    pty.wait_for("New passphrase", 2);
    // (A tab cannot be tested here: rpassword drops control characters as they are typed.)
    pty.type_line(&format!("{NEW}  "));
    pty.wait_for("New passphrase", 3);
    pty.type_line(NEW);
    // ("again" alone is in the notes' "Try again" too.)
    pty.wait_for("The same passphrase again", 1);
    pty.type_line(NEW);
    let (code, text, _) = pty.exit_code();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("starts with whitespace"), "{text}");
    assert!(text.contains("ends with whitespace"), "{text}");
    assert!(text.contains("Try again"), "{text}");
    assert!(!text.contains(NEW), "the passphrase was echoed: {text}");
    assert!(opens_as(&key, NEW).is_some());
    assert!(opens_as(&key, &format!(" {NEW}")).is_none());
}
