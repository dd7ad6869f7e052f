//! The system underneath: the only module that writes files ([`fsio`]), Windows access lists
//! ([`winacl`]), and small helpers for I/O errors and permission bits.

use std::fs::Metadata;
use std::io;

pub mod fsio;
#[cfg(windows)]
pub mod winacl;

/// A short, lower-case description of an I/O error, without Rust's `(os error N)` noise.
pub fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}

/// Unix permission bits, `None` where the platform has none.
pub fn unix_mode(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(meta.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// The next step for a bare I/O error, by its kind.
pub fn io_hint(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "check the owner and permissions of the file named above (`ls -l`)".to_string()
        }
        io::ErrorKind::NotFound => "check that the path named above exists".to_string(),
        _ => "check the file named above and the disk it is on, then try again".to_string(),
    }
}
