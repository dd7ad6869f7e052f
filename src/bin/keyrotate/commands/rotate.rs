//! `keyrotate rotate`: back up, generate, swap, retire, update ssh-agent, say what to upload; as
//! one transaction that a crash at any instant cannot leave half done.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::agent::Agent;
use keyrotate::generate::{self as keygen, KeySpec, NewKey};
use keyrotate::passphrase::Passphrase;
use keyrotate::rotate::oldkey::{KdfLimits, Opens};
use keyrotate::rotate::service::{self, OldKey};
use keyrotate::rotate::sshconfig::{self, IdentityLine};
use keyrotate::store::Store;
use keyrotate::sys::{io_reason, unix_mode};
use keyrotate::text::sanitize;
use keyrotate::transaction::{self, Change, NewFile};
use zeroize::Zeroizing;

use super::Context;
use super::generate::{
    ensure_ssh_dir, live_files, make_key, new_pair_steps, new_passphrase, passphrase_note,
    spec_from_args, target_path,
};
use super::plan::{Action, Plan};
use crate::cli::{Reason, RotateArgs};
use crate::interrupt::Critical;
use crate::output::{self, Spinner};

/// What the passphrase check against the old key(s) concluded.
enum PassphraseCheck {
    /// Checked: it opens none of them.
    Different,
    /// Nothing to check against (lost key, or only unencrypted/public files left).
    NothingToCheck,
    /// At least one could not be checked; why.
    NotChecked(Vec<String>),
}

impl PassphraseCheck {
    fn json(&self) -> String {
        match self {
            PassphraseCheck::Different => "different".to_string(),
            PassphraseCheck::NothingToCheck => "no-old-key".to_string(),
            PassphraseCheck::NotChecked(why) => format!("not-checked: {}", why.join("; ")),
        }
    }
}

pub fn run(ctx: &Context, args: &RotateArgs) -> Result<ExitCode> {
    let spec = spec_from_args(&args.generate)?;
    if args.agent_lifetime == Some(0) {
        return Err(keyrotate::Error::refused(
            "--agent-lifetime must be at least 1 second",
            "give the number of seconds the new key may stay in ssh-agent, e.g. --agent-lifetime 3600",
        ));
    }
    if args.apple_use_keychain && !cfg!(target_os = "macos") {
        return Err(keyrotate::Error::refused(
            "--apple-use-keychain works only on macOS, whose ssh-add can keep passphrases in the \
             keychain",
            "leave the option out: keyrotate adds the new key to ssh-agent itself",
        ));
    }
    let target = target_path(ctx, &args.generate, &spec)?;
    if args.generate.dry_run {
        return dry_run(ctx, args, &spec, &target);
    }
    ensure_ssh_dir(&ctx.ssh_dir)?;
    let _lock = super::lock_and_recover(ctx)?;
    // A backup store that would be refused later is refused now, before anything is asked.
    Store::open_existing(&ctx.ssh_dir)?;

    let old = old_keys(ctx, args, &target)?;
    keygen::check_target(&target, true)?;
    let (passphrase, check) = passphrase_for_rotation(ctx, args, &spec, &target, &old)?;
    let key = make_key(ctx, &spec, &passphrase)?;
    drop(passphrase);

    let config = ConfigPlan::new(ctx, args, &old, &target)?;
    let now = SystemTime::now();
    // From here to the end of the report (the backup store may be made first), Ctrl-C either
    // undoes the change (before the commit point) or waits until the agent is updated and the
    // report printed (after it).
    let critical = Critical::enter();
    let change = plan_change(ctx, &old, &target, &key, &config, now)?;
    let committed = transaction::commit(&ctx.ssh_dir, change, now)?;
    critical.committed();
    let agent = update_agent(args, &old, &key, &target);
    let report = Report {
        spec: &spec,
        service: &args.generate.service,
        reason: args.reason,
        target: &target,
        key: &key,
        old: &old,
        backup_dir: committed.backup.as_ref().map(|s| s.dir.clone()),
        agent,
        check,
        config: &config,
    };
    report.print(ctx)?;
    drop(critical);
    Ok(ExitCode::SUCCESS)
}

