//! Passphrases: a zeroizing type that never prints itself, the strength policy, and the source
//! trait through which the binary supplies them (the library never prompts).

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Fewest characters a new passphrase may have.
pub const MIN_CHARS: usize = 10;
/// Lowest zxcvbn score (0 to 4) a new passphrase may have.
pub const MIN_SCORE: u8 = 3;

/// A passphrase. Its bytes are wiped when it is dropped, and `Debug` never shows them.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Passphrase(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison, for the "type it again" check.
    pub fn matches(&self, other: &Passphrase) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Why a new passphrase was refused. The messages never contain the passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Weakness {
    #[error("the passphrase is empty: the key would be usable by anyone who copies it")]
    Empty,
    #[error("the passphrase has only {chars} characters; it needs at least {MIN_CHARS}")]
    TooShort { chars: usize },
    #[error(
        "the passphrase is too easy to guess (strength {score} of 4; it needs {MIN_SCORE}){detail}"
    )]
    Guessable { score: u8, detail: String },
    #[error(
        "the passphrase contains a byte OpenSSH's prompt cannot take (a NUL or another control \
         character, or text that is not UTF-8): the key could never be opened by typing it"
    )]
    Untypable,
}

impl Weakness {
    /// What to do instead.
    pub fn advice(&self) -> &'static str {
        "use four or more random, unrelated words (for example picked with dice from the EFF \
         word list), which is long, strong and easy to type"
    }
}

/// Judge a new passphrase. `context` holds words an attacker would try first (user name, host
/// name, key comment, service); zxcvbn counts them against the passphrase.
pub fn check_strength(passphrase: &Passphrase, context: &[&str]) -> Result<(), Weakness> {
    let bytes = passphrase.as_bytes();
    if bytes.is_empty() {
        return Err(Weakness::Empty);
    }
    // ssh's prompts and `-P` are C strings read from a terminal: a NUL ends them, and control
    // characters are editing keys there. A key locked with one could never be opened.
    let typable = std::str::from_utf8(bytes).is_ok_and(|t| !t.chars().any(char::is_control));
    if !typable {
        return Err(Weakness::Untypable);
    }
    let text = Zeroizing::new(String::from_utf8_lossy(bytes).into_owned());
    let chars = text.chars().count();
    if chars < MIN_CHARS {
        return Err(Weakness::TooShort { chars });
    }
    let entropy = zxcvbn::zxcvbn(&text, context);
    let score = u8::from(entropy.score());
    if score < MIN_SCORE {
        let mut parts: Vec<String> = Vec::new();
        if let Some(feedback) = entropy.feedback() {
            let warning = feedback.warning().map(|w| w.to_string());
            let suggestions = feedback.suggestions().iter().map(|s| s.to_string());
            for part in warning.into_iter().chain(suggestions) {
                // zxcvbn's sentences end in full stops; ours are joined with semicolons.
                parts.push(lower_first(part.trim().trim_end_matches('.')));
            }
        }
        let detail = match parts.is_empty() {
            true => String::new(),
            false => format!(": {}", parts.join("; ")),
        };
        return Err(Weakness::Guessable { score, detail });
    }
    Ok(())
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why no passphrase could be had.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("{0}")]
    Weak(#[from] Weakness),
    #[error("there is no terminal to ask for a passphrase on, and no --passphrase-file was given")]
    NoTerminal,
    #[error("the two passphrases typed did not match")]
    Mismatch,
    #[error("cannot read the passphrase from {source_name}: {}", crate::sys::io_reason(.source))]
    Read {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the passphrase from {source_name}: it is {what}")]
    NotAPassphraseFile {
        source_name: String,
        what: &'static str,
    },
    #[error("the passphrase in {source_name} is refused: {weakness}")]
    WeakIn {
        source_name: String,
        weakness: Weakness,
    },
}

impl PassphraseError {
    pub fn hint(&self) -> String {
        match self {
            PassphraseError::Weak(w) | PassphraseError::WeakIn { weakness: w, .. } => {
                w.advice().to_string()
            }
            PassphraseError::NoTerminal => {
                "run it in a terminal, or pass `--passphrase-file PATH` (`-` reads the first line \
                 of standard input)"
                    .to_string()
            }
            PassphraseError::Mismatch => {
                "run it again and type the same passphrase twice".to_string()
            }
            PassphraseError::Read { .. } | PassphraseError::NotAPassphraseFile { .. } => {
                "check that the file named above exists and is readable, or pipe the passphrase \
                 in with `--passphrase-file -`"
                    .to_string()
            }
        }
    }
}

/// Where new passphrases come from: the terminal or a file, as the binary decides.
pub trait PassphraseSource {
    /// A new passphrase, confirmed and meeting the policy. `for_what` names the key file;
    /// `context` is passed to [`check_strength`].
    fn new_passphrase(
        &mut self,
        for_what: &str,
        context: &[&str],
    ) -> Result<Passphrase, PassphraseError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Passphrase {
        Passphrase::new(Zeroizing::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn policy_table() {
        let ctx = ["alice", "laptop", "jasmin"];
        assert_eq!(check_strength(&p(""), &ctx), Err(Weakness::Empty));
        for untypable in [
            "a brand new passphrase\0 of mine",
            "a brand new\u{1b}[A passphrase",
        ] {
            assert_eq!(
                check_strength(&p(untypable), &ctx),
                Err(Weakness::Untypable)
            );
        }
        assert_eq!(
            check_strength(&p("short1!"), &ctx),
            Err(Weakness::TooShort { chars: 7 })
        );
        // Counted in characters, not bytes.
        assert_eq!(
            check_strength(&p("ééééééééé"), &ctx),
            Err(Weakness::TooShort { chars: 9 })
        );
        for weak in [
            "password123",
            "aaaaaaaaaaaa",
            "qwertyuiop12",
            "alicejasmin1",
            "1234567890",
        ] {
            assert!(
                matches!(
                    check_strength(&p(weak), &ctx),
                    Err(Weakness::Guessable { .. })
                ),
                "{weak}"
            );
        }
        for strong in [
            "correct horse battery staple 42",
            "plinth-gusty-oboe-marrow",
            "V7#kq!2mZp@9wL",
        ] {
            assert_eq!(check_strength(&p(strong), &ctx), Ok(()), "{strong}");
        }
    }

    #[test]
    fn messages_and_debug_never_show_the_passphrase() {
        let secret = "password123";
        let err = check_strength(&p(secret), &[]).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{:?}", p(secret)).contains(secret));
    }

    #[test]
    fn matching_is_exact() {
        assert!(p("abc").matches(&p("abc")));
        assert!(!p("abc").matches(&p("abd")));
        assert!(!p("abc").matches(&p("abcd")));
    }
}
