//! Opening a path beneath a directory descriptor with no symlink on the way:
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or the
//! same walk one `openat(O_NOFOLLOW)` at a time where `openat2` is missing.

use super::{unsafe_entry, BundleError};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

/// `openat2` works here until it once says it does not (ENOSYS, or EPERM from a seccomp
/// filter that predates it).
static OPENAT2_WORKS: AtomicBool = AtomicBool::new(true);

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

pub(super) fn directory_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn use_openat2() -> bool {
    #[cfg(test)]
    if super::tests::WITHOUT_OPENAT2.with(|without| without.get()) {
        return false;
    }
    OPENAT2_WORKS.load(Ordering::Relaxed)
}

/// Opens `path` (normal components only) beneath `base`, with no symlink anywhere on the
/// way, the last component included.
pub(super) fn open_beneath(
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
pub(super) fn path_error(entry: &str, errno: Errno, how: &str) -> BundleError {
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

pub(super) fn entry_io(entry: &str, errno: Errno) -> BundleError {
    BundleError::Entry {
        entry: entry.to_string(),
        source: errno.into(),
    }
}

/// The directory `name` (one component) in `dir`, refused if it is a symlink or not a
/// directory.
pub(super) fn open_directory(
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
