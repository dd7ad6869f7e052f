//! `restore`: put a backup set's keys back, as one crash-safe transaction. Whatever it replaces
//! is saved in a new verified set first (the transaction's own backup). [`plan_restore`] makes
//! the plan; a dry run prints [`RestorePlan::dry_run`], the real run executes it ([`restore`]).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::layout::{RETIRED_NAME, SUMS_NAME};
use crate::plan::{Action, Plan, Step};
use crate::store::{
    BackupError, CreatedSet, SetFile, SetInfo, SetState, SkipReason, Store, read_source,
};
use crate::transaction::{self, Change, NewFile};

type Result<T> = std::result::Result<T, BackupError>;

/// One file `restore` will put back.
#[derive(Debug, Clone)]
pub struct RestoreItem {
    pub from: PathBuf,
    pub to: PathBuf,
    pub sha256: String,
    /// The live file already holds exactly these bytes: nothing to do.
    pub unchanged: bool,
    /// A live file (or symlink) will be replaced; it is saved first.
    pub replaces: bool,
}

/// What `restore` will do: every chosen file of the set, and the change that writes them.
pub struct RestorePlan {
    pub set: SetInfo,
    pub items: Vec<RestoreItem>,
    change: Change,
}

/// The files of `set` that `keys` name (a key brings its pair), or every file.
fn select_files<'a>(set: &'a SetInfo, keys: &[OsString]) -> Result<Vec<&'a SetFile>> {
    // The retired-key record a rotation saved is kept for reference, never put back: that
    // would forget which keys were retired since.
    let restorable = |f: &&SetFile| f.name != RETIRED_NAME;
    if keys.is_empty() {
        return Ok(set.files.iter().filter(restorable).collect());
    }
    let mut chosen: Vec<&SetFile> = Vec::new();
    for key in keys {
        let find = |n: &OsStr| set.files.iter().filter(restorable).find(|f| f.name == n);
        let Some(file) = find(key) else {
            return Err(BackupError::UnknownKey {
                set: set.dir.clone(),
                key: key.to_string_lossy().into_owned(),
                available: set.file_names(),
            });
        };
        let mut pair = key.clone();
        pair.push(".pub");
        let partner = match key.as_encoded_bytes().strip_suffix(b".pub") {
            Some(_) => find(Path::new(key).with_extension("").as_os_str()),
            None => find(&pair),
        };
        for f in std::iter::once(file).chain(partner) {
            if !chosen.iter().any(|c| c.name == f.name) {
                chosen.push(f);
            }
        }
    }
    Ok(chosen)
}

