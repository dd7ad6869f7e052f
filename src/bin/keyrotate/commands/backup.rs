//! `keyrotate backup [KEY...]` and `keyrotate backup --list`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::check::findings::Policy;
use keyrotate::check::inventory;
use keyrotate::keyfile::PublicInfo;
use keyrotate::store::{
    self, BackupError, CreatedSet, Listing, SetState, Skipped, SourceFile, Store,
};
use keyrotate::text::sanitize;

use super::Context;
use crate::cli::BackupArgs;
use crate::output;
use keyrotate::plan::Plan;

pub fn run(ctx: &Context, args: &BackupArgs) -> Result<ExitCode> {
    if args.list {
        return list(ctx);
    }
    if args.dry_run {
        return dry_run(ctx, args);
    }
    if !ctx.ssh_dir_exists()? {
        if args.keys.is_empty() {
            return nothing_to_do(
                ctx,
                "there is no SSH directory, so there are no keys to back up",
            );
        }
        return Err(BackupError::NoSshDir {
            path: ctx.ssh_dir.clone(),
        }
        .into());
    }
    let _lock = super::lock_and_recover(ctx)?;
    let (sources, skipped) = collect_sources(&ctx.ssh_dir, &args.keys)?;
    if sources.is_empty() {
        return nothing_to_do(ctx, "there are no keys in the SSH directory");
    }
    let store = Store::open_or_create(&ctx.ssh_dir)?;
    let set = store.create_set(&sources, SystemTime::now())?;
    print_created(ctx, &set, &skipped)?;
    Ok(ExitCode::SUCCESS)
}

/// What `backup` would copy where; changes nothing.
fn dry_run(ctx: &Context, args: &BackupArgs) -> Result<ExitCode> {
    let mut plan = Plan::new("backup");
    if !ctx.ssh_dir_exists()? {
        if !args.keys.is_empty() {
            return Err(BackupError::NoSshDir {
                path: ctx.ssh_dir.clone(),
            }
            .into());
        }
        plan.note("there is no SSH directory, so there are no keys to back up");
        return super::plan::print(ctx, plan, Vec::new());
    }
    Store::open_existing(&ctx.ssh_dir)?;
    let (sources, skipped) = collect_sources(&ctx.ssh_dir, &args.keys)?;
    store::check_names(&sources)?;
    let files: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    plan.backup(&ctx.ssh_dir, &files, SystemTime::now())?;
    if files.is_empty() {
        plan.note("there are no keys in the SSH directory");
    }
    for skip in skipped {
        plan.note(format!(
            "would skip {}: {}",
            skip.path.to_string_lossy(),
            skip.reason
        ));
    }
    super::plan::print(ctx, plan, Vec::new())
}

