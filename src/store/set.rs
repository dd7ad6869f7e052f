//! Backup sets: their names (a UTC timestamp, `-2`, `-3`... when taken), their `SHA256SUMS`
//! (in `sha256sum` format, awkward names escaped as GNU does), and their verification.

use super::*;

/// The name a set made at `now` would get in `ssh_dir`'s store (for `--dry-run`): the timestamp,
/// with `-2`, `-3`... if that name is taken.
pub fn next_set_name(ssh_dir: &Path, now: SystemTime) -> io::Result<String> {
    let stamp = set_timestamp(now);
    let root = ssh_dir.join(STORE_NAME);
    for name in set_names(&stamp) {
        if fsio::lstat(&root.join(&name))?.is_none() {
            return Ok(name);
        }
    }
    Ok(stamp)
}

/// The names a set made at `stamp` may take, in order: `<stamp>`, `<stamp>-2`, `<stamp>-3`...
pub(super) fn set_names(stamp: &str) -> impl Iterator<Item = String> + '_ {
    (1..10_000u32).map(move |n| match n {
        1 => stamp.to_string(),
        n => format!("{stamp}-{n}"),
    })
}

/// `20261121T101500Z`.
pub fn set_timestamp(now: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// The digests `SHA256SUMS` lists for the finished set `name` of the store at `root`: empty
/// when the set is unfinished (marked INCOMPLETE) or has no valid list, since then nothing in
/// it counts as saved.
pub fn set_digests(root: &Path, name: &str) -> io::Result<Vec<String>> {
    if !is_set_name(name) {
        return Ok(Vec::new());
    }
    let dir = root.join(name);
    if fsio::lstat(&dir.join(INCOMPLETE_MARKER))?.is_some() {
        return Ok(Vec::new());
    }
    let info = match inspect_set(&dir) {
        Ok(info) => info,
        Err(_) => return Ok(Vec::new()),
    };
    Ok(info
        .files
        .into_iter()
        .filter(|f| f.intact())
        .filter_map(|f| f.actual_sha256)
        .collect())
}

/// Is `name` the name of a backup set (`<timestamp>` or `<timestamp>-<n>`)?
pub fn is_set_name(name: &str) -> bool {
    parse_set_name(OsStr::new(name)).is_some()
}

/// Sort key of a set name (`<timestamp>` or `<timestamp>-<n>`), `None` for other names.
pub(super) fn parse_set_name(name: &OsStr) -> Option<(String, u32)> {
    let name = name.to_str()?;
    let (stamp, n) = match name.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse::<u32>().ok().filter(|&n| n >= 2)?),
        None => (name, 1),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    shape.then(|| (stamp.to_string(), n))
}

