//! `keyrotate generate`: a new passphrase-protected key pair, born private, never overwriting.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::generate::{self, KeyFormat, KeySpec, KeyType, NewKey, Written};
use keyrotate::passphrase::{Passphrase, PassphraseSource};
use keyrotate::store::Store;
use keyrotate::sys::fsio;
use keyrotate::sys::io_reason;
use keyrotate::text::sanitize;

use super::Context;
use crate::cli::{self, GenerateArgs};
use crate::interrupt::Critical;
use crate::output::{self, Spinner};
use crate::prompt::{FileSource, TerminalSource};
use keyrotate::plan::Plan;

pub fn run(ctx: &Context, args: &GenerateArgs) -> Result<ExitCode> {
    let spec = spec_from_args(args)?;
    if spec.key_type == KeyType::Rsa && spec.bits < 3072 && !ctx.quiet {
        output::print_note(&format!(
            "{}-bit RSA is below the 3072 bits now recommended; `keyrotate check` will report it \
             as weak-key-size",
            spec.bits
        ));
    }
    let target = target_path(ctx, args, &spec)?;
    if args.dry_run {
        return dry_run(ctx, args, &spec, &target);
    }
    // Refuse at once, before asking for anything, if the key exists and --force was not given.
    if target.parent() != Some(ctx.ssh_dir.as_path()) || ctx.ssh_dir_exists()? {
        generate::check_target(&target, args.force)?;
    }
    if args.force && ctx.ssh_dir_exists()? {
        // A backup store that would be refused later is refused now, before anything is asked.
        Store::open_existing(&ctx.ssh_dir)?;
    }
    let passphrase = new_passphrase(args, &spec, &target)?;
    ensure_ssh_dir(&ctx.ssh_dir)?;
    let _lock = super::lock_and_recover(ctx)?;
    generate::check_target(&target, args.force)?;
    let key = make_key(ctx, &spec, &passphrase)?;
    drop(passphrase);
    // Ctrl-C before the commit point undoes the change; after it, waits for the report.
    let critical = Critical::enter();
    let written = write(ctx, &target, &key, args.force)?;
    critical.committed();
    print(ctx, &spec, &key, &written)?;
    drop(critical);
    Ok(ExitCode::SUCCESS)
}

/// What `generate` would do; refuses what the real run refuses, asks for nothing, changes nothing.
fn dry_run(ctx: &Context, args: &GenerateArgs, spec: &KeySpec, target: &Path) -> Result<ExitCode> {
    if target.parent() != Some(ctx.ssh_dir.as_path()) || ctx.ssh_dir_exists()? {
        generate::check_target(target, args.force)?;
    }
    if args.force && ctx.ssh_dir_exists()? {
        Store::open_existing(&ctx.ssh_dir)?;
    }
    let mut plan = Plan::new("generate");
    plan.ssh_dir(&ctx.ssh_dir)?;
    let change = generate::planned_pair(target, args.force);
    let private = private_detail(spec);
    let describe = |path: &Path| match path == target {
        true => format!("the new private key: {private}, passphrase-protected, mode 0600"),
        false => "its public key, mode 0644".to_string(),
    };
    plan.change(&ctx.ssh_dir, &change, SystemTime::now(), describe)?;
    super::plan::print(ctx, plan, vec![passphrase_note(args)])
}

