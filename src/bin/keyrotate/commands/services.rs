//! `keyrotate services`: every service profile (built-in, and from the config file), as a table or
//! one JSON document.

use std::fmt::Write as _;
use std::process::ExitCode;

use keyrotate::Result;
use keyrotate::generate::KeyFormat;
use keyrotate::service::Profile;
use keyrotate::text::sanitize;

use crate::cli::GlobalArgs;
use crate::output;

fn format_name(f: KeyFormat) -> &'static str {
    match f {
        KeyFormat::Openssh => "openssh",
        KeyFormat::Pem => "pem",
        KeyFormat::Putty => "putty",
    }
}

pub fn run(global: &GlobalArgs) -> Result<ExitCode> {
    let profiles = super::profiles()?;
    let all = profiles.all();
    if global.json {
        #[derive(serde::Serialize)]
        struct Service<'a> {
            name: &'a str,
            display_name: &'a str,
            source: &'static str,
            upload_url: Option<&'a str>,
            wait_minutes: Option<u32>,
            login: Option<&'a str>,
            key_type: Option<&'static str>,
            key_format: Option<&'static str>,
            deploy: &'a [String],
        }
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            config: Option<String>,
            services: Vec<Service<'a>>,
        }
        let doc = Doc {
            config: profiles
                .path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            services: all
                .iter()
                .map(|p| Service {
                    name: &p.name,
                    display_name: &p.display_name,
                    source: p.source.as_str(),
                    upload_url: p.upload_url.as_deref(),
                    wait_minutes: p.wait_minutes,
                    login: p.login.as_deref(),
                    key_type: p.key_type.map(|t| t.as_str()),
                    key_format: p.key_format.map(format_name),
                    deploy: &p.deploy,
                })
                .collect(),
        };
        output::print_json(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !global.quiet {
        output::print_stdout(&table(&all, profiles.path.as_deref()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn table(all: &[Profile], config: Option<&std::path::Path>) -> String {
    let rows: Vec<[String; 5]> = all
        .iter()
        .map(|p| {
            let key = match (p.key_type, p.key_format) {
                (None, None) => "-".to_string(),
                (t, f) => format!(
                    "{}{}",
                    t.map_or("rsa", |t| t.as_str()),
                    f.map(|f| format!(" {}", format_name(f)))
                        .unwrap_or_default()
                ),
            };
            let needs = match (&p.certificate, &p.upload_url) {
                (Some(c), _) => format!("new certificate: `{}`", sanitize(c)),
                (None, Some(u)) => format!("upload at {}", sanitize(u)),
                (None, None) => "add the .pub line where the service expects it".to_string(),
            };
            let wait = p
                .wait_minutes
                .map_or("-".to_string(), |m| format!("{m} min"));
            [
                sanitize(&p.name),
                p.source.as_str().to_string(),
                key,
                wait,
                format!("{}: {needs}", sanitize(&p.display_name)),
            ]
        })
        .collect();
    let head = ["NAME", "SOURCE", "KEY", "WAIT", "AFTER A ROTATION"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..4).map(width).collect();
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        for (i, c) in cells.iter().take(4).enumerate() {
            let _ = write!(out, "{c:<w$}  ", w = widths[i]);
        }
        let _ = writeln!(out, "{}", cells[4]);
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    match config {
        Some(p) => {
            let _ = writeln!(out, "\nconfig: {}", sanitize(&p.to_string_lossy()));
        }
        None => {
            let _ = writeln!(
                out,
                "\nconfig: none (profiles go in <config dir>/keyrotate/config.toml, or the file \
                 KEYROTATE_CONFIG names)"
            );
        }
    }
    out
}
