//! ssh-agent: list, remove and add identities, with ssh-agent-lib's blocking client. On Unix the
//! agent is the socket `SSH_AUTH_SOCK` names; on Windows it is OpenSSH for Windows' named pipe.
//!
//! Any process can sit on `SSH_AUTH_SOCK`, so the agent is not trusted to behave: keyrotate
//! frames every reply itself before ssh-agent-lib's codec sees it ([`Framed`]), refusing a reply
//! longer than [`MAX_REPLY`] (OpenSSH's own client stops at 256 KiB) before allocating anything,
//! and the whole conversation has one deadline, not one per read: an agent that stalls, or
//! trickles a byte at a time, is reported as not answering once the deadline passes.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Credential, KeyConstraint, RemoveIdentity,
};
use ssh_key::public::KeyData;

use crate::keyfile::certificate::CertInfo;

/// Why the agent could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(String);

impl AgentError {
    /// The next step when ssh-agent cannot be used.
    pub fn hint(&self) -> String {
        "check that ssh-agent is running and answering (`ssh-add -l`), or leave it out with \
         --no-agent"
            .to_string()
    }

    fn from_agent(e: ssh_agent_lib::error::AgentError) -> Self {
        use ssh_agent_lib::error::AgentError as E;
        use ssh_agent_lib::proto::ProtoError as P;
        AgentError(match e {
            E::IO(io) | E::Proto(P::IO(io)) => crate::sys::io_reason(&io),
            E::Proto(P::UnexpectedResponse) => {
                "ssh-agent answered with a reply that does not fit the request".to_string()
            }
            E::Proto(_) => "ssh-agent sent a reply that is not a valid agent message".to_string(),
            E::Failure | E::ExtensionFailure => "the agent refused".to_string(),
            E::Other(other) => other.to_string(),
        })
    }
}

/// The largest agent reply keyrotate reads, as OpenSSH's own client (`MAX_AGENT_REPLY_LEN`).
pub const MAX_REPLY: usize = 256 * 1024;

/// A stream to the agent that reads whole replies itself: the 4-byte length, checked against
/// [`MAX_REPLY`], then the body, each read given only the time left before `deadline`. The
/// codec then reads from the buffered frame, so it never sees (or allocates for) a length that
/// was not checked.
#[derive(Debug)]
pub struct Framed<S> {
    stream: S,
    deadline: Instant,
    total: Duration,
    frame: Vec<u8>,
    pos: usize,
}

/// A stream whose reads and writes can be given a time limit.
pub trait Timed: Read + Write {
    fn set_timeouts(&self, limit: Duration) -> io::Result<()>;
}

#[cfg(unix)]
impl Timed for std::os::unix::net::UnixStream {
    fn set_timeouts(&self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

#[cfg(not(unix))]
impl Timed for std::fs::File {
    /// A named pipe opened as a file has no timeouts; the reply size is still bounded.
    fn set_timeouts(&self, _limit: Duration) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Timed> Framed<S> {
    pub fn new(stream: S, total: Duration) -> Self {
        Framed {
            stream,
            deadline: Instant::now() + total,
            total,
            frame: Vec::new(),
            pos: 0,
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "ssh-agent did not answer within {} seconds",
                self.total.as_secs_f32()
            ),
        )
    }

    /// Give the next operation only the time left; none left is a time-out.
    fn arm(&self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        self.stream.set_timeouts(left)
    }

    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            self.arm()?;
            match self.stream.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "ssh-agent closed the connection in the middle of a reply",
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timed_out());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The body of the next whole reply, for the requests keyrotate frames itself.
    fn reply(&mut self) -> io::Result<Vec<u8>> {
        if self.pos == self.frame.len() {
            self.next_frame()?;
        }
        let body = self.frame[self.pos.max(4)..].to_vec();
        self.pos = self.frame.len();
        Ok(body)
    }

    fn next_frame(&mut self) -> io::Result<()> {
        let mut len = [0u8; 4];
        self.read_full(&mut len)?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_REPLY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "ssh-agent announced a reply of {n} bytes, more than the {MAX_REPLY} \
                     keyrotate accepts"
                ),
            ));
        }
        let mut frame = vec![0u8; 4 + n];
        frame[..4].copy_from_slice(&len);
        self.read_full(&mut frame[4..])?;
        self.frame = frame;
        self.pos = 0;
        Ok(())
    }
}