/// What `rotate` would do; refuses what the real run refuses before its passphrase prompt, asks
/// for nothing, changes nothing (ssh-agent is only asked which keys it holds).
fn dry_run(ctx: &Context, args: &RotateArgs, spec: &KeySpec, target: &Path) -> Result<ExitCode> {
    let mut plan = Plan::new(ctx, "rotate");
    plan.ssh_dir(&ctx.ssh_dir)?;
    if ctx.ssh_dir_exists()? {
        Store::open_existing(&ctx.ssh_dir)?;
    }
    let old = old_keys(ctx, args, target)?;
    if target.parent() != Some(ctx.ssh_dir.as_path()) || ctx.ssh_dir_exists()? {
        keygen::check_target(target, true)?;
    }
    let config = ConfigPlan::new(ctx, args, &old, target)?;
    let public = keygen::public_path_for(target);
    let remove = removed_files(&old, target);
    let mut replaced = vec![target.to_path_buf(), public];
    if config.new_text.is_some() {
        replaced.push(config.path.clone());
    }
    // The retired-key record is saved before it is rewritten, as the real run does.
    let record = keyrotate::store::retired::retired_path(&ctx.ssh_dir);
    if old.iter().any(|k| k.fingerprint().is_some()) {
        replaced.push(record.clone());
    }
    let saved = live_files(&[replaced, remove.clone()].concat())?;
    plan.backup(&ctx.ssh_dir, &saved, SystemTime::now())?;
    new_pair_steps(&mut plan, spec, target)?;
    if config.new_text.is_some() {
        plan.step(
            Action::Replace,
            &config.path,
            "its IdentityFile lines naming the old key are rewritten; mode kept",
        );
    }
    for path in &remove {
        plan.step(
            Action::Remove,
            path,
            "out of the live directory; its copy stays in the backup set",
        );
    }
    for k in &old {
        let what = match k.fingerprint() {
            Some(fp) => format!(
                "{fp} ({}) recorded as retired: `keyrotate check` flags it if it comes back",
                k.path().to_string_lossy()
            ),
            None => format!(
                "{}: its key cannot be read, so it cannot be recorded",
                k.path().to_string_lossy()
            ),
        };
        plan.step(Action::Retire, &record, what);
    }
    for line in &config.lines {
        let what = match config.new_text.is_some() {
            true => "would name the new key",
            false => "would still name the old key (add --update-config to rewrite it)",
        };
        plan.step(
            Action::Config,
            &config.path,
            format!("line {}: `{}` {what}", line.line_no, line.text.trim()),
        );
    }
    plan_agent(&mut plan, args, &old);
    if old.is_empty() {
        plan.note(format!(
            "no current key of {} was found: a fresh one would be generated",
            args.generate.service
        ));
    }
    if let Some(why) = &config.not_updated {
        plan.note(why.clone());
    }
    plan.note(match old.is_empty() {
        true => passphrase_note(&args.generate),
        false => format!(
            "{}, and refused if it opens the old key",
            passphrase_note(&args.generate)
        ),
    });
    plan.print(ctx)
}

/// The agent half of the dry-run plan: which old identities it holds would go, the new one come.
fn plan_agent(plan: &mut Plan, args: &RotateArgs, old: &[OldKey]) {
    if args.no_agent {
        plan.note("ssh-agent would be left alone (--no-agent)");
        return;
    }
    let Some(socket) = keyrotate::agent::socket_from_env() else {
        plan.note(
            "no ssh-agent is running (SSH_AUTH_SOCK is not set): the new key would not be loaded",
        );
        return;
    };
    match Agent::connect(&socket).and_then(|mut agent| agent.identities()) {
        Ok(loaded) => {
            for k in old {
                let Some(info) = &k.key else { continue };
                if loaded.iter().any(|i| i.key == info.key_data) {
                    plan.step(
                        Action::AgentRemove,
                        &socket,
                        format!("remove the old key {}", info.fingerprint()),
                    );
                }
            }
        }
        Err(e) => plan.note(format!("could not ask ssh-agent which keys it holds: {e}")),
    }
    let mut add = "add the new key".to_string();
    if let Some(seconds) = args.agent_lifetime {
        let _ = write!(add, " for {seconds} seconds");
    }
    if args.apple_use_keychain {
        add.push_str(" with `ssh-add --apple-use-keychain`");
    }
    plan.step(Action::AgentAdd, &socket, add);
}

