//! The library's one error type. Every variant knows its next step ([`Error::hint`]): what went
//! wrong is in the message (with the path), what to do about it is in the hint, so the binary
//! prints both without knowing which module failed. I/O errors are kept as `#[source]`, never
//! flattened into text.

use std::io;

use crate::agent::AgentError;
use crate::check::inventory::InventoryError;
use crate::generate::{GenerateError, SpecError, WriteKeyError};
use crate::passphrase::PassphraseError;
use crate::service::ConfigError;
use crate::store::BackupError;
use crate::transaction::TxError;
use crate::transaction::lock::LockError;

/// Every error a keyrotate operation returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    WriteKey(#[from] WriteKeyError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Transaction(#[from] TxError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A request keyrotate will not carry out as given (options that contradict each other, a
    /// config it cannot rewrite): the message says why, the hint what to ask instead.
    #[error("{message}")]
    Refused { message: String, hint: String },
    /// Any other I/O error; its message names the path (see [`crate::sys::fsio::naming`]).
    #[error("{}", crate::sys::io_reason(.0))]
    Io(#[from] io::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal: `message` says what and why, `hint` what to do next.
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Refused {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The one next step for the user, naming flags in full.
    pub fn hint(&self) -> String {
        match self {
            Error::Inventory(e) => e.hint(),
            Error::Backup(e) => e.hint(),
            Error::Lock(e) => e.hint(),
            Error::Passphrase(e) => e.hint(),
            Error::Spec(e) => e.hint().to_string(),
            Error::WriteKey(e) => e.hint(),
            Error::Generate(_) => "this is unexpected: nothing was written; run again, and \
                 report it if it happens twice"
                .to_string(),
            Error::Transaction(e) => e.hint(),
            Error::Agent(e) => e.hint(),
            Error::Config(e) => e.hint(),
            Error::Refused { hint, .. } => hint.clone(),
            Error::Io(e) => crate::sys::io_hint(e),
        }
    }

    /// Another keyrotate holds the SSH directory's lock.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Lock(LockError::Busy { .. }))
    }
}
