//! A real `sshd` on 127.0.0.1 and a real `ssh-agent`, for end-to-end tests.
//!
//! As root, sshd needs its privilege-separation directory `/run/sshd`; it is created on a private
//! tmpfs inside `unshare -m`, so the host's /run is never touched. sshd binds only 127.0.0.1.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{is_root, run_ok, set_mode};

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd_binary() -> PathBuf {
    for candidate in ["/usr/sbin/sshd", "/usr/local/sbin/sshd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("sshd is not installed: run `apt-get install openssh-server` (.ci/run does)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn current_user() -> String {
    let out = run_ok(Command::new("id").arg("-un"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Sshd {
    /// Start sshd accepting the public keys in `authorized` for the current user.
    pub fn start(authorized: &[&Path]) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
        );
        let mut keys = String::new();
        for path in authorized {
            keys.push_str(&fs::read_to_string(path).unwrap());
        }
        let authorized_keys = dir.path().join("authorized_keys");
        fs::write(&authorized_keys, keys).unwrap();
        set_mode(&authorized_keys, 0o600);
        let port = free_port();
        let config = dir.path().join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {}/sshd.pid\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                authorized_keys.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("sshd.log")).unwrap();
        let sshd = sshd_binary();
        let child = if is_root() {
            Command::new("unshare")
                .args(["-m", "sh", "-c"])
                .arg("mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && exec \"$0\" -D -e -f \"$1\"")
                .arg(&sshd)
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        } else {
            Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        };
        let mut sshd = Sshd {
            child,
            port,
            dir,
            user: current_user(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd exited ({status}): {}", sshd.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// `ssh` to this server running `echo logged-in`, with a clean configuration.
    pub fn ssh(
        &self,
        identity: &Path,
        extra_env: &[(&str, &std::ffi::OsStr)],
        batch: bool,
    ) -> Output {
        let known = self.dir.path().join("known_hosts");
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "KbdInteractiveAuthentication=no",
            ])
            .args(["-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!("BatchMode={}", if batch { "yes" } else { "no" }))
            .arg("-i")
            .arg(identity)
            .arg(format!("{}@127.0.0.1", self.user))
            .args(["echo", "logged-in"])
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

/// An `SSH_ASKPASS` program that prints `passphrase`, for ssh and ssh-add without a terminal.
pub fn askpass(dir: &Path, passphrase: &str) -> PathBuf {
    let path = dir.join(format!("askpass-{}", passphrase.len()));
    let mut f = fs::File::create(&path).unwrap();
    // The passphrase goes in a file beside it, not into the script text or argv.
    let secret = dir.join(format!("askpass-{}.secret", passphrase.len()));
    fs::write(&secret, passphrase).unwrap();
    writeln!(f, "#!/bin/sh\ncat '{}'", secret.display()).unwrap();
    drop(f);
    set_mode(&path, 0o700);
    path
}

/// Environment making ssh and ssh-add ask `askpass` instead of a terminal.
pub fn askpass_env(askpass: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("SSH_ASKPASS", askpass.as_os_str().to_owned()),
        ("SSH_ASKPASS_REQUIRE", "force".into()),
        ("DISPLAY", ":0".into()),
    ]
}

/// A real ssh-agent on a private socket, killed on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }

    /// `ssh-add -l -E sha256` fingerprints.
    pub fn fingerprints(&self) -> Vec<String> {
        let out = Command::new("ssh-add")
            .args(["-l", "-E", "sha256"])
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .filter(|f| f.starts_with("SHA256:"))
            .collect()
    }

    /// `ssh-add KEY` with the passphrase given through SSH_ASKPASS.
    pub fn add(&self, key: &Path, askpass: &Path) -> Output {
        let mut cmd = Command::new("ssh-add");
        cmd.arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null());
        for (k, v) in askpass_env(askpass) {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}