/// One line of `SHA256SUMS`, escaped the way GNU `sha256sum` escapes awkward names.
pub(super) fn sums_line(sha256: &str, name: &OsStr) -> Vec<u8> {
    let raw = name.as_encoded_bytes();
    let needs_escape = raw.iter().any(|&b| b == b'\\' || b == b'\n' || b == b'\r');
    let mut line = Vec::new();
    if needs_escape {
        line.push(b'\\');
    }
    line.extend_from_slice(sha256.as_bytes());
    line.extend_from_slice(b"  ");
    for &b in raw {
        match (needs_escape, b) {
            (true, b'\\') => line.extend_from_slice(b"\\\\"),
            (true, b'\n') => line.extend_from_slice(b"\\n"),
            (true, b'\r') => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// Parse `SHA256SUMS`: (name, sha256) pairs, or `None` when a line is malformed.
pub(super) fn parse_sums(bytes: &[u8]) -> Option<Vec<(OsString, String)>> {
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (escaped, line) = match line.strip_prefix(b"\\") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if line.len() < 66 || !line[..64].iter().all(u8::is_ascii_hexdigit) || line[64] != b' ' {
            return None;
        }
        if line[65] != b' ' && line[65] != b'*' {
            return None;
        }
        let mut name = Vec::new();
        let mut raw = line[66..].iter();
        while let Some(&b) = raw.next() {
            if escaped && b == b'\\' {
                match raw.next() {
                    Some(b'\\') => name.push(b'\\'),
                    Some(b'n') => name.push(b'\n'),
                    Some(b'r') => name.push(b'\r'),
                    _ => return None,
                }
            } else {
                name.push(b);
            }
        }
        let sha = String::from_utf8(line[..64].to_ascii_lowercase()).ok()?;
        // Names come from our own directory listing; only valid OS strings get this far.
        let name = os_string_from_bytes(name)?;
        out.push((name, sha));
    }
    Some(out)
}

#[cfg(unix)]
pub(super) fn os_string_from_bytes(bytes: Vec<u8>) -> Option<OsString> {
    use std::os::unix::ffi::OsStringExt;
    Some(OsString::from_vec(bytes))
}

#[cfg(not(unix))]
pub(super) fn os_string_from_bytes(bytes: Vec<u8>) -> Option<OsString> {
    String::from_utf8(bytes).ok().map(OsString::from)
}

pub(super) fn remove_partial_set(dir: &Path, files: &[SourceFile]) -> io::Result<()> {
    for f in files {
        let _ = fs::remove_file(dir.join(&f.name));
    }
    let _ = fs::remove_file(dir.join(SUMS_NAME));
    fs::remove_file(dir.join(INCOMPLETE_MARKER))?;
    fs::remove_dir(dir)
}

/// The state of a set, as `--list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SetState {
    /// Every file matches `SHA256SUMS`.
    Verified,
    /// A file is missing, changed, or unlisted, or `SHA256SUMS` is unreadable.
    Damaged,
    /// Its writing was interrupted (the `INCOMPLETE` marker is still there).
    Incomplete,
}

/// One file of a set.
#[derive(Debug, Clone)]
pub struct SetFile {
    pub name: OsString,
    pub path: PathBuf,
    /// From `SHA256SUMS`.
    pub expected_sha256: Option<String>,
    /// `None` when the file could not be read.
    pub actual_sha256: Option<String>,
    pub bytes: Option<Zeroizing<Vec<u8>>>,
    pub mode: u32,
    pub modified: SystemTime,
    pub key: Option<PublicInfo>,
    pub private: bool,
}

impl SetFile {
    pub fn intact(&self) -> bool {
        self.expected_sha256.is_some() && self.expected_sha256 == self.actual_sha256
    }
}

/// A set as found on disk.
#[derive(Debug, Clone)]
pub struct SetInfo {
    pub name: String,
    pub dir: PathBuf,
    pub state: SetState,
    /// What is wrong, one sentence each (empty when verified).
    pub problems: Vec<String>,
    pub files: Vec<SetFile>,
}

impl SetInfo {
    pub fn file_names(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| f.name.to_string_lossy().into_owned())
            .collect()
    }
}

/// The whole store, as `--list` shows it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub root: PathBuf,
    /// Newest first.
    pub sets: Vec<SetInfo>,
    /// Files and directories in the store that are not sets (e.g. a manual `cp id_rsa* key_backup`).
    pub loose: Vec<PathBuf>,
}

