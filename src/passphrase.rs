//! Passphrases: a zeroizing type that never prints itself, the strength policy, and the source
//! trait through which the binary supplies them (the library never prompts).

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Fewest characters a new passphrase may have.
pub const MIN_CHARS: usize = 10;
/// Lowest zxcvbn score (0 to 4) a new passphrase may have.
pub const MIN_SCORE: u8 = 3;

/// What is put before and after a new passphrase when it is tried on an old key: itself, one
/// and two trailing spaces, one leading space, a trailing tab. Each form costs one KDF run per
/// old key, so the set is kept to the slips people make (README, "Passphrase rules").
pub const WHITESPACE_VARIANTS: [(&str, &str); 5] =
    [("", ""), ("", " "), ("", "  "), (" ", ""), ("", "\t")];

/// Shorter than this, a name is not checked for (a one-letter comment would refuse everything).
pub const MIN_PERSONAL_CHARS: usize = 3;

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

    /// The passphrase and the few forms an old key locked with it could have had, differing only
    /// by surrounding whitespace: [`WHITESPACE_VARIANTS`], in that order (the passphrase itself
    /// first). A new passphrase never has surrounding whitespace (it is refused), but an old one
    /// may: "the same passphrase with a space typed after it" is not a new passphrase.
    pub fn whitespace_variants(&self) -> Vec<Passphrase> {
        WHITESPACE_VARIANTS
            .iter()
            .map(|(before, after)| {
                let mut bytes = Zeroizing::new(Vec::with_capacity(self.0.len() + 2));
                bytes.extend_from_slice(before.as_bytes());
                bytes.extend_from_slice(&self.0);
                bytes.extend_from_slice(after.as_bytes());
                Passphrase(bytes)
            })
            .collect()
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
        "the passphrase {where_} with whitespace (a space, a tab, or another blank or invisible \
         character): ssh-keygen's prompt would keep it as part of the passphrase, and nobody sees \
         it when typing"
    )]
    SurroundingWhitespace { where_: Ends },
    #[error("the passphrase contains {what}, one of the first things an attacker tries")]
    ContainsPersonal { what: Personal },
    #[error(
        "the passphrase contains a byte OpenSSH's prompt cannot take (a NUL or another control \
         character, or text that is not UTF-8): the key could never be opened by typing it"
    )]
    Untypable,
}

/// Which end of a passphrase has whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    Start,
    End,
    Both,
}

impl fmt::Display for Ends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ends::Start => "starts",
            Ends::End => "ends",
            Ends::Both => "starts and ends",
        })
    }
}

/// A name a new passphrase must not contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    Comment,
    UserName,
    HostName,
}

impl fmt::Display for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Personal::Comment => "the key's comment",
            Personal::UserName => "your user name",
            Personal::HostName => "this computer's host name",
        })
    }
}

impl Weakness {
    /// What to do instead.
    pub fn advice(&self) -> &'static str {
        match self {
            Weakness::SurroundingWhitespace { .. } => {
                "remove the spaces or tabs before and after the passphrase (from the first line of \
                 the file, when it comes from one); spaces between words are fine"
            }
            Weakness::ContainsPersonal { .. } => {
                "leave names out of it: use four or more random, unrelated words (for example \
                 picked with dice from the EFF word list)"
            }
            _ => {
                "use four or more random, unrelated words (for example picked with dice from the \
                 EFF word list), which is long, strong and easy to type"
            }
        }
    }
}

/// What a new passphrase is judged against: words zxcvbn counts against it, and names it must
/// not contain at all.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Words an attacker would try first (user name, key comment, service, file name).
    pub words: Vec<String>,
    /// Names refused anywhere in the passphrase, ignoring case (shorter than
    /// [`MIN_PERSONAL_CHARS`] characters: not checked).
    pub personal: Vec<(Personal, String)>,
}

impl Policy {
    /// `words` for zxcvbn; the key comment (whole), and the user and host names of this
    /// computer (whoami) refused. The host name is refused whole and by its first label
    /// (`laptop` of `laptop.example.org`).
    pub fn for_key(words: Vec<String>, comment: &str) -> Policy {
        let mut personal = vec![(Personal::Comment, comment.to_string())];
        if let Ok(user) = whoami::username() {
            personal.push((Personal::UserName, user));
        }
        if let Ok(host) = whoami::hostname() {
            if let Some((short, _)) = host.split_once('.') {
                personal.push((Personal::HostName, short.to_string()));
            }
            personal.push((Personal::HostName, host));
        }
        Policy { words, personal }
    }
}

