//! keyrotate: the whole life of an SSH key, as a library the `keyrotate` binary drives.
//!
//! The library knows the domain (key formats, findings, inventories) and never prompts or prints;
//! the binary parses arguments, resolves paths, and renders what the library returns.
//!
//! - [`keyfile`]: recognise and parse every key format, without a passphrase.
//! - [`inventory`]: scan an SSH directory, pair keys with their `.pub`, collect findings.
//! - [`findings`]: the policy, from a key's facts to findings with stable codes.
//! - [`backup`]: the backup store: verified timestamped sets, listing, restore.
//! - [`generate`]: new key pairs, encoded as `ssh-keygen` would (OpenSSH or legacy PEM).
//! - [`passphrase`]: zeroizing passphrases, the strength policy, the source trait.
//! - [`pem_legacy`]: OpenSSL's traditional PEM encryption, from RustCrypto parts.
//! - [`transaction`]: crash-safe changes of live key files (journal, commit, recovery).
//! - [`rotation`]: the live keys of a service, and retiring them.
//! - [`oldkey`]: does a new passphrase open an old key? (bounded KDF work)
//! - [`retired`]: the record of keys `rotate` retired.
//! - [`agent`]: the ssh-agent client.
//! - [`sshconfig`]: `IdentityFile` lines of `~/.ssh/config`.
//! - [`restore`]: putting a backup set back, through a transaction.
//! - [`fsio`]: the only module that writes files (born private, fsynced, atomic replacement).
//! - [`lock`]: one keyrotate at a time per SSH directory.
//! - [`timefmt`]: the timestamps keyrotate prints.
//! - [`text`]: the one terminal sanitiser.

//! - `winacl` (Windows only): owner-only access lists, and who else may read a key.
//!
//! No unsafe code, except the Win32 calls of `winacl`.
#![deny(unsafe_code)]

pub mod agent;
pub mod backup;
pub mod findings;
pub mod fsio;
pub mod generate;
pub mod inventory;
pub mod keyfile;
pub mod lock;
pub mod oldkey;
pub mod passphrase;
pub mod pem_legacy;
pub mod restore;
pub mod retired;
pub mod rotation;
pub mod sshconfig;
pub mod text;
pub mod timefmt;
pub mod transaction;
#[cfg(windows)]
pub mod winacl;
