//! The only module that writes files. Every write here is safe against the usual ways of losing a
//! key: new files are created exclusively (`create_new`, never following a symlink) and born
//! private (mode 0600 whatever the umask, widened afterwards only when asked to), every write is
//! fsynced together with its directory, and a live file is only ever replaced by renaming a
//! complete, fsynced temporary file over it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::layout::TEMP_PREFIX;

/// What is at `path`, without following a final symlink; `None` only when nothing is there.
/// Any other failure (EIO on a flaky NFS home, EACCES on a parent) is an error naming the path:
/// "could not look" is never "absent".
pub fn lstat(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(naming("cannot look at", path, e)),
    }
}

/// As [`lstat`], following symlinks (a dangling link is `None`).
pub fn stat(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(naming("cannot look at", path, e)),
    }
}

/// Is there a directory at `path` (following symlinks)? An error when that cannot be told.
pub fn is_dir(path: &Path) -> io::Result<bool> {
    Ok(stat(path)?.is_some_and(|m| m.is_dir()))
}

/// `e`, of the same kind, with a message that names `path`: "cannot look at PATH: reason".
pub fn naming(what: &str, path: &Path, e: io::Error) -> io::Error {
    let reason = crate::sys::io_reason(&e);
    io::Error::new(e.kind(), format!("{what} {}: {reason}", path.display()))
}

/// What a directory entry is, as the listing says (no extra syscall); `Unknown` where the
/// filesystem does not say (then `lstat` it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
    Unknown,
}

/// One entry of [`list_dir`].
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    pub path: PathBuf,
    pub kind: Kind,
}

/// Every entry of the directory `path` (not `.` and `..`), in the order the filesystem gives.
///
/// Not `std::fs::read_dir`: its `ReadDir` panics when dropped if `closedir` fails (EIO on a
/// flaky NFS home), and a panic is never an answer. Here the directory is read to its end and
/// closed by rustix, whose close errors are ignored (the listing is already complete); every
/// other error is returned (callers name the directory).
pub fn list_dir(path: &Path) -> io::Result<Vec<Entry>> {
    let named = |e: io::Error| e;
    #[cfg(unix)]
    {
        use rustix::fs::{Dir, FileType, Mode, OFlags};
        use std::os::unix::ffi::OsStrExt;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| named(e.into()))?;
        let dir = Dir::new(fd).map_err(|e| named(e.into()))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| named(e.into()))?;
            let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                FileType::Unknown => Kind::Unknown,
                _ => Kind::Other,
            };
            out.push(Entry {
                name: name.to_os_string(),
                path: path.join(name),
                kind,
            });
        }
        Ok(out)
    }
    #[cfg(not(unix))]
    {
        let mut out = Vec::new();
        for entry in fs::read_dir(path).map_err(named)? {
            let entry = entry.map_err(named)?;
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => Kind::Symlink,
                Ok(t) if t.is_file() => Kind::File,
                Ok(t) if t.is_dir() => Kind::Dir,
                Ok(_) => Kind::Other,
                Err(_) => Kind::Unknown,
            };
            out.push(Entry {
                name: entry.file_name(),
                path: entry.path(),
                kind,
            });
        }
        Ok(out)
    }
}

/// The outcome of a bounded read.
#[derive(Debug)]
pub enum Bounded {
    /// The contents, in a buffer wiped when dropped: key files can hold unencrypted keys.
    Bytes(Zeroizing<Vec<u8>>),
    /// Not a regular file (FIFO, device, socket, directory).
    NotRegular,
    /// Larger than the limit; the size found.
    TooLarge(u64),
}

/// Open for reading without blocking (a FIFO swapped in after a `stat` cannot hang us), without
/// becoming our controlling terminal.
fn open_for_reading(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    options.open(path)
}

/// Read a whole regular file of at most `max` bytes; refuse anything else without reading it.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Bounded> {
    read_bounded_with_metadata(path, max).map(|(bounded, _)| bounded)
}

/// As [`read_bounded`], also giving the metadata of what was opened (one `fstat`, no `stat`).
pub fn read_bounded_with_metadata(path: &Path, max: u64) -> io::Result<(Bounded, fs::Metadata)> {
    let file = open_for_reading(path)?;
    let meta = file.metadata()?;
    let bounded = read_open_file(file, &meta, max)?;
    Ok((bounded, meta))
}

fn read_open_file(file: File, meta: &fs::Metadata, max: u64) -> io::Result<Bounded> {
    if !meta.is_file() {
        return Ok(Bounded::NotRegular);
    }
    if meta.len() > max {
        return Ok(Bounded::TooLarge(meta.len()));
    }
    // Read the size fstat gave: a snapshot of the file, with no extra read to find its end (a
    // key file is never appended to while it is being checked). A file that reports no size
    // (some filesystems do) is read to its end, within the limit.
    let limit = if meta.len() == 0 { max + 1 } else { meta.len() };
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(limit).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Bounded::TooLarge(bytes.len() as u64));
    }
    Ok(Bounded::Bytes(bytes))
}

