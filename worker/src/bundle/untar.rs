//! `.tar.gz` bundles, read raw: GNU long names / links and PAX headers are size-checked
//! here before they are read.

use super::tree::Tree;
use super::{
    corrupt_at, lossy, safe_relative, unsafe_entry, BundleError, MAX_NAME_BYTES, PAX_SLACK_BYTES,
};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

pub(super) fn unpack_tar_gz(archive: &Path, tree: &mut Tree) -> Result<(), BundleError> {
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
