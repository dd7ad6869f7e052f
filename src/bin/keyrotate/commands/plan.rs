//! `--dry-run`: what a command would do, step by step, printed instead of done. Building a plan
//! reads the SSH directory (and lists ssh-agent's keys) but writes nothing: no lock file, no
//! recovery of an interrupted run, no backup store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::store;
use keyrotate::text::sanitize;
use keyrotate::transaction;

use super::Context;
use crate::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Create a directory.
    CreateDir,
    /// Copy a live file into a new backup set.
    BackUp,
    /// Write a file that does not exist yet.
    Create,
    /// Write a file over one that exists (which is backed up first).
    Replace,
    /// Take a file out of the live directory (its copy stays in the backup set).
    Remove,
    /// Add a key to the retired-key record.
    Retire,
    /// Leave a file as it is (restore: it already holds the set's bytes).
    Unchanged,
    /// Remove an identity from ssh-agent.
    AgentRemove,
    /// Add the new key to ssh-agent.
    AgentAdd,
    /// Rewrite, or leave stale, a line of the ssh config.
    Config,
}

impl Action {
    fn label(self) -> &'static str {
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

#[derive(Debug, serde::Serialize)]
pub struct Step {
    pub action: Action,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    pub detail: String,
}

/// The plan of one command.
#[derive(Debug, serde::Serialize)]
pub struct Plan {
    dry_run: bool,
    command: &'static str,
    steps: Vec<Step>,
    notes: Vec<String>,
}

impl Plan {
    /// A plan for `command`, noting first an interrupted run the real command would recover.
    pub fn new(ctx: &Context, command: &'static str) -> Plan {
        let mut plan = Plan {
            dry_run: true,
            command,
            steps: Vec::new(),
            notes: Vec::new(),
        };
        if keyrotate::sys::fsio::is_dir(&ctx.ssh_dir).unwrap_or(true)
            && transaction::needs_recovery(&ctx.ssh_dir)
        {
            plan.note(
                "an interrupted keyrotate run was found: the real command would first finish or \
                 undo it, which can change what is live",
            );
        }
        plan
    }

    pub fn step(&mut self, action: Action, path: &Path, detail: impl Into<String>) {
        self.steps.push(Step {
            action,
            path: path.to_string_lossy().into_owned(),
            dest: None,
            detail: detail.into(),
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// `mkdir` of a missing SSH directory (0700), as generate and rotate would do it.
    pub fn ssh_dir(&mut self, ssh_dir: &Path) -> Result<()> {
        if !keyrotate::sys::fsio::is_dir(ssh_dir)? {
            self.step(Action::CreateDir, ssh_dir, "the SSH directory, mode 0700");
        }
        Ok(())
    }

    /// Copies of `files` into the new backup set a run at `now` would make (nothing when empty).
    pub fn backup(&mut self, ssh_dir: &Path, files: &[PathBuf], now: SystemTime) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let store = ssh_dir.join(store::STORE_NAME);
        if keyrotate::sys::fsio::lstat(&store)?.is_none() {
            self.step(Action::CreateDir, &store, "the backup store, mode 0700");
        }
        let set = store.join(store::next_set_name(ssh_dir, now)?);
        self.step(
            Action::CreateDir,
            &set,
            format!(
                "a new backup set, mode 0700: each copy keeps its bytes, mode and time, is read \
                 back and compared, and is listed in {}",
                store::SUMS_NAME
            ),
        );
        for file in files {
            let name = file.file_name().unwrap_or_default();
            self.steps.push(Step {
                action: Action::BackUp,
                path: file.to_string_lossy().into_owned(),
                dest: Some(set.join(name).to_string_lossy().into_owned()),
                detail: String::new(),
            });
        }
        Ok(())
    }

    pub fn print(&self, ctx: &Context) -> Result<ExitCode> {
        if ctx.json {
            output::print_json(self)?;
            return Ok(ExitCode::SUCCESS);
        }
        if ctx.quiet {
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = String::new();
        let bold = output::PATH;
        let _ = writeln!(
            out,
            "{bold}Dry run{bold:#}: nothing was changed. `keyrotate {}` would:",
            self.command
        );
        if self.steps.is_empty() {
            let _ = writeln!(out, "  do nothing");
        }
        let width = self
            .steps
            .iter()
            .map(|s| s.action.label().len())
            .max()
            .unwrap_or(0);
        for step in &self.steps {
            let mut line = format!(
                "  {:<width$}  {}",
                step.action.label(),
                sanitize(&step.path)
            );
            if let Some(dest) = &step.dest {
                let _ = write!(line, " -> {}", sanitize(dest));
            }
            if !step.detail.is_empty() {
                let _ = write!(line, "  ({})", sanitize(&step.detail));
            }
            let _ = writeln!(out, "{line}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {}", sanitize(note));
        }
        output::print_stdout(&out)?;
        Ok(ExitCode::SUCCESS)
    }
}
