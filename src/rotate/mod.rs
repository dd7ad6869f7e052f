//! `rotate`: the plan of one rotation and its execution. The service's live keys come from
//! [`service`], the check that a new passphrase opens none of them from [`oldkey`], the ssh
//! config's `IdentityFile` lines from [`sshconfig`]. [`plan`] builds one [`Rotation`]; a dry run
//! prints [`Rotation::dry_run`], the real run calls [`Rotation::commit`] on the same value, then
//! [`Rotation::update_agent`].

pub mod config;
pub mod oldkey;
pub mod reuse;
pub mod service;
pub mod sshconfig;
pub mod successor;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::agent::{self, Agent};
use crate::generate::{self, KeySpec, NewKey};
use crate::passphrase::Passphrase;
use crate::plan::{Action, Content, Plan, PlannedChange, Step};
use crate::store::Store;
use crate::sys::{fsio, io_reason};
use crate::transaction::{self, Change, Committed, NewFile};

pub use config::ConfigPlan;
pub use service::OldKey;
pub use successor::Wanted;

/// What ssh-agent is to do once the new key is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRequest {
    /// Leave it alone (`--no-agent`).
    Skip,
    /// Remove the old identities, add the new key (for `lifetime` seconds; with Apple's
    /// `ssh-add --apple-use-keychain`).
    Update {
        lifetime: Option<u32>,
        apple_keychain: bool,
    },
}

/// What the user asked to rotate, resolved by the binary.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub ssh_dir: &'a Path,
    pub service: &'a str,
    /// `-f`, made absolute: the old key is the pair there, not the service's keys.
    pub file: Option<&'a Path>,
    /// What the options ask of the new key; the rest it inherits ([`successor`]).
    pub wanted: &'a Wanted,
    /// The comment when neither the options nor the current key give one (`user@host`).
    pub default_comment: String,
    /// `--update-config`.
    pub update_config: bool,
    /// The home directory `~` stands for in the ssh config.
    pub home: Option<&'a Path>,
    pub agent: AgentRequest,
}

/// One rotation, planned: what is replaced, saved, moved out, retired and rewritten.
pub struct Rotation {
    pub ssh_dir: PathBuf,
    pub service: String,
    /// The new key: what it inherits from the current key, and what the options changed.
    pub spec: KeySpec,
    pub target: PathBuf,
    pub old: Vec<OldKey>,
    pub config: ConfigPlan,
    pub agent: AgentRequest,
    /// What the user should know before anything is done (printed as notes).
    pub notes: Vec<String>,
    change: Option<PlannedChange>,
}

/// Refusals the real run makes before it asks for anything; then the plan. Reads the SSH
/// directory, writes nothing.
pub fn plan(req: &Request<'_>, now: SystemTime) -> crate::Result<Rotation> {
    let ssh_dir_exists = fsio::is_dir(req.ssh_dir)?;
    if ssh_dir_exists {
        // A backup store that would be refused later is refused now.
        Store::open_existing(req.ssh_dir)?;
    }
    let old: Vec<OldKey> = match req.file {
        Some(file) => service::key_at(file)?.into_iter().collect(),
        None => service::service_keys(req.ssh_dir, req.service)?,
    };
    let successor::Successor {
        spec,
        target,
        mut notes,
    } = successor::successor(req.ssh_dir, req.service, req.file, &old, req.wanted, || {
        req.default_comment.clone()
    })?;
    if target.parent() != Some(req.ssh_dir) || ssh_dir_exists {
        generate::check_target(&target, true)?;
    }
    let config = ConfigPlan::new(req, &target, &old, &mut notes)?;
    let public = generate::public_path_for(&target);
    let exists = |p: &Path| -> crate::Result<bool> { Ok(fsio::lstat(p)?.is_some()) };
    let mut new_files = vec![
        NewFile {
            target: target.clone(),
            bytes: Content::PrivateKey,
            mode: 0o600,
            replace: exists(&target)?,
            modified: None,
            expect: None,
        },
        NewFile {
            target: public.clone(),
            bytes: Content::PublicKey,
            mode: 0o644,
            replace: exists(&public)?,
            modified: None,
            expect: None,
        },
    ];
    if let Some(text) = &config.new_text {
        new_files.push(NewFile {
            target: config.path.clone(),
            bytes: Content::Bytes(zeroize::Zeroizing::new(text.clone().into_bytes())),
            mode: config.mode,
            replace: true,
            modified: None,
            // Read before the passphrase was asked for: edited since, it is left alone.
            expect: config.sha256.clone(),
        });
    }
    let change = Change {
        operation: "rotate",
        new_files,
        remove: removed_files(&old, &target),
        retire: old.iter().filter_map(|k| k.retired_record(now)).collect(),
        backup: true,
    };
    Ok(Rotation {
        ssh_dir: req.ssh_dir.to_path_buf(),
        service: req.service.to_string(),
        spec,
        target,
        old,
        config,
        agent: req.agent,
        notes,
        change: Some(change),
    })
}

