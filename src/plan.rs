//! One plan per changing command (as Terraform's plan and apply): the operation builds it, a
//! dry run prints it, the real run executes it.
//!
//! A plan's file changes are a [`Change`] whose new files' contents are still to come
//! ([`Content`]): the key pair is generated only after the passphrase is asked for. The steps a
//! dry run prints come from [`transaction::preview`], the look phase [`transaction::commit`]
//! itself runs, so what is printed is what is done.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::layout::SUMS_NAME;
use crate::transaction::{self, Change, TxError};

/// A path that could not be looked at (never taken for one that is not there).
fn look(path: &Path) -> impl Fn(std::io::Error) -> TxError + '_ {
    move |source| TxError::Look {
        path: path.to_path_buf(),
        source,
    }
}

/// The content of a new file in a plan.
pub enum Content {
    /// The new private key, made once the passphrase is known.
    PrivateKey,
    /// Its public key (`.pub`).
    PublicKey,
    /// Bytes known already (a rewritten config, a restored file).
    Bytes(Zeroizing<Vec<u8>>),
}

impl Content {
    /// The bytes of this content, given the new pair's files.
    pub fn fill(self, private: &[u8], public: &[u8]) -> Zeroizing<Vec<u8>> {
        match self {
            Content::PrivateKey => Zeroizing::new(private.to_vec()),
            Content::PublicKey => Zeroizing::new(public.to_vec()),
            Content::Bytes(bytes) => bytes,
        }
    }
}

/// A change whose contents are still to come.
pub type PlannedChange = Change<Content>;

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Create a directory (`mode`).
    CreateDir,
    /// Copy a live file (`path`) into a new backup set (`dest`), keeping bytes, mode and time.
    BackUp,
    /// Write a file that does not exist yet (`mode`).
    Create,
    /// Write a file over one that exists (which is backed up first).
    Replace,
    /// Take a file out of the live directory (its copy stays in the backup set).
    Remove,
    /// Add a key (`text`: its fingerprint) to the retired-key record at `path`.
    Retire,
    /// Leave a file as it is (restore: it already holds the set's bytes).
    Unchanged,
    /// Remove an identity (`text`: its fingerprint) from ssh-agent.
    AgentRemove,
    /// Add the new key to ssh-agent.
    AgentAdd,
    /// A line of the ssh config (`line`): rewritten to `text`, or left naming the old key.
    Config,
}

impl Action {
    /// The word a dry run prints.
    pub fn label(self) -> &'static str {
        match self {
            Action::CreateDir => "mkdir",
            Action::BackUp => "back up",
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Remove => "move out",
            Action::Retire => "retire",
            Action::Unchanged => "unchanged",
            Action::AgentRemove | Action::AgentAdd => "ssh-agent",
            Action::Config => "config",
        }
    }
}

fn octal<S: serde::Serializer>(mode: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match mode {
        Some(m) => s.serialize_str(&format!("{m:04o}")),
        None => s.serialize_none(),
    }
}

fn lossy<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

fn lossy_opt<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => lossy(p, s),
        None => s.serialize_none(),
    }
}

/// One step of a plan: enough to carry it out by hand (or by a test).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub action: Action,
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    #[serde(serialize_with = "lossy_opt", skip_serializing_if = "Option::is_none")]
    pub dest: Option<PathBuf>,
    /// The file whose bytes (and time) a create or replace step puts at `path` (restore).
    #[serde(serialize_with = "lossy_opt", skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// The mode of a directory or file it makes, as `"0600"`.
    #[serde(serialize_with = "octal", skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The 1-based line of a config step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// A config step's new line; a retire or agent step's fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For people.
    pub detail: String,
}

impl Step {
    pub fn new(action: Action, path: &Path, detail: impl Into<String>) -> Step {
        Step {
            action,
            path: path.to_path_buf(),
            dest: None,
            from: None,
            mode: None,
            line: None,
            text: None,
            detail: detail.into(),
        }
    }

    pub fn mode(mut self, mode: u32) -> Step {
        self.mode = Some(mode);
        self
    }