/// Blank to the eye: Unicode white space, and the invisible format characters that a copy
/// from a web page or a second byte-order mark bring (zero-width space, joiners, word joiner,
/// U+FEFF, soft hyphen).
fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// Does `text` begin or end with something blank (white space or an invisible character)?
fn surrounding_whitespace(text: &str) -> Option<Ends> {
    let start = text.starts_with(is_blank);
    let end = text.ends_with(is_blank);
    match (start, end) {
        (true, true) => Some(Ends::Both),
        (true, false) => Some(Ends::Start),
        (false, true) => Some(Ends::End),
        (false, false) => None,
    }
}

/// The first name of `personal` that `text` contains, ignoring case.
fn contains_personal(text: &str, personal: &[(Personal, String)]) -> Option<Personal> {
    let text = Zeroizing::new(text.to_lowercase());
    personal.iter().find_map(|(what, name)| {
        let name = name.trim().to_lowercase();
        (name.chars().count() >= MIN_PERSONAL_CHARS && text.contains(&name)).then_some(*what)
    })
}

/// Judge a new passphrase against `policy`: not empty, no whitespace at either end, typable,
/// long enough, free of the names of `policy.personal`, and strong by zxcvbn (which counts
/// `policy.words` against it). The same rules for the terminal and for files.
pub fn check_strength(passphrase: &Passphrase, policy: &Policy) -> Result<(), Weakness> {
    let bytes = passphrase.as_bytes();
    if bytes.is_empty() {
        return Err(Weakness::Empty);
    }
    // Before the control-character test: a trailing tab is better named as whitespace.
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Some(where_) = surrounding_whitespace(text)
    {
        return Err(Weakness::SurroundingWhitespace { where_ });
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
    if let Some(what) = contains_personal(&text, &policy.personal) {
        return Err(Weakness::ContainsPersonal { what });
    }
    let context: Vec<&str> = policy.words.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(&text, &context);
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
    /// `policy` is passed to [`check_strength`].
    fn new_passphrase(
        &mut self,
        for_what: &str,
        policy: &Policy,
    ) -> Result<Passphrase, PassphraseError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Passphrase {
        Passphrase::new(Zeroizing::new(s.as_bytes().to_vec()))
    }

    /// A policy with fixed names (not this computer's), as [`Policy::for_key`] builds it.
    fn policy(comment: &str, user: &str, host: &str) -> Policy {
        Policy {
            words: ["alice", "laptop", "jasmin"].map(String::from).to_vec(),
            personal: vec![
                (Personal::Comment, comment.to_string()),
                (Personal::UserName, user.to_string()),
                (Personal::HostName, host.to_string()),
            ],
        }
    }

    #[test]
    fn policy_table() {
        let ctx = policy("alice@laptop", "alice", "laptop");
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
            "jasminjasmin1",
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
        assert_eq!(
            check_strength(&p("alicejasmin1"), &ctx),
            Err(Weakness::ContainsPersonal {
                what: Personal::UserName
            })
        );
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
        let err = check_strength(&p(secret), &Policy::default()).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        let ctx = policy("work key", "alice", "laptop");
        for refused in [" correct horse battery", "alice plinth gusty oboe"] {
            let err = check_strength(&p(refused), &ctx).unwrap_err();
            assert!(!err.to_string().contains(refused.trim()), "{err}");
        }
        assert!(!format!("{:?}", p(secret)).contains(secret));
    }

    #[test]
    fn surrounding_whitespace_is_refused_whatever_the_blank() {
        let ctx = policy("work key", "alice", "laptop");
        let strong = "plinth-gusty-oboe-marrow";
        for (text, where_) in [
            (format!(" {strong}"), Ends::Start),
            (format!("{strong} "), Ends::End),
            (format!("\t{strong}"), Ends::Start),
            (format!("{strong}\t"), Ends::End),
            (format!("{strong}\u{a0}"), Ends::End),
            (format!("\u{3000}{strong}"), Ends::Start),
            (format!("\u{2003}{strong}\u{2003}"), Ends::Both),
            (format!("  {strong}  "), Ends::Both),
            ("          ".to_string(), Ends::Both),
            // Invisible: a second byte-order mark, a zero-width space from a web page.
            (format!("\u{feff}{strong}"), Ends::Start),
            (format!("{strong}\u{200b}"), Ends::End),
        ] {
            assert_eq!(
                check_strength(&p(&text), &ctx),
                Err(Weakness::SurroundingWhitespace { where_ }),
                "{text:?}"
            );
        }
        // Inside, spaces are how passphrases of words are written; a tab inside is untypable.
        assert_eq!(
            check_strength(&p("correct horse battery staple 42"), &ctx),
            Ok(())
        );
        assert_eq!(
            check_strength(&p("plinth-gusty\toboe-marrow"), &ctx),
            Err(Weakness::Untypable)
        );
        let err = Weakness::SurroundingWhitespace { where_: Ends::End };
        assert!(err.to_string().contains("ends with whitespace"), "{err}");
        assert!(err.advice().contains("remove the spaces"));
    }

    #[test]
    fn names_of_the_key_user_and_host_are_refused_ignoring_case() {
        let ctx = policy("Work Laptop 2026", "alice", "Gondolin");
        let refused = |text: &str| check_strength(&p(text), &ctx);
        assert_eq!(
            refused("plinth ALICE gusty oboe"),
            Err(Weakness::ContainsPersonal {
                what: Personal::UserName
            })
        );
        assert_eq!(
            refused("plinthgondolingustyoboe"),
            Err(Weakness::ContainsPersonal {
                what: Personal::HostName
            })
        );
        // The comment is checked whole: the whole of it refuses, one of its words does not.
        assert_eq!(
            refused("my work laptop 2026 rocks"),
            Err(Weakness::ContainsPersonal {
                what: Personal::Comment
            })
        );
        assert_eq!(refused("plinth laptop gusty oboe marrow"), Ok(()));
        let err = refused("alice plinth gusty oboe").unwrap_err();
        assert!(err.to_string().contains("your user name"), "{err}");
        assert!(err.advice().contains("leave names out"), "{err}");
        // Names under three characters are not checked: a one-letter comment or user name
        // would refuse nearly everything.
        let short = policy("x", "al", "h");
        assert_eq!(
            check_strength(&p("plinth-gusty-oboe-marrow-x"), &short),
            Ok(())
        );
        assert_eq!(
            check_strength(&p("correct horse battery al"), &short),
            Ok(())
        );
        // An empty name (no comment) refuses nothing.
        assert_eq!(
            check_strength(&p("plinth-gusty-oboe-marrow"), &policy("", "", "")),
            Ok(())
        );
    }

    #[test]
    fn for_key_refuses_this_computers_user_and_host() {
        let ctx = Policy::for_key(Vec::new(), "c");
        let user = whoami::username().unwrap();
        let host = whoami::hostname().unwrap();
        for (what, name) in [
            (Personal::UserName, user.clone()),
            (Personal::HostName, host.clone()),
        ] {
            // (A host name holding the user name is refused as the user name.)
            if name.chars().count() < MIN_PERSONAL_CHARS
                || (what == Personal::HostName
                    && host.to_lowercase().contains(&user.to_lowercase()))
            {
                continue;
            }
            let text = format!("plinth {} gusty oboe", name.to_uppercase());
            assert_eq!(
                check_strength(&p(&text), &ctx),
                Err(Weakness::ContainsPersonal { what }),
                "{what:?}"
            );
        }
    }

    #[test]
    fn whitespace_variants_are_the_documented_five() {
        let forms: Vec<Vec<u8>> = p("abc")
            .whitespace_variants()
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        let want: Vec<&[u8]> = vec![b"abc", b"abc ", b"abc  ", b" abc", b"abc\t"];
        assert_eq!(forms, want);
    }

    #[test]
    fn matching_is_exact() {
        assert!(p("abc").matches(&p("abc")));
        assert!(!p("abc").matches(&p("abd")));
        assert!(!p("abc").matches(&p("abcd")));
    }
}
