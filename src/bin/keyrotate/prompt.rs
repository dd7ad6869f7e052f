//! The binary's passphrase sources: a file (or standard input) and the terminal. The library
//! only ever sees the [`PassphraseSource`] trait.

use std::io::{self, BufRead, IsTerminal, Read};
use std::path::PathBuf;

use keyrotate::passphrase::{
    Passphrase, PassphraseError, PassphraseSource, Policy, check_strength,
};
use zeroize::Zeroizing;

use crate::interrupt::QuietTerminal;
use crate::output;

/// The first line of a file, or of standard input for `-`: without its `\n` or `\r\n`, and
/// without a UTF-8 byte order mark at its start (Windows editors write one). Nothing else is
/// taken off: whitespace around the passphrase is refused by the policy, not trimmed, because
/// ssh-keygen's prompt would keep it.
pub struct FileSource {
    pub path: PathBuf,
}

/// A passphrase longer than this is not a line someone typed.
const MAX_LINE: u64 = 64 * 1024;

impl FileSource {
    fn source_name(&self) -> String {
        match self.path.as_os_str() == "-" {
            true => "standard input".to_string(),
            false => self.path.display().to_string(),
        }
    }

    fn first_line(&self) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
        let stdin = self.path.as_os_str() == "-";
        let source_name = self.source_name();
        let read_err = |source: io::Error| PassphraseError::Read {
            source_name: source_name.clone(),
            source,
        };
        let not_a_file = |what: &'static str| PassphraseError::NotAPassphraseFile {
            source_name: source_name.clone(),
            what,
        };
        let mut line = Zeroizing::new(Vec::new());
        if stdin {
            io::stdin()
                .lock()
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .map_err(read_err)?;
        } else {
            // Opened like `cat` would: a pipe (`--passphrase-file <(pass show jasmin)`) waits
            // for its writer. Read a byte at a time, so that no unwiped buffer holds the rest
            // of the line (a few dozen read calls).
            let file = std::fs::File::open(&self.path).map_err(read_err)?;
            let meta = file.metadata().map_err(read_err)?;
            if meta.is_dir() {
                return Err(not_a_file("a directory"));
            }
            if meta.is_file() && meta.len() > MAX_LINE {
                return Err(not_a_file("too large"));
            }
            #[allow(clippy::unbuffered_bytes)] // deliberately: no buffer to wipe
            for byte in file.take(MAX_LINE).bytes() {
                let byte = byte.map_err(read_err)?;
                line.push(byte);
                if byte == b'\n' {
                    break;
                }
            }
        }
        Ok(strip_line(line))
    }
}

/// A line as read (ending in `\n` or not) without its line ending, one `\n` or `\r\n`, and
/// without a leading byte order mark. A second `\r` stays (and is refused as whitespace).
fn strip_line(mut line: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    if line.starts_with(BOM) {
        line.drain(..BOM.len());
    }
    line
}

/// U+FEFF in UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl PassphraseSource for FileSource {
    fn new_passphrase(
        &mut self,
        _for_what: &str,
        policy: &Policy,
    ) -> Result<Passphrase, PassphraseError> {
        let passphrase = Passphrase::new(self.first_line()?);
        check_strength(&passphrase, policy).map_err(|weakness| PassphraseError::WeakIn {
            source_name: self.source_name(),
            weakness,
        })?;
        Ok(passphrase)
    }
}

/// Asked on the terminal, twice, never echoed; three tries.
pub struct TerminalSource;

const TRIES: usize = 3;

fn ask(prompt: &str) -> Result<Passphrase, PassphraseError> {
    let _no_echo = QuietTerminal::new();
    let typed = match rpassword::prompt_password(prompt) {
        Ok(typed) => typed,
        // Ctrl-C interrupted the read: that is an interrupt, not a failure to read.
        Err(e) if e.kind() == io::ErrorKind::Interrupted || crate::interrupt::interrupted() => {
            crate::interrupt::exit_interrupted()
        }
        Err(source) => {
            return Err(PassphraseError::Read {
                source_name: "the terminal".to_string(),
                source,
            });
        }
    };
    Ok(Passphrase::new(Zeroizing::new(typed.into_bytes())))
}

impl PassphraseSource for TerminalSource {
    fn new_passphrase(
        &mut self,
        for_what: &str,
        policy: &Policy,
    ) -> Result<Passphrase, PassphraseError> {
        if !io::stdin().is_terminal() {
            return Err(PassphraseError::NoTerminal);
        }
        for attempt in 1..=TRIES {
            let first = ask(&format!("New passphrase for {for_what}: "))?;
            if let Err(weak) = check_strength(&first, policy) {
                if attempt == TRIES {
                    return Err(weak.into());
                }
                output::print_note(&format!("{weak}; {}. Try again.", weak.advice()));
                continue;
            }
            let second = ask("The same passphrase again: ")?;
            if first.matches(&second) {
                return Ok(first);
            }
            if attempt == TRIES {
                return Err(PassphraseError::Mismatch);
            }
            output::print_note("the two passphrases did not match. Try again.");
        }
        Err(PassphraseError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_loses_its_ending_and_a_bom_and_nothing_else() {
        let strip = |b: &[u8]| strip_line(Zeroizing::new(b.to_vec())).to_vec();
        assert_eq!(strip(b"pass phrase\n"), b"pass phrase");
        assert_eq!(strip(b"pass phrase\r\n"), b"pass phrase");
        assert_eq!(strip(b"pass phrase"), b"pass phrase");
        assert_eq!(strip(b"\xEF\xBB\xBFpass phrase\r\n"), b"pass phrase");
        // Kept, for the policy to refuse with its reason.
        assert_eq!(strip(b" pass phrase \n"), b" pass phrase ");
        assert_eq!(strip(b"pass phrase\r\r\n"), b"pass phrase\r");
        assert_eq!(strip(b"pass phrase\t\n"), b"pass phrase\t");
        // Only one mark, only at the start.
        assert_eq!(
            strip(b"\xEF\xBB\xBF\xEF\xBB\xBFpass\n"),
            b"\xEF\xBB\xBFpass"
        );
    }
}
