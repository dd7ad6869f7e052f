//! `rotate`: the service's live keys ([`service`]), whether a new passphrase opens an old key
//! ([`oldkey`]), the ssh config's `IdentityFile` lines ([`sshconfig`]).

pub mod oldkey;
pub mod service;
pub mod sshconfig;
