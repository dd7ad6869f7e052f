//! Command-line definitions (clap derive only): no I/O here, so `--help` works even with `HOME` unset.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "Exit codes:
  0    success (for `check`: no warning or critical finding)
  1    `check` found at least one warning or critical finding
  2    could not do what was asked (the message says why and what to do next)
  130  interrupted";

/// Check, back up, generate and rotate SSH keys, as one safe transaction.
#[derive(Debug, Parser)]
#[command(name = "keyrotate", version, max_term_width = 100, after_help = EXIT_CODES)]
#[command(propagate_version = true, disable_help_subcommand = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts, before or after its name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The SSH directory to work on [default: ~/.ssh; an empty KEYROTATE_SSH_DIR counts as unset]
    // The value is taken as it is (an empty one too) and checked in `commands::resolve_ssh_dir`,
    // which tells the command line from the environment.
    #[arg(long, global = true, value_name = "DIR", env = "KEYROTATE_SSH_DIR",
          value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub ssh_dir: Option<PathBuf>,

    /// Print exactly one JSON document on stdout (diagnostics stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing on success (`check`: one line per problem); errors still go to stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// When to colour the output (NO_COLOR is honoured by `auto`)
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inventory the keys in the SSH directory and report what is wrong with them
    Check(CheckArgs),
    /// Copy keys into a new, verified, timestamped backup set
    Backup(BackupArgs),
    /// Put the keys of a backup set back into the SSH directory
    Restore(RestoreArgs),
    /// Generate a new passphrase-protected key pair
    Generate(GenerateArgs),
    /// Replace a service's key: back up, generate, swap, update ssh-agent, say what to upload
    Rotate(RotateArgs),
    /// List the service profiles (built-in and from the config file) and what each needs
    Services,
    /// Print a shell completion script on stdout (e.g. `keyrotate completions bash`)
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout (e.g. `keyrotate man | man -l -`)
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Report keys last modified more than DAYS days ago
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub max_age: u64,

    /// Report OpenSSH certificates that expire within DAYS days
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub cert_warn_days: u64,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Keys to back up: file names in the SSH directory or paths [default: every key]
    #[arg(value_name = "KEY")]
    pub keys: Vec<PathBuf>,

    /// List the backup sets, newest first, instead of making one
    #[arg(long, conflicts_with = "keys")]
    pub list: bool,

    /// Print what would be copied where, and change nothing
    #[arg(long, conflicts_with = "list")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup set (its directory name under key_backup/)
    #[arg(value_name = "SET")]
    pub set: String,

    /// Keys of the set to restore [default: all of them]
    #[arg(value_name = "KEY")]
    pub keys: Vec<PathBuf>,

    /// Print what would be restored, replaced and saved, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    Rsa,
    Ed25519,
    Ecdsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyFormat {
    /// OpenSSH's own format (what `ssh-keygen` writes by default)
    Openssh,
    /// What `ssh-keygen -m PEM` writes (RSA PKCS#1, EC SEC1), for tools that need it
    Pem,
    /// PuTTY's .ppk version 3, for PuTTY, Pageant and WinSCP
    Putty,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Key algorithm [default: the service profile's, else rsa; rotate: the current key's]
    #[arg(short = 't', long = "type", value_enum)]
    pub key_type: Option<KeyType>,

    /// Key size: rsa 2048 to 16384 [default 4096]; ecdsa 256, 384 or 521 [default 521]; rotate:
    /// the current key's
    #[arg(short, long, value_name = "N")]
    pub bits: Option<u32>,

    /// Service the key is for (any case): names the file id_<type>_<service> and picks its
    /// profile (`keyrotate services`)
    #[arg(long, value_name = "NAME", default_value = "jasmin", value_parser = service_name)]
    pub service: String,

    /// Explicit private key path (the .pub goes beside it)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Key comment [default: user@host; rotate: the current key's]
    #[arg(short = 'C', long, value_name = "TEXT")]
    pub comment: Option<String>,

    /// Private key file format [default: the service profile's, else openssh; rotate: the current
    /// key's]
    #[arg(long, value_enum)]
    pub format: Option<KeyFormat>,

    /// bcrypt-pbkdf rounds of the OpenSSH format [default: 16; rotate: the current key's]
    #[arg(short = 'a', long, value_name = "N")]
    pub rounds: Option<u32>,

    /// Read the passphrase from the first line of PATH (`-` = standard input)
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,

    /// Replace an existing key (it is backed up first)
    #[arg(long)]
    pub force: bool,

    /// Print the plan (files to back up, create, replace or move; agent and config changes),
    /// ask for no passphrase, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Service names are case-insensitive: `--service JASMIN` is jasmin.
fn service_name(name: &str) -> Result<String, std::convert::Infallible> {
    Ok(name.to_lowercase())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Reason {
    Lost,
    Forgotten,
    Compromised,
    Routine,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub generate: GenerateArgs,

    /// Leave ssh-agent alone
    #[arg(long)]
    pub no_agent: bool,

    /// Why the key is being replaced (tailors the advice at the end)
    #[arg(long, value_enum)]
    pub reason: Option<Reason>,

    /// Rewrite IdentityFile lines of ~/.ssh/config that name the retired key
    #[arg(long)]
    pub update_config: bool,

    /// Lifetime of the new identity in ssh-agent
    #[arg(long, value_name = "SECONDS")]
    pub agent_lifetime: Option<u32>,

    /// macOS: add the new key with `ssh-add --apple-use-keychain`, which keeps its passphrase in
    /// the keychain (ssh-add asks for it once more)
    #[arg(long, conflicts_with = "no_agent")]
    pub apple_use_keychain: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["keyrotate", "check", "--json", "-q", "--ssh-dir", "/x"])
            .expect("parses");
        assert!(cli.global.json && cli.global.quiet);
        assert_eq!(cli.global.ssh_dir, Some(PathBuf::from("/x")));
    }
}
