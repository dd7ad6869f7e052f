//! Ctrl-C: exit 130, with the terminal restored (echo back on after a passphrase prompt) and
//! never in the middle of writing files: an interrupt that arrives inside a [`Critical`] section
//! takes effect when the section ends, when everything on disk is consistent again.
//!
//! A changing command holds its section from before its transaction until its report is
//! printed. An interrupt before the commit point makes the transaction undo itself (the library
//! asks [`pending`] just before committing); one after it waits until the work is finished (the
//! agent updated, the public key line printed). Either way the last line says which it was.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CRITICAL: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static COMMITTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
static TERMINAL: Mutex<Option<(std::fs::File, rustix::termios::Termios)>> = Mutex::new(None);
#[cfg(not(unix))]
static TERMINAL: Mutex<Option<()>> = Mutex::new(None);

pub fn install() {
    // If a handler cannot be installed, Ctrl-C simply keeps its default effect.
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        if CRITICAL.load(Ordering::SeqCst) > 0 {
            PENDING.store(true, Ordering::SeqCst);
        } else {
            exit_interrupted();
        }
    });
}

/// True once Ctrl-C has been pressed: an error seen after that is the interrupt's doing.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Has Ctrl-C been pressed inside a critical section, and not acted on yet?
pub fn pending() -> bool {
    PENDING.load(Ordering::SeqCst)
}

/// End the process as interrupted: terminal restored, exit code 130.
pub fn exit_interrupted() -> ! {
    restore_terminal();
    eprintln!("\nkeyrotate: interrupted");
    std::process::exit(130);
}

/// End a critical section's deferred interrupt, saying whether its change was made.
fn exit_deferred() -> ! {
    restore_terminal();
    if COMMITTED.load(Ordering::SeqCst) {
        eprintln!(
            "keyrotate: interrupted after the change was committed: it was finished, and what is \
             printed above is complete and true"
        );
    } else {
        eprintln!(
            "\nkeyrotate: interrupted before the change was committed: it was undone, and nothing \
             was changed"
        );
    }
    std::process::exit(130);
}

fn restore_terminal() {
    let Ok(mut saved) = TERMINAL.lock() else {
        return;
    };
    #[cfg(unix)]
    if let Some((tty, termios)) = saved.take() {
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &termios);
    }
    #[cfg(not(unix))]
    let _ = saved.take();
}

/// While alive, the terminal does not echo what is typed (newlines still show), and its previous
/// settings are restored when this is dropped or when Ctrl-C ends the process.
///
/// Echo is switched off *before* any prompt is shown, as OpenSSH's `readpassphrase` does:
/// rpassword prints its prompt first, so without this, characters typed ahead would be echoed.
pub struct QuietTerminal(());

impl QuietTerminal {
    pub fn new() -> QuietTerminal {
        #[cfg(unix)]
        if let Ok(tty) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            && let Ok(saved) = rustix::termios::tcgetattr(&tty)
            && let Ok(mut slot) = TERMINAL.lock()
        {
            use rustix::termios::{LocalModes, OptionalActions, tcsetattr};
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            quiet.local_modes.insert(LocalModes::ECHONL);
            let _ = tcsetattr(&tty, OptionalActions::Now, &quiet);
            *slot = Some((tty, saved));
        }
        QuietTerminal(())
    }
}

impl Drop for QuietTerminal {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Files are being written: an interrupt now waits until this is dropped.
pub struct Critical(());

impl Critical {
    pub fn enter() -> Critical {
        CRITICAL.fetch_add(1, Ordering::SeqCst);
        Critical(())
    }

    /// The transaction passed its commit point: an interrupt now waits for the whole report.
    pub fn committed(&self) {
        COMMITTED.store(true, Ordering::SeqCst);
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        if CRITICAL.fetch_sub(1, Ordering::SeqCst) == 1 && PENDING.load(Ordering::SeqCst) {
            exit_deferred();
        }
    }
}
