//! ssh-agent: list, remove and add identities, with ssh-agent-lib's blocking client. On Unix the
//! agent is the socket `SSH_AUTH_SOCK` names, with a timeout on every operation so that a stuck
//! agent cannot hang keyrotate; on Windows it is OpenSSH for Windows' named pipe.

use std::path::{Path, PathBuf};

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

/// One key the agent holds.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub key: KeyData,
    pub comment: String,
}

#[cfg(unix)]
type Stream = std::os::unix::net::UnixStream;
#[cfg(not(unix))]
type Stream = std::fs::File;

/// OpenSSH for Windows' agent, when `SSH_AUTH_SOCK` does not name another.
#[cfg(windows)]
const WINDOWS_AGENT_PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// Where the running agent listens: `SSH_AUTH_SOCK` (if set and not empty); on Windows,
/// otherwise, OpenSSH for Windows' pipe if its service is running.
pub fn socket_from_env() -> Option<PathBuf> {
    let from_env = std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    #[cfg(windows)]
    let from_env = from_env.or_else(|| {
        let pipe = PathBuf::from(WINDOWS_AGENT_PIPE);
        pipe.exists().then_some(pipe)
    });
    from_env
}

/// A connection to a running agent.
#[derive(Debug)]
pub struct Agent {
    client: ssh_agent_lib::blocking::Client<Stream>,
}

impl Agent {
    /// Connect to the agent listening on `socket` (a Unix socket, or a Windows named pipe).
    pub fn connect(socket: &Path) -> Result<Agent, AgentError> {
        Self::connect_with_timeout(socket, std::time::Duration::from_secs(5))
    }

    /// As [`Agent::connect`], giving up on a Unix agent that does not answer within `timeout`.
    pub fn connect_with_timeout(
        socket: &Path,
        timeout: std::time::Duration,
    ) -> Result<Agent, AgentError> {
        let unreachable = |e: std::io::Error| {
            AgentError(format!(
                "cannot reach ssh-agent at {}: {}",
                socket.display(),
                crate::inventory::io_reason(&e)
            ))
        };
        #[cfg(unix)]
        let stream = {
            let stream = Stream::connect(socket).map_err(unreachable)?;
            let timeout = Some(timeout);
            let timeouts = stream
                .set_read_timeout(timeout)
                .and_then(|()| stream.set_write_timeout(timeout));
            timeouts.map_err(|e| AgentError(crate::inventory::io_reason(&e)))?;
            stream
        };
        #[cfg(not(unix))]
        let _ = timeout;
        #[cfg(not(unix))]
        let stream = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(socket)
            .map_err(unreachable)?;
        Ok(Agent {
            client: ssh_agent_lib::blocking::Client::new(stream),
        })
    }

    /// The keys the agent holds.
    pub fn identities(&mut self) -> Result<Vec<AgentIdentity>, AgentError> {
        let list = self
            .client
            .request_identities()
            .map_err(AgentError::from_agent)?;
        Ok(list
            .into_iter()
            .map(|i| AgentIdentity {
                key: i.pubkey,
                comment: i.comment,
            })
            .collect())
    }

    /// Remove `key` if the agent holds it; says whether it did.
    pub fn remove(&mut self, key: &KeyData) -> Result<bool, AgentError> {
        if !self.identities()?.iter().any(|i| i.key == *key) {
            return Ok(false);
        }
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
        Ok(())
    }
}
