//! The `keyrotate` binary: parse, dispatch, print the error chain once, map to an exit code.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod interrupt;
mod output;
mod prompt;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A panic is a bug, but it must still end as a clean exit 2 without a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "keyrotate: internal error: {info}\nhint: this is a bug in keyrotate; please report it \
             with the command you ran"
        );
    }));
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints usage errors to stderr (exit 2) and --help/--version to stdout (exit 0).
        Err(e) => e.exit(),
    };
    interrupt::install();
    match std::panic::catch_unwind(|| commands::run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            if interrupt::interrupted() {
                interrupt::exit_interrupted();
            }
            output::print_error(&err);
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
