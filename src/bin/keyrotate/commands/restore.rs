//! `keyrotate restore SET [KEY...]`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::restore::{self, Restored};
use keyrotate::store::{self, BackupError, Store};
use keyrotate::text::sanitize;

use super::Context;
use crate::cli::RestoreArgs;
use crate::interrupt::Critical;
use crate::output;

pub fn run(ctx: &Context, args: &RestoreArgs) -> Result<ExitCode> {
    let mut keys: Vec<OsString> = Vec::new();
    for key in &args.keys {
        if key.components().count() != 1 || key.file_name().is_none() {
            return Err(keyrotate::Error::refused(
                format!(
                    "{} is a path; restore takes the names of files in the set",
                    key.display()
                ),
                format!(
                    "name the keys as `keyrotate backup --list` shows them, e.g. `keyrotate restore {} id_rsa`",
                    args.set
                ),
            ));
        }
        keys.push(key.as_os_str().to_owned());
    }
    let unknown = || BackupError::UnknownSet {
        name: args.set.clone(),
        store: ctx.ssh_dir.join(store::STORE_NAME),
        available: Vec::new(),
    };
    if !ctx.ssh_dir_exists()? {
        return Err(unknown().into());
    }
    if args.dry_run {
        let store = Store::open_existing(&ctx.ssh_dir)?.ok_or_else(unknown)?;
        let plan = restore::plan_restore(&store, &ctx.ssh_dir, &args.set, &keys)?;
        let plan = plan.dry_run(&ctx.ssh_dir, SystemTime::now())?;
        return super::plan::print(ctx, plan, Vec::new());
    }
    let _lock = super::lock_and_recover(ctx)?;
    let store = Store::open_existing(&ctx.ssh_dir)?.ok_or_else(unknown)?;
    let plan = restore::plan_restore(&store, &ctx.ssh_dir, &args.set, &keys)?;
    // Ctrl-C before the commit point undoes the restore; after it, waits for the report.
    let critical = Critical::enter();
    let restored = restore::restore(plan, &ctx.ssh_dir, SystemTime::now())?;
    critical.committed();
    print(ctx, &restored)?;
    drop(critical);
    Ok(ExitCode::SUCCESS)
}

fn print(ctx: &Context, restored: &Restored) -> Result<()> {
    if ctx.json {
        let files: Vec<serde_json::Value> = restored
            .items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "source": i.from.to_string_lossy(),
                    "dest": i.to.to_string_lossy(),
                    "sha256": i.sha256,
                    "action": i.action(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "backup_dir": restored.set.dir.to_string_lossy(),
            "saved_dir": restored.saved.as_ref().map(|s| s.dir.to_string_lossy()),
            "files": files,
        });
        output::print_json(&doc)?;
        return Ok(());
    }
    if ctx.quiet {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(saved) = &restored.saved {
        let _ = writeln!(
            out,
            "Saved the {} it replaces in {} (verified).",
            if saved.files.len() == 1 {
                "file"
            } else {
                "files"
            },
            sanitize(&saved.dir.to_string_lossy())
        );
    }
    let _ = writeln!(
        out,
        "Restored from {}:",
        sanitize(&restored.set.dir.to_string_lossy())
    );
    let width = restored
        .items
        .iter()
        .map(|i| i.to.file_name().unwrap_or_default().len())
        .max()
        .unwrap_or(0);
    for item in &restored.items {
        let name = sanitize(&item.to.file_name().unwrap_or_default().to_string_lossy());
        let what = match item.action() {
            "unchanged" => "already identical, left alone",
            "replaced" => "replaced (the previous file is in the set saved above)",
            _ => "restored (there was no such file)",
        };
        let _ = writeln!(out, "  {name:<width$}  {what}");
    }
    output::print_stdout(&out)?;
    Ok(())
}