/// The service's live keys (`id_*_<service>`), or the pair at `-f`.
fn old_keys(ctx: &Context, args: &RotateArgs, target: &Path) -> Result<Vec<OldKey>> {
    let old = match &args.generate.file {
        Some(_) => service::key_at(target)?.into_iter().collect(),
        None => service::service_keys(&ctx.ssh_dir, &args.generate.service)?,
    };
    Ok(old)
}

/// Live files of the old keys that leave the live directory (the new pair takes `target`'s names).
fn removed_files(old: &[OldKey], target: &Path) -> Vec<PathBuf> {
    let public = keygen::public_path_for(target);
    old.iter()
        .flat_map(|k| k.files())
        .filter(|p| p != target && *p != public)
        .collect()
}

/// A new passphrase that meets the policy and opens none of the old keys. On a terminal a
/// refused one is asked again (three tries); from a file it is an error at once.
fn passphrase_for_rotation(
    ctx: &Context,
    args: &RotateArgs,
    spec: &KeySpec,
    target: &Path,
    old: &[OldKey],
) -> Result<(Passphrase, PassphraseCheck)> {
    let interactive = args.generate.passphrase_file.is_none();
    let limits = KdfLimits::default();
    for attempt in 1..=3 {
        let passphrase = new_passphrase(&args.generate, spec, target)?;
        let verdicts: Vec<(&OldKey, Opens)> = {
            let _spinner = Spinner::start(
                "Checking that the new passphrase does not open the old key",
                !ctx.json && !ctx.quiet,
            );
            old.iter()
                .map(|k| (k, k.opens_with(&passphrase, &limits)))
                .collect()
        };
        if let Some((opened, _)) = verdicts.iter().find(|(_, v)| *v == Opens::Yes) {
            let message = format!(
                "the new passphrase opens your old key {}: JASMIN asks for a new, different passphrase",
                sanitize(&opened.path().to_string_lossy())
            );
            if !interactive || attempt == 3 {
                return Err(keyrotate::Error::refused(
                    message,
                    "choose a passphrase you have never used before (four or more random words); \
                     nothing was changed",
                ));
            }
            output::print_note(&format!("{message}. Try another."));
            continue;
        }
        let not_checked: Vec<String> = verdicts
            .iter()
            .filter_map(|(k, v)| match v {
                Opens::NotChecked(why) => {
                    Some(format!("{}: {why}", sanitize(&k.path().to_string_lossy())))
                }
                _ => None,
            })
            .collect();
        let checked_any = verdicts.iter().any(|(_, v)| *v == Opens::No);
        let check = match (not_checked.is_empty(), checked_any) {
            (false, _) => PassphraseCheck::NotChecked(not_checked),
            (true, true) => PassphraseCheck::Different,
            (true, false) => PassphraseCheck::NothingToCheck,
        };
        return Ok((passphrase, check));
    }
    unreachable!("the loop returns on its last try")
}

/// `IdentityFile` lines of `<ssh-dir>/config` that name a key leaving the live directory.
struct ConfigPlan {
    path: PathBuf,
    lines: Vec<IdentityLine>,
    /// The rewritten file, when `--update-config` asked for it and it can be done.
    new_text: Option<String>,
    mode: u32,
    /// Why the file is not rewritten although asked (a symlink, say).
    not_updated: Option<String>,
}