/// Live files of the old keys that leave the live directory (the new pair takes `target`'s names).
fn removed_files(old: &[OldKey], target: &Path) -> Vec<PathBuf> {
    let public = generate::public_path_for(target);
    old.iter()
        .flat_map(|k| k.files())
        .filter(|p| p != target && *p != public)
        .collect()
}

/// What the check of a new passphrase against the old keys concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseCheck {
    /// It opens this old key (live, or one of the service's last retired ones): refused.
    OpensOld(reuse::Opened),
    /// Checked: it opens none of them.
    Different,
    /// Nothing to check against (lost key, or only unencrypted/public files left).
    NothingToCheck,
    /// At least one could not be checked; why (each names its file).
    NotChecked(Vec<String>),
}

impl PassphraseCheck {
    /// The word `rotate --json` prints.
    pub fn json(&self) -> String {
        match self {
            PassphraseCheck::OpensOld(_) => "opens-old-key".to_string(),
            PassphraseCheck::Different => "different".to_string(),
            PassphraseCheck::NothingToCheck => "no-old-key".to_string(),
            PassphraseCheck::NotChecked(why) => format!("not-checked: {}", why.join("; ")),
        }
    }
}

impl Rotation {
    /// Does `passphrase`, or the same with a space or tab around it, open any of the old keys or
    /// any of the service's last five retired keys (`explicit_file`: `-f`, whose retired keys
    /// are those retired from `target`)? Bounded KDF work; see [`oldkey`] and [`reuse`].
    pub fn check_passphrase(
        &self,
        passphrase: &Passphrase,
        explicit_file: bool,
    ) -> PassphraseCheck {
        reuse::check(
            &self.ssh_dir,
            &self.service,
            &self.target,
            explicit_file,
            &self.old,
            passphrase,
        )
    }

    /// The plan's steps, as a dry run prints them (ssh-agent is only asked which keys it holds).
    /// `private_detail` says what the new private key is (type, size, format).
    pub fn dry_run(&self, now: SystemTime, private_detail: &str) -> crate::Result<Plan> {
        let mut plan = Plan::new("rotate");
        plan.ssh_dir(&self.ssh_dir)?;
        let change = self
            .change
            .as_ref()
            .expect("a rotation is planned once, run once");
        let target = self.target.clone();
        let spec_of = |path: &Path| -> String {
            if path == target {
                format!("the new private key: {private_detail}, passphrase-protected, mode 0600")
            } else if path == self.config.path {
                "its IdentityFile lines naming the old key are rewritten; mode kept".to_string()
            } else {
                "its public key, mode 0644".to_string()
            }
        };
        plan.change(&self.ssh_dir, change, now, spec_of)?;
        let record = crate::layout::retired_path(&self.ssh_dir);
        for k in self.old.iter().filter(|k| k.retired_record(now).is_none()) {
            plan.push(Step::new(
                Action::Retire,
                &record,
                format!(
                    "{}: its key cannot be read, so it cannot be recorded",
                    k.path().to_string_lossy()
                ),
            ));
        }
        let new_text = self.config.new_text.as_deref();
        for line in &self.config.lines {
            let what = match new_text.is_some() {
                true => "would name the new key",
                false => "would still name the old key (add --update-config to rewrite it)",
            };
            let mut step = Step::new(
                Action::Config,
                &self.config.path,
                format!("line {}: `{}` {what}", line.line_no, line.text.trim()),
            );
            step.line = Some(line.line_no);
            step.text = new_text
                .and_then(|t| t.split_inclusive('\n').nth(line.line_no - 1))
                .map(|l| l.trim_end_matches(['\n', '\r']).to_string());
            plan.push(step);
        }
        self.plan_agent(&mut plan);
        if self.old.is_empty() {
            plan.note(format!(
                "no current key of {} was found: a fresh one would be generated",
                self.service
            ));
        }
        if let Some(why) = &self.config.not_updated {
            plan.note(why.clone());
        }
        Ok(plan)
    }

