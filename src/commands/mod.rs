//! One module per subcommand: resolve paths and the clock, call the library, print.

mod backup;
mod check;
mod generate;
mod restore;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output::{self, UserError};

/// What every subcommand needs from the global options, resolved once.
#[derive(Debug)]
pub struct Context {
    pub ssh_dir: PathBuf,
    pub json: bool,
    pub quiet: bool,
}

impl Context {
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
    let ctx = Context::new(&cli.global)?;
    match cli.command {
        Command::Check(args) => check::run(&ctx, &args),
        Command::Backup(args) => backup::run(&ctx, &args),
        Command::Restore(args) => restore::run(&ctx, &args),
        Command::Generate(args) => generate::run(&ctx, &args),
        Command::Rotate(_) => not_yet("rotate"),
    }
}

fn not_yet(name: &str) -> Result<ExitCode> {
    Err(UserError::new(
        format!(
            "`keyrotate {name}` is not available yet in version {}",
            env!("CARGO_PKG_VERSION")
        ),
        "run `keyrotate check` to see the state of your keys; `ssh-keygen` can do the rest for now",
    )
    .into())
}

/// `--ssh-dir`, else `KEYROTATE_SSH_DIR` (clap reads both and refuses an empty `--ssh-dir`),
/// else `~/.ssh` of the home directory.
fn resolve_ssh_dir(explicit: Option<&PathBuf>) -> Result<PathBuf> {
    let dir = match explicit {
        Some(dir) => dir.clone(),
        None => match dirs::home_dir() {
            Some(home) => home.join(".ssh"),
            None => {
                return Err(UserError::new(
                    "cannot tell where your home directory is (HOME is not set)",
                    "pass the SSH directory with `--ssh-dir DIR`",
                )
                .into());
            }
        },
    };
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}
