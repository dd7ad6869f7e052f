//! One module per subcommand: resolve paths and the clock, call the library, print.

mod backup;
mod check;
mod docs;
mod generate;
mod new_key;
mod plan;
mod restore;
mod rotate;
mod services;

use std::path::PathBuf;
use std::process::ExitCode;

use keyrotate::Result;

use keyrotate::transaction;
use keyrotate::transaction::lock::{self, DirLock};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output;

/// What every subcommand needs from the global options, resolved once.
#[derive(Debug)]
pub struct Context {
    pub ssh_dir: PathBuf,
    pub json: bool,
    pub quiet: bool,
}

impl Context {
    /// Is there an SSH directory? An error (naming it) when that cannot be told.
    pub fn ssh_dir_exists(&self) -> Result<bool> {
        Ok(keyrotate::sys::fsio::is_dir(&self.ssh_dir)?)
    }

    fn new(global: &GlobalArgs) -> Result<Self> {
        Ok(Context {
            ssh_dir: resolve_ssh_dir(global.ssh_dir.as_ref())?,
            json: global.json,
            quiet: global.quiet,
        })
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    output::set_color(cli.global.color);
    let ctx = || Context::new(&cli.global);
    match cli.command {
        Command::Check(ref args) => check::run(&ctx()?, args),
        Command::Backup(ref args) => backup::run(&ctx()?, args),
        Command::Restore(ref args) => restore::run(&ctx()?, args),
        Command::Generate(ref args) => generate::run(&ctx()?, args),
        Command::Rotate(ref args) => rotate::run(&ctx()?, args),
        Command::Services => services::run(&cli.global),
        // Generated from the clap definitions alone: no SSH directory, no HOME needed.
        Command::Completions(ref args) => docs::completions(args.shell),
        Command::Man => docs::man(),
    }
}

/// The service profiles: `KEYROTATE_CONFIG` (which must exist) if set and not empty, else
/// `<config dir>/keyrotate/config.toml` (absent is no config).
pub fn profiles() -> Result<keyrotate::service::Profiles> {
    let explicit = std::env::var_os("KEYROTATE_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let default = dirs::config_dir().map(|d| d.join("keyrotate").join("config.toml"));
    Ok(keyrotate::service::Profiles::load(
        explicit.as_deref(),
        default.as_deref(),
    )?)
}

/// Take the SSH directory's lock, then first finish or undo whatever a killed keyrotate left
/// behind (and say so), before the command does its own work.
pub fn lock_and_recover(ctx: &Context) -> Result<DirLock> {
    let lock = lock::lock_ssh_dir(&ctx.ssh_dir)?;
    for note in transaction::recover(&ctx.ssh_dir)?.notes() {
        output::print_note(&note);
    }
    Ok(lock)
}

/// For read-only commands: recover only if something was left behind and no other keyrotate is
/// at work; never fail the command because of it. In a directory owned by someone else (root
/// checking users' keys) nothing is written at all, not even the lock: only the owner's own
/// keyrotate finishes what the owner's keyrotate left.
pub fn recover_if_needed(ctx: &Context) {
    if !matches!(keyrotate::sys::fsio::is_dir(&ctx.ssh_dir), Ok(true))
        || !transaction::needs_recovery(&ctx.ssh_dir)
    {
        return;
    }
    match transaction::owned_by_me(&ctx.ssh_dir) {
        Ok(true) => {}
        Ok(false) => {
            if transaction::has_journal(&ctx.ssh_dir).unwrap_or(true) {
                output::print_note(&format!(
                    "{} holds a record of an interrupted keyrotate run; it belongs to another \
                     user, so only they can finish it (by running any keyrotate command)",
                    ctx.ssh_dir.display()
                ));
            }
            return;
        }
        Err(e) => {
            output::print_note(&format!("{e}"));
            return;
        }
    }
    // A journal recovery would refuse is reported before the lock is even taken.
    let checked = transaction::check_journal(&ctx.ssh_dir).map_err(keyrotate::Error::from);
    match checked.and_then(|()| lock_and_recover(ctx)) {
        Ok(_lock) => {}
        Err(e) if e.is_busy() => {
            output::print_note("another keyrotate is changing keys in this directory right now");
        }
        Err(e) => {
            let hint = match &e {
                keyrotate::Error::Transaction(t) => format!(" ({})", t.hint()),
                _ => String::new(),
            };
            output::print_note(&format!(
                "could not finish an interrupted keyrotate run: {e}{hint}"
            ))
        }
    }
}

/// `--ssh-dir`, else `KEYROTATE_SSH_DIR`, else `~/.ssh` of the home directory. An empty
/// `KEYROTATE_SSH_DIR` counts as unset (as an empty variable does for most tools); an empty
/// `--ssh-dir ''` is refused. clap reads both into one value: an empty one came from the
/// environment exactly when the variable is set and empty and no `--ssh-dir` was given.
fn resolve_ssh_dir(explicit: Option<&PathBuf>) -> Result<PathBuf> {
    let explicit = match explicit {
        Some(dir) if dir.as_os_str().is_empty() => {
            let from_env = std::env::var_os("KEYROTATE_SSH_DIR").is_some_and(|v| v.is_empty())
                && !std::env::args_os()
                    .any(|a| a == "--ssh-dir" || a.as_encoded_bytes().starts_with(b"--ssh-dir="));
            if !from_env {
                return Err(keyrotate::Error::refused(
                    "--ssh-dir was given an empty directory name",
                    "name the SSH directory after --ssh-dir, or leave --ssh-dir out",
                ));
            }
            None
        }
        other => other,
    };
    let dir = match explicit {
        Some(dir) => dir.clone(),
        None => home_dir()?.join(".ssh"),
    };
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}

/// The home directory the default SSH directory is in. `HOME` when it names a directory; when
/// `HOME` is unset or empty, the password database's home (where ssh itself looks, since ssh
/// ignores `HOME`), said on stderr so that nobody works on a directory they did not expect;
/// `HOME` naming something that is not a directory is refused rather than second-guessed.
#[cfg(unix)]
fn home_dir() -> Result<PathBuf> {
    let hint = "set HOME to your home directory, or name the SSH directory to use with the \
                --ssh-dir option (or KEYROTATE_SSH_DIR)";
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => {
            let home = PathBuf::from(home);
            match std::fs::metadata(&home) {
                Ok(meta) if !meta.is_dir() => Err(keyrotate::Error::refused(
                    format!("HOME ({}) is not a directory", home.display()),
                    hint,
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(keyrotate::Error::refused(
                        format!("HOME ({}) does not exist", home.display()),
                        hint,
                    ))
                }
                // Could not look (permission denied...): the command itself will say what fails.
                _ => Ok(home),
            }
        }
        None => {
            let state = match std::env::var_os("HOME") {
                Some(_) => "empty",
                None => "not set",
            };
            // With HOME unset or empty, dirs asks the password database.
            match dirs::home_dir().filter(|h| h.is_dir()) {
                Some(home) => {
                    output::print_note(&format!(
                        "HOME is {state}; using {} from the password database",
                        home.join(".ssh").display()
                    ));
                    Ok(home)
                }
                None => Err(keyrotate::Error::refused(
                    format!(
                        "cannot tell where your home directory is (HOME is {state}, and the \
                         password database names no home directory that exists)"
                    ),
                    hint,
                )),
            }
        }
    }
}

#[cfg(not(unix))]
fn home_dir() -> Result<PathBuf> {
    dirs::home_dir().ok_or_else(|| {
        keyrotate::Error::refused(
            "cannot tell where your home directory is (USERPROFILE is not set)",
            "name the SSH directory to use with the --ssh-dir option (or KEYROTATE_SSH_DIR)",
        )
    })
}