    /// The agent half of the dry run: which old identities it holds would go, the new one come.
    fn plan_agent(&self, plan: &mut Plan) {
        let AgentRequest::Update {
            lifetime,
            apple_keychain,
        } = self.agent
        else {
            plan.note("ssh-agent would be left alone (--no-agent)");
            return;
        };
        let Some(socket) = agent::socket_from_env() else {
            plan.note(
                "no ssh-agent is running (SSH_AUTH_SOCK is not set): the new key would not be loaded",
            );
            return;
        };
        match Agent::connect(&socket).and_then(|mut agent| agent.identities()) {
            Ok(loaded) => {
                for k in &self.old {
                    let Some(info) = &k.key else { continue };
                    if loaded.iter().any(|i| i.key == info.key_data) {
                        plan.push(
                            Step::new(
                                Action::AgentRemove,
                                &socket,
                                format!("remove the old key {}", info.fingerprint()),
                            )
                            .text(info.fingerprint()),
                        );
                    }
                }
            }
            Err(e) => plan.note(format!("could not ask ssh-agent which keys it holds: {e}")),
        }
        let mut add = "add the new key".to_string();
        if let Some(seconds) = lifetime {
            let _ = write!(add, " for {seconds} seconds");
        }
        if apple_keychain {
            add.push_str(" with `ssh-add --apple-use-keychain`");
        }
        plan.push(Step::new(Action::AgentAdd, &socket, add));
    }

    /// Carry out the plan's file changes with the new pair `key`, as one transaction.
    pub fn commit(&mut self, key: &NewKey, now: SystemTime) -> crate::Result<Committed> {
        let mut change = self
            .change
            .take()
            .expect("a rotation is planned once, run once");
        // Retired now, not when the plan was made (before the passphrase was asked for).
        for retired in &mut change.retire {
            retired.retired_at = crate::text::rfc3339_utc(now);
        }
        let change =
            change.map_content(|c| c.fill(key.private_file.as_bytes(), key.public_file.as_bytes()));
        Ok(transaction::commit(&self.ssh_dir, change, now)?)
    }

    /// The agent steps of the plan: the old identities out, the new key in.
    pub fn update_agent(&self, key: &NewKey) -> AgentOutcome {
        let outcome = |status: &str, detail: String| AgentOutcome {
            status: status.to_string(),
            detail,
        };
        let AgentRequest::Update {
            lifetime,
            apple_keychain,
        } = self.agent
        else {
            return outcome("skipped", "left alone (--no-agent)".to_string());
        };
        let Some(socket) = agent::socket_from_env() else {
            return outcome(
                "no-agent",
                format!(
                    "no ssh-agent is running (SSH_AUTH_SOCK is not set); load the key later with \
                     `ssh-add {}`",
                    crate::text::shell_path(&self.target)
                ),
            );
        };
        let mut agent = match Agent::connect(&socket) {
            Ok(agent) => agent,
            Err(e) => return outcome(&format!("error: {e}"), format!("not updated: {e}")),
        };
        let mut removed = 0;
        for k in &self.old {
            if let Some(info) = &k.key {
                match agent.remove(&info.key_data) {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(e) => return outcome(&format!("error: {e}"), format!("not updated: {e}")),
                }
            }
        }
        if apple_keychain {
            drop(agent);
            if let Err(e) = apple_keychain_add(&self.target, lifetime) {
                return outcome(
                    &format!("error: {e}"),
                    format!(
                        "the new key could not be added with the keychain option ({e}); run \
                         `ssh-add --apple-use-keychain {}`",
                        self.target.display()
                    ),
                );
            }
        } else if let Err(e) = agent.add(&key.unencrypted, lifetime) {
            return outcome(
                &format!("error: {e}"),
                format!(
                    "the new key could not be added ({e}); add it with `ssh-add {}`",
                    crate::text::shell_path(&self.target)
                ),
            );
        }
        let lifetime = lifetime
            .map(|s| format!(" for {s} seconds"))
            .unwrap_or_default();
        let removed = match removed {
            0 => String::new(),
            1 => "removed the old key, ".to_string(),
            n => format!("removed {n} old keys, "),
        };
        outcome("updated", format!("{removed}added the new key{lifetime}"))
    }
}

/// What happened in ssh-agent: the JSON word, and a sentence.
#[derive(Debug, Clone)]
pub struct AgentOutcome {
    pub status: String,
    pub detail: String,
}

/// `ssh-add --apple-use-keychain [-t SECONDS] KEY`: Apple's ssh-add asks for the passphrase on
/// the terminal, adds the key and keeps the passphrase in the macOS keychain. Its stdout is not
/// ours (it may carry `--json`), so it goes to stderr.
fn apple_keychain_add(target: &Path, lifetime: Option<u32>) -> Result<(), String> {
    let mut command = std::process::Command::new("ssh-add");
    command.arg("--apple-use-keychain");
    if let Some(seconds) = lifetime {
        command.arg("-t").arg(seconds.to_string());
    }
    command.arg(target);
    let status = command
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot run ssh-add: {}", io_reason(&e)))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("ssh-add failed ({status})")),
    }
}
