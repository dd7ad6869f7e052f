//! `keyrotate check`: inventory the SSH directory and report findings as text, `-q` lines or JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anstyle::Style;
use keyrotate::Result;
use keyrotate::check::findings::{self, Finding, Policy, Severity};
use keyrotate::check::inventory::{self, Inventory, KeyEntry, Summary};
use keyrotate::keyfile::certificate::{CertInfo, CertKind};
use keyrotate::keyfile::{Format, KeyAlgorithm};
use keyrotate::text;
use keyrotate::text::sanitize;

use super::Context;
use crate::cli::CheckArgs;
use crate::output;

pub fn run(ctx: &Context, args: &CheckArgs) -> Result<ExitCode> {
    let policy = Policy {
        max_age_days: args.max_age,
        cert_warn_days: args.cert_warn_days,
    };
    super::recover_if_needed(ctx);
    let mut inventory = inventory::scan(&ctx.ssh_dir, &policy, SystemTime::now())?;
    // `-q` (shell start-up files) asks the agent only when a retired key could be loaded.
    let agent = agent_report(&mut inventory, &policy, !ctx.quiet);
    if ctx.json {
        output::print_json(&json_report(&inventory, agent.as_ref()))?;
    } else if ctx.quiet {
        output::print_stdout(&render_quiet(&inventory))?;
    } else {
        output::print_stdout(&render_text(&inventory, agent.as_ref()))?;
    }
    Ok(if inventory.has_problems() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the running ssh-agent holds.
#[derive(serde::Serialize)]
struct AgentReport {
    socket: String,
    /// `null` when the agent could not be asked (then `error` says why).
    keys: Option<Vec<AgentKey>>,
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct AgentKey {
    fingerprint: String,
    algorithm: Option<KeyAlgorithm>,
    bits: Option<u32>,
    comment: String,
    /// The key file in the SSH directory holding the same key, if any.
    path: Option<String>,
    /// `rotate` retired this key: it should not be loaded.
    retired: bool,
    /// For an OpenSSH certificate the agent holds: the certificate (`null` for a plain key).
    certificate: Option<JsonCertificate>,
}

/// The keys ssh-agent holds (when `SSH_AUTH_SOCK` names one), and a `retired-key` finding for a
/// loaded key that `rotate` retired. Without `list`, the agent is asked only if some key was
/// retired. An agent that cannot be reached is reported, never an error.
fn agent_report(inventory: &mut Inventory, policy: &Policy, list: bool) -> Option<AgentReport> {
    let socket = keyrotate::agent::socket_from_env()?;
    let retired = inventory.retired.clone();
    if !list && retired.is_empty() {
        return None;
    }
    let timeout = std::time::Duration::from_secs(2);
    let identities = keyrotate::agent::Agent::connect_with_timeout(&socket, timeout)
        .and_then(|mut agent| agent.identities());
    let mut report = AgentReport {
        socket: path_string(&socket),
        keys: None,
        error: None,
    };
    let identities = match identities {
        Ok(identities) => identities,
        Err(e) => {
            report.error = Some(e.to_string());
            return Some(report);
        }
    };
    // A key and its certificate are one key to a retired-key finding.
    let mut key_data: Vec<ssh_key::public::KeyData> = Vec::new();
    for identity in &identities {
        if !key_data.contains(&identity.key) {
            key_data.push(identity.key.clone());
        }
    }
    inventory
        .findings
        .extend(inventory::agent_findings(&key_data, &retired));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for identity in &identities {
        let Some(cert) = &identity.certificate else {
            continue;
        };
        let location = format!("in ssh-agent (\"{}\")", identity.comment);
        let facts = findings::CertFacts {
            location: &location,
            cert,
            beside: None,
            certified_key_at: None,
            now,
        };
        inventory.findings.extend(
            findings::certificate_findings(&facts, policy)
                .into_iter()
                .map(|mut f| {
                    f.message.push_str(
                        " Take it out of ssh-agent: ssh-add -d with the certificate file, or \
                         ssh-add -D to empty the agent.",
                    );
                    f
                }),
        );
    }
    let keys = identities
        .into_iter()
        .map(|identity| {
            let info = keyrotate::keyfile::PublicInfo::new(identity.key);
            let fingerprint = info.fingerprint().to_string();
            AgentKey {
                path: inventory
                    .keys
                    .iter()
                    .find(|k| k.fingerprint.as_deref() == Some(&fingerprint))
                    .map(|k| path_string(&k.path)),
                retired: retired.iter().any(|r| r.fingerprint == fingerprint),
                certificate: identity
                    .certificate
                    .as_deref()
                    .map(|c| JsonCertificate::new(None, c)),
                algorithm: info.algorithm,
                bits: info.bits,
                comment: identity.comment,
                fingerprint,
            }
        })
        .collect();
    report.keys = Some(keys);
    Some(report)
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    ssh_dir: String,
    keys: Vec<JsonKey<'a>>,
    findings: &'a [Finding],
    summary: Summary,
    /// Left out when no agent is running (no `SSH_AUTH_SOCK`), so that the document is then
    /// exactly the contract's.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a AgentReport>,
}

#[derive(serde::Serialize)]
struct JsonKey<'a> {
    path: String,
    public_path: Option<String>,
    format: Format,
    algorithm: Option<KeyAlgorithm>,
    bits: Option<u32>,
    fingerprint: Option<&'a str>,
    comment: Option<&'a str>,
    encrypted: Option<bool>,
    kdf_rounds: Option<u32>,
    mode: Option<String>,
    modified: String,
    age_days: u64,
    certificates: Vec<JsonCertificate>,
    findings: &'a [Finding],
}

/// One OpenSSH certificate, as the contract's `certificates` entries.
#[derive(serde::Serialize)]
struct JsonCertificate {
    /// The file; `null` for a certificate in ssh-agent.
    path: Option<String>,
    #[serde(rename = "type")]
    kind: CertKind,
    key_id: String,
    serial: u64,
    principals: Vec<String>,
    valid_after: Option<String>,
    /// `null` = forever.
    valid_before: Option<String>,
    ca_fingerprint: String,
    signature_algorithm: String,
    critical_options: std::collections::BTreeMap<String, String>,
    extensions: Vec<String>,
}

impl JsonCertificate {
    fn new(path: Option<&Path>, cert: &CertInfo) -> Self {
        JsonCertificate {
            path: path.map(path_string),
            kind: cert.kind,
            key_id: cert.key_id.clone(),
            serial: cert.serial,
            principals: cert.principals.clone(),
            valid_after: cert.valid_after_time().map(text::rfc3339_utc),
            valid_before: cert.valid_before_time().map(text::rfc3339_utc),
            ca_fingerprint: cert.ca_fingerprint.clone(),
            signature_algorithm: cert.signature_algorithm.clone(),
            critical_options: cert.critical_options.clone(),
            extensions: cert.extensions.clone(),
        }
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn json_report<'a>(inventory: &'a Inventory, agent: Option<&'a AgentReport>) -> JsonReport<'a> {
    JsonReport {
        ssh_dir: path_string(&inventory.ssh_dir),
        keys: inventory
            .keys
            .iter()
            .map(|k| JsonKey {
                path: path_string(&k.path),
                public_path: k.public_path.as_deref().map(path_string),
                format: k.format,
                algorithm: k.algorithm,
                bits: k.bits,
                fingerprint: k.fingerprint.as_deref(),
                comment: k.comment.as_deref(),
                encrypted: k.encrypted(),
                kdf_rounds: k.kdf_rounds(),
                mode: k.mode.map(|m| format!("{m:04o}")),
                modified: text::rfc3339_utc(k.modified),
                age_days: k.age_days,
                certificates: k
                    .certificates
                    .iter()
                    .map(|c| JsonCertificate::new(Some(&c.path), &c.info))
                    .collect(),
                findings: &k.findings,
            })
            .collect(),
        findings: &inventory.findings,
        summary: inventory.summary(),
        agent,
    }
}

/// One line per warning or critical finding; nothing at all when healthy.
fn render_quiet(inventory: &Inventory) -> String {
    let mut out = String::new();
    let dir = display_path(&inventory.ssh_dir);
    let located = std::iter::repeat(&dir)
        .zip(&inventory.findings)
        .map(|(p, f)| (p.clone(), f))
        .chain(
            inventory
                .keys
                .iter()
                .flat_map(|k| k.findings.iter().map(move |f| (display_path(&k.path), f))),
        );
    for (path, finding) in located.filter(|(_, f)| f.severity.is_problem()) {
        let _ = writeln!(
            out,
            "{path}: {}: {}: {}",
            finding.severity.as_str(),
            finding.code,
            sanitize(&finding.message)
        );
    }
    out
}

fn display_path(path: &Path) -> String {
    sanitize(&path.to_string_lossy())
}

fn styled(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Critical => output::CRITICAL,
        Severity::Warning => output::WARNING,
        Severity::Info => output::INFO,
    }
}

fn render_findings(out: &mut String, findings: &[Finding]) {
    for finding in findings {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            styled(
                severity_style(finding.severity),
                &format!("{:<8}", finding.severity.as_str())
            ),
            finding.code,
            sanitize(&finding.message)
        );
    }
}

fn render_agent(out: &mut String, agent: &AgentReport) {
    let socket = sanitize(&agent.socket);
    let keys = match (&agent.keys, &agent.error) {
        (Some(keys), _) => keys,
        (None, error) => {
            let why = error.as_deref().unwrap_or("no answer");
            let _ = writeln!(
                out,
                "ssh-agent at {socket}: could not list its keys ({})\n",
                sanitize(why)
            );
            return;
        }
    };
    if keys.is_empty() {
        let _ = writeln!(out, "ssh-agent at {socket} holds no keys\n");
        return;
    }
    let _ = writeln!(
        out,
        "ssh-agent at {socket} holds {}:",
        plural(keys.len(), "key")
    );
    for key in keys {
        let mut line = vec![match (key.algorithm, key.bits) {
            (Some(alg), Some(bits)) => format!("{} {bits}", alg.display_name()),
            (Some(alg), None) => alg.display_name().to_string(),
            _ => "?".to_string(),
        }];
        line.push(key.fingerprint.clone());
        if !key.comment.is_empty() {
            line.push(format!("\"{}\"", sanitize(&key.comment)));
        }
        if let Some(path) = &key.path {
            line.push(styled(output::DIM, &format!("({})", sanitize(path))));
        }
        if key.retired {
            line.push(styled(output::CRITICAL, "RETIRED"));
        }
        let _ = writeln!(out, "  {}", line.join("  "));
        if let Some(cert) = &key.certificate {
            let _ = writeln!(
                out,
                "    {}",
                styled(
                    output::DIM,
                    &format!("certificate: {}", describe_json(cert))
                )
            );
        }
    }
    out.push('\n');
}

fn render_text(inventory: &Inventory, agent: Option<&AgentReport>) -> String {
    let mut out = String::new();
    if !inventory.findings.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            styled(output::PATH, &display_path(&inventory.ssh_dir))
        );
        render_findings(&mut out, &inventory.findings);
        out.push('\n');
    }
    for key in &inventory.keys {
        render_key(&mut out, key);
        out.push('\n');
    }
    if let Some(agent) = agent {
        render_agent(&mut out, agent);
    }
    let summary = inventory.summary();
    let _ = writeln!(
        out,
        "{}",
        summary_line(&summary, &inventory.ssh_dir, inventory.has_problems())
    );
    out
}

