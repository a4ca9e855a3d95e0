//! Unpacking bundles (`.tar.gz`, `.zip`) into a directory, safely.
//!
//! - Nothing is ever written outside the bundle. Entry names are relative paths of normal
//!   components (`..` or an absolute path rejects the bundle), and every directory, file,
//!   symlink and hard link is created relative to a directory descriptor opened beneath the
//!   staging root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_MAGICLINKS)`: an entry whose path goes through a symlink (of this bundle,
//!   wherever it points) is refused, and so is a file entry over a symlink, so a chain of
//!   links can never redirect a write. Where `openat2` is missing (a kernel before 5.6, a
//!   seccomp filter that denies it) the same walk is made one component at a time with
//!   `openat(O_NOFOLLOW)`, which with no `..` and no absolute path is equivalent.
//! - Symlinks may point anywhere: the unpacker never follows them, and a run follows them
//!   only inside its sandbox ([`entrypoint`] refuses one that leaves the bundle). Their
//!   target is limited in length.
//! - Hard links may only name a regular file this bundle unpacked before them, which is
//!   checked again with `fstatat(AT_SYMLINK_NOFOLLOW)` before `linkat` between two
//!   directory descriptors opened as above.
//! - A name may be unpacked again only as a directory over a directory (nothing to do) or
//!   a regular file over a regular file (the later one wins, as with `tar`: the earlier is
//!   unlinked first); anything else over an existing name is refused.
//! - [`BundleLimits`] bound the entry count (with the directories an entry's path implies
//!   but the archive does not list), the bytes unpacked (counted as they are written, and
//!   the data of entries skipped: never trusted from headers) and the length of link
//!   targets. A tar's GNU long name / long link and PAX records are read by this
//!   module, not by the `tar` crate, and only once their header says they are small enough,
//!   so a hostile size is refused before a byte of it is read.
//! - File modes keep the permission bits of 0o755 (no setuid, setgid, sticky or group and
//!   other write); directories are 0o755; devices and fifos are skipped.
//!
//! Unpacking goes to a temporary sibling directory, renamed into place when complete and
//! removed otherwise. Every refusal names the entry.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What one bundle may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    /// Entries of the archive (files, directories, links, and any other member), and
    /// the directories their paths imply that the archive does not list.
    pub max_entries: u64,
    /// Bytes written, plus the data of entries skipped.
    pub max_bytes: u64,
    /// Length of a symlink's or hard link's target.
    pub max_link_bytes: u64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_entries: 20_000,
            max_bytes: 1 << 30,
            max_link_bytes: 4096,
        }
    }
}

/// The longest entry name accepted (Linux's PATH_MAX).
const MAX_NAME_BYTES: u64 = 4096;
/// A PAX extended header may be this much longer than the link target limit (it also
/// carries the path, times, ids, extended attributes).
const PAX_SLACK_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle entry {entry:?} {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("bundle has more than {limit} entries (at {entry:?})")]
    TooManyEntries { limit: u64, entry: String },
    #[error("bundle unpacks to more than {limit} bytes (at {entry:?})")]
    TooLarge { limit: u64, entry: String },
    #[error("bundle entry {entry:?} has a link target longer than {limit} bytes")]
    LinkTooLong { entry: String, limit: u64 },
    #[error("not a .tar.gz or .zip bundle")]
    UnknownFormat,
    #[error("bundle is unreadable: {0}")]
    Corrupt(String),
    #[error("bundle entry {entry:?}: {source}")]
    Entry {
        entry: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> BundleError {
    BundleError::Unsafe {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn corrupt_at(entry: &str, error: impl std::fmt::Display) -> BundleError {
    BundleError::Corrupt(format!("{error} (at {entry:?})"))
}

/// The kind of archive, from its first bytes.
fn sniff(path: &Path) -> Result<Format, BundleError> {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(path)?.read(&mut magic)?;
    match &magic[..n.min(4)] {
        [0x1f, 0x8b, ..] => Ok(Format::TarGz),
        [b'P', b'K', 3, 4] => Ok(Format::Zip),
        _ => Err(BundleError::UnknownFormat),
    }
}

enum Format {
    TarGz,
    Zip,
}

/// A relative path made only of normal components, or why not.
fn safe_relative(entry: &Path) -> Result<PathBuf, &'static str> {
    let mut clean = PathBuf::new();
    for component in entry.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("climbs out with .."),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("has an empty path");
    }
    Ok(clean)
}

/// Unpacks `archive` into `dest` (which must not exist yet), within `limits`.
pub fn unpack(archive: &Path, dest: &Path, limits: &BundleLimits) -> Result<(), BundleError> {
    let parent = dest.parent().ok_or(BundleError::UnknownFormat)?;
    let format = sniff(archive)?;
    std::fs::create_dir_all(parent)?;
    // Removed, whatever it holds, when dropped on an error.
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)?;
    {
        let mut tree = Tree::open(staging.path(), limits)?;
        match format {
            Format::TarGz => unpack_tar_gz(archive, &mut tree)?,
            Format::Zip => unpack_zip(archive, &mut tree)?,
        }
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dest) {
        let _ = std::fs::remove_dir_all(&staged);
        if !dest.exists() {
            return Err(e.into());
        } // another unpacker won the race: its copy is the same content
    }
    Ok(())
}