/// Create a directory that only its owner can enter (0700 even under an odd umask). Fails if
/// anything, including a symlink, already has that name.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    // The umask can only have removed bits; put back exactly 0700 (never wider).
    set_dir_mode_0700(path)?;
    // Windows: an access list for the owner alone, inherited by what is made inside.
    #[cfg(windows)]
    crate::sys::winacl::restrict_to_owner(path, true)?;
    Ok(())
}

/// Set a directory we own to 0700 through a handle opened without following symlinks.
pub fn set_dir_mode_0700(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)?;
        dir.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Flush a directory's entries (new names, renames, removals) to disk.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals its metadata.
        let _ = path;
        Ok(())
    }
}

/// What a new file should look like once written.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec<'a> {
    pub bytes: &'a [u8],
    /// Final permission bits. The file is born 0600 and widened to this only after it is
    /// complete (a `.pub` ends 0644); private files stay 0600 from their first instant.
    pub mode: u32,
    pub modified: Option<SystemTime>,
}

/// Create `path`, which must not exist (not even as a dangling symlink), write it completely,
/// and fsync it. On failure the half-written file is removed.
pub fn write_new_file(path: &Path, spec: FileSpec<'_>) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(path)?;
    let result = (|| {
        // Windows: a private file gets its owner-only access list while still empty.
        #[cfg(windows)]
        if spec.mode & 0o077 == 0 {
            crate::sys::winacl::restrict_to_owner(path, false)?;
        }
        file.write_all(spec.bytes)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Born 0600, unless an unusual umask removed bits. Only then, or to widen a public
            // file once it is complete, fchmod our own handle to the exact mode wanted.
            let born = file.metadata()?.permissions().mode() & 0o777;
            if born != spec.mode & 0o777 {
                file.set_permissions(fs::Permissions::from_mode(spec.mode & 0o777))?;
            }
        }
        if let Some(modified) = spec.modified {
            file.set_times(
                fs::FileTimes::new()
                    .set_modified(modified)
                    .set_accessed(modified),
            )?;
        }
        file.sync_all()
    })();
    if result.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    result
}

/// Read a file back and say whether it holds exactly `bytes`.
pub fn read_back_matches(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    match read_bounded(path, bytes.len() as u64)? {
        Bounded::Bytes(found) => Ok(found.as_slice() == bytes),
        _ => Ok(false),
    }
}

/// A name for a temporary file beside `target`, unique to this process and attempt.
pub fn temp_path_for(target: &Path) -> io::Result<PathBuf> {
    use rand_core::RngCore;
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut name = OsString::from(TEMP_PREFIX);
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(
        ".{}.{:016x}",
        std::process::id(),
        rand_core::OsRng.next_u64()
    ));
    Ok(dir.join(name))
}

/// Replace (or create) `target` atomically: write a complete temporary file in the same
/// directory, fsync it, rename it over `target`, fsync the directory. A symlink at `target` is
/// replaced, never written through. Readers see the old file or the new one, never a mixture;
/// on failure the old file is untouched and the temporary file is gone.
pub fn replace_atomically(target: &Path, spec: FileSpec<'_>) -> io::Result<()> {
    let temp = temp_path_for(target)?;
    write_new_file(&temp, spec)?;
    if let Err(e) = fs::rename(&temp, target) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(target.parent().unwrap_or(Path::new(".")))
}

/// The effective user id of this process.
#[cfg(unix)]
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_file_refuses_an_existing_name_and_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let spec = FileSpec {
            bytes: b"one",
            mode: 0o600,
            modified: None,
        };
        write_new_file(&path, spec).unwrap();
        assert!(write_new_file(&path, spec).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        #[cfg(unix)]
        {
            let victim = dir.path().join("victim");
            fs::write(&victim, b"keep").unwrap();
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            assert!(write_new_file(&link, spec).is_err());
            assert_eq!(fs::read(&victim).unwrap(), b"keep");
        }
    }

    #[cfg(unix)]
    #[test]
    fn files_get_exactly_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o644, 0o400] {
            let path = dir.path().join(format!("f{mode:o}"));
            let spec = FileSpec {
                bytes: b"x",
                mode,
                modified: None,
            };
            write_new_file(&path, spec).unwrap();
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                mode
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn replacing_a_symlink_replaces_the_link_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let spec = FileSpec {
            bytes: b"new",
            mode: 0o600,
            modified: None,
        };
        replace_atomically(&link, spec).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&link).unwrap(), b"new");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .collect();
        assert!(leftovers.is_empty());
    }
}
