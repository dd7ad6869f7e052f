//! `--dry-run`: the library's plan of a command, printed instead of done. Building a plan reads
//! the SSH directory (and lists ssh-agent's keys) but writes nothing: no lock file, no recovery
//! of an interrupted run, no backup store.

use std::fmt::Write as _;
use std::process::ExitCode;

use keyrotate::Result;
use keyrotate::plan::Plan;
use keyrotate::text::sanitize;
use keyrotate::transaction;

use super::Context;
use crate::output;

/// Print `plan` (with `notes` after the plan's own), noting first an interrupted run the real
/// command would recover.
pub fn print(ctx: &Context, mut plan: Plan, notes: Vec<String>) -> Result<ExitCode> {
    if keyrotate::sys::fsio::is_dir(&ctx.ssh_dir).unwrap_or(true)
        && transaction::needs_recovery(&ctx.ssh_dir)
    {
        plan.notes.insert(
            0,
            "an interrupted keyrotate run was found: the real command would first finish or \
             undo it, which can change what is live"
                .to_string(),
        );
    }
    plan.notes.extend(notes);
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            dry_run: bool,
            #[serde(flatten)]
            plan: &'a Plan,
        }
        output::print_json(&Doc {
            dry_run: true,
            plan: &plan,
        })?;
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
        plan.command
    );
    if plan.steps.is_empty() {
        let _ = writeln!(out, "  do nothing");
    }
    let width = plan
        .steps
        .iter()
        .map(|s| s.action.label().len())
        .max()
        .unwrap_or(0);
    for step in &plan.steps {
        let mut line = format!(
            "  {:<width$}  {}",
            step.action.label(),
            sanitize(&step.path.to_string_lossy())
        );
        if let Some(dest) = &step.dest {
            let _ = write!(line, " -> {}", sanitize(&dest.to_string_lossy()));
        }
        if !step.detail.is_empty() {
            let _ = write!(line, "  ({})", sanitize(&step.detail));
        }
        let _ = writeln!(out, "{line}");
    }
    for note in &plan.notes {
        let _ = writeln!(out, "note: {}", sanitize(note));
    }
    output::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