/// What a GNU long name / long link or a PAX header said about the next entry.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

/// Reads an extension member whose header size was checked to be small.
fn read_small(entry: &mut impl Read, size: u64, name: &str) -> Result<Vec<u8>, BundleError> {
    let mut data = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|e| corrupt_at(name, e))?;
    Ok(data)
}

/// A GNU long name or long link without its NUL terminator(s).
fn strip_nuls(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn unpack_tar_gz(archive: &Path, tree: &mut Tree) -> Result<(), BundleError> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    // Raw: the tar crate would read GNU long names / links and PAX headers of any size
    // into memory itself; here they are size-checked first.
    let entries = tar
        .entries()
        .map_err(|e| BundleError::Corrupt(e.to_string()))?
        .raw(true);
    let max_link = tree.limits.max_link_bytes;
    let mut pending = Pending::default();
    let mut last = String::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt_at(&last, e))?;
        let header = entry.header();
        let kind = header.entry_type();
        let header_name = lossy(&header.path_bytes());
        let size = header
            .entry_size()
            .map_err(|e| corrupt_at(&header_name, e))?;
        last.clone_from(&header_name);
        if kind.is_gnu_longname() {
            if size > MAX_NAME_BYTES + 1 {
                return Err(unsafe_entry(
                    &header_name,
                    format!("has a name longer than {MAX_NAME_BYTES} bytes"),
                ));
            }
            if pending.name.is_some() {
                return Err(corrupt_at(&header_name, "two long names for one entry"));
            }
            pending.name = Some(strip_nuls(read_small(&mut entry, size, &header_name)?));
            continue;
        }
        if kind.is_gnu_longlink() {
            if size > max_link.saturating_add(1) {
                let entry = pending.name.as_deref().map_or(header_name, lossy);
                return Err(BundleError::LinkTooLong {
                    entry,
                    limit: max_link,
                });
            }
            if pending.link.is_some() {
                return Err(corrupt_at(&header_name, "two long links for one entry"));
            }
            pending.link = Some(strip_nuls(read_small(&mut entry, size, &header_name)?));
            continue;
        }
        if kind.is_pax_local_extensions() {
            let limit = max_link.saturating_add(PAX_SLACK_BYTES);
            if size > limit {
                return Err(unsafe_entry(
                    &header_name,
                    format!("has an extended header longer than {limit} bytes"),
                ));
            }
            if pending.pax.is_some() {
                return Err(corrupt_at(&header_name, "two PAX headers for one entry"));
            }
            pending.pax = Some(read_small(&mut entry, size, &header_name)?);
            continue;
        }

        // A member of its own: what came before it describes it.
        let described = std::mem::take(&mut pending);
        let mut name_bytes = described.name;
        let mut link_bytes = described.link;
        let mut pax_size = None;
        if let Some(pax) = &described.pax {
            for extension in tar::PaxExtensions::new(pax) {
                let extension = extension.map_err(|e| corrupt_at(&header_name, e))?;
                match extension.key_bytes() {
                    b"path" => name_bytes = Some(extension.value_bytes().to_vec()),
                    b"linkpath" => link_bytes = Some(extension.value_bytes().to_vec()),
                    b"size" => pax_size = Some(extension.value_bytes().to_vec()),
                    _ => {}
                }
            }
        }
        let name_bytes = name_bytes.unwrap_or_else(|| header.path_bytes().into_owned());
        let name = lossy(&name_bytes);
        last.clone_from(&name);
        tree.count(&name)?;
        if name_bytes.len() as u64 > MAX_NAME_BYTES {
            return Err(unsafe_entry(
                &name,
                format!("has a name longer than {MAX_NAME_BYTES} bytes"),
            ));
        }
        if let Some(pax_size) = pax_size {
            // The tar crate reads the header's size in raw mode; a PAX size that says
            // otherwise would make this reader and others see different members.
            let said = std::str::from_utf8(&pax_size).ok();
            if said.and_then(|s| s.parse::<u64>().ok()) != Some(size) {
                return Err(unsafe_entry(
                    &name,
                    "has a PAX size that disagrees with its header",
                ));
            }
        }
        if kind.is_gnu_sparse() {
            return Err(unsafe_entry(&name, "is a sparse file (not supported)"));
        }
        if kind.is_pax_global_extensions() {
            tree.charge(&name, size)?;
            continue; // times, owners, comments: nothing the unpacker uses
        }
        if name_bytes.contains(&0) {
            return Err(unsafe_entry(&name, "has a NUL byte in its name"));
        }
        let relative = safe_relative(Path::new(OsStr::from_bytes(&name_bytes)))
            .map_err(|reason| unsafe_entry(&name, reason))?;
        if kind.is_file() || kind.is_contiguous() {
            let mode = header.mode().unwrap_or(0o644);
            tree.file(&name, &relative, mode, &mut entry)?;
            continue;
        }
        // The data of any other member is read through, never written: it counts too.
        tree.charge(&name, size)?;
        if kind.is_dir() {
            tree.directory(&name, &relative)?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let link = match link_bytes {
                Some(link) => link,
                None => header
                    .link_name_bytes()
                    .map(|link| link.into_owned())
                    .unwrap_or_default(),
            };
            if link.len() as u64 > max_link {
                return Err(BundleError::LinkTooLong {
                    entry: name,
                    limit: max_link,
                });
            }
            if kind.is_symlink() {
                tree.symlink(&name, &relative, &link)?;
            } else {
                tree.hard_link(&name, &relative, &link)?;
            }
        } // devices, fifos, volume labels: nothing a function needs
    }
    Ok(())
}

