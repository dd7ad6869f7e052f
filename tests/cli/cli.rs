//! The command-line surface every subcommand shares: help, version, exit codes, error format.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::process::Command;

use crate::common::*;

#[test]
fn help_lists_every_subcommand_and_the_global_options() {
    let out = Command::new(bin())
        .env_remove("HOME")
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "check",
        "backup",
        "restore",
        "generate",
        "rotate",
        "--ssh-dir",
        "--json",
        "--quiet",
        "--color",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    assert!(text.contains("Exit codes"), "{text}");
}

#[test]
fn every_subcommand_has_help_even_without_a_home() {
    for sub in ["check", "backup", "restore", "generate", "rotate"] {
        let out = Command::new(bin())
            .env_remove("HOME")
            .env_remove("KEYROTATE_SSH_DIR")
            // clap wraps help to COLUMNS when set; pin it to the width the snapshots have.
            .env("COLUMNS", "100")
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("--ssh-dir"),
            "{sub}"
        );
    }
}

#[test]
fn version_prints_the_package_version() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("keyrotate {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn commands_that_need_a_passphrase_refuse_at_once_without_a_terminal() {
    let (_tmp, ssh) = ssh_dir_copy(None);
    for args in [&["generate"][..], &["rotate"], &["rotate", "--json"]] {
        let started = std::time::Instant::now();
        let out = keyrotate(&ssh).args(args).output().unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{args:?} hung"
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing on stdout, not even with --json"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(
            lines[0].starts_with("keyrotate: ") && lines[0].contains("no terminal"),
            "{err}"
        );
        assert!(
            lines[1].starts_with("hint: ") && lines[1].contains("--passphrase-file"),
            "{err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&ssh)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".keyrotate.lock")
        .collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["check", "--max-age", "soon"][..],
        &["frobnicate"],
        &["check", "--color", "pink"],
        &[],
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn an_empty_ssh_dir_is_refused() {
    // (An empty KEYROTATE_SSH_DIR counts as unset, as clap and most tools treat empty variables.)
    let out = Command::new(bin())
        .args(["--ssh-dir", "", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--ssh-dir"), "{err}");
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    // `keyrotate check | head -c 10`: the reader goes away early. The report must be larger than
    // a pipe buffer (64 KiB) so that the write really fails with EPIPE.
    let (_tmp, ssh) = ssh_dir_copy(None);
    for copy in 0..6 {
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let entry = entry.unwrap();
            let name = format!("c{copy}_{}", entry.file_name().to_string_lossy());
            std::fs::copy(entry.path(), ssh.join(name)).unwrap();
        }
    }
    let full = keyrotate(&ssh).arg("check").output().unwrap();
    assert!(
        full.stdout.len() > 128 * 1024,
        "report is only {} bytes",
        full.stdout.len()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#""$0" --ssh-dir "$1" check | head -c 10 >/dev/null; echo "${PIPESTATUS[0]}""#)
        .arg(bin())
        .arg(&ssh)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    // Findings were made, so the exit code is still check's own: 1.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{err}");
}

#[test]
fn completions_generate_for_every_shell_without_a_home() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = Command::new(bin())
            .env_remove("HOME")
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        assert!(out.stderr.is_empty(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [
            "rotate",
            "restore",
            "man",
            "ssh-dir",
            "passphrase-file",
            "max-age",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // The bash script is valid bash, and completes a subcommand when sourced.
    let out = Command::new(bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("keyrotate.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = format!(
        "source '{}'; COMP_WORDS=(keyrotate rot); COMP_CWORD=1; _keyrotate keyrotate rot keyrotate; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rotate",
        "{out:?}"
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let out = Command::new(bin())
        .env_remove("HOME")
        .arg("man")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains(".TH keyrotate 1"), "no title header");
    // Each subcommand's own options have a section (roff escapes '-' as '\-'); global options,
    // --help and --version are documented once, in OPTIONS.
    for (sub, option) in [
        ("check", "max\\-age"),
        ("backup", "list"),
        ("restore", "SET"),
        ("generate", "passphrase\\-file"),
        ("rotate", "apple\\-use\\-keychain"),
        ("completions", "SHELL"),
    ] {
        let heading = format!(".SH \"KEYROTATE {} OPTIONS\"", sub.to_uppercase());
        let (_, section) = page
            .split_once(&heading)
            .unwrap_or_else(|| panic!("man page lacks {heading}"));
        let section = section.split("\n.SH ").next().unwrap();
        assert!(
            section.contains(option),
            "{heading} lacks {option}: {section}"
        );
        assert!(
            !section.contains("ssh\\-dir"),
            "{heading} repeats the global options"
        );
    }
    assert_eq!(
        page.matches("dry\\-run").count(),
        4,
        "backup, restore, generate, rotate"
    );
    assert!(page.contains(".SH \"EXIT STATUS\""));
    assert!(page.contains(&format!("keyrotate {}", env!("CARGO_PKG_VERSION"))));
}

/// `--help` of keyrotate and of every subcommand, pinned with insta in `tests/cli/snapshots/`
/// (`help.snap`, `help-SUB.snap`): a change to the command-line surface shows up in review.
///
/// A difference fails the test. Outside CI insta also writes the new text beside the snapshot
/// (`help-SUB.snap.new`); with `CI` set, and in `.ci/run` (`INSTA_UPDATE=no`), it writes and
/// accepts nothing. After an intended change, accept the new texts with `cargo insta review`
/// (or `cargo insta test --review`, from the cargo-insta package), or rewrite them all in
/// place with `INSTA_UPDATE=always cargo test --test cli cli::help_snapshots`, and commit the
/// `.snap` diff.
#[test]
fn help_snapshots() {
    let mut settings = insta::Settings::clone_current();
    // `help-check.snap` rather than `cli__cli__help-check.snap`.
    settings.set_prepend_module_to_snapshot(false);
    for sub in [
        "",
        "check",
        "backup",
        "restore",
        "generate",
        "rotate",
        "completions",
        "man",
    ] {
        let out = Command::new(bin())
            .env_remove("HOME")
            .env_remove("KEYROTATE_SSH_DIR")
            // clap wraps help to COLUMNS when set; pin it to the width the snapshots have.
            .env("COLUMNS", "100")
            .args([sub, "--help"].iter().filter(|a| !a.is_empty()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub} --help: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        let name = if sub.is_empty() {
            "help".to_string()
        } else {
            format!("help-{sub}")
        };
        // insta compares text with its trailing whitespace trimmed and CRLF read as LF; the
        // rest of the output's bytes are checked here, so the comparison stays byte for byte.
        assert!(
            &help[help.trim_end().len()..] == "\n" && !help.contains('\r'),
            "{sub} --help must end in one newline and hold no CR: {help:?}"
        );
        let command = format!("keyrotate {sub} --help").replace("  ", " ");
        settings.set_description(format!("`{command}` with COLUMNS=100 and no HOME"));
        settings.bind(|| insta::assert_snapshot!(name, help));
    }
}

#[test]
fn an_empty_keyrotate_ssh_dir_counts_as_unset() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .env("HOME", tmp.path())
        .env("KEYROTATE_SSH_DIR", "")
        .args(["check", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = tmp.path().join(".ssh");
    assert_eq!(doc["ssh_dir"], *want.to_string_lossy(), "{doc}");
    // An empty --ssh-dir is still refused, even with the variable empty too.
    let out = Command::new(bin())
        .env("HOME", tmp.path())
        .env("KEYROTATE_SSH_DIR", "")
        .args(["--ssh-dir=", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn without_home_the_password_database_home_is_used_and_said() {
    for (state, home) in [("not set", None), ("empty", Some(""))] {
        let mut cmd = Command::new(bin());
        cmd.env_remove("KEYROTATE_SSH_DIR")
            .args(["check", "--json"]);
        match home {
            Some(h) => cmd.env("HOME", h),
            None => cmd.env_remove("HOME"),
        };
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{state}: {err}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = doc["ssh_dir"].as_str().unwrap();
        assert!(
            err.contains(&format!(
                "note: HOME is {state}; using {dir} from the password database"
            )),
            "{state}: {err}"
        );
    }
}

#[test]
fn a_home_that_is_not_a_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    for home in [file, tmp.path().join("missing")] {
        let out = Command::new(bin())
            .env("HOME", &home)
            .env_remove("KEYROTATE_SSH_DIR")
            .arg("check")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("HOME (")
                && err.contains("hint: set HOME to your home directory, or name the SSH directory"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}
