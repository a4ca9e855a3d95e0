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

mod beneath;
mod tree;
mod untar;
mod unzip;

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use tree::Tree;

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

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
            Format::TarGz => untar::unpack_tar_gz(archive, &mut tree)?,
            Format::Zip => unzip::unpack_zip(archive, &mut tree)?,
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
mod tests;