fn unpack_zip(archive: &Path, tree: &mut Tree) -> Result<(), BundleError> {
    let file = std::fs::File::open(archive)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| BundleError::Corrupt(e.to_string()))?;
    // The central directory is read already: refuse before unpacking anything.
    let limit = tree.limits.max_entries;
    if zip.len() as u64 > limit {
        let entry = zip.name_for_index(limit as usize).unwrap_or("").to_string();
        return Err(BundleError::TooManyEntries { limit, entry });
    }
    for index in 0..zip.len() {
        let mut entry = zip
            .by_index(index)
            .map_err(|e| BundleError::Corrupt(format!("{e} (entry {index})")))?;
        let name = entry.name().to_string();
        tree.count(&name)?;
        if name.contains('\0') {
            return Err(unsafe_entry(&name, "has a NUL byte in its name"));
        }
        let relative =
            safe_relative(Path::new(&name)).map_err(|reason| unsafe_entry(&name, reason))?;
        if entry.is_symlink() {
            let max_link = tree.limits.max_link_bytes;
            let mut link = Vec::new();
            (&mut entry)
                .take(max_link.saturating_add(1))
                .read_to_end(&mut link)
                .map_err(|e| corrupt_at(&name, e))?;
            if link.len() as u64 > max_link {
                return Err(BundleError::LinkTooLong {
                    entry: name,
                    limit: max_link,
                });
            }
            tree.charge(&name, link.len() as u64)?;
            tree.symlink(&name, &relative, &link)?;
        } else if entry.is_dir() {
            tree.directory(&name, &relative)?;
        } else {
            let mode = entry.unix_mode().unwrap_or(0o644);
            tree.file(&name, &relative, mode, &mut entry)?;
        }
    }
    Ok(())
}

/// `openat2` works here until it once says it does not (ENOSYS, or EPERM from a seccomp
/// filter that predates it).
static OPENAT2_WORKS: AtomicBool = AtomicBool::new(true);

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn directory_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn use_openat2() -> bool {
    #[cfg(test)]
    if tests::WITHOUT_OPENAT2.with(|without| without.get()) {
        return false;
    }
    OPENAT2_WORKS.load(Ordering::Relaxed)
}

/// Opens `path` (normal components only) beneath `base`, with no symlink anywhere on the
/// way, the last component included.
fn open_beneath(
    base: BorrowedFd,
    path: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    debug_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
    if use_openat2() {
        match rustix::fs::openat2(base, path, flags | OFlags::NOFOLLOW, mode, BENEATH) {
            Err(Errno::NOSYS | Errno::PERM) => OPENAT2_WORKS.store(false, Ordering::Relaxed),
            result => return result,
        }
    }
    // Equivalent: one normal component at a time, none followed if it is a symlink.
    let mut components = path.components();
    let last = components.next_back().ok_or(Errno::INVAL)?;
    let mut dir: Option<OwnedFd> = None;
    for component in components {
        let at = dir.as_ref().map_or(base, |d| d.as_fd());
        dir = Some(rustix::fs::openat(
            at,
            component.as_os_str(),
            directory_flags(),
            Mode::empty(),
        )?);
    }
    let at = dir.as_ref().map_or(base, |d| d.as_fd());
    rustix::fs::openat(at, last.as_os_str(), flags | OFlags::NOFOLLOW, mode)
}

/// A refusal for an entry whose path met `errno`; `how` says what the entry does
/// ("is written", "links").
fn path_error(entry: &str, errno: Errno, how: &str) -> BundleError {
    match errno {
        Errno::LOOP => unsafe_entry(entry, format!("{how} through a symlink")),
        Errno::NOTDIR => unsafe_entry(
            entry,
            format!("{how} through a file that is not a directory"),
        ),
        Errno::XDEV => unsafe_entry(entry, "would leave the bundle"),
        errno => BundleError::Entry {
            entry: entry.to_string(),
            source: errno.into(),
        },
    }
}

fn entry_io(entry: &str, errno: Errno) -> BundleError {
    BundleError::Entry {
        entry: entry.to_string(),
        source: errno.into(),
    }
}

/// The directory `name` (one component) in `dir`, refused if it is a symlink or not a
/// directory.
fn open_directory(
    entry: &str,
    dir: &OwnedFd,
    name: &OsStr,
    how: &str,
) -> Result<OwnedFd, BundleError> {
    match open_beneath(
        dir.as_fd(),
        Path::new(name),
        directory_flags(),
        Mode::empty(),
    ) {
        Ok(next) => Ok(next),
        // A symlink met with O_DIRECTORY may say either.
        Err(errno @ (Errno::LOOP | Errno::NOTDIR)) => {
            let symlink = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
            let errno = if symlink { Errno::LOOP } else { errno };
            Err(path_error(entry, errno, how))
        }
        Err(errno) => Err(path_error(entry, errno, how)),
    }
}

