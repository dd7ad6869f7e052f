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
    // Before anything secret is in memory: a crash must never write a passphrase or a new
    // unencrypted key into a core file.
    disable_core_dumps();
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
    // Ctrl-C before a transaction's commit point undoes it (see interrupt.rs).
    keyrotate::transaction::cancel_when(interrupt::pending);
    // Library errors carry their hint; anyhow is the edge where they meet the printer.
    match std::panic::catch_unwind(|| commands::run(cli).map_err(anyhow::Error::from)) {
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

/// No core dumps for this process, as ssh-agent does: the core size limit goes to zero (soft and
/// hard, so nothing can raise it again) and, on Linux, the process is marked not dumpable (which
/// also covers a `core_pattern` that pipes to a crash collector, ignoring the size limit, and
/// keeps other processes of the same user from reading its memory through `/proc` or ptrace).
/// Windows writes no core files of its own accord; there is nothing to switch off.
fn disable_core_dumps() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let zero = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        // Failing to lower a limit is harmless to report nowhere: there is no secret yet.
        let _ = setrlimit(Resource::Core, zero);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    }
}
