//! `keyrotate rotate`: back up, generate, swap, retire, update ssh-agent, say what to upload; as
//! one transaction that a crash at any instant cannot leave half done. The library plans the
//! rotation ([`rotate::plan`]); this file asks for the passphrase, runs the plan and reports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use keyrotate::Result;
use keyrotate::generate::{self, KeySpec, NewKey};
use keyrotate::passphrase::Passphrase;
use keyrotate::rotate::{
    self, AgentOutcome, AgentRequest, ConfigPlan, OldKey, PassphraseCheck, Rotation,
};
use keyrotate::service::Profile;
use keyrotate::text::sanitize;

use super::Context;
use super::new_key::{
    check_service_name, default_comment, explicit_file, make_key, new_passphrase, passphrase_note,
    private_detail, wanted,
};
use crate::cli::{Reason, RotateArgs};
use crate::interrupt::Critical;
use crate::output::{self, Spinner};

pub fn run(ctx: &Context, args: &RotateArgs) -> Result<ExitCode> {
    let profile = super::profiles()?.get(&args.generate.service);
    let wanted = wanted(&args.generate, &profile);
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
    let file = explicit_file(&args.generate);
    if file.is_none() {
        check_service_name(&args.generate)?;
    }
    let home = dirs::home_dir();
    let request = rotate::Request {
        ssh_dir: &ctx.ssh_dir,
        service: &args.generate.service,
        file: file.as_deref(),
        wanted: &wanted,
        default_comment: default_comment(),
        update_config: args.update_config,
        home: home.as_deref(),
        agent: match args.no_agent {
            true => AgentRequest::Skip,
            false => AgentRequest::Update {
                lifetime: args.agent_lifetime,
                apple_keychain: args.apple_use_keychain,
            },
        },
    };
    if args.generate.dry_run {
        // What the real run would do; refuses what it refuses before its passphrase prompt,
        // asks for nothing, changes nothing (ssh-agent is only asked which keys it holds).
        let now = SystemTime::now();
        let rotation = rotate::plan(&request, now)?;
        // Diagnostics go to stderr in every mode, as in the real run.
        for note in &rotation.notes {
            output::print_note(note);
        }
        let plan = rotation.dry_run(now, &private_detail(&rotation.spec))?;
        let passphrase = match rotation.old.is_empty() {
            true => passphrase_note(&args.generate),
            false => format!(
                "{}, and refused if it opens the old key or one of the service's last five retired \
                 keys",
                passphrase_note(&args.generate)
            ),
        };
        return super::plan::print(ctx, plan, vec![passphrase]);
    }
    generate::ensure_ssh_dir(&ctx.ssh_dir)?;
    let _lock = super::lock_and_recover(ctx)?;
    let mut rotation = rotate::plan(&request, SystemTime::now())?;
    for note in &rotation.notes {
        output::print_note(note);
    }
    let spec = rotation.spec.clone();
    let target = rotation.target.clone();
    let (passphrase, check) = passphrase_for_rotation(ctx, args, &spec, &target, &rotation)?;
    let key = make_key(ctx, &spec, &passphrase)?;
    drop(passphrase);

    let now = SystemTime::now();
    // From here to the end of the report, Ctrl-C either undoes the change (before the commit
    // point) or waits until the agent is updated and the report printed (after it).
    let critical = Critical::enter();
    let committed = rotation.commit(&key, now)?;
    critical.committed();
    let agent = rotation.update_agent(&key);
    let report = Report {
        spec: &spec,
        service: &args.generate.service,
        reason: args.reason,
        target: &target,
        key: &key,
        old: &rotation.old,
        backup_dir: committed.backup.as_ref().map(|s| s.dir.clone()),
        agent,
        check,
        config: &rotation.config,
        profile: &profile,
    };
    report.print(ctx)?;
    drop(critical);
    Ok(ExitCode::SUCCESS)
}