fn render_key(out: &mut String, key: &KeyEntry) {
    let mut title = styled(output::PATH, &display_path(&key.path));
    if let Some(target) = &key.symlink_target {
        let _ = write!(title, " -> {}", display_path(target));
    }
    let _ = writeln!(out, "{title}");

    let mut identity = Vec::new();
    match (key.algorithm, key.bits) {
        (Some(alg), Some(bits)) => identity.push(format!("{} {bits}", alg.display_name())),
        (Some(alg), None) => identity.push(alg.display_name().to_string()),
        _ => {}
    }
    if let Some(fp) = &key.fingerprint {
        identity.push(fp.clone());
    }
    if let Some(comment) = &key.comment {
        identity.push(format!("\"{}\"", sanitize(comment)));
    }
    if !identity.is_empty() {
        let _ = writeln!(out, "  {}", identity.join("  "));
    }

    let mut facts = vec![key.format.describe().to_string()];
    if let Some(protection) = &key.protection {
        facts.push(match key.encrypted() {
            Some(true) => format!(
                "passphrase-protected ({}, {})",
                sanitize(&protection.cipher),
                protection.kdf.describe()
            ),
            _ => "no passphrase".to_string(),
        });
    }
    if let Some(mode) = key.mode {
        facts.push(format!("mode {mode:04o}"));
    }
    facts.push(format!(
        "changed {} ({})",
        text::date_utc(key.modified),
        days_ago(key.age_days)
    ));
    let _ = writeln!(out, "  {}", styled(output::DIM, &facts.join(", ")));
    if let Some(public) = &key.public_path {
        let _ = writeln!(
            out,
            "  {}",
            styled(
                output::DIM,
                &format!("public key: {}", display_path(public))
            )
        );
    }
    for cert in &key.certificates {
        let _ = writeln!(
            out,
            "  {}",
            styled(
                output::DIM,
                &format!(
                    "certificate: {}",
                    describe_certificate(&cert.path, &cert.info)
                )
            )
        );
    }
    render_findings(out, &key.findings);
}