/// Work out what restoring set `set_name` (or just `keys` of it) into `ssh_dir` involves. Refuses
/// an unknown, incomplete or damaged set, an unknown key, and a target that cannot be replaced.
pub fn plan_restore(
    store: &Store,
    ssh_dir: &Path,
    set_name: &str,
    keys: &[OsString],
) -> Result<RestorePlan> {
    let set = store.find(set_name)?;
    if set.state == SetState::Incomplete {
        return Err(BackupError::SetIncomplete { set: set.dir });
    }
    let chosen = select_files(&set, keys)?;
    for f in &chosen {
        if !f.intact() {
            let detail = set
                .problems
                .iter()
                .find(|p| p.starts_with(&*f.name.to_string_lossy()))
                .cloned()
                .unwrap_or_else(|| {
                    format!("{} does not match {SUMS_NAME}", f.name.to_string_lossy())
                });
            return Err(BackupError::SetDamaged {
                set: set.dir.clone(),
                detail,
            });
        }
    }
    let mut items = Vec::new();
    let mut files = Vec::new();
    for f in &chosen {
        let to = ssh_dir.join(&f.name);
        let bytes: &[u8] = f.bytes.as_deref().map(|b| b.as_slice()).unwrap_or_default();
        let (unchanged, replaces) = match fs::symlink_metadata(&to) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (false, false),
            Err(source) => {
                return Err(BackupError::RestoreTarget { path: to, source });
            }
            Ok(meta) if meta.is_dir() => {
                return Err(BackupError::RestoreOver {
                    path: to,
                    why: SkipReason::DirectoryThere,
                });
            }
            Ok(meta) => match read_source(&to)? {
                // Identical content (even through a symlink) needs no restoring.
                Ok(live) => (
                    live.bytes.as_slice() == bytes,
                    live.bytes.as_slice() != bytes,
                ),
                // A dangling link: nothing to save, and it is replaced, never written through.
                Err(_) if meta.file_type().is_symlink() => (false, true),
                Err(skipped) => {
                    return Err(BackupError::RestoreOver {
                        path: to,
                        why: skipped.reason,
                    });
                }
            },
        };
        if !unchanged {
            files.push(NewFile {
                target: to.clone(),
                replace: replaces,
                bytes: Zeroizing::new(bytes.to_vec()),
                // Private keys go back 0600 whatever they were; public keys keep their mode.
                // (never writable by others, whatever a hand-made set says).
                mode: if f.private { 0o600 } else { f.mode & 0o755 },
                modified: Some(f.modified),
                // Planned and committed under one lock, with nothing asked in between.
                expect: None,
            });
        }
        items.push(RestoreItem {
            from: f.path.clone(),
            to,
            sha256: f.actual_sha256.clone().unwrap_or_default(),
            unchanged,
            replaces,
        });
    }
    let change = Change {
        operation: "restore",
        new_files: files,
        remove: Vec::new(),
        retire: Vec::new(),
        backup: true,
    };
    Ok(RestorePlan { set, items, change })
}

impl RestoreItem {
    /// `"unchanged"`, `"replaced"` or `"restored"`, as `restore --json` says it.
    pub fn action(&self) -> &'static str {
        match (self.unchanged, self.replaces) {
            (true, _) => "unchanged",
            (false, true) => "replaced",
            (false, false) => "restored",
        }
    }
}

impl RestorePlan {
    /// The plan's steps, from the look phase the real run's transaction runs.
    pub fn dry_run(&self, ssh_dir: &Path, now: SystemTime) -> crate::Result<Plan> {
        let mut plan = Plan::new("restore");
        let from = |to: &Path| -> String {
            self.items
                .iter()
                .find(|i| i.to == to)
                .map(|i| format!("from {}", i.from.to_string_lossy()))
                .unwrap_or_default()
        };
        let source = |to: &Path| {
            self.items
                .iter()
                .find(|i| i.to == to)
                .map(|i| i.from.clone())
        };
        plan.change_from(ssh_dir, &self.change, now, from, source)?;
        let first = plan
            .steps
            .iter()
            .position(|s| matches!(s.action, Action::Create | Action::Replace))
            .unwrap_or(plan.steps.len());
        for item in self.items.iter().filter(|i| i.unchanged) {
            plan.push(Step::new(
                Action::Unchanged,
                &item.to,
                "already holds the set's bytes, left alone",
            ));
        }
        // The files in the set's order, as the real run reports them.
        let order = |step: &Step| self.items.iter().position(|i| i.to == step.path);
        plan.steps[first..].sort_by_key(order);
        Ok(plan)
    }
}

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub set: SetInfo,
    /// The new set holding what was replaced, if anything was.
    pub saved: Option<CreatedSet>,
    pub items: Vec<RestoreItem>,
}

/// Carry out `plan` in `ssh_dir`.
pub fn restore(plan: RestorePlan, ssh_dir: &Path, now: SystemTime) -> crate::Result<Restored> {
    if plan.change.new_files.is_empty() {
        return Ok(Restored {
            set: plan.set,
            saved: None,
            items: plan.items,
        });
    }
    let committed = transaction::commit(ssh_dir, plan.change, now)?;
    Ok(Restored {
        set: plan.set,
        saved: committed.backup,
        items: plan.items,
    })
}
