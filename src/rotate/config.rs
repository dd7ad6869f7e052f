//! The ssh config's part in a rotation: `IdentityFile` lines of `<ssh-dir>/config` that name a
//! key leaving the live directory, and (with `--update-config`) the file rewritten to name the
//! new one.

use std::path::{Path, PathBuf};

use super::{OldKey, Request};
use crate::rotate::sshconfig::{self, IdentityLine};
use crate::sys::fsio::{self, Bounded};
use crate::sys::{io_reason, unix_mode};

/// The largest config keyrotate reads.
const MAX_CONFIG: u64 = 4 << 20;

/// What happens to the ssh config.
#[derive(Debug, Clone)]
pub struct ConfigPlan {
    pub path: PathBuf,
    pub lines: Vec<IdentityLine>,
    /// The rewritten file, when `--update-config` asked for it and it can be done.
    pub new_text: Option<String>,
    pub mode: u32,
    /// Why the file is not rewritten although asked (a symlink, say).
    pub not_updated: Option<String>,
    /// The SHA-256 of the bytes read, when it is to be rewritten.
    pub sha256: Option<String>,
    /// Each of `lines` as it would name the new key (what to write by hand when not rewritten).
    pub new_lines: Vec<String>,
}

impl ConfigPlan {
    fn empty(path: PathBuf) -> ConfigPlan {
        ConfigPlan {
            path,
            lines: Vec::new(),
            new_text: None,
            mode: 0o600,
            not_updated: None,
            sha256: None,
            new_lines: Vec::new(),
        }
    }

    /// Find the lines naming the old keys (and, for a service, its conventional names that no
    /// longer exist: a lost key leaves its name behind). Asked to rewrite it, a config that
    /// cannot be read is an error before anything is changed; otherwise a note in `notes`.
    pub fn new(
        req: &Request<'_>,
        target: &Path,
        old: &[OldKey],
        notes: &mut Vec<String>,
    ) -> crate::Result<ConfigPlan> {
        let update = req.update_config;
        let path = req.ssh_dir.join("config");
        let mut plan = ConfigPlan::empty(path.clone());
        let mut retiring: Vec<PathBuf> = old
            .iter()
            .filter_map(|k| k.private.clone())
            .filter(|p| p != target)
            .collect();
        if req.file.is_none() {
            for key_type in ["rsa", "ecdsa", "ed25519", "dsa", "ecdsa_sk", "ed25519_sk"] {
                let path = req.ssh_dir.join(format!("id_{key_type}_{}", req.service));
                let gone = fsio::stat(&path)?.is_none();
                if path != target && !retiring.contains(&path) && gone {
                    retiring.push(path);
                }
            }
        }
        let Some(meta) = fsio::lstat(&path)? else {
            return Ok(plan);
        };
        if retiring.is_empty() {
            return Ok(plan);
        }
        let mut cannot = |why: String| -> crate::Result<ConfigPlan> {
            if update {
                return Err(crate::Error::refused(
                    format!(
                        "cannot read {} to update its IdentityFile lines: {why}",
                        path.display()
                    ),
                    "nothing was changed; make the file readable (or move it aside), or leave out \
                     --update-config and edit its IdentityFile lines yourself after the rotation",
                ));
            }
            notes.push(format!(
                "could not read {} to look for the old key's name: {why}",
                path.display()
            ));
            Ok(ConfigPlan::empty(path.clone()))
        };
        let (text, file_meta, sha256) = match fsio::read_bounded_with_metadata(&path, MAX_CONFIG) {
            Ok((Bounded::Bytes(bytes), file_meta)) => (
                String::from_utf8_lossy(&bytes).into_owned(),
                file_meta,
                crate::store::sha256_hex(&bytes),
            ),
            Ok((Bounded::TooLarge(len), _)) => {
                return cannot(format!(
                    "it is {len} bytes, over keyrotate's limit of {MAX_CONFIG} for an ssh config"
                ));
            }
            Ok(_) => return cannot("it is not a regular file".to_string()),
            Err(e) => return cannot(io_reason(&e)),
        };
        plan.lines = sshconfig::find(&text, &retiring, req.home, req.ssh_dir);
        let rewritten = sshconfig::rewrite(&text, &plan.lines, target, req.home);
        let rewritten: Vec<&str> = rewritten.split_inclusive('\n').collect();
        plan.new_lines = plan
            .lines
            .iter()
            .map(|l| {
                rewritten
                    .get(l.line_no - 1)
                    .map_or("", |t| t.trim())
                    .to_string()
            })
            .collect();
        plan.mode = unix_mode(&file_meta).unwrap_or(0o600);
        if plan.mode & 0o022 != 0 && !plan.lines.is_empty() {
            // Its mode is kept when rewritten: say what `check` says of it.
            notes.push(format!(
                "{} is writable by others (mode {:04o}), so ssh refuses to use it and anyone who \
                 can write it can make ssh run commands: read it for lines you did not write, \
                 then `chmod 600 {}`",
                path.display(),
                plan.mode,
                crate::text::shell_path(&path)
            ));
        }
        if update && !plan.lines.is_empty() {
            if meta.file_type().is_symlink() {
                plan.not_updated = Some(format!(
                    "{} is a symbolic link; keyrotate does not write through links, so edit the file \
                     it points to",
                    path.display()
                ));
            } else {
                plan.new_text = Some(sshconfig::rewrite(&text, &plan.lines, target, req.home));
                plan.sha256 = Some(sha256);
            }
        }
        Ok(plan)
    }
}