/// A new passphrase that meets the policy and opens none of the old keys (the live ones and the
/// service's last five retired ones, each also with a space or tab around the passphrase). On a
/// terminal a refused one is asked again (three tries); from a file it is an error at once.
fn passphrase_for_rotation(
    ctx: &Context,
    args: &RotateArgs,
    spec: &KeySpec,
    target: &Path,
    rotation: &Rotation,
) -> Result<(Passphrase, PassphraseCheck)> {
    let interactive = args.generate.passphrase_file.is_none();
    for attempt in 1..=3 {
        let passphrase = new_passphrase(&args.generate, spec, target)?;
        let check = {
            let _spinner = Spinner::start(
                "Checking that the new passphrase opens neither the old key nor a recently \
                 retired one",
                !ctx.json && !ctx.quiet,
            );
            rotation.check_passphrase(&passphrase, args.generate.file.is_some())
        };
        if let PassphraseCheck::OpensOld(opened) = &check {
            let path = sanitize(&opened.path.to_string_lossy());
            let message = match &opened.retired {
                None => format!(
                    "the new passphrase opens your old key {path}: JASMIN asks for a new, \
                     different passphrase"
                ),
                Some(r) => format!(
                    "the new passphrase opens your retired key {path} ({}, retired {}, its copy \
                     in backup set {}): a passphrase used before must not be used again",
                    sanitize(&r.fingerprint),
                    sanitize(&r.retired_at),
                    sanitize(&r.set)
                ),
            };
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
        return Ok((passphrase, check));
    }
    unreachable!("the loop returns on its last try")
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
    profile: &'a Profile,
}

/// `text` with its first letter upper case.
fn capitalised(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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
        for k in self.old {
            for (link, to) in &k.links {
                if !matches!(std::fs::symlink_metadata(to), Ok(m) if m.is_file()) {
                    notes.push(format!(
                        "{} was a symbolic link to {}, which is not a file (missing, or \
                         something else): there was no old key there to keep; the link is gone",
                        show(link),
                        show(to)
                    ));
                    continue;
                }
                notes.push(format!(
                    "{} was a symbolic link to {}: the link is gone, but that file still holds the \
                     retired key (a copy is in the backup set). Once the new key works, delete it: \
                     `rm -- {}`",
                    show(link),
                    show(to),
                    keyrotate::text::shell_path(to)
                ));
            }
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
            /// The old keys' certificates, taken out with them (saved in the backup set).
            retired_certificates: Vec<String>,
            agent: String,
            passphrase_check: String,
            config: Vec<ConfigLine>,
        }
        let doc = Doc {
            private_key: self.target.to_string_lossy().into_owned(),
            public_key: generate::public_path_for(self.target)
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
            retired_certificates: self
                .old
                .iter()
                .flat_map(|k| k.certificates.iter())
                .map(|p| p.to_string_lossy().into_owned())
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
        let public = generate::public_path_for(self.target);
        let _ = writeln!(out, "Rotated the {} key:", sanitize(self.service));
        let _ = writeln!(
            out,
            "  new key      {} ({}, {})",
            show(self.target),
            private_detail(self.spec),
            self.key.public.fingerprint()
        );
        if self.old.is_empty() {
            let _ = writeln!(out, "  old key      none found: this is a fresh key");
        }
        for k in self.old {
            let fp = k.fingerprint().unwrap_or("fingerprint unknown");
            let _ = writeln!(out, "  retired      {} ({fp})", show(k.path()));
            for cert in &k.certificates {
                let _ = writeln!(out, "  certificate  {} retired with its key", show(cert));
            }
        }
        if let Some(dir) = &self.backup_dir {
            let _ = writeln!(out, "  saved in     {} (verified)", show(dir));
        }
        let check = match &self.check {
            PassphraseCheck::Different => "differs from the old key's (checked)",
            PassphraseCheck::NothingToCheck => "new (no old encrypted key to compare with)",
            PassphraseCheck::NotChecked(_) | PassphraseCheck::OpensOld(_) => {
                "NOT checked against the old key (see the note above)"
            }
        };
        let _ = writeln!(out, "  passphrase   {check}");
        let _ = writeln!(out, "  ssh-agent    {}", self.agent.detail);
        for (i, l) in self.config.lines.iter().enumerate() {
            let what = match self.config.new_text.is_some() {
                true => "now names the new key".to_string(),
                false => format!(
                    "still names the old key: change it to `{}`",
                    sanitize(self.config.new_lines.get(i).map_or("", String::as_str))
                ),
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

    /// What the user does next, from the service profile: upload (where, how), or get a new
    /// certificate; the wait; the re-use rule; how to test the login; the service's notes. Every
    /// command in backquotes runs as printed.
    fn next_steps(&self, public: &Path) -> String {
        let mut out = String::new();
        let p = self.profile;
        let line = sanitize(self.key.public_file.trim_end());
        let key = keyrotate::text::shell_path(self.target);
        let name = sanitize(&p.display_name);
        let mut steps: Vec<String> = Vec::new();
        if let Some(cert) = &p.certificate {
            let _ = writeln!(
                out,
                "{name} takes no uploaded key: get a certificate for the new key instead."
            );
            steps.push(format!(
                "Run `{} --identity={key}`: it signs the new key and saves its certificate beside it.",
                sanitize(cert)
            ));
        } else {
            match &p.upload_url {
                Some(url) => {
                    let _ = writeln!(out, "Now upload the new PUBLIC key to {name}:");
                    let how = p.paste_rule.as_deref().map_or_else(
                        || "add this whole line, then remove the old key there".to_string(),
                        sanitize,
                    );
                    steps.push(format!(
                        "Sign in at {}, then {how} (it is also in {}):\n\n{line}\n",
                        sanitize(url),
                        show(public)
                    ));
                }
                None => {
                    let _ = writeln!(out, "Now put the new PUBLIC key where {name} expects it:");
                    steps.push(format!(
                        "Add this whole line on the service's key page, or to \
                         ~/.ssh/authorized_keys on the server (it is also in {}):\n\n{line}\n",
                        show(public)
                    ));
                    steps.push("Remove the old key there.".to_string());
                }
            }
            if let Some(cli) = &p.cli_upload {
                steps.push(format!(
                    "Or upload it from here: `{} {}`",
                    sanitize(cli),
                    keyrotate::text::shell_path(public)
                ));
            }
            if let Some(m) = p.wait_minutes {
                steps.push(format!(
                    "Allow up to {m} minutes for the new key to take effect."
                ));
            }
        }
        if let Some(rule) = &p.reuse {
            steps.push(format!("{}.", capitalised(&sanitize(rule))));
        }
        let test = match (&p.test_command, &p.login, &p.host) {
            (Some(cmd), _, _) => match cmd.strip_prefix("ssh ") {
                Some(rest) => format!("Test it: `ssh -i {key} {}`", sanitize(rest)),
                None => format!("Test it: `{}`", sanitize(cmd)),
            },
            (None, Some(login), _) => format!(
                "Test it: `ssh -i {key} {}`",
                sanitize(&shlex::try_quote(login).unwrap_or_default())
            ),
            (None, None, Some(host)) => format!(
                "Test it: `ssh -i {key} {}` (add -l and your {name} user name if it is not \
                 your local one)",
                sanitize(host)
            ),
            (None, None, None) => {
                format!("Test it: log in as you usually do, with -i {key} added to the ssh command")
            }
        };
        steps.push(test);
        for (i, step) in steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {step}", i + 1);
        }
        if !p.notes.is_empty() {
            let _ = writeln!(out, "\n{name}:");
            for note in &p.notes {
                let _ = writeln!(out, "  - {}", sanitize(note));
            }
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
        if self.old.iter().any(|k| !k.certificates.is_empty()) {
            let _ = writeln!(
                out,
                "\nThe old key's certificate was retired with it (a copy is in the backup set): \
                 ask your certificate authority for a new certificate for the new key (for \
                 example `clifton auth` for Isambard)."
            );
        }
        out
    }
}
