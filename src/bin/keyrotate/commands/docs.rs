//! `keyrotate completions SHELL` and `keyrotate man`: both generated from the clap definitions in
//! `cli.rs`, so they cannot drift from what the parser accepts.

use std::process::ExitCode;

use clap::CommandFactory;
use keyrotate::Result;

use crate::cli::Cli;
use crate::output;

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "keyrotate", &mut script);
    print(&script)
}

/// One page: the top-level sections clap_mangen renders, then the options of each subcommand
/// under a heading of its own ("KEYROTATE ROTATE OPTIONS"), then exit codes and version.
pub fn man() -> Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    let rendered = (|| -> std::io::Result<()> {
        top.render_title(&mut page)?;
        top.render_name_section(&mut page)?;
        top.render_synopsis_section(&mut page)?;
        top.render_description_section(&mut page)?;
        top.render_options_section(&mut page)?;
        top.render_subcommands_section(&mut page)?;
        for sub in cmd.get_subcommands() {
            let heading = format!("keyrotate {} options", sub.get_name()).to_uppercase();
            // Global options, --help and --version are documented once, above.
            let own = |arg: &clap::Arg| {
                !arg.is_global_set() && !matches!(arg.get_id().as_str(), "help" | "version")
            };
            if !sub.get_arguments().any(own) {
                continue;
            }
            let sub = sub.clone().mut_args(|arg| match own(&arg) {
                true => arg.help_heading(heading.clone()),
                false => arg.hide(true),
            });
            clap_mangen::Man::new(sub).render_options_section(&mut page)?;
        }
        // clap_mangen calls the after-help text EXTRA; for keyrotate it is the exit status.
        let mut extra = Vec::new();
        top.render_extra_section(&mut extra)?;
        let extra = String::from_utf8_lossy(&extra).replacen(".SH EXTRA", ".SH \"EXIT STATUS\"", 1);
        page.extend_from_slice(extra.as_bytes());
        top.render_version_section(&mut page)
    })();
    rendered.map_err(|e| {
        std::io::Error::other(format!(
            "could not render the manual page: {}",
            keyrotate::sys::io_reason(&e)
        ))
    })?;
    print(&page)
}

fn print(bytes: &[u8]) -> Result<ExitCode> {
    output::print_raw(bytes).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "could not write to stdout: {}",
                keyrotate::sys::io_reason(&e)
            ),
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
