//! keyrotate against OpenSSH's `ssh-keygen` on the same machine, for every operation the two share.
//!
//!     cargo bench --bench vs_ssh_keygen                # every row, full pair counts
//!     cargo bench --bench vs_ssh_keygen -- --smoke     # a few pairs each: proves it works (CI)
//!     cargo bench --bench vs_ssh_keygen -- rsa3072 check   # only the rows named
//!
//! Every row times whole processes (release build), alternating keyrotate and ssh-keygen run by
//! run (keyrotate first in odd pairs, ssh-keygen first in even ones) so that both see the same
//! machine load, and reports both medians and the median of the pairwise ratios. Then it measures
//! the peak memory (maximum RSS, `/usr/bin/time`) of `check` on 1,000 keys and of `rotate`.
//!
//! The decrypt row needs a keyrotate process that only does rotate's passphrase check: this
//! benchmark binary runs itself with `--open-key KEY PASSFILE`, which calls the same
//! `oldkey::passphrase_opens` as `rotate`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use keyrotate::passphrase::Passphrase;
use keyrotate::rotate::oldkey::{KdfLimits, Opens, passphrase_opens};
use zeroize::Zeroizing;

const BIN: &str = env!("CARGO_BIN_EXE_keyrotate");
const PASSPHRASE: &str = "bench passphrase correct horse battery";

/// One row of the table.
struct Row {
    name: &'static str,
    label: &'static str,
    target: f64,
    /// Pairs in a full run and in a smoke run.
    pairs: (usize, usize),
}

const ROWS: &[Row] = &[
    Row {
        name: "rsa4096",
        label: "generate rsa 4096",
        target: 0.70,
        pairs: (21, 0),
    },
    Row {
        name: "rsa3072",
        label: "generate rsa 3072",
        target: 0.70,
        pairs: (21, 1),
    },
    Row {
        name: "ed25519",
        label: "generate ed25519",
        target: 1.00,
        pairs: (41, 2),
    },
    Row {
        name: "ecdsa521",
        label: "generate ecdsa 521",
        target: 1.00,
        pairs: (41, 2),
    },
    Row {
        name: "decrypt",
        label: "decrypt OpenSSH key",
        target: 1.00,
        pairs: (41, 2),
    },
    Row {
        name: "check",
        label: "check --json, {keys} keys",
        target: 0.50,
        pairs: (41, 2),
    },
    Row {
        name: "start",
        label: "--version / -? (start)",
        target: 1.00,
        pairs: (201, 3),
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--open-key") {
        return open_key(&args[1..]);
    }
    // `cargo bench` passes `--bench`; anything else not an option names a row.
    let smoke = args.iter().any(|a| a == "--smoke");
    let only: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if let Some(bad) = only.iter().find(|n| !ROWS.iter().any(|r| r.name == **n)) {
        let names: Vec<_> = ROWS.iter().map(|r| r.name).collect();
        eprintln!("vs_ssh_keygen: no row `{bad}`; rows: {}", names.join(" "));
        return ExitCode::from(2);
    }

    let bench = Bench::new(smoke);
    println!("machine: {}", machine());
    println!(
        "{:<26} {:>13} {:>14} {:>7} {:>7} {:>6}  met",
        "operation", "keyrotate ms", "ssh-keygen ms", "ratio", "target", "pairs"
    );
    let mut missed = 0;
    for row in ROWS {
        if !only.is_empty() && !only.contains(&row.name) {
            continue;
        }
        let pairs = if smoke { row.pairs.1 } else { row.pairs.0 };
        if pairs == 0 {
            continue;
        }
        let result = bench.row(row.name, pairs);
        let met = result.ratio <= row.target;
        missed += usize::from(!met);
        println!(
            "{:<26} {:>13.2} {:>14.2} {:>7.2} {:>7} {:>6}  {}",
            row.label.replace("{keys}", &bench.keys.to_string()),
            result.ours,
            result.theirs,
            result.ratio,
            format!("≤{:.2}", row.target),
            pairs,
            if met { "yes" } else { "NO" }
        );
    }
    if only.is_empty() || only.contains(&"memory") {
        bench.memory();
    }
    if missed > 0 {
        println!("{missed} target(s) not met");
    }
    ExitCode::SUCCESS
}

/// `--open-key KEY PASSFILE`: rotate's check of a passphrase against an old key, alone in a
/// process. Exit 0 when the passphrase opens the key.
fn open_key(args: &[String]) -> ExitCode {
    let [key, passfile] = args else {
        eprintln!("usage: vs_ssh_keygen --open-key KEY PASSFILE");
        return ExitCode::from(2);
    };
    let bytes = Zeroizing::new(std::fs::read(key).expect("read key"));
    let mut pass = Zeroizing::new(std::fs::read(passfile).expect("read passphrase file"));
    if pass.last() == Some(&b'\n') {
        pass.pop();
    }
    match passphrase_opens(&bytes, &Passphrase::new(pass), &KdfLimits::default()) {
        Opens::Yes => ExitCode::SUCCESS,
        other => {
            eprintln!("vs_ssh_keygen: passphrase check gave {other:?}");
            ExitCode::FAILURE
        }
    }
}