/// The staging directory being filled, with what has been unpacked into it so far.
struct Tree<'l> {
    root: OwnedFd,
    limits: &'l BundleLimits,
    entries: u64,
    bytes: u64,
    /// Regular files unpacked so far: the only things a hard link may name.
    files: HashSet<PathBuf>,
    buffer: Vec<u8>,
}

impl<'l> Tree<'l> {
    fn open(root: &Path, limits: &'l BundleLimits) -> Result<Self, BundleError> {
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

    fn count(&mut self, entry: &str) -> Result<(), BundleError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BundleError::TooManyEntries {
                limit: self.limits.max_entries,
                entry: entry.to_string(),
            });
        }
        Ok(())
    }

    fn charge(&mut self, entry: &str, bytes: u64) -> Result<(), BundleError> {
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

    fn directory(&mut self, entry: &str, relative: &Path) -> Result<(), BundleError> {
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

    fn file(
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

    fn symlink(&mut self, entry: &str, relative: &Path, target: &[u8]) -> Result<(), BundleError> {
        if target.is_empty() {
            return Err(unsafe_entry(entry, "is a link without a target"));
        }
        if target.contains(&0) {
            return Err(unsafe_entry(entry, "has a NUL byte in its link target"));
        }
        let (dir, leaf) = self.parent(entry, relative)?;
        match rustix::fs::symlinkat(OsStr::from_bytes(target), &dir, leaf) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(unsafe_entry(entry, "already exists")),
            Err(errno) => Err(entry_io(entry, errno)),
        }
    }

    fn hard_link(
        &mut self,
        entry: &str,
        relative: &Path,
        target: &[u8],
    ) -> Result<(), BundleError> {
        if target.is_empty() {
            return Err(unsafe_entry(entry, "is a link without a target"));
        }
        if target.contains(&0) {
            return Err(unsafe_entry(entry, "has a NUL byte in its link target"));
        }
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

/// The entrypoint inside an unpacked bundle, refused if it would leave it.
pub fn entrypoint(root: &Path, entrypoint: &str) -> Result<PathBuf, BundleError> {
    let relative =
        safe_relative(Path::new(entrypoint)).map_err(|reason| unsafe_entry(entrypoint, reason))?;
    let path = root.join(relative);
    let resolved = path.canonicalize()?;
    if !resolved.starts_with(root.canonicalize()?) {
        return Err(unsafe_entry(entrypoint, "resolves outside the bundle"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use tar::EntryType;

    thread_local! {
        /// Set by a test to make this thread's unpacking take the `openat` walk.
        pub(super) static WITHOUT_OPENAT2: Cell<bool> = const { Cell::new(false) };
    }

    /// One raw tar header, so that hostile names can be written (the tar builder refuses
    /// them).
    fn header(name: &str, kind: EntryType, size: u64, link: Option<&str>) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o755);
        if let Some(link) = link {
            let link = link.as_bytes();
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        header
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A .tar.gz of raw headers and their data.
    fn tar_gz(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            builder
                .append(&header(name, *kind, data.len() as u64, *link), *data)
                .unwrap();
        }
        gz(&builder.into_inner().unwrap())
    }

    /// A gzip file of `head`, `zero_mib` MiB of zeros, then `tail`, written in
    /// milliseconds: one MiB of zeros is compressed once and its deflate blocks repeated
    /// (blocks that refer only to their own bytes may follow any others).
    fn gzip_with_zeros(path: &Path, head: &[u8], zero_mib: u64, tail: &[u8]) {
        use flate2::FlushCompress;
        fn deflate(data: &[u8], flush: FlushCompress) -> Vec<u8> {
            let mut compress = flate2::Compress::new(flate2::Compression::fast(), false);
            let mut out = Vec::with_capacity(data.len() + 1024);
            compress.compress_vec(data, &mut out, flush).unwrap();
            assert_eq!(compress.total_in(), data.len() as u64);
            out
        }
        let chunk = vec![0u8; 1 << 20];
        let zeros = deflate(&chunk, FlushCompress::Sync);
        let mut chunk_crc = flate2::Crc::new();
        chunk_crc.update(&chunk);
        let mut crc = flate2::Crc::new();
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        file.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])
            .unwrap();
        file.write_all(&deflate(head, FlushCompress::Sync)).unwrap();
        crc.update(head);
        for _ in 0..zero_mib {
            file.write_all(&zeros).unwrap();
            crc.combine(&chunk_crc);
        }
        file.write_all(&deflate(tail, FlushCompress::Sync)).unwrap();
        crc.update(tail);
        file.write_all(&deflate(&[], FlushCompress::Finish))
            .unwrap();
        file.write_all(&crc.sum().to_le_bytes()).unwrap();
        file.write_all(&crc.amount().to_le_bytes()).unwrap();
        file.flush().unwrap();
    }

    fn unpack_in(dir: &Path, limits: &BundleLimits) -> Result<(), BundleError> {
        unpack(&dir.join("bundle"), &dir.join("cache").join("out"), limits)
    }

    fn try_unpack_with(
        bytes: &[u8],
        limits: &BundleLimits,
    ) -> (tempfile::TempDir, Result<(), BundleError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle"), bytes).unwrap();
        let result = unpack_in(dir.path(), limits);
        (dir, result)
    }

    fn try_unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<(), BundleError>) {
        try_unpack_with(bytes, &BundleLimits::default())
    }

    /// The unpack failed with a message containing each of `parts`.
    #[track_caller]
    fn assert_refused(result: &Result<(), BundleError>, parts: &[&str]) {
        let message = match result {
            Ok(()) => panic!("unpacked; expected a refusal saying {parts:?}"),
            Err(e) => e.to_string(),
        };
        for part in parts {
            assert!(message.contains(part), "{message:?} does not say {part:?}");
        }
    }

    /// Neither the destination nor a staging directory is left beside it.
    #[track_caller]
    fn assert_nothing_left(dir: &Path) {
        assert!(
            !dir.join("cache/out").exists(),
            "a refused bundle left output"
        );
        let staging: Vec<_> = std::fs::read_dir(dir.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(staging.is_empty(), "left behind: {staging:?}");
    }

    /// The most memory this process has held (VmHWM).
    fn peak_memory_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// `a1/a2/…/a12`
    fn deep() -> String {
        (1..=12)
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn a_good_tar_gz_unpacks_with_its_modes_and_links() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: EntryType, mode: u32, data: &[u8], link: Option<&str>| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            match link {
                Some(link) => builder.append_link(&mut header, path, link).unwrap(),
                None => builder.append_data(&mut header, path, data).unwrap(),
            }
        };
        add("app/", EntryType::Directory, 0o755, b"", None);
        // Setuid dropped, the executable bits kept, parents made as needed.
        let script = b"#!/bin/sh\necho hi\n";
        add("app/bin/run.sh", EntryType::Regular, 0o4775, script, None);
        add(
            "app/lib/x/y/data.txt",
            EntryType::Regular,
            0o666,
            b"data",
            None,
        );
        add(
            "app/bin/alias",
            EntryType::Symlink,
            0o777,
            b"",
            Some("run.sh"),
        );
        add(
            "app/bin/again",
            EntryType::Link,
            0o755,
            b"",
            Some("app/bin/run.sh"),
        );
        // A symlink pointing out is kept as a link, never followed by the unpacker.
        add("app/etc", EntryType::Symlink, 0o777, b"", Some("/etc"));
        add("app/up", EntryType::Symlink, 0o777, b"", Some("../../.."));
        // The same file twice: the later one wins.
        add("app/twice.txt", EntryType::Regular, 0o644, b"one", None);
        add("app/twice.txt", EntryType::Regular, 0o644, b"two", None);
        add("app/./bin/", EntryType::Directory, 0o755, b"", None);
        let bytes = gz(&builder.into_inner().unwrap());
        let (dir, result) = try_unpack(&bytes);
        result.unwrap();
        let out = dir.path().join("cache/out");
        let run = out.join("app/bin/run.sh");
        assert_eq!(std::fs::read(&run).unwrap(), script);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode(&run) & 0o7777, 0o755);
        let data = out.join("app/lib/x/y/data.txt");
        assert_eq!(std::fs::read(&data).unwrap(), b"data");
        assert_eq!(mode(&data) & 0o7777, 0o644);
        assert_eq!(
            std::fs::read_link(out.join("app/bin/alias")).unwrap(),
            Path::new("run.sh")
        );
        let again = std::fs::metadata(out.join("app/bin/again")).unwrap();
        assert_eq!(again.ino(), std::fs::metadata(&run).unwrap().ino());
        assert_eq!(
            std::fs::read_link(out.join("app/etc")).unwrap(),
            Path::new("/etc")
        );
        assert_eq!(
            std::fs::read_to_string(out.join("app/twice.txt")).unwrap(),
            "two"
        );
        assert!(entrypoint(&out, "app/bin/alias").is_ok());
        assert!(entrypoint(&out, "app/etc/passwd").is_err());
        assert!(entrypoint(&out, "app/up/etc/passwd").is_err());
        assert!(entrypoint(&out, "../out/app/bin/run.sh").is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["out"]);
    }

    #[test]
    fn hostile_tar_entries_reject_the_bundle_and_write_nothing_outside() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar_gz(&[("../escape.txt", EntryType::Regular, b"x", None)]),
                "bundle entry \"../escape.txt\" climbs out with ..",
            ),
            (
                tar_gz(&[(
                    "/tmp/jobcenter-abs-escape.txt",
                    EntryType::Regular,
                    b"x",
                    None,
                )]),
                "is an absolute path",
            ),
            (
                tar_gz(&[
                    ("ok", EntryType::Symlink, b"", Some(".")),
                    ("ok/../../escape.txt", EntryType::Regular, b"x", None),
                ]),
                "climbs out with ..",
            ),
            (
                tar_gz(&[
                    ("dir", EntryType::Symlink, b"", Some("sub")),
                    ("dir/file", EntryType::Regular, b"x", None),
                ]),
                "bundle entry \"dir/file\" is written through a symlink",
            ),
            (
                tar_gz(&[("hard", EntryType::Link, b"", Some("../outside"))]),
                "bundle entry \"hard\"",
            ),
        ];
        for (i, (bytes, says)) in cases.iter().enumerate() {
            let (dir, result) = try_unpack(bytes);
            assert!(
                matches!(result, Err(BundleError::Unsafe { .. })),
                "case {i}: {result:?}"
            );
            assert_refused(&result, &[says]);
            assert!(!dir.path().join("escape.txt").exists(), "case {i}");
            assert_nothing_left(dir.path());
        }
        assert!(!Path::new("/tmp/jobcenter-abs-escape.txt").exists());
    }

    /// The zip of the issue: `a1/…/a12/up` → the bundle's root, `f` → through it to a
    /// directory beside the cache, then a file entry `./f`. Written through `f`, the file
    /// would land in `outside/etc/cron.d/x`.
    fn zip_symlink_chain_writes_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let cron = dir.path().join("outside/etc/cron.d");
        std::fs::create_dir_all(&cron).unwrap();
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        let deep = deep();
        zip.add_symlink(format!("{deep}/up"), "../".repeat(12), options)
            .unwrap();
        let escape = format!("{deep}/up/../../outside/etc/cron.d/x");
        zip.add_symlink("f", &escape, options).unwrap();
        zip.start_file("./f", options.unix_permissions(0o644))
            .unwrap();
        zip.write_all(b"* * * * * root touch /pwned\n").unwrap();
        std::fs::write(
            dir.path().join("bundle"),
            zip.finish().unwrap().into_inner(),
        )
        .unwrap();
        let result = unpack_in(dir.path(), &BundleLimits::default());
        assert!(!cron.join("x").exists(), "written through the chain");
        assert_refused(
            &result,
            &["bundle entry \"./f\" is written through a symlink"],
        );
        assert_nothing_left(dir.path());

        // The same chain used as a directory on the way.
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.add_symlink(format!("{deep}/up"), "../".repeat(12), options)
            .unwrap();
        zip.add_symlink("d", format!("{deep}/up/../../outside/etc/cron.d"), options)
            .unwrap();
        zip.start_file("d/x", options).unwrap();
        zip.write_all(b"* * * * * root touch /pwned\n").unwrap();
        std::fs::write(
            dir.path().join("bundle"),
            zip.finish().unwrap().into_inner(),
        )
        .unwrap();
        let result = unpack_in(dir.path(), &BundleLimits::default());
        assert!(!cron.join("x").exists(), "written through the chain");
        assert_refused(
            &result,
            &["bundle entry \"d/x\" is written through a symlink"],
        );
        assert_nothing_left(dir.path());
    }

    #[test]
    fn a_zip_symlink_chain_cannot_write_outside() {
        zip_symlink_chain_writes_nothing_outside();
    }

    #[test]
    fn without_openat2_the_same_rules_hold() {
        WITHOUT_OPENAT2.with(|without| without.set(true));
        zip_symlink_chain_writes_nothing_outside();
        let (_, result) = try_unpack(&tar_gz(&[
            ("dir", EntryType::Symlink, b"", Some("sub")),
            ("dir/file", EntryType::Regular, b"x", None),
        ]));
        assert_refused(&result, &["\"dir/file\" is written through a symlink"]);
        let (dir, result) = try_unpack(&tar_gz(&[
            ("a/b/c.sh", EntryType::Regular, b"echo", None),
            ("a/b/d.sh", EntryType::Link, b"", Some("a/b/c.sh")),
        ]));
        result.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("cache/out/a/b/d.sh")).unwrap(),
            b"echo"
        );
        WITHOUT_OPENAT2.with(|without| without.set(false));
    }

    #[test]
    fn a_tar_hard_link_through_a_symlink_chain_is_refused() {
        let deep = deep();
        let up = format!("{deep}/up");
        let twelve_up = "../".repeat(12);
        let etc = format!("{deep}/up/../../outside/etc");
        let chain = |last: (&'static str, &'static str)| {
            tar_gz(&[
                ("ok.txt", EntryType::Regular, b"ok", None),
                (&up, EntryType::Symlink, b"", Some(&twelve_up)),
                ("f", EntryType::Symlink, b"", Some(&etc)),
                (last.0, EntryType::Link, b"", Some(last.1)),
            ])
        };
        let cases = [
            (
                chain(("h", "f/secret")),
                "bundle entry \"h\" is a hard link to \"f/secret\"",
            ),
            (
                chain(("f/h", "ok.txt")),
                "bundle entry \"f/h\" is written through a symlink",
            ),
            (
                chain(("h", "f")),
                "bundle entry \"h\" is a hard link to \"f\"",
            ),
            (
                chain(("h", "a1")),
                "bundle entry \"h\" is a hard link to \"a1\"",
            ),
            (
                chain(("h", "a1/../f/secret")),
                "bundle entry \"h\" links outside the bundle",
            ),
        ];
        for (i, (bytes, says)) in cases.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let secret = dir.path().join("outside/etc/secret");
            std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
            std::fs::write(&secret, "secret").unwrap();
            std::fs::write(dir.path().join("bundle"), bytes).unwrap();
            let result = unpack_in(dir.path(), &BundleLimits::default());
            assert_eq!(
                std::fs::metadata(&secret).unwrap().nlink(),
                1,
                "case {i}: linked"
            );
            assert_refused(&result, &[says]);
            assert!(!dir.path().join("outside/etc/h").exists(), "case {i}");
            assert_nothing_left(dir.path());
        }
    }

    #[test]
    fn a_gigabyte_link_target_is_refused_before_it_is_read() {
        let before = peak_memory_bytes();
        let cases = [
            (
                header("././@LongLink", EntryType::GNULongLink, 1 << 30, None),
                "bundle entry \"././@LongLink\" has a link target longer than 4096 bytes",
            ),
            (
                header("PaxHeaders/l", EntryType::XHeader, 1 << 30, None),
                "bundle entry \"PaxHeaders/l\" has an extended header longer than",
            ),
        ];
        for (extension, says) in &cases {
            let dir = tempfile::tempdir().unwrap();
            let mut tail = header("l", EntryType::Symlink, 0, Some("x"))
                .as_bytes()
                .to_vec();
            tail.extend([0u8; 1024]);
            gzip_with_zeros(
                &dir.path().join("bundle"),
                extension.as_bytes(),
                1024,
                &tail,
            );
            let result = unpack_in(dir.path(), &BundleLimits::default());
            let grown = peak_memory_bytes().saturating_sub(before);
            assert!(grown < 128 << 20, "memory grew by {grown} bytes");
            assert_refused(&result, &[says]);
            assert_nothing_left(dir.path());
        }
    }

    #[test]
    fn long_names_and_link_targets_within_the_limits_unpack() {
        fn pax_record(key: &str, value: &str) -> Vec<u8> {
            let body = format!(" {key}={value}\n");
            let mut len = body.len() + 1;
            while len.to_string().len() + body.len() != len {
                len += 1;
            }
            format!("{len}{body}").into_bytes()
        }
        // GNU long name and long link, written by the tar builder.
        let long_name = format!("gnu/{}", "n".repeat(150));
        let long_target = "t/".repeat(150);
        let mut builder = tar::Builder::new(Vec::new());
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(EntryType::Regular);
        file.set_mode(0o644);
        file.set_size(4);
        builder
            .append_data(&mut file, &long_name, &b"long"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "gnu/link", &long_target)
            .unwrap();
        // PAX path and linkpath.
        let pax_name = format!("pax/{}", "p".repeat(150));
        let mut records = pax_record("path", &pax_name);
        records.extend(pax_record("linkpath", &long_target));
        builder
            .append(
                &header(
                    "PaxHeaders/x",
                    EntryType::XHeader,
                    records.len() as u64,
                    None,
                ),
                &records[..],
            )
            .unwrap();
        builder
            .append(&header("x", EntryType::Symlink, 0, Some("short")), &b""[..])
            .unwrap();
        let (dir, result) = try_unpack(&gz(&builder.into_inner().unwrap()));
        result.unwrap();
        let out = dir.path().join("cache/out");
        assert_eq!(std::fs::read(out.join(&long_name)).unwrap(), b"long");
        assert_eq!(
            std::fs::read_link(out.join("gnu/link")).unwrap(),
            Path::new(&long_target)
        );
        assert_eq!(
            std::fs::read_link(out.join(&pax_name)).unwrap(),
            Path::new(&long_target)
        );

        // Over the limit, in each form.
        let too_long = "t/".repeat(2500);
        let mut builder = tar::Builder::new(Vec::new());
        // A long name comes before the long link: the refusal names the entry.
        let long_link_name = format!("gnu/{}", "l".repeat(120));
        builder
            .append_link(&mut link, &long_link_name, &too_long)
            .unwrap();
        let (_, result) = try_unpack(&gz(&builder.into_inner().unwrap()));
        assert_refused(
            &result,
            &[&format!(
                "bundle entry \"{long_link_name}\" has a link target longer than 4096 bytes"
            )],
        );
        let records = pax_record("linkpath", &too_long);
        let bytes = tar_gz(&[
            ("PaxHeaders/l", EntryType::XHeader, &records, None),
            ("l", EntryType::Symlink, b"", Some("short")),
        ]);
        let (_, result) = try_unpack(&bytes);
        assert_refused(
            &result,
            &["bundle entry \"l\" has a link target longer than 4096 bytes"],
        );
        let limits = BundleLimits {
            max_link_bytes: 10,
            ..BundleLimits::default()
        };
        let bytes = tar_gz(&[("l", EntryType::Symlink, b"", Some("0123456789a"))]);
        let (_, result) = try_unpack_with(&bytes, &limits);
        assert_refused(
            &result,
            &["bundle entry \"l\" has a link target longer than 10 bytes"],
        );
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.add_symlink("z", "0123456789a", options).unwrap();
        let (_, result) = try_unpack_with(&zip.finish().unwrap().into_inner(), &limits);
        assert_refused(
            &result,
            &["bundle entry \"z\" has a link target longer than 10 bytes"],
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = header("zeros", EntryType::Regular, 2 << 30, None);
        // 2 GiB of data, then a MiB of zeros: the end of the archive.
        gzip_with_zeros(&dir.path().join("bundle"), zeros.as_bytes(), 2049, &[]);
        let limits = BundleLimits {
            max_bytes: 64 << 20,
            ..BundleLimits::default()
        };
        let result = unpack_in(dir.path(), &limits);
        let staged = dir.path().join("cache/out/zeros");
        let written = std::fs::metadata(&staged).map_or(0, |m| m.len());
        assert!(written <= 64 << 20, "{written} bytes written");
        assert_refused(
            &result,
            &["bundle unpacks to more than 67108864 bytes (at \"zeros\")"],
        );
        assert_nothing_left(dir.path());
    }

    #[test]
    fn bytes_count_across_entries_and_for_skipped_data() {
        let limits = BundleLimits {
            max_bytes: 1000,
            ..BundleLimits::default()
        };
        let bytes = tar_gz(&[
            ("a", EntryType::Regular, &[1; 600], None),
            ("b", EntryType::Regular, &[2; 600], None),
        ]);
        let (dir, result) = try_unpack_with(&bytes, &limits);
        assert_refused(
            &result,
            &["bundle unpacks to more than 1000 bytes (at \"b\")"],
        );
        assert_nothing_left(dir.path());
        let bytes = tar_gz(&[("fifo", EntryType::Fifo, &[3; 2000], None)]);
        let (_, result) = try_unpack_with(&bytes, &limits);
        assert_refused(
            &result,
            &["bundle unpacks to more than 1000 bytes (at \"fifo\")"],
        );
        let bytes = tar_gz(&[("a", EntryType::Regular, &[1; 1000], None)]);
        let (_, result) = try_unpack_with(&bytes, &limits);
        result.unwrap();
    }

    #[test]
    fn too_many_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("bundle")).unwrap();
        let gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::none(),
        );
        let mut builder = tar::Builder::new(gz);
        for i in 0..100_000 {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("f{i}"), std::io::empty())
                .unwrap();
        }
        builder
            .into_inner()
            .unwrap()
            .finish()
            .unwrap()
            .flush()
            .unwrap();
        let result = unpack_in(dir.path(), &BundleLimits::default());
        assert_refused(
            &result,
            &["bundle has more than 20000 entries (at \"f20000\")"],
        );
        assert_nothing_left(dir.path());

        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..5 {
            zip.start_file(format!("z{i}"), zip::write::SimpleFileOptions::default())
                .unwrap();
        }
        let limits = BundleLimits {
            max_entries: 3,
            ..BundleLimits::default()
        };
        let (dir, result) = try_unpack_with(&zip.finish().unwrap().into_inner(), &limits);
        assert_refused(&result, &["bundle has more than 3 entries (at \"z3\")"]);
        assert_nothing_left(dir.path());

        // The directories a path implies count too: one entry cannot make thousands.
        let deep = format!("{}file", "d/".repeat(10));
        let bytes = tar_gz(&[(&deep, EntryType::Regular, b"x", None)]);
        let limits = BundleLimits {
            max_entries: 10,
            ..BundleLimits::default()
        };
        let (dir, result) = try_unpack_with(&bytes, &limits);
        assert_refused(
            &result,
            &[&format!("bundle has more than 10 entries (at \"{deep}\")")],
        );
        assert_nothing_left(dir.path());
        let (_, result) = try_unpack_with(
            &tar_gz(&[(&deep[2..], EntryType::Regular, b"x", None)]),
            &limits,
        );
        result.unwrap(); // nine directories and a file
    }

    #[test]
    fn a_name_is_unpacked_again_only_as_the_same_kind() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar_gz(&[
                    ("d/", EntryType::Directory, b"", None),
                    ("d", EntryType::Regular, b"x", None),
                ]),
                "bundle entry \"d\" is a file over a directory",
            ),
            (
                tar_gz(&[
                    ("x", EntryType::Regular, b"x", None),
                    ("x", EntryType::Symlink, b"", Some("y")),
                ]),
                "bundle entry \"x\" already exists",
            ),
            (
                tar_gz(&[
                    ("x", EntryType::Regular, b"x", None),
                    ("x/", EntryType::Directory, b"", None),
                ]),
                "bundle entry \"x/\" is written through a file that is not a directory",
            ),
            (
                tar_gz(&[
                    ("x", EntryType::Regular, b"x", None),
                    ("y", EntryType::Regular, b"y", None),
                    ("y", EntryType::Link, b"", Some("x")),
                ]),
                "bundle entry \"y\" already exists",
            ),
        ];
        for (bytes, says) in &cases {
            let (dir, result) = try_unpack(bytes);
            assert_refused(&result, &[says]);
            assert_nothing_left(dir.path());
        }
    }

    #[test]
    fn zip_bundles_unpack_and_hostile_ones_are_refused() {
        let zip_of = |name: &str| {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
            zip.add_directory("lib/", options).unwrap();
            zip.add_symlink("lib/main", "../main.sh", options).unwrap();
            zip.start_file(name, options).unwrap();
            zip.write_all(b"#!/bin/sh\necho zipped\n").unwrap();
            zip.finish().unwrap().into_inner()
        };
        let (dir, result) = try_unpack(&zip_of("main.sh"));
        result.unwrap();
        let out = dir.path().join("cache/out");
        let mode = std::fs::metadata(out.join("main.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert!(entrypoint(&out, "lib/main").is_ok());
        let (dir, result) = try_unpack(&zip_of("../../evil.sh"));
        assert!(
            matches!(result, Err(BundleError::Unsafe { .. })),
            "{result:?}"
        );
        assert!(!dir.path().join("evil.sh").exists());
        let (_, result) = try_unpack(b"plain text, not an archive");
        assert!(matches!(result, Err(BundleError::UnknownFormat)));
    }
}