impl<S: Timed> Read for Framed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.frame.len() {
            self.next_frame()?;
        }
        let n = buf.len().min(self.frame.len() - self.pos);
        buf[..n].copy_from_slice(&self.frame[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<S: Timed> Write for Framed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        match self.stream.write(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(self.timed_out())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// One key the agent holds: a plain key, or an OpenSSH certificate of `key`.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub key: KeyData,
    pub comment: String,
    pub certificate: Option<Box<CertInfo>>,
    /// The identity as the agent names it (the key's or the certificate's blob).
    blob: Vec<u8>,
}

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENT_SUCCESS: u8 = 6;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_REMOVE_IDENTITY: u8 = 18;

/// An identities answer (draft-miller-ssh-agent, 4.4), parsed here because ssh-agent-lib 0.5
/// cannot decode a certificate's blob and then refuses the whole list.
fn parse_identities(body: &[u8]) -> Option<Vec<AgentIdentity>> {
    fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if n > data.len() {
            return None;
        }
        let (head, tail) = data.split_at(n);
        *data = tail;
        Some(head)
    }
    fn string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = take(data, 4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        take(data, len)
    }
    let mut data = body;
    if take(&mut data, 1)? != [SSH_AGENT_IDENTITIES_ANSWER] {
        return None;
    }
    let count = u32::from_be_bytes(take(&mut data, 4)?.try_into().ok()?) as usize;
    // Each identity takes at least 8 bytes: a count larger than that is a lie.
    if count > data.len() / 8 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let blob = string(&mut data)?;
        let comment = String::from_utf8_lossy(string(&mut data)?).into_owned();
        let mut name = blob;
        let is_certificate = string(&mut name)?.ends_with(b"-cert-v01@openssh.com");
        let (key, certificate) = if is_certificate {
            let cert = CertInfo::from_blob(blob)?;
            (cert.key.key_data.clone(), Some(Box::new(cert)))
        } else {
            (
                ssh_key::PublicKey::from_bytes(blob)
                    .ok()?
                    .key_data()
                    .clone(),
                None,
            )
        };
        out.push(AgentIdentity {
            key,
            comment,
            certificate,
            blob: blob.to_vec(),
        });
    }
    data.is_empty().then_some(out)
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

/// A connection to a running agent, bounded in time and reply size (see [`Framed`]).
#[derive(Debug)]
pub struct Agent {
    stream: Framed<Stream>,
}

impl Agent {
    /// Connect to the agent listening on `socket` (a Unix socket, or a Windows named pipe), for
    /// a conversation of at most 5 seconds.
    pub fn connect(socket: &Path) -> Result<Agent, AgentError> {
        Self::connect_with_timeout(socket, Duration::from_secs(5))
    }

    /// As [`Agent::connect`], with `timeout` for the whole conversation: every request made
    /// through this connection must be answered before it runs out.
    pub fn connect_with_timeout(socket: &Path, timeout: Duration) -> Result<Agent, AgentError> {
        let unreachable = |e: std::io::Error| {
            AgentError(format!(
                "cannot reach ssh-agent at {}: {}",
                socket.display(),
                crate::sys::io_reason(&e)
            ))
        };
        #[cfg(unix)]
        let stream = Stream::connect(socket).map_err(unreachable)?;
        #[cfg(not(unix))]
        let stream = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(socket)
            .map_err(unreachable)?;
        Ok(Agent {
            stream: Framed::new(stream, timeout),
        })
    }

    fn client(&mut self) -> ssh_agent_lib::blocking::Client<&mut Framed<Stream>> {
        ssh_agent_lib::blocking::Client::new(&mut self.stream)
    }

    /// One request keyrotate frames itself; the reply's body.
    fn request(&mut self, body: &[u8]) -> Result<Vec<u8>, AgentError> {
        let io = |e: io::Error| AgentError(crate::sys::io_reason(&e));
        let mut message = (body.len() as u32).to_be_bytes().to_vec();
        message.extend_from_slice(body);
        self.stream.write_all(&message).map_err(io)?;
        self.stream.flush().map_err(io)?;
        self.stream.reply().map_err(io)
    }

    /// The keys (and certificates) the agent holds.
    pub fn identities(&mut self) -> Result<Vec<AgentIdentity>, AgentError> {
        let reply = self.request(&[SSH_AGENTC_REQUEST_IDENTITIES])?;
        if reply.first() == Some(&SSH_AGENT_FAILURE) {
            return Err(AgentError("the agent refused".to_string()));
        }
        parse_identities(&reply).ok_or_else(|| {
            AgentError("ssh-agent sent a reply that is not a valid agent message".to_string())
        })
    }

    /// Remove `key`, and every certificate of it, if the agent holds them; says whether it did.
    pub fn remove(&mut self, key: &KeyData) -> Result<bool, AgentError> {
        let held: Vec<AgentIdentity> = self
            .identities()?
            .into_iter()
            .filter(|i| i.key == *key)
            .collect();
        for identity in &held {
            if identity.certificate.is_none() {
                self.client()
                    .remove_identity(RemoveIdentity {
                        pubkey: key.clone(),
                    })
                    .map_err(AgentError::from_agent)?;
                continue;
            }
            let mut body = vec![SSH_AGENTC_REMOVE_IDENTITY];
            body.extend_from_slice(&(identity.blob.len() as u32).to_be_bytes());
            body.extend_from_slice(&identity.blob);
            if self.request(&body)?.first() != Some(&SSH_AGENT_SUCCESS) {
                return Err(AgentError("the agent refused".to_string()));
            }
        }
        Ok(!held.is_empty())
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
                .client()
                .add_identity_constrained(AddIdentityConstrained {
                    identity,
                    constraints: vec![KeyConstraint::Lifetime(seconds)],
                }),
            None => self.client().add_identity(identity),
        }
        .map_err(AgentError::from_agent)?;
        Ok(())
    }
}