/// [`describe_certificate`] for the agent's certificates, kept as their JSON.
fn describe_json(cert: &JsonCertificate) -> String {
    let principals = match cert.principals.is_empty() {
        true => "no principals".to_string(),
        false => format!("principals {}", sanitize(&cert.principals.join(","))),
    };
    let validity = match (&cert.valid_after, &cert.valid_before) {
        (None, None) => "valid forever".to_string(),
        (Some(from), None) => format!("valid from {from}, forever"),
        (None, Some(to)) => format!("valid until {to}"),
        (Some(from), Some(to)) => format!("valid {from} to {to}"),
    };
    let kind = match cert.kind {
        CertKind::User => "user",
        CertKind::Host => "host",
    };
    format!(
        "{kind}, key ID \"{}\", serial {}, {principals}, {validity}, CA {} ({})",
        sanitize(&cert.key_id),
        cert.serial,
        cert.ca_fingerprint,
        sanitize(&cert.signature_algorithm)
    )
}

/// One line about a certificate file: where, then [`describe_json`].
fn describe_certificate(path: &Path, cert: &CertInfo) -> String {
    format!(
        "{}, {}",
        display_path(path),
        describe_json(&JsonCertificate::new(None, cert))
    )
}

fn days_ago(days: u64) -> String {
    match days {
        0 => "today".to_string(),
        1 => "1 day ago".to_string(),
        n => format!("{n} days ago"),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn summary_line(summary: &Summary, dir: &Path, problems: bool) -> String {
    let counts = format!(
        "{} critical, {}, {} info",
        summary.critical,
        plural(summary.warning, "warning"),
        summary.info
    );
    let verdict = if problems {
        styled(output::CRITICAL, "needs attention")
    } else {
        styled(output::GOOD, "healthy")
    };
    format!(
        "{} in {}: {counts}; {verdict}",
        plural(summary.keys, "key"),
        display_path(dir)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_counts_and_verdict() {
        let s = Summary {
            keys: 1,
            critical: 0,
            warning: 2,
            info: 1,
        };
        let line = summary_line(&s, Path::new("/h/.ssh"), true);
        assert!(
            line.starts_with("1 key in /h/.ssh: 0 critical, 2 warnings, 1 info"),
            "{line}"
        );
    }
}
