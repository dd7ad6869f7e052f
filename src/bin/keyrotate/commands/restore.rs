//! `keyrotate restore SET [KEY...]`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::restore::{self as restorer, Restored};
use keyrotate::store::{self, BackupError, Store};
use keyrotate::text::sanitize;

use super::Context;
use super::generate::live_files;
use super::plan::{Action, Plan};
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
        let plan = store::plan_restore(&store, &ctx.ssh_dir, &args.set, &keys)?;
        return dry_run(ctx, &plan);
    }
    let _lock = super::lock_and_recover(ctx)?;
    let store = Store::open_existing(&ctx.ssh_dir)?.ok_or_else(unknown)?;
    // Ctrl-C before the commit point undoes the restore; after it, waits for the report.
    let critical = Critical::enter();
    let restored = restorer::restore(store, &ctx.ssh_dir, &args.set, &keys, SystemTime::now())?;
    critical.committed();
    print(ctx, &restored)?;
    drop(critical);
    Ok(ExitCode::SUCCESS)
}

/// What `restore` would do; changes nothing.
fn dry_run(ctx: &Context, restore: &store::RestorePlan) -> Result<ExitCode> {
    let mut plan = Plan::new(ctx, "restore");
    // What it replaces is saved first (a dangling link holds nothing to save).
    let replaced: Vec<PathBuf> = restore
        .items
        .iter()
        .filter(|i| i.replaces && !i.unchanged)
        .map(|i| i.to.clone())
        .collect();
    plan.backup(&ctx.ssh_dir, &live_files(&replaced)?, SystemTime::now())?;
    for item in &restore.items {
        let from = format!("from {}", item.from.to_string_lossy());
        match action(item) {
            "unchanged" => plan.step(
                Action::Unchanged,
                &item.to,
                "already holds the set's bytes, left alone",
            ),
            "replaced" => plan.step(Action::Replace, &item.to, from),
            _ => plan.step(Action::Create, &item.to, from),
        }
    }
    plan.print(ctx)
}

fn action(item: &store::RestoreItem) -> &'static str {
    match (item.unchanged, item.replaces) {
        (true, _) => "unchanged",
        (false, true) => "replaced",
        (false, false) => "restored",
    }
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
                    "action": action(i),
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
        let what = match action(item) {
            "unchanged" => "already identical, left alone",
            "replaced" => "replaced (the previous file is in the set saved above)",
            _ => "restored (there was no such file)",
        };
        let _ = writeln!(out, "  {name:<width$}  {what}");
    }
    output::print_stdout(&out)?;
    Ok(())
}