    pub fn text(mut self, text: impl Into<String>) -> Step {
        self.text = Some(text.into());
        self
    }
}

/// A command's plan, in order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Plan {
    pub command: &'static str,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn new(command: &'static str) -> Plan {
        Plan {
            command,
            ..Plan::default()
        }
    }

    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// `mkdir` of a missing SSH directory (0700), as generate and rotate do it.
    pub fn ssh_dir(&mut self, ssh_dir: &Path) -> Result<(), TxError> {
        if !crate::sys::fsio::is_dir(ssh_dir).map_err(look(ssh_dir))? {
            self.push(
                Step::new(Action::CreateDir, ssh_dir, "the SSH directory, mode 0700").mode(0o700),
            );
        }
        Ok(())
    }

    /// The backup store and set a backup of `files` at `now` makes, and the copies.
    pub fn backup(
        &mut self,
        ssh_dir: &Path,
        files: &[PathBuf],
        now: SystemTime,
    ) -> Result<(), TxError> {
        if files.is_empty() {
            return Ok(());
        }
        let (new_store, set) = transaction::new_set(ssh_dir, now)?;
        self.copies(new_store.as_deref(), &set, files);
        Ok(())
    }

    fn copies(&mut self, new_store: Option<&Path>, set: &Path, files: &[PathBuf]) {
        if let Some(store) = new_store {
            self.push(
                Step::new(Action::CreateDir, store, "the backup store, mode 0700").mode(0o700),
            );
        }
        self.push(
            Step::new(
                Action::CreateDir,
                set,
                format!(
                    "a new backup set, mode 0700: each copy keeps its bytes, mode and time, is read \
                     back and compared, and is listed in {SUMS_NAME}"
                ),
            )
            .mode(0o700),
        );
        for file in files {
            let name = file.file_name().unwrap_or_default();
            let mut step = Step::new(Action::BackUp, file, "");
            step.dest = Some(set.join(name));
            self.push(step);
        }
    }

    /// The steps of `change`, from the look phase its commit runs: the backup set and its
    /// copies, each new file (`describe` says what it is), what is moved out and retired.
    pub fn change<C>(
        &mut self,
        ssh_dir: &Path,
        change: &Change<C>,
        now: SystemTime,
        describe: impl Fn(&Path) -> String,
    ) -> Result<(), TxError> {
        self.change_from(ssh_dir, change, now, describe, |_| None)
    }

    /// As [`Plan::change`], with `from` naming where a new file's bytes come from.
    pub fn change_from<C>(
        &mut self,
        ssh_dir: &Path,
        change: &Change<C>,
        now: SystemTime,
        describe: impl Fn(&Path) -> String,
        from: impl Fn(&Path) -> Option<PathBuf>,
    ) -> Result<(), TxError> {
        let preview = transaction::preview(ssh_dir, change, now)?;
        if let Some(set) = &preview.set {
            self.copies(preview.new_store.as_deref(), set, &preview.saved);
        }
        for (target, mode, replaced) in &preview.written {
            let action = match replaced {
                true => Action::Replace,
                false => Action::Create,
            };
            let mut step = Step::new(action, target, describe(target)).mode(*mode);
            step.from = from(target);
            self.push(step);
        }
        for path in &preview.removed {
            self.push(Step::new(
                Action::Remove,
                path,
                "out of the live directory; its copy stays in the backup set",
            ));
        }
        if let Some(record) = &preview.record {
            for key in &preview.retired {
                self.push(
                    Step::new(
                        Action::Retire,
                        record,
                        match key.fingerprint.starts_with("SHA256:") {
                            true => format!(
                                "{} ({}) recorded as retired: `keyrotate check` flags it if it \
                                 comes back",
                                key.fingerprint, key.path
                            ),
                            false => format!(
                                "{} recorded as retired by its file's digest (its public key \
                                 cannot be read without the passphrase): new passphrases are \
                                 checked against its copy",
                                key.path
                            ),
                        },
                    )
                    .text(key.fingerprint.clone()),
                );
            }
        }
        Ok(())
    }
}