/// What the new private key is, for a dry run: `RSA 4096-bit, OpenSSH format`.
pub fn private_detail(spec: &KeySpec) -> String {
    let format = match spec.format {
        KeyFormat::Openssh => "OpenSSH format",
        KeyFormat::Pem => "PEM format",
    };
    format!("{}, {format}", spec.describe())
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

pub fn spec_from_args(args: &GenerateArgs) -> Result<KeySpec> {
    let key_type = match args.key_type {
        cli::KeyType::Rsa => KeyType::Rsa,
        cli::KeyType::Ed25519 => KeyType::Ed25519,
        cli::KeyType::Ecdsa => KeyType::Ecdsa,
    };
    let format = match args.format {
        cli::KeyFormat::Openssh => KeyFormat::Openssh,
        cli::KeyFormat::Pem => KeyFormat::Pem,
    };
    let comment = args.comment.clone().unwrap_or_else(default_comment);
    Ok(KeySpec::new(
        key_type,
        args.bits,
        format,
        args.rounds,
        comment,
    )?)
}

/// `user@host`, as ssh-keygen writes it.
fn default_comment() -> String {
    let user = whoami::username().unwrap_or_else(|_| "user".to_string());
    let host = whoami::hostname().unwrap_or_else(|_| "localhost".to_string());
    format!("{user}@{host}")
}

/// `-f PATH`, or `<ssh-dir>/id_<type>_<service>`.
pub fn target_path(ctx: &Context, args: &GenerateArgs, spec: &KeySpec) -> Result<PathBuf> {
    if let Some(file) = &args.file {
        return Ok(std::path::absolute(file).unwrap_or_else(|_| file.clone()));
    }
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
    Ok(ctx.ssh_dir.join(spec.default_file_name(&args.service)))
}

/// Words an attacker would try first, counted against the passphrase.
fn context_words(spec: &KeySpec, target: &Path) -> Vec<String> {
    let mut words: Vec<String> = vec!["keyrotate".into(), "ssh".into(), "jasmin".into()];
    words.extend(
        spec.comment
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_string),
    );
    if let Ok(user) = whoami::username() {
        words.push(user);
    }
    if let Some(name) = target.file_name() {
        words.push(name.to_string_lossy().into_owned());
    }
    words
}

pub fn new_passphrase(args: &GenerateArgs, spec: &KeySpec, target: &Path) -> Result<Passphrase> {
    let mut source: Box<dyn PassphraseSource> = match &args.passphrase_file {
        Some(path) => Box::new(FileSource { path: path.clone() }),
        None => Box::new(TerminalSource),
    };
    let words = context_words(spec, target);
    let context: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(source.new_passphrase(&sanitize(&target.to_string_lossy()), &context)?)
}

/// A missing SSH directory is created 0700 (its parent must exist).
pub fn ensure_ssh_dir(ssh_dir: &Path) -> Result<()> {
    if fsio::is_dir(ssh_dir)? {
        return Ok(());
    }
    fsio::create_private_dir(ssh_dir).map_err(|e| {
        keyrotate::Error::refused(
            format!(
                "cannot create the SSH directory {}: {}",
                ssh_dir.display(),
                io_reason(&e)
            ),
            "create it yourself with `mkdir -m 700 DIR`, or point --ssh-dir at another directory",
        )
    })?;
    if let Some(parent) = ssh_dir.parent() {
        let _ = fsio::sync_dir(parent);
    }
    Ok(())
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

fn write(ctx: &Context, target: &Path, key: &NewKey, force: bool) -> Result<Written> {
    Ok(generate::write_new_key(&ctx.ssh_dir, target, key, force)?)
}

fn print(ctx: &Context, spec: &KeySpec, key: &NewKey, written: &Written) -> Result<()> {
    let public_line = key.public_file.trim_end();
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            private_key: String,
            public_key: String,
            fingerprint: &'a str,
            public_key_line: &'a str,
            backup_dir: Option<String>,
        }
        let doc = Doc {
            private_key: written.private_path.to_string_lossy().into_owned(),
            public_key: written.public_path.to_string_lossy().into_owned(),
            fingerprint: key.public.fingerprint(),
            public_key_line: public_line,
            backup_dir: written
                .backup
                .as_ref()
                .map(|s| s.dir.to_string_lossy().into_owned()),
        };
        output::print_json(&doc)?;
        return Ok(());
    }
    if ctx.quiet {
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Generated a new {} key pair{}, protected by your passphrase:",
        spec.describe(),
        if spec.format == KeyFormat::Pem {
            " in PEM format"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  private key  {}",
        sanitize(&written.private_path.to_string_lossy())
    );
    let _ = writeln!(
        out,
        "  public key   {}",
        sanitize(&written.public_path.to_string_lossy())
    );
    let _ = writeln!(out, "  fingerprint  {}", key.public.fingerprint());
    if let Some(set) = &written.backup {
        let _ = writeln!(
            out,
            "The key it replaced is saved in {} (verified).",
            sanitize(&set.dir.to_string_lossy())
        );
    }
    let _ = writeln!(out, "The public key (the part you upload):");
    let _ = writeln!(out, "{}", sanitize(public_line));
    output::print_stdout(&out)?;
    Ok(())
}