impl ConfigPlan {
    fn new(ctx: &Context, args: &RotateArgs, old: &[OldKey], target: &Path) -> Result<ConfigPlan> {
        let update = args.update_config;
        let path = ctx.ssh_dir.join("config");
        let mut plan = ConfigPlan {
            path: path.clone(),
            lines: Vec::new(),
            new_text: None,
            mode: 0o600,
            not_updated: None,
        };
        let mut retiring: Vec<PathBuf> = old
            .iter()
            .filter_map(|k| k.private.clone())
            .filter(|p| p != target)
            .collect();
        // A lost key leaves its name behind in the config: the service's conventional names
        // that no longer exist count as retired too (`-f` names the lost key's own path).
        if args.generate.file.is_none() {
            let service = &args.generate.service;
            for key_type in ["rsa", "ecdsa", "ed25519", "dsa", "ecdsa_sk", "ed25519_sk"] {
                let path = ctx.ssh_dir.join(format!("id_{key_type}_{service}"));
                let gone = keyrotate::sys::fsio::stat(&path)?.is_none();
                if path != target && !retiring.contains(&path) && gone {
                    retiring.push(path);
                }
            }
        }
        let Some(meta) = keyrotate::sys::fsio::lstat(&path)? else {
            return Ok(plan);
        };
        if retiring.is_empty() {
            return Ok(plan);
        }
        // Asked to rewrite it, a config that cannot be read is an error before anything is
        // changed: exit 0 would claim a change that was not made. Otherwise it is a note.
        let cannot = |why: String| -> Result<ConfigPlan> {
            if update {
                return Err(keyrotate::Error::refused(
                    format!(
                        "cannot read {} to update its IdentityFile lines: {why}",
                        path.display()
                    ),
                    "nothing was changed; make the file readable (or move it aside), or leave out \
                     --update-config and edit its IdentityFile lines yourself after the rotation",
                ));
            }
            output::print_note(&format!(
                "could not read {} to look for the old key's name: {why}",
                path.display()
            ));
            Ok(ConfigPlan {
                path: path.clone(),
                lines: Vec::new(),
                new_text: None,
                mode: 0o600,
                not_updated: None,
            })
        };
        const MAX_CONFIG: u64 = 4 << 20;
        let (text, file_meta) = match keyrotate::sys::fsio::read_bounded_with_metadata(
            &path, MAX_CONFIG,
        ) {
            Ok((keyrotate::sys::fsio::Bounded::Bytes(bytes), file_meta)) => {
                (String::from_utf8_lossy(&bytes).into_owned(), file_meta)
            }
            Ok((keyrotate::sys::fsio::Bounded::TooLarge(len), _)) => {
                return cannot(format!(
                    "it is {len} bytes, over keyrotate's limit of {MAX_CONFIG} for an ssh config"
                ));
            }
            Ok(_) => return cannot("it is not a regular file".to_string()),
            Err(e) => return cannot(io_reason(&e)),
        };
        let home = dirs::home_dir();
        plan.lines = sshconfig::find(&text, &retiring, home.as_deref(), &ctx.ssh_dir);
        plan.mode = unix_mode(&file_meta).unwrap_or(0o600);
        if update && !plan.lines.is_empty() {
            if meta.file_type().is_symlink() {
                plan.not_updated = Some(format!(
                    "{} is a symbolic link; keyrotate does not write through links, so edit the file \
                     it points to",
                    path.display()
                ));
            } else {
                plan.new_text = Some(sshconfig::rewrite(
                    &text,
                    &plan.lines,
                    target,
                    home.as_deref(),
                ));
            }
        }
        Ok(plan)
    }
}

fn plan_change(
    ctx: &Context,
    old: &[OldKey],
    target: &Path,
    key: &NewKey,
    config: &ConfigPlan,
    now: SystemTime,
) -> Result<Change> {
    let public = keygen::public_path_for(target);
    let exists = |p: &Path| -> Result<bool> { Ok(keyrotate::sys::fsio::lstat(p)?.is_some()) };
    let mut new_files = vec![
        NewFile {
            target: target.to_path_buf(),
            bytes: Zeroizing::new(key.private_file.as_bytes().to_vec()),
            mode: 0o600,
            replace: exists(target)?,
            modified: None,
        },
        NewFile {
            target: public.clone(),
            bytes: Zeroizing::new(key.public_file.as_bytes().to_vec()),
            mode: 0o644,
            replace: exists(&public)?,
            modified: None,
        },
    ];
    if let Some(text) = &config.new_text {
        new_files.push(NewFile {
            target: config.path.clone(),
            bytes: Zeroizing::new(text.clone().into_bytes()),
            mode: config.mode,
            replace: true,
            modified: None,
        });
    }
    let remove = removed_files(old, target);
    let retire: Vec<_> = old.iter().filter_map(|k| k.retired_record(now)).collect();
    let needs_store = !old.is_empty() || config.new_text.is_some();
    let store = match needs_store {
        true => Some(Store::open_or_create(&ctx.ssh_dir)?),
        false => None,
    };
    Ok(Change {
        operation: "rotate",
        new_files,
        remove,
        retire,
        store,
    })
}

