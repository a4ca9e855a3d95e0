//! `.zip` bundles: the entry count is checked against the central directory first.

use super::tree::Tree;
use super::{corrupt_at, safe_relative, unsafe_entry, BundleError};
use std::io::Read;
use std::path::Path;

pub(super) fn unpack_zip(archive: &Path, tree: &mut Tree) -> Result<(), BundleError> {
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
