//! Output shared by the subcommands: colour choice, styles, stdout that tolerates a closed pipe,
//! and errors printed once with their `hint:` line.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

use crate::cli::ColorWhen;

pub fn set_color(when: ColorWhen) {
    // `auto` keeps anstream's own rules: a terminal, NO_COLOR, CLICOLOR_FORCE, TERM=dumb.
    match when {
        ColorWhen::Auto => {}
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
}

pub const PATH: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();
pub const CRITICAL: Style = AnsiColor::Red.on_default().bold();
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
pub const INFO: Style = AnsiColor::Cyan.on_default();
pub const GOOD: Style = AnsiColor::Green.on_default().bold();

/// Write to stdout (colour stripped where it should be); a reader that went away is not an error.
pub fn print_stdout(text: &str) -> io::Result<()> {
    write_all_to(anstream::stdout().lock(), text.as_bytes())
}

/// Write bytes that hold no colour (JSON, completion scripts, roff) to stdout as they are,
/// without the colour filter of [`print_stdout`].
pub fn print_raw(bytes: &[u8]) -> io::Result<()> {
    write_all_to(io::stdout().lock(), bytes)
}

/// A reader that went away (`keyrotate check | head`) is not an error.
fn write_all_to(mut out: impl Write, bytes: &[u8]) -> io::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A "working on it" line on stderr, shown only on a terminal and only if the work takes more
/// than a moment. It disappears when dropped.
pub struct Spinner {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    pub fn start(message: &str, enabled: bool) -> Spinner {
        use std::io::IsTerminal;
        if !enabled || !io::stderr().is_terminal() {
            return Spinner {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let message = message.to_string();
        let thread = std::thread::spawn(move || {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let tick = std::time::Duration::from_millis(120);
            // Quick work never shows a spinner.
            if stopped
                .recv_timeout(std::time::Duration::from_millis(250))
                .is_ok()
            {
                return;
            }
            let mut n = 0;
            loop {
                let _ = write!(io::stderr(), "\r{} {message}", FRAMES[n % FRAMES.len()]);
                n += 1;
                if stopped.recv_timeout(tick).is_ok() {
                    let blank = " ".repeat(message.chars().count() + 2);
                    let _ = write!(io::stderr(), "\r{blank}\r");
                    return;
                }
            }
        });
        Spinner {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A diagnostic that is not an error, on stderr.
pub fn print_note(text: &str) {
    let text = keyrotate::text::sanitize(text);
    let _ = writeln!(anstream::stderr().lock(), "note: {text}");
}

/// Write a JSON document to stdout: never coloured, so no colour filter is needed.
pub fn print_json(doc: &impl serde::Serialize) -> keyrotate::Result<()> {
    let mut text = serde_json::to_vec_pretty(doc).map_err(io::Error::from)?;
    text.push(b'\n');
    Ok(print_raw(&text)?)
}

/// `keyrotate: <what went wrong>` and one `hint:` line, on stderr.
pub fn print_error(err: &anyhow::Error) {
    let mut stderr = anstream::stderr().lock();
    let _ = writeln!(stderr, "keyrotate: {}", error_chain(err));
    let _ = writeln!(
        stderr,
        "hint: {}",
        keyrotate::text::sanitize(&hint_for(err))
    );
}

/// The error and its causes joined by `: `, with I/O errors in plain words (no `os error N`)
/// and a cause already spelled out by its parent not repeated.
fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<io::Error>() {
            Some(io) => keyrotate::sys::io_reason(io),
            None => cause.to_string(),
        };
        if !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
    }
    keyrotate::text::sanitize(&parts.join(": "))
}

/// The hint of the library's error, or a generic one for anything else (a bug if it happens).
fn hint_for(err: &anyhow::Error) -> String {
    match err.downcast_ref::<keyrotate::Error>() {
        Some(e) => e.hint(),
        None => "run `keyrotate --help` for usage".to_string(),
    }
}
