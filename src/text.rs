//! Text for people: the one terminal sanitiser, shell quoting for the commands keyrotate
//! suggests, and timestamps.
//!
//! The sanitiser: everything keyrotate prints that came from outside (file names,
//! key comments, agent answers, config lines, error chains) goes through [`sanitize`] first.
//!
//! Escaped as Rust writes them (`\n`, `\u{202e}`) (modelled on fd's `sanitize.rs`, widened to Unicode's invisible and
//! direction-changing characters):
//! - C0 and C1 control characters and DEL (terminal escape sequences, line breaks, tabs);
//! - bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), which can
//!   make `id_rsa<RLO>bup.` print as `id_rsa.pub`, or hide a word by running it backwards;
//! - zero-width and other invisible format characters (U+200B-U+200D, U+2060-U+2064, U+FEFF,
//!   U+00AD, U+180E, tag characters...), which make two different names look the same;
//! - line and paragraph separators (U+2028, U+2029) and every space other than the ASCII space
//!   (no-break, em, ideographic...), which can fake a line break or a column.
//!
//! Everything else (letters of every script, emoji) is printed as it is.

use std::path::Path;
use std::time::SystemTime;

/// `text`, safe to print on a terminal: see the module documentation for what is escaped.
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Would `c` change how the terminal shows the text around it, or be invisible?
pub fn needs_escape(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    matches!(
        c as u32,
        // Format characters (Unicode category Cf).
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            // Line and paragraph separators (Zl, Zp).
            | 0x2028
            | 0x2029
            // Spaces other than U+0020 (Zs), and the Hangul fillers that render as blanks.
            | 0x00A0
            | 0x1680
            | 0x2000..=0x200A
            | 0x202F
            | 0x205F
            | 0x3000
            | 0x115F
            | 0x1160
            | 0x3164
            | 0xFFA0
            // Variation selectors: invisible, and change the glyph before them.
            | 0xFE00..=0xFE0F
            | 0xE0100..=0xE01EF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_sequences_are_escaped() {
        assert_eq!(sanitize("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
        assert_eq!(sanitize("tab\there"), "tab\\there");
        assert_eq!(sanitize("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(sanitize("del\u{7f}"), "del\\u{7f}");
    }

    #[test]
    fn bidi_overrides_cannot_reorder_a_name() {
        // "id_rsa<RLO>bup." shows as "id_rsa.pub" on a terminal that honours bidi.
        assert_eq!(sanitize("id_rsa\u{202e}bup."), "id_rsa\\u{202e}bup.");
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert!(needs_escape(c), "{:x}", c as u32);
        }
    }

    #[test]
    fn invisible_and_separator_characters_are_escaped() {
        for c in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{2060}',
            '\u{feff}',
            '\u{00ad}',
            '\u{2028}',
            '\u{2029}',
            '\u{00a0}',
            '\u{3000}',
            '\u{2003}',
            '\u{e0041}',
            '\u{fe0f}',
        ] {
            assert!(needs_escape(c), "{:x}", c as u32);
            assert_eq!(
                sanitize(&format!("a{c}b")),
                format!("a\\u{{{:x}}}b", c as u32)
            );
        }
    }

    #[test]
    fn ordinary_text_of_every_script_is_kept() {
        for text in [
            "plain ünïcode",
            "alice@laptop",
            "日本語のコメント",
            "مفتاح",
            "ключ 🔑",
            "a b",
        ] {
            assert_eq!(sanitize(text), text);
        }
    }
}

/// Quote a path for a shell command line in a hint: POSIX shell quoting on Unix; on Windows,
/// double quotes around a path that needs them (cmd and PowerShell take backslashes as they are).
///
/// On Unix a name that is not UTF-8, or that holds a character [`sanitize`] would escape (a line
/// break, a bidi control...), is written in `$'...'` quoting (bash, zsh, ksh, and POSIX sh since
/// 2024) with `\xHH` for those bytes: the command then names the real file, byte for byte, and
/// passes through the sanitiser unchanged.
pub fn shell_path(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        if std::str::from_utf8(bytes).map_or(true, |t| t.chars().any(needs_escape)) {
            return dollar_quote(bytes);
        }
    }
    let text = path.to_string_lossy();
    if cfg!(windows) {
        return match text.contains([' ', '&', '(', ')', '^', '%', ';', ',', '\'']) {
            true => format!("\"{text}\""),
            false => text.into_owned(),
        };
    }
    match shlex::try_quote(&text) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => format!("'{text}'"),
    }
}

/// `$'...'` quoting of `bytes`: printable characters as they are (`'` and `\` escaped), every
/// byte of anything else as `\xHH`.
#[cfg(unix)]
fn dollar_quote(bytes: &[u8]) -> String {
    let mut out = String::from("$'");
    let hex = |out: &mut String, b: &[u8]| {
        for byte in b {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\'' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if needs_escape(c) => hex(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes()),
                c => out.push(c),
            }
        }
        hex(&mut out, chunk.invalid());
    }
    out.push('\'');
    out
}

#[cfg(all(test, unix))]
mod quote_tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names_that_are_not_utf8_are_quoted_byte_for_byte() {
        let p = Path::new(OsStr::from_bytes(b"/h/.ssh/id_\xff'x\\"));
        assert_eq!(shell_path(p), r"$'/h/.ssh/id_\xff\'x\\'");
        let p = Path::new("/h/.ssh/id\nrsa\u{202e}");
        let quoted = shell_path(p);
        assert_eq!(quoted, r"$'/h/.ssh/id\x0arsa\xe2\x80\xae'");
        assert_eq!(sanitize(&quoted), quoted);
        assert_eq!(shell_path(Path::new("/h/my keys/id")), "'/h/my keys/id'");
    }
}

/// `2026-11-21T10:15:00Z`. Times outside jiff's range (years -9999..=9999) are clamped to it,
/// so a hostile mtime can never make formatting fail.
pub fn rfc3339_utc(time: SystemTime) -> String {
    timestamp(time).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-21`, for people.
pub fn date_utc(time: SystemTime) -> String {
    timestamp(time).strftime("%Y-%m-%d").to_string()
}

fn timestamp(time: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(time).unwrap_or_else(|_| {
        if time < SystemTime::UNIX_EPOCH {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        }
    })
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_whole_seconds_in_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_255_200_500);
        assert_eq!(rfc3339_utc(t), "2026-11-21T10:00:00Z");
        assert_eq!(date_utc(t), "2026-11-21");
    }

    #[test]
    fn hostile_times_do_not_panic() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400);
        assert!(rfc3339_utc(before).starts_with("1"));
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 1000);
        assert!(!rfc3339_utc(far).is_empty());
    }
}
