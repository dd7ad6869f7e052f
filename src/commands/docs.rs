//! `keyrotate completions SHELL` and `keyrotate man`: both generated from the clap definitions in
//! `cli.rs`, so they cannot drift from what the parser accepts.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::output;

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "keyrotate", &mut script);
    print(&script)
}

pub fn man() -> Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("could not render the manual page")?;
    print(&page)
}

fn print(bytes: &[u8]) -> Result<ExitCode> {
    output::print_raw(bytes).context("could not write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