struct Results {
    ours: f64,
    theirs: f64,
    ratio: f64,
}

struct Bench {
    work: tempfile::TempDir,
    passfile: PathBuf,
    /// Number of keys for the check row.
    keys: usize,
}

impl Bench {
    fn new(smoke: bool) -> Bench {
        let work = tempfile::tempdir().expect("temporary directory");
        let passfile = work.path().join("pass");
        std::fs::write(&passfile, format!("{PASSPHRASE}\n")).unwrap();
        Bench {
            work,
            passfile,
            keys: if smoke { 20 } else { 1000 },
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn row(&self, name: &str, pairs: usize) -> Results {
        match name {
            "rsa4096" => self.generate(&["-t", "rsa", "-b", "4096"], pairs),
            "rsa3072" => self.generate(&["-t", "rsa", "-b", "3072"], pairs),
            "ed25519" => self.generate(&["-t", "ed25519"], pairs),
            "ecdsa521" => self.generate(&["-t", "ecdsa", "-b", "521"], pairs),
            "decrypt" => self.decrypt(pairs),
            "check" => self.check(pairs),
            "start" => compare(
                pairs,
                || (),
                || run(Command::new(BIN).arg("--version"), &[0]),
                || run(Command::new("ssh-keygen").arg("-?"), &[1]),
            ),
            _ => unreachable!("row names are checked in main"),
        }
    }

    /// `keyrotate generate` and `ssh-keygen` both writing a passphrase-protected key with 16
    /// bcrypt rounds (both tools' default) into an empty directory.
    fn generate(&self, spec: &[&str], pairs: usize) -> Results {
        let (ours, theirs) = (self.path("ours"), self.path("theirs"));
        compare(
            pairs,
            || {
                for dir in [&ours, &theirs] {
                    let _ = std::fs::remove_dir_all(dir);
                    std::fs::create_dir(dir).unwrap();
                }
            },
            || {
                run(
                    Command::new(BIN)
                        .arg("--ssh-dir")
                        .arg(&ours)
                        .args(["generate", "-q"])
                        .args(spec)
                        .arg("--passphrase-file")
                        .arg(&self.passfile)
                        .arg("-f")
                        .arg(ours.join("key")),
                    &[0],
                )
            },
            || {
                run(
                    Command::new("ssh-keygen")
                        .args(["-q", "-a", "16", "-N", PASSPHRASE])
                        .args(spec)
                        .arg("-f")
                        .arg(theirs.join("key")),
                    &[0],
                )
            },
        )
    }

    /// Rotate's check that a passphrase opens an old key, against `ssh-keygen -y -P`, on the same
    /// Ed25519 key in the new OpenSSH format (16 bcrypt rounds, aes256-ctr).
    fn decrypt(&self, pairs: usize) -> Results {
        let key = self.path("old_key");
        if !key.exists() {
            keygen(&key, &["-t", "ed25519", "-a", "16", "-N", PASSPHRASE]);
        }
        let me = std::env::current_exe().expect("own path");
        compare(
            pairs,
            || (),
            || {
                run(
                    Command::new(&me)
                        .arg("--open-key")
                        .arg(&key)
                        .arg(&self.passfile),
                    &[0],
                )
            },
            || {
                run(
                    Command::new("ssh-keygen")
                        .args(["-y", "-P", PASSPHRASE, "-f"])
                        .arg(&key),
                    &[0],
                )
            },
        )
    }

    /// `keyrotate check --json` on a directory of key pairs against `ssh-keygen -l -f` on one file
    /// holding all their public keys.
    fn check(&self, pairs: usize) -> Results {
        let (dir, all) = key_set(self.keys);
        // check exits 1 when it finds problems, and the bench keys have some.
        let ours = || run(&mut check_command(&dir), &[0, 1]);
        let reported = String::from_utf8(check_command(&dir).output().unwrap().stdout).unwrap();
        let reported = reported.matches("\"path\"").count();
        assert_eq!(reported, self.keys, "check must report every key");
        compare(
            pairs,
            || (),
            ours,
            || {
                run(
                    Command::new("ssh-keygen").arg("-l").arg("-f").arg(&all),
                    &[0],
                )
            },
        )
    }

    /// Peak memory of `check` on the key set and of `rotate` (RSA 4096 and Ed25519).
    fn memory(&self) {
        let time = Path::new("/usr/bin/time");
        if !time.exists() {
            println!("peak memory: /usr/bin/time is not installed (apt-get install time)");
            return;
        }
        let (dir, _) = key_set(self.keys);
        let check = max_rss(check_command(&dir), &[0, 1]);
        println!(
            "peak memory (max RSS): check on {} keys {:.1} MiB",
            self.keys, check
        );
        for (label, spec) in [
            ("rsa 4096", &["-t", "rsa", "-b", "4096"][..]),
            ("ed25519", &["-t", "ed25519"][..]),
        ] {
            let home = self.path("rotate");
            let _ = std::fs::remove_dir_all(&home);
            std::fs::create_dir(&home).unwrap();
            let old_pass = self.path("old_pass");
            std::fs::write(&old_pass, "an older passphrase, different\n").unwrap();
            keygen(
                &home.join("id_rsa_jasmin"),
                &[
                    "-t",
                    "rsa",
                    "-b",
                    "3072",
                    "-N",
                    "an older passphrase, different",
                ],
            );
            let mut rotate = Command::new(BIN);
            rotate
                .arg("--ssh-dir")
                .arg(&home)
                .args(["rotate", "--json", "--no-agent", "--reason", "routine"])
                .args(spec)
                .arg("--passphrase-file")
                .arg(&self.passfile);
            println!(
                "peak memory (max RSS): rotate to {label} {:.1} MiB",
                max_rss(rotate, &[0])
            );
        }
    }
}

fn check_command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.arg("--ssh-dir").arg(dir).args(["check", "--json"]);
    command
}

/// Times `pairs` pairs of `ours` and `theirs`, alternating which goes first, with `setup`
/// (untimed) before each run.
fn compare(pairs: usize, setup: impl Fn(), ours: impl Fn(), theirs: impl Fn()) -> Results {
    let timed = |f: &dyn Fn()| {
        setup();
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1000.0
    };
    // One untimed run of each warms the page cache.
    timed(&ours);
    timed(&theirs);
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (x, y) = if i % 2 == 0 {
            let x = timed(&ours);
            (x, timed(&theirs))
        } else {
            let y = timed(&theirs);
            (timed(&ours), y)
        };
        a.push(x);
        b.push(y);
        ratios.push(x / y);
    }
    Results {
        ours: median(a),
        theirs: median(b),
        ratio: median(ratios),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `command` with no input and output discarded; panics unless it exits with one of `codes`.
fn run(command: &mut Command, codes: &[i32]) {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start");
    assert!(
        status.code().is_some_and(|c| codes.contains(&c)),
        "{command:?} exited with {status}"
    );
}

/// Peak RSS in MiB of `command`, as `/usr/bin/time -f %M` reports it; panics unless the command
/// exits with one of `codes`.
fn max_rss(command: Command, codes: &[i32]) -> f64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "{command:?} exited with {}",
        out.status
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {stderr:?}"));
    kib / 1024.0
}

fn keygen(path: &Path, args: &[&str]) {
    let status = Command::new("ssh-keygen")
        .arg("-q")
        .args(args)
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen {args:?} failed");
}

/// A directory of `n` key pairs (10% RSA-3072, 20% ECDSA, 70% Ed25519, half of them
/// passphrase-protected), and one file of all their public keys; made once with ssh-keygen and
/// cached under target/tmp.
fn key_set(n: usize) -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-keys-{n}"));
    let (dir, all) = (root.join(".ssh"), root.join("all.pub"));
    if root.join("complete").exists() {
        return (dir, all);
    }
    eprintln!("making {n} key pairs in {} (once) ...", dir.display());
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap();
    let next = std::sync::atomic::AtomicUsize::new(1);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i > n {
                        break;
                    }
                    let (kind, bits) = match i % 10 {
                        0 => ("rsa", "3072"),
                        1 | 2 if i.is_multiple_of(3) => ("ecdsa", "521"),
                        1 | 2 => ("ecdsa", "256"),
                        _ => ("ed25519", ""),
                    };
                    let pass = if i.is_multiple_of(2) {
                        format!("bench passphrase {i}")
                    } else {
                        String::new()
                    };
                    let comment = format!("bench key {i}");
                    let mut args = vec!["-t", kind, "-N", &pass, "-C", &comment];
                    if !bits.is_empty() {
                        args.extend(["-b", bits]);
                    }
                    keygen(&dir.join(format!("id_{kind}_{i}")), &args);
                }
            });
        }
    });
    let mut publics = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pub") {
            publics += &std::fs::read_to_string(path).unwrap();
        }
    }
    std::fs::write(&all, publics).unwrap();
    std::fs::write(root.join("complete"), "").unwrap();
    (dir, all)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let uname = Command::new("uname").arg("-sr").output().map_or_else(
        |_| "unknown OS".to_string(),
        |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
    );
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let ssh = Command::new("ssh").arg("-V").output().map_or_else(
        |_| "no OpenSSH".to_string(),
        |o| String::from_utf8_lossy(&o.stderr).trim().to_string(),
    );
    format!("{cores} cores ({cpu}), {uname}, {ssh}")
}
