//! ssh-agent: list, remove and add identities over `SSH_AUTH_SOCK`, with ssh-agent-lib's
//! blocking client. Every socket operation has a timeout, so a stuck agent cannot hang keyrotate.

// On Windows the agent (OpenSSH for Windows' named pipe) is not spoken yet: `connect` says so,
// and the protocol half of this module is unused there.
#![cfg_attr(not(unix), allow(unused_imports, dead_code))]

use std::path::Path;
use std::time::Duration;

use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Credential, KeyConstraint, RemoveIdentity,
};
use ssh_key::public::KeyData;

/// Why the agent could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(String);

impl AgentError {
    fn from_agent(e: ssh_agent_lib::error::AgentError) -> Self {
        use ssh_agent_lib::error::AgentError as E;
        AgentError(match e {
            E::IO(io) => crate::inventory::io_reason(&io),
            E::Proto(_) | E::Failure | E::ExtensionFailure => "the agent refused".to_string(),
            E::Other(other) => other.to_string(),
        })
    }
}

/// A connection to a running agent.
#[derive(Debug)]
pub struct Agent {
    #[cfg(unix)]
    client: ssh_agent_lib::blocking::Client<std::os::unix::net::UnixStream>,
}

impl Agent {
    /// Connect to the agent listening on `socket`.
    #[cfg(unix)]
    pub fn connect(socket: &Path) -> Result<Agent, AgentError> {
        let stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
            AgentError(format!(
                "cannot reach ssh-agent at {}: {}",
                socket.display(),
                crate::inventory::io_reason(&e)
            ))
        })?;
        let timeout = Some(Duration::from_secs(5));
        let timeouts = stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout));
        timeouts.map_err(|e| AgentError(crate::inventory::io_reason(&e)))?;
        Ok(Agent {
            client: ssh_agent_lib::blocking::Client::new(stream),
        })
    }

    #[cfg(not(unix))]
    pub fn connect(socket: &Path) -> Result<Agent, AgentError> {
        let _ = (socket, Duration::ZERO);
        Err(AgentError(
            "talking to ssh-agent is not supported on this platform yet".to_string(),
        ))
    }

    /// The public keys the agent holds.
    pub fn identities(&mut self) -> Result<Vec<KeyData>, AgentError> {
        #[cfg(unix)]
        {
            let list = self
                .client
                .request_identities()
                .map_err(AgentError::from_agent)?;
            Ok(list.into_iter().map(|i| i.pubkey).collect())
        }
        #[cfg(not(unix))]
        unreachable!("no Agent exists on this platform")
    }

    /// Remove `key` if the agent holds it; says whether it did.
    pub fn remove(&mut self, key: &KeyData) -> Result<bool, AgentError> {
        if !self.identities()?.contains(key) {
            return Ok(false);
        }
        #[cfg(unix)]
        self.client
            .remove_identity(RemoveIdentity {
                pubkey: key.clone(),
            })
            .map_err(AgentError::from_agent)?;
        Ok(true)
    }

    /// Add `key` (unencrypted), for `lifetime` seconds if given.
    pub fn add(
        &mut self,
        key: &ssh_key::PrivateKey,
        lifetime: Option<u32>,
    ) -> Result<(), AgentError> {
        let identity = AddIdentity {
            credential: Credential::Key {
                privkey: key.key_data().clone(),
                comment: key.comment().to_string(),
            },
        };
        #[cfg(unix)]
        match lifetime {
            Some(seconds) => self
                .client
                .add_identity_constrained(AddIdentityConstrained {
                    identity,
                    constraints: vec![KeyConstraint::Lifetime(seconds)],
                }),
            None => self.client.add_identity(identity),
        }
        .map_err(AgentError::from_agent)?;
        #[cfg(not(unix))]
        let _ = (identity, lifetime);
        Ok(())
    }
}