/// What happened in ssh-agent: the JSON word, and a sentence.
struct AgentOutcome {
    status: String,
    detail: String,
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

fn update_agent(args: &RotateArgs, old: &[OldKey], key: &NewKey, target: &Path) -> AgentOutcome {
    let outcome = |status: &str, detail: String| AgentOutcome {
        status: status.to_string(),
        detail,
    };
    if args.no_agent {
        return outcome("skipped", "left alone (--no-agent)".to_string());
    }
    let Some(socket) = keyrotate::agent::socket_from_env() else {
        return outcome(
            "no-agent",
            "no ssh-agent is running (SSH_AUTH_SOCK is not set); load the key later with `ssh-add`"
                .to_string(),
        );
    };
    let mut agent = match Agent::connect(&socket) {
        Ok(agent) => agent,
        Err(e) => return outcome(&format!("error: {e}"), format!("not updated: {e}")),
    };
    let mut removed = 0;
    for k in old {
        if let Some(info) = &k.key {
            match agent.remove(&info.key_data) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => return outcome(&format!("error: {e}"), format!("not updated: {e}")),
            }
        }
    }
    if args.apple_use_keychain {
        drop(agent);
        if let Err(e) = apple_keychain_add(target, args.agent_lifetime) {
            return outcome(
                &format!("error: {e}"),
                format!(
                    "the new key could not be added with the keychain option ({e}); run \
                     `ssh-add --apple-use-keychain {}`",
                    target.display()
                ),
            );
        }
    } else if let Err(e) = agent.add(&key.unencrypted, args.agent_lifetime) {
        return outcome(
            &format!("error: {e}"),
            format!("the new key could not be added ({e}); add it with `ssh-add`"),
        );
    }
    let lifetime = args
        .agent_lifetime
        .map(|s| format!(" for {s} seconds"))
        .unwrap_or_default();
    let removed = match removed {
        0 => String::new(),
        1 => "removed the old key, ".to_string(),
        n => format!("removed {n} old keys, "),
    };
    outcome("updated", format!("{removed}added the new key{lifetime}"))
}

struct Report<'a> {
    spec: &'a KeySpec,
    service: &'a str,
    reason: Option<Reason>,
    target: &'a Path,
    key: &'a NewKey,
    old: &'a [OldKey],
    backup_dir: Option<PathBuf>,
    agent: AgentOutcome,
    check: PassphraseCheck,
    config: &'a ConfigPlan,
}

fn show(path: &Path) -> String {
    sanitize(&path.to_string_lossy())
}