pub(super) fn inspect_set(dir: &Path) -> Result<SetInfo> {
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut problems = Vec::new();
    let marker = dir.join(INCOMPLETE_MARKER);
    let incomplete = fsio::lstat(&marker).map_err(read_err(&marker))?.is_some();
    let listed = match fsio::read_bounded(&dir.join(SUMS_NAME), MAX_KEY_FILE_SIZE) {
        Ok(Bounded::Bytes(bytes)) => match parse_sums(&bytes) {
            Some(listed) => listed,
            None => {
                problems.push(format!("{SUMS_NAME} is malformed"));
                Vec::new()
            }
        },
        Ok(_) => {
            problems.push(format!("{SUMS_NAME} is not a regular file"));
            Vec::new()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !incomplete {
                problems.push(format!("{SUMS_NAME} is missing"));
            }
            Vec::new()
        }
        Err(e) => {
            problems.push(format!("{SUMS_NAME} cannot be read ({})", io_reason(&e)));
            Vec::new()
        }
    };
    let expected: BTreeMap<OsString, String> = listed.into_iter().collect();
    let mut present: Vec<OsString> = Vec::new();
    for entry in fsio::list_dir(dir).map_err(read_err(dir))? {
        let n = entry.name;
        if n != SUMS_NAME && n != INCOMPLETE_MARKER {
            present.push(n);
        }
    }
    for n in expected.keys() {
        if !present.contains(n) {
            problems.push(format!("{} is missing", n.to_string_lossy()));
        }
    }
    present.sort();
    let mut files = Vec::new();
    for n in present {
        let path = dir.join(&n);
        // keyrotate writes only regular files into a set: a symlink there (a hand-made set) is
        // never followed, so restore cannot copy whatever it points to into the SSH directory.
        let lmeta = fsio::lstat(&path).map_err(read_err(&path))?;
        let (bytes, reason, meta) = match lmeta {
            Some(m) if m.file_type().is_symlink() => (
                None,
                Some("is a symbolic link, not a copy".to_string()),
                None,
            ),
            _ => match fsio::read_bounded_with_metadata(&path, MAX_KEY_FILE_SIZE) {
                Ok((Bounded::Bytes(b), meta)) => (Some(b), None, Some(meta)),
                Ok(_) => (None, Some("is not a regular key file".to_string()), None),
                Err(e) => (
                    None,
                    Some(format!("cannot be read ({})", io_reason(&e))),
                    None,
                ),
            },
        };
        let actual_sha256 = bytes.as_deref().map(|b| sha256_hex(b));
        let expected_sha256 = expected.get(&n).cloned();
        let shown = n.to_string_lossy();
        if let Some(reason) = reason {
            problems.push(format!("{shown} {reason}"));
        } else if expected_sha256.is_none() {
            if !incomplete {
                problems.push(format!("{shown} is not listed in {SUMS_NAME}"));
            }
        } else if expected_sha256 != actual_sha256 {
            problems.push(format!("{shown} does not match {SUMS_NAME}"));
        }
        let (key, private) = match bytes.as_deref().map(|b| keyfile::recognise(b)) {
            Some(Recognised::Key(k)) => (k.public.clone(), k.private),
            Some(Recognised::Broken(b)) => (None, b.private != Some(false)),
            _ => (None, true),
        };
        files.push(SetFile {
            name: n,
            path,
            expected_sha256,
            actual_sha256,
            bytes,
            mode: meta.as_ref().map_or(0o600, file_mode),
            modified: meta
                .and_then(|m| m.modified().ok())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            key,
            private,
        });
    }
    let state = if incomplete {
        SetState::Incomplete
    } else if problems.is_empty() {
        SetState::Verified
    } else {
        SetState::Damaged
    };
    Ok(SetInfo {
        name,
        dir: dir.to_path_buf(),
        state,
        problems,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_sort_by_time_then_suffix() {
        let order = |s: &str| parse_set_name(OsStr::new(s));
        assert!(order("20261121T101500Z-10") > order("20261121T101500Z-2"));
        assert!(order("20261121T101500Z-2") > order("20261121T101500Z"));
        assert!(order("20261121T101501Z") > order("20261121T101500Z-99"));
        for bad in [
            "",
            "notes",
            "20261121T101500Z-1",
            "20261121T101500Z-x",
            "2026112T101500Z",
            "../x",
        ] {
            assert_eq!(order(bad), None, "{bad}");
        }
    }

    #[test]
    fn sums_lines_round_trip_awkward_names() {
        let sha = sha256_hex(b"x");
        for name in [
            "id_rsa",
            "with space",
            "back\\slash",
            "new\nline",
            "cr\rhere",
        ] {
            let line = sums_line(&sha, OsStr::new(name));
            let parsed = parse_sums(&line).expect("parses");
            assert_eq!(parsed, vec![(OsString::from(name), sha.clone())], "{name}");
        }
        assert_eq!(
            sums_line(&sha, OsStr::new("id_rsa")),
            format!("{sha}  id_rsa\n").into_bytes()
        );
        assert!(parse_sums(b"nothex  id_rsa\n").is_none());
    }

    #[test]
    fn timestamps_are_compact_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_255_200);
        assert_eq!(set_timestamp(t), "20261121T100000Z");
    }
}
