//! Ctrl-C: exit 130, with the terminal restored (echo back on after a passphrase prompt) and
//! never in the middle of writing files: an interrupt that arrives inside a [`Critical`] section
//! takes effect when the section ends, when everything on disk is consistent again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CRITICAL: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
static TERMINAL: Mutex<Option<(std::fs::File, rustix::termios::Termios)>> = Mutex::new(None);
#[cfg(not(unix))]
static TERMINAL: Mutex<Option<()>> = Mutex::new(None);

pub fn install() {
    // If a handler cannot be installed, Ctrl-C simply keeps its default effect.
    let _ = ctrlc::set_handler(|| {
        if CRITICAL.load(Ordering::SeqCst) > 0 {
            PENDING.store(true, Ordering::SeqCst);
        } else {
            exit_interrupted();
        }
    });
}

fn exit_interrupted() -> ! {
    restore_terminal();
    eprintln!("\nkeyrotate: interrupted");
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

/// While alive, remembers the terminal's settings so that an interrupt restores them.
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn save() -> TerminalGuard {
        #[cfg(unix)]
        if let Ok(tty) = std::fs::File::open("/dev/tty")
            && let Ok(termios) = rustix::termios::tcgetattr(&tty)
            && let Ok(mut saved) = TERMINAL.lock()
        {
            *saved = Some((tty, termios));
        }
        TerminalGuard
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Ok(mut saved) = TERMINAL.lock() {
            *saved = None;
        }
    }
}

/// Files are being written: an interrupt now waits until this is dropped.
pub struct Critical(());

impl Critical {
    pub fn enter() -> Critical {
        CRITICAL.fetch_add(1, Ordering::SeqCst);
        Critical(())
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        if CRITICAL.fetch_sub(1, Ordering::SeqCst) == 1 && PENDING.load(Ordering::SeqCst) {
            exit_interrupted();
        }
    }
}
