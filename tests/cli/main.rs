//! keyrotate's integration tests, as one test crate: one binary to link instead of one per file
//! (each link pulls in the whole dependency graph). Each module was a test crate of its own
//! before; its `//!` header says what it covers. Run one module with
//! `cargo test --test cli MODULE::` (e.g. `cargo test --test cli trust::`).
//!
//! The tests of all modules now share one process and run in parallel with each other, so none
//! may change process-wide state (environment variables, the working directory, signal
//! dispositions, the umask): they run the real binary and other tools as child processes and
//! change only those. Tests that must run alone in their process live in crates of their own:
//! `tests/alloc.rs` (a counting global allocator).
//!
//! Most modules are Unix only (`#![cfg(unix)]` in the module, with the reason); on Windows this
//! crate still builds, so that CI's cross-check covers it.

#[cfg(unix)]
mod common;

mod backup;
mod certs;
mod check;
mod cli;
mod crash;
mod dryrun;
mod faults;
mod generate;
mod hardening;
mod hostile;
mod parsers;
mod passphrase_rules;
mod plan;
mod putty;
mod rotate;
mod services;
mod successor;
mod suggested;
mod terminal;
mod trust;
