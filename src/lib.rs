//! keyrotate: the whole life of an SSH key, as a library the `keyrotate` binary drives.
//!
//! The library knows the domain and never prompts or prints; the binary parses arguments,
//! resolves paths, asks for passphrases and renders what the library returns. Data flows one
//! way, from the operations down to the system:
//!
//! - [`check`]: scan an SSH directory, pair keys with their `.pub`, the findings policy.
//! - [`generate`]: new key pairs, encoded as `ssh-keygen` would (OpenSSH or legacy PEM).
//! - [`rotate`]: the service's keys, the old-passphrase check, the ssh config rewrite.
//! - [`service`]: built-in and configured service profiles (what each needs after a rotation).
//! - [`restore`]: putting a backup set back, through a transaction.
//! - [`plan`]: the one plan a dry run prints and the real run executes.
//! - [`transaction`]: crash-safe changes of live key files (journal, commit, recovery, lock).
//! - [`store`]: the backup store (verified sets, listing), the retired-key record, and the
//!   names of everything keyrotate keeps on disk.
//! - [`layout`]: every name keyrotate keeps on disk.
//! - [`keyfile`]: recognise and parse every key format, without a passphrase.
//! - [`error`]: the one error type; every variant knows its hint.
//! - [`agent`]: the ssh-agent client (bounded).
//! - [`passphrase`]: zeroizing passphrases, the strength policy, the source trait.
//! - [`sys`]: the only module that writes files, Windows access lists, I/O error helpers.
//! - [`text`]: the one terminal sanitiser, shell quoting, timestamps.
//!
//! No unsafe code, except the Win32 calls of `sys::winacl`.
#![deny(unsafe_code)]

pub mod agent;
pub mod check;
pub mod error;
pub mod generate;
pub mod keyfile;
pub mod layout;
pub mod passphrase;
pub mod plan;
pub mod restore;
pub mod rotate;
pub mod service;
pub mod store;
pub mod sys;
pub mod text;
pub mod transaction;

pub use error::{Error, Result};