fn nothing_to_do(ctx: &Context, why: &str) -> Result<ExitCode> {
    if ctx.json {
        output::print_json(&serde_json::json!({"backup_dir": null, "files": []}))?;
    } else if !ctx.quiet {
        output::print_stdout(&format!(
            "Nothing to back up: {why} ({}).\n",
            sanitize(&ctx.ssh_dir.to_string_lossy())
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The files to back up: the named keys (each with its pair), or every key `check` finds.
fn collect_sources(ssh_dir: &Path, keys: &[PathBuf]) -> Result<(Vec<SourceFile>, Vec<Skipped>)> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !paths.contains(&p) {
            paths.push(p);
        }
    };
    let explicit = !keys.is_empty();
    if explicit {
        for key in keys {
            let path = resolve_key(ssh_dir, key)?;
            // A key brings its pair: id_rsa brings id_rsa.pub and the other way round.
            let name = path.file_name().unwrap_or_default().as_encoded_bytes();
            let (private, public) = match name.ends_with(b".pub") {
                true => (path.with_extension(""), path.clone()),
                false => {
                    let mut public = path.clone().into_os_string();
                    public.push(".pub");
                    (path.clone(), PathBuf::from(public))
                }
            };
            for p in [private, public] {
                if keyrotate::sys::fsio::lstat(&p)?.is_some() {
                    push(p);
                }
            }
        }
    } else {
        let inventory = inventory::scan(ssh_dir, &Policy::default(), SystemTime::now())?;
        for key in inventory.keys {
            push(key.path);
            if let Some(p) = key.public_path {
                push(p);
            }
        }
    }
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        match store::read_source(&path)? {
            Ok(source) => sources.push(source),
            Err(skip) if explicit => {
                return Err(BackupError::NotAKeyFile {
                    path: skip.path,
                    why: skip.reason,
                }
                .into());
            }
            Err(skip) => skipped.push(skip),
        }
    }
    Ok((sources, skipped))
}

/// `KEY` is a file name in the SSH directory, or a path (anything with a directory part).
fn resolve_key(ssh_dir: &Path, key: &Path) -> Result<PathBuf> {
    let path = if key.components().count() == 1 && key.parent() == Some(Path::new("")) {
        ssh_dir.join(key)
    } else {
        std::path::absolute(key).unwrap_or_else(|_| key.to_path_buf())
    };
    if keyrotate::sys::fsio::lstat(&path)?.is_none() {
        let available = inventory::scan(ssh_dir, &Policy::default(), SystemTime::now())
            .map(|inv| {
                inv.keys
                    .iter()
                    .filter_map(|k| k.path.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default();
        return Err(BackupError::NoSuchKey {
            key: key.to_string_lossy().into_owned(),
            path,
            available,
        }
        .into());
    }
    Ok(path)
}

fn key_summary(key: Option<&PublicInfo>) -> String {
    match key {
        Some(k) => {
            let alg = k.algorithm.map_or("?", |a| a.display_name());
            match k.bits {
                Some(bits) => format!("{alg} {bits}  {}", k.fingerprint()),
                None => format!("{alg}  {}", k.fingerprint()),
            }
        }
        None => String::new(),
    }
}

fn public_of(bytes: &[u8]) -> Option<PublicInfo> {
    match keyrotate::keyfile::recognise(bytes) {
        keyrotate::keyfile::Recognised::Key(k) => k.public.clone(),
        _ => None,
    }
}

fn print_created(ctx: &Context, set: &CreatedSet, skipped: &[Skipped]) -> Result<()> {
    if ctx.json {
        #[derive(serde::Serialize)]
        struct File {
            source: String,
            dest: String,
            sha256: String,
        }
        #[derive(serde::Serialize)]
        struct Doc {
            backup_dir: String,
            files: Vec<File>,
        }
        let doc = Doc {
            backup_dir: set.dir.to_string_lossy().into_owned(),
            files: set
                .files
                .iter()
                .map(|f| File {
                    source: f.source.to_string_lossy().into_owned(),
                    dest: f.dest.to_string_lossy().into_owned(),
                    sha256: f.sha256.clone(),
                })
                .collect(),
        };
        output::print_json(&doc)?;
    } else if !ctx.quiet {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Backed up {} to {}",
            plural(set.files.len(), "file"),
            styled_path(&set.dir)
        );
        let width = set
            .files
            .iter()
            .map(|f| f.dest.file_name().unwrap_or_default().len())
            .max()
            .unwrap_or(0);
        for f in &set.files {
            let name = sanitize(&f.dest.file_name().unwrap_or_default().to_string_lossy());
            let key = std::fs::read(&f.dest).ok().and_then(|b| public_of(&b));
            let mut line = format!("  {name:<width$}  {}", key_summary(key.as_ref()));
            if let Some(target) = &f.symlink_target {
                let _ = write!(
                    line,
                    "  (a symbolic link to {}: its content was copied)",
                    sanitize(&target.to_string_lossy())
                );
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(
            out,
            "Every copy was read back and matches its original; `sha256sum -c {}` passes in that directory.",
            store::SUMS_NAME
        );
        output::print_stdout(&out)?;
    }
    if !ctx.quiet {
        for skip in skipped {
            output::print_note(&format!(
                "skipped {}: {}",
                sanitize(&skip.path.to_string_lossy()),
                skip.reason
            ));
        }
    }
    Ok(())
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn styled_path(path: &Path) -> String {
    let style = output::PATH;
    format!("{style}{}{style:#}", sanitize(&path.to_string_lossy()))
}

fn list(ctx: &Context) -> Result<ExitCode> {
    super::recover_if_needed(ctx);
    let store = Store::open_existing(&ctx.ssh_dir)?;
    let listing = match &store {
        Some(store) => store.list()?,
        None => Listing {
            root: ctx.ssh_dir.join(store::STORE_NAME),
            sets: Vec::new(),
            loose: Vec::new(),
        },
    };
    if ctx.json {
        output::print_json(&list_json(&listing))?;
    } else if !ctx.quiet {
        output::print_stdout(&list_text(&listing))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list_json(listing: &Listing) -> serde_json::Value {
    let sets: Vec<serde_json::Value> = listing
        .sets
        .iter()
        .map(|set| {
            let files: Vec<serde_json::Value> = set
                .files
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "name": f.name.to_string_lossy(),
                        "path": f.path.to_string_lossy(),
                        "sha256": f.actual_sha256,
                        "intact": f.intact(),
                        "algorithm": f.key.as_ref().and_then(|k| k.algorithm),
                        "bits": f.key.as_ref().and_then(|k| k.bits),
                        "fingerprint": f.key.as_ref().map(|k| k.fingerprint()),
                    })
                })
                .collect();
            serde_json::json!({
                "name": set.name,
                "path": set.dir.to_string_lossy(),
                "state": set.state,
                "problems": set.problems,
                "files": files,
            })
        })
        .collect();
    serde_json::json!({
        "backup_dir": listing.root.to_string_lossy(),
        "sets": sets,
        "other": listing.loose.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
    })
}

fn list_text(listing: &Listing) -> String {
    let mut out = String::new();
    let root = sanitize(&listing.root.to_string_lossy());
    if listing.sets.is_empty() {
        let _ = writeln!(
            out,
            "No backup sets in {root} yet; make one with `keyrotate backup`."
        );
    } else {
        let _ = writeln!(out, "Backup sets in {root}, newest first:");
    }
    for set in &listing.sets {
        let (style, state) = match set.state {
            SetState::Verified => (output::GOOD, "verified"),
            SetState::Damaged => (output::CRITICAL, "DAMAGED"),
            SetState::Incomplete => (output::WARNING, "INCOMPLETE"),
        };
        let _ = writeln!(
            out,
            "\n{}  {style}{state}{style:#}  {}",
            styled_path(Path::new(&set.name)),
            plural(set.files.len(), "file")
        );
        let width = set.files.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &set.files {
            let name = sanitize(&f.name.to_string_lossy());
            let line = format!("  {name:<width$}  {}", key_summary(f.key.as_ref()));
            let _ = writeln!(out, "{}", line.trim_end());
        }
        for problem in &set.problems {
            let _ = writeln!(out, "  problem: {}", sanitize(problem));
        }
    }
    if !listing.loose.is_empty() {
        let names: Vec<String> = listing
            .loose
            .iter()
            .map(|p| sanitize(&p.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        let _ = writeln!(
            out,
            "\nAlso in {root}, outside any set (an older manual backup?): {}",
            names.join(", ")
        );
    }
    out
}
