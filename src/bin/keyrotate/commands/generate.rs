//! `keyrotate generate`: a new passphrase-protected key pair, born private, never overwriting.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::generate::{self, KeyFormat, KeySpec, KeyType, NewKey, Written};
use keyrotate::plan::Plan;
use keyrotate::store::Store;
use keyrotate::text::sanitize;

use super::Context;
use super::new_key::{
    make_key, new_passphrase, passphrase_note, private_detail, spec_from_args, target_path,
};
use crate::cli::GenerateArgs;
use crate::interrupt::Critical;
use crate::output;

pub fn run(ctx: &Context, args: &GenerateArgs) -> Result<ExitCode> {
    let profile = super::profiles()?.get(&args.service);
    let spec = spec_from_args(args, &profile)?;
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
    generate::ensure_ssh_dir(&ctx.ssh_dir)?;
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
        match spec.format {
            KeyFormat::Openssh => "",
            KeyFormat::Pem => " in PEM format",
            KeyFormat::Putty => " in PuTTY format",
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
