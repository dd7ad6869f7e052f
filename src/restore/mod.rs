//! `restore`: put a backup set's keys back, as one crash-safe transaction. Whatever it replaces
//! is saved in a new verified set first (the transaction's own backup).

use std::ffi::OsString;
use std::path::Path;
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::store::{self, CreatedSet, RestoreItem, SetInfo, Store};
use crate::transaction::{self, Change, NewFile};

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub set: SetInfo,
    /// The new set holding what was replaced, if anything was.
    pub saved: Option<CreatedSet>,
    pub items: Vec<RestoreItem>,
}

/// Put the keys of set `set_name` (or only `keys`) back into `ssh_dir`.
pub fn restore(
    store: Store,
    ssh_dir: &Path,
    set_name: &str,
    keys: &[OsString],
    now: SystemTime,
) -> crate::Result<Restored> {
    let plan = store::plan_restore(&store, ssh_dir, set_name, keys)?;
    if plan.files.is_empty() {
        return Ok(Restored {
            set: plan.set,
            saved: None,
            items: plan.items,
        });
    }
    let new_files = plan
        .files
        .iter()
        .map(|f| NewFile {
            target: f.to.clone(),
            bytes: Zeroizing::new(f.bytes.to_vec()),
            mode: f.mode,
            replace: f.replaces,
            modified: Some(f.modified),
        })
        .collect();
    let change = Change {
        operation: "restore",
        new_files,
        remove: Vec::new(),
        retire: Vec::new(),
        store: Some(store),
    };
    let committed = transaction::commit(ssh_dir, change, now)?;
    Ok(Restored {
        set: plan.set,
        saved: committed.backup,
        items: plan.items,
    })
}
