//! keyrotate: the whole life of an SSH key, as a library the `keyrotate` binary drives.
//!
//! The library knows the domain (key formats, findings, inventories) and never prompts or prints;
//! the binary parses arguments, resolves paths, and renders what the library returns.
//!
//! - [`keyfile`]: recognise and parse every key format, without a passphrase.
//! - [`inventory`]: scan an SSH directory, pair keys with their `.pub`, collect findings.
//! - [`findings`]: the policy, from a key's facts to findings with stable codes.
//! - [`timefmt`]: the timestamps keyrotate prints and names files with.

#![forbid(unsafe_code)]

pub mod findings;
pub mod inventory;
pub mod keyfile;
pub mod timefmt;