impl Report<'_> {
    fn print(&self, ctx: &Context) -> Result<()> {
        // Diagnostics go to stderr in every mode, even -q and --json.
        for note in self.notes() {
            output::print_note(&note);
        }
        if ctx.json {
            return self.print_json();
        }
        if !ctx.quiet {
            output::print_stdout(&self.text())?;
        }
        Ok(())
    }

    /// Things the user should know even with `-q`.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let PassphraseCheck::NotChecked(why) = &self.check {
            for w in why {
                notes.push(format!(
                    "could not check that the new passphrase differs from the old one ({w}); make \
                     sure it is one you have never used"
                ));
            }
        }
        if let Some(why) = &self.config.not_updated {
            notes.push(why.clone());
        }
        notes
    }

    fn print_json(&self) -> Result<()> {
        #[derive(serde::Serialize)]
        struct ConfigLine {
            path: String,
            line: usize,
            text: String,
            updated: bool,
        }
        #[derive(serde::Serialize)]
        struct Doc {
            private_key: String,
            public_key: String,
            fingerprint: String,
            public_key_line: String,
            backup_dir: Option<String>,
            retired: Vec<String>,
            agent: String,
            passphrase_check: String,
            config: Vec<ConfigLine>,
        }
        let doc = Doc {
            private_key: self.target.to_string_lossy().into_owned(),
            public_key: keygen::public_path_for(self.target)
                .to_string_lossy()
                .into_owned(),
            fingerprint: self.key.public.fingerprint().to_string(),
            public_key_line: self.key.public_file.trim_end().to_string(),
            backup_dir: self
                .backup_dir
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            retired: self
                .old
                .iter()
                .map(|k| k.path().to_string_lossy().into_owned())
                .collect(),
            agent: self.agent.status.clone(),
            passphrase_check: self.check.json(),
            config: self
                .config
                .lines
                .iter()
                .map(|l| ConfigLine {
                    path: self.config.path.to_string_lossy().into_owned(),
                    line: l.line_no,
                    text: l.text.clone(),
                    updated: self.config.new_text.is_some(),
                })
                .collect(),
        };
        output::print_json(&doc)?;
        Ok(())
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let public = keygen::public_path_for(self.target);
        let _ = writeln!(out, "Rotated the {} key:", sanitize(self.service));
        let _ = writeln!(
            out,
            "  new key      {} ({}, {})",
            show(self.target),
            self.spec.describe(),
            self.key.public.fingerprint()
        );
        if self.old.is_empty() {
            let _ = writeln!(out, "  old key      none found: this is a fresh key");
        }
        for k in self.old {
            let fp = k.fingerprint().unwrap_or("fingerprint unknown");
            let _ = writeln!(out, "  retired      {} ({fp})", show(k.path()));
        }
        if let Some(dir) = &self.backup_dir {
            let _ = writeln!(out, "  saved in     {} (verified)", show(dir));
        }
        let check = match &self.check {
            PassphraseCheck::Different => "differs from the old key's (checked)",
            PassphraseCheck::NothingToCheck => "new (no old encrypted key to compare with)",
            PassphraseCheck::NotChecked(_) => {
                "NOT checked against the old key (see the note above)"
            }
        };
        let _ = writeln!(out, "  passphrase   {check}");
        let _ = writeln!(out, "  ssh-agent    {}", self.agent.detail);
        for l in &self.config.lines {
            let what = match self.config.new_text.is_some() {
                true => "now names the new key",
                false => "still names the old key: change it (or run again with --update-config)",
            };
            let _ = writeln!(
                out,
                "  config       {} line {}: `{}` {what}",
                show(&self.config.path),
                l.line_no,
                sanitize(l.text.trim())
            );
        }
        out.push('\n');
        out.push_str(&self.next_steps(&public));
        out
    }

    fn next_steps(&self, public: &Path) -> String {
        let mut out = String::new();
        let line = sanitize(self.key.public_file.trim_end());
        let key = show(self.target);
        if self.service == "jasmin" {
            let _ = writeln!(out, "Now upload the new PUBLIC key to JASMIN:");
            let _ = writeln!(
                out,
                "  1. Sign in at https://accounts.jasmin.ac.uk/account/profile/ and replace your \
                 key with this whole line (it is also in {}):",
                show(public)
            );
            let _ = writeln!(out, "\n{line}\n");
            let _ = writeln!(
                out,
                "  2. Allow up to 15 minutes for the new key to take effect."
            );
            let _ = writeln!(
                out,
                "  3. Test it: ssh -i {key} <your JASMIN user name>@login-01.jasmin.ac.uk"
            );
        } else {
            let _ = writeln!(
                out,
                "Now put the new PUBLIC key where {} expects it:",
                sanitize(self.service)
            );
            let _ = writeln!(
                out,
                "  1. Add this whole line on the service's key page, or to ~/.ssh/authorized_keys on \
                 the server (it is also in {}):",
                show(public)
            );
            let _ = writeln!(out, "\n{line}\n");
            let _ = writeln!(out, "  2. Remove the old key there.");
            let _ = writeln!(out, "  3. Test it: ssh -i {key} <user>@<host>");
        }
        match self.reason {
            Some(Reason::Compromised) => {
                let _ = writeln!(
                    out,
                    "\nYour old key may be in someone else's hands: remove it from EVERY place it was \
                     authorised (authorized_keys on other servers, GitHub or GitLab, other portals), \
                     check those accounts for logins you do not recognise, and tell the service's \
                     helpdesk."
                );
            }
            Some(Reason::Lost) => {
                let _ = writeln!(
                    out,
                    "\nIf the device holding the lost key could be in someone else's hands, treat the \
                     old key as compromised: remove it everywhere it was authorised."
                );
            }
            Some(Reason::Forgotten) => {
                let _ = writeln!(
                    out,
                    "\nThe key whose passphrase you forgot is retired (a copy is kept in the backup \
                     set); never upload it again."
                );
            }
            Some(Reason::Routine) | None => {}
        }
        out
    }
}
