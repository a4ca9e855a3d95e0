//! The staging directory being filled: every entry created relative to a directory
//! descriptor opened beneath its root, within the bundle's limits.

use super::beneath::{directory_flags, entry_io, open_beneath, open_directory, path_error};
use super::{corrupt_at, lossy, safe_relative, unsafe_entry, BundleError, BundleLimits};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The staging directory being filled, with what has been unpacked into it so far.
pub(super) struct Tree<'l> {
    root: OwnedFd,
    pub(super) limits: &'l BundleLimits,
    entries: u64,
    bytes: u64,
    /// Regular files unpacked so far: the only things a hard link may name.
    files: HashSet<PathBuf>,
    buffer: Vec<u8>,
}

impl<'l> Tree<'l> {
    pub(super) fn open(root: &Path, limits: &'l BundleLimits) -> Result<Self, BundleError> {
        let root = rustix::fs::open(root, directory_flags(), Mode::empty())
            .map_err(std::io::Error::from)?;
        Ok(Tree {
            root,
            limits,
            entries: 0,
            bytes: 0,
            files: HashSet::new(),
            buffer: vec![0; 64 * 1024],
        })
    }

    pub(super) fn count(&mut self, entry: &str) -> Result<(), BundleError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BundleError::TooManyEntries {
                limit: self.limits.max_entries,
                entry: entry.to_string(),
            });
        }
        Ok(())
    }

    pub(super) fn charge(&mut self, entry: &str, bytes: u64) -> Result<(), BundleError> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_bytes {
            return Err(BundleError::TooLarge {
                limit: self.limits.max_bytes,
                entry: entry.to_string(),
            });
        }
        Ok(())
    }

    /// The directory at `path` (the root when empty), made with its missing ancestors
    /// when `make` (each one counted as an entry); `how` says what the entry does with it
    /// ("is written", "links").
    fn directories(
        &mut self,
        entry: &str,
        path: &Path,
        make: bool,
        how: &str,
    ) -> Result<OwnedFd, BundleError> {
        if path.as_os_str().is_empty() {
            return Ok(self.root.try_clone()?);
        }
        let flags = directory_flags();
        if let Ok(dir) = open_beneath(self.root.as_fd(), path, flags, Mode::empty()) {
            return Ok(dir);
        }
        // Missing, or refused: one component at a time, to make it or to say why.
        let mut dir = self.root.try_clone()?;
        for component in path.components() {
            let name = component.as_os_str();
            if make {
                self.make_directory(entry, &dir, name, true)?;
            }
            dir = open_directory(entry, &dir, name, how)?;
        }
        Ok(dir)
    }

    /// Makes the directory `name` in `dir` unless it exists; one an entry's path only
    /// implies counts as an entry, so that deep paths cannot make directories unbounded.
    fn make_directory(
        &mut self,
        entry: &str,
        dir: &OwnedFd,
        name: &OsStr,
        implied: bool,
    ) -> Result<(), BundleError> {
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) if implied => self.count(entry),
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(errno) => Err(entry_io(entry, errno)),
        }
    }

    pub(super) fn directory(&mut self, entry: &str, relative: &Path) -> Result<(), BundleError> {
        let (dir, leaf) = self.parent(entry, relative)?;
        self.make_directory(entry, &dir, leaf, false)?;
        open_directory(entry, &dir, leaf, "is written").map(drop)
    }

    /// The parent directory of `relative` (made if missing) and its last component.
    fn parent<'p>(
        &mut self,
        entry: &str,
        relative: &'p Path,
    ) -> Result<(OwnedFd, &'p OsStr), BundleError> {
        let leaf = relative
            .file_name()
            .ok_or_else(|| unsafe_entry(entry, "has an empty path"))?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        Ok((self.directories(entry, parent, true, "is written")?, leaf))
    }

    pub(super) fn file(
        &mut self,
        entry: &str,
        relative: &Path,
        mode: u32,
        data: &mut dyn Read,
    ) -> Result<(), BundleError> {
        let (dir, leaf) = self.parent(entry, relative)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let private = Mode::from_raw_mode(0o600);
        let fd = match open_beneath(dir.as_fd(), Path::new(leaf), flags, private) {
            Err(Errno::EXIST) => {
                let existing = rustix::fs::statat(&dir, leaf, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|errno| entry_io(entry, errno))?;
                match FileType::from_raw_mode(existing.st_mode) {
                    FileType::RegularFile => {}
                    FileType::Symlink => {
                        return Err(unsafe_entry(entry, "is written through a symlink"))
                    }
                    FileType::Directory => {
                        return Err(unsafe_entry(entry, "is a file over a directory"))
                    }
                    _ => return Err(unsafe_entry(entry, "already exists")),
                }
                // A regular file unpacked earlier: the later one wins.
                rustix::fs::unlinkat(&dir, leaf, AtFlags::empty())
                    .map_err(|errno| entry_io(entry, errno))?;
                open_beneath(dir.as_fd(), Path::new(leaf), flags, private)
            }
            result => result,
        }
        .map_err(|errno| path_error(entry, errno, "is written"))?;
        let mut file = std::fs::File::from(fd);
        let mut buffer = std::mem::take(&mut self.buffer);
        let copied = self.copy(entry, data, &mut file, &mut buffer);
        self.buffer = buffer;
        copied?;
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o755))
            .map_err(|source| BundleError::Entry {
                entry: entry.to_string(),
                source,
            })?;
        self.files.insert(relative.to_path_buf());
        Ok(())
    }

    /// Copies `data` into `file`, counting each byte against the limit before writing it.
    fn copy(
        &mut self,
        entry: &str,
        data: &mut dyn Read,
        file: &mut std::fs::File,
        buffer: &mut [u8],
    ) -> Result<(), BundleError> {
        loop {
            let n = match data.read(buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt_at(entry, e)),
            };
            self.charge(entry, n as u64)?;
            file.write_all(&buffer[..n])
                .map_err(|source| BundleError::Entry {
                    entry: entry.to_string(),
                    source,
                })?;
        }
    }

    pub(super) fn symlink(
        &mut self,
        entry: &str,
        relative: &Path,
        target: &[u8],
    ) -> Result<(), BundleError> {
        check_link_target(entry, target)?;
        let (dir, leaf) = self.parent(entry, relative)?;
        match rustix::fs::symlinkat(OsStr::from_bytes(target), &dir, leaf) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(unsafe_entry(entry, "already exists")),
            Err(errno) => Err(entry_io(entry, errno)),
        }
    }

    pub(super) fn hard_link(
        &mut self,
        entry: &str,
        relative: &Path,
        target: &[u8],
    ) -> Result<(), BundleError> {
        check_link_target(entry, target)?;
        let shown = lossy(target);
        let source = safe_relative(Path::new(OsStr::from_bytes(target)))
            .map_err(|_| unsafe_entry(entry, format!("links outside the bundle ({shown:?})")))?;
        if !self.files.contains(&source) {
            return Err(unsafe_entry(
                entry,
                format!("is a hard link to {shown:?}, not a regular file unpacked before it"),
            ));
        }
        let source_leaf = source.file_name().expect("a normal component");
        let source_parent = source.parent().unwrap_or(Path::new(""));
        let source_dir = self.directories(entry, source_parent, false, "links")?;
        let stat = rustix::fs::statat(&source_dir, source_leaf, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|errno| entry_io(entry, errno))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(unsafe_entry(
                entry,
                format!("is a hard link to {shown:?}, which is not a regular file"),
            ));
        }
        let (dir, leaf) = self.parent(entry, relative)?;
        // No AT_SYMLINK_FOLLOW: the source itself is linked, never what it points at.
        match rustix::fs::linkat(&source_dir, source_leaf, &dir, leaf, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Err(unsafe_entry(entry, "already exists")),
            Err(errno) => return Err(entry_io(entry, errno)),
        }
        self.files.insert(relative.to_path_buf());
        Ok(())
    }
}

/// A link's target must name something: not empty, no NUL byte.
fn check_link_target(entry: &str, target: &[u8]) -> Result<(), BundleError> {
    if target.is_empty() {
        return Err(unsafe_entry(entry, "is a link without a target"));
    }
    if target.contains(&0) {
        return Err(unsafe_entry(entry, "has a NUL byte in its link target"));
    }
    Ok(())
}
