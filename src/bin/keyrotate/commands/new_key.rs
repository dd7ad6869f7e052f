//! What generate and rotate share: the new key's options from the command line, its path, its
//! passphrase (through the terminal or a file), and making it with a spinner.

use std::path::{Path, PathBuf};

use keyrotate::Result;
use keyrotate::generate::{self, KeyFormat, KeySpec, KeyType, NewKey};
use keyrotate::passphrase::{Passphrase, PassphraseSource, Policy};
use keyrotate::rotate::successor::Wanted;
use keyrotate::service::Profile;
use keyrotate::text::sanitize;

use super::Context;
use crate::cli::{self, GenerateArgs};
use crate::output::Spinner;
use crate::prompt::{FileSource, TerminalSource};

/// What the new private key is, for a dry run: `RSA 4096-bit, OpenSSH format`.
pub fn private_detail(spec: &KeySpec) -> String {
    format!("{}, {} format", spec.describe(), spec.format.describe())
}

/// Where the passphrase would come from (a dry run never asks for it).
pub fn passphrase_note(args: &GenerateArgs) -> String {
    match &args.passphrase_file {
        Some(path) if path.as_os_str() == "-" => {
            "the passphrase would be read from the first line of standard input".to_string()
        }
        Some(path) => format!(
            "the passphrase would be read from the first line of {}",
            path.display()
        ),
        None => "the passphrase would be asked for twice on the terminal".to_string(),
    }
}

/// `generate`'s key: what the options say, then the service profile's defaults, then RSA and
/// OpenSSH.
pub fn spec_from_args(args: &GenerateArgs, profile: &Profile) -> Result<KeySpec> {
    let wanted = wanted(args, profile);
    Ok(KeySpec::new(
        wanted
            .key_type
            .or(wanted.default_type)
            .unwrap_or(KeyType::Rsa),
        wanted.bits,
        wanted
            .format
            .or(wanted.default_format)
            .unwrap_or(KeyFormat::Openssh),
        wanted.rounds,
        wanted.comment.unwrap_or_else(default_comment),
    )?)
}

/// What the options ask for; `rotate` inherits the rest from the current key, `generate` takes
/// it from the profile.
pub fn wanted(args: &GenerateArgs, profile: &Profile) -> Wanted {
    Wanted {
        key_type: args.key_type.map(|t| match t {
            cli::KeyType::Rsa => KeyType::Rsa,
            cli::KeyType::Ed25519 => KeyType::Ed25519,
            cli::KeyType::Ecdsa => KeyType::Ecdsa,
        }),
        bits: args.bits,
        format: args.format.map(|f| match f {
            cli::KeyFormat::Openssh => KeyFormat::Openssh,
            cli::KeyFormat::Pem => KeyFormat::Pem,
            cli::KeyFormat::Putty => KeyFormat::Putty,
        }),
        rounds: args.rounds,
        comment: args.comment.clone(),
        default_type: profile.key_type,
        default_format: profile.key_format,
    }
}

/// `user@host`, as ssh-keygen writes it.
pub fn default_comment() -> String {
    let user = whoami::username().unwrap_or_else(|_| "user".to_string());
    let host = whoami::hostname().unwrap_or_else(|_| "localhost".to_string());
    format!("{user}@{host}")
}

/// `-f PATH`, made absolute.
pub fn explicit_file(args: &GenerateArgs) -> Option<PathBuf> {
    let file = args.file.as_ref()?;
    Some(std::path::absolute(file).unwrap_or_else(|_| file.clone()))
}

/// `-f PATH`, or `<ssh-dir>/id_<type>_<service>`.
pub fn target_path(ctx: &Context, args: &GenerateArgs, spec: &KeySpec) -> Result<PathBuf> {
    if let Some(file) = explicit_file(args) {
        return Ok(file);
    }
    check_service_name(args)?;
    Ok(ctx.ssh_dir.join(spec.default_file_name(&args.service)))
}

/// `--service` must be able to be part of a file name.
pub fn check_service_name(args: &GenerateArgs) -> Result<()> {
    if !generate::valid_service_name(&args.service) {
        return Err(keyrotate::Error::refused(
            format!(
                "\"{}\" cannot be part of a key file name",
                sanitize(&args.service)
            ),
            "use letters, digits, '.', '_' and '-' in --service (e.g. --service jasmin), or give \
             the path with -f",
        ));
    }
    Ok(())
}

pub fn new_passphrase(args: &GenerateArgs, spec: &KeySpec, target: &Path) -> Result<Passphrase> {
    let mut source: Box<dyn PassphraseSource> = match &args.passphrase_file {
        Some(path) => Box::new(FileSource { path: path.clone() }),
        None => Box::new(TerminalSource),
    };
    let policy = Policy::for_key(generate::passphrase_context(spec, target), &spec.comment);
    Ok(source.new_passphrase(&sanitize(&target.to_string_lossy()), &policy)?)
}

pub fn make_key(ctx: &Context, spec: &KeySpec, passphrase: &Passphrase) -> Result<NewKey> {
    let message = format!(
        "Generating an {} key{}",
        spec.describe(),
        if spec.key_type == KeyType::Rsa {
            " (this can take a few seconds)"
        } else {
            ""
        }
    );
    let _spinner = Spinner::start(&message, !ctx.json && !ctx.quiet);
    Ok(generate::generate(spec, passphrase, &mut rand_core::OsRng)?)
}
