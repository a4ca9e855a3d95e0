//! Unpacking bundles (`.tar.gz`, `.zip`) into a directory, safely: an entry that would
//! land outside it — `..`, an absolute path, a symlink or hard link pointing out, or a
//! path through a symlink — rejects the whole bundle, and nothing is written outside.
//! Unpacking goes to a temporary sibling directory renamed into place when complete.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle entry {entry:?} {reason}")]
    Unsafe { entry: String, reason: &'static str },
    #[error("not a .tar.gz or .zip bundle")]
    UnknownFormat,
    #[error("bundle is unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
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

/// A symlink at `link` (relative to the root) pointing at `target` stays inside.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Fails when any existing ancestor of `path` under `root` is a symlink, so that a file
/// is never written through a link, wherever the link points.
fn no_symlink_on_the_way(root: &Path, relative: &Path) -> Result<(), &'static str> {
    let mut current = root.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        current.push(part);
        if let Ok(meta) = std::fs::symlink_metadata(&current) {
            if meta.file_type().is_symlink() {
                return Err("is written through a symlink");
            }
        }
    }
    Ok(())
}

/// Unpacks `archive` into `dest` (which must not exist yet).
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), BundleError> {
    let parent = dest.parent().ok_or(BundleError::UnknownFormat)?;
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)?;
    match sniff(archive)? {
        Format::TarGz => unpack_tar_gz(archive, staging.path())?,
        Format::Zip => unpack_zip(archive, staging.path())?,
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

fn unsafe_entry(entry: &Path, reason: &'static str) -> BundleError {
    BundleError::Unsafe {
        entry: entry.display().to_string(),
        reason,
    }
}

fn unpack_tar_gz(archive: &Path, root: &Path) -> Result<(), BundleError> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = tar
        .entries()
        .map_err(|e| BundleError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleError::Corrupt(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| BundleError::Corrupt(e.to_string()))?
            .into_owned();
        let relative = safe_relative(&name).map_err(|reason| unsafe_entry(&name, reason))?;
        no_symlink_on_the_way(root, &relative).map_err(|reason| unsafe_entry(&name, reason))?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| BundleError::Corrupt(e.to_string()))?
                .ok_or_else(|| unsafe_entry(&name, "is a link without a target"))?;
            let inside = if kind.is_hard_link() {
                safe_relative(&target).is_ok()
            } else {
                link_stays_inside(&relative, &target)
            };
            if !inside {
                return Err(unsafe_entry(&name, "links outside the bundle"));
            }
            if kind.is_hard_link() {
                let source = root.join(safe_relative(&target).expect("checked above"));
                std::fs::hard_link(source, root.join(&relative))?;
                continue;
            }
        }
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            continue; // devices, fifos: nothing a function needs
        }
        // Checked above, so unpack_in's own checks only confirm.
        entry
            .unpack_in(root)
            .map_err(|e| BundleError::Corrupt(e.to_string()))?;
    }
    Ok(())
}

fn unpack_zip(archive: &Path, root: &Path) -> Result<(), BundleError> {
    let file = std::fs::File::open(archive)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| BundleError::Corrupt(e.to_string()))?;
    for index in 0..zip.len() {
        let mut entry = zip
            .by_index(index)
            .map_err(|e| BundleError::Corrupt(e.to_string()))?;
        let name = PathBuf::from(entry.name());
        let relative = safe_relative(&name).map_err(|reason| unsafe_entry(&name, reason))?;
        no_symlink_on_the_way(root, &relative).map_err(|reason| unsafe_entry(&name, reason))?;
        let target = root.join(&relative);
        if entry.is_symlink() {
            let mut link = String::new();
            entry.read_to_string(&mut link)?;
            if !link_stays_inside(&relative, Path::new(&link)) {
                return Err(unsafe_entry(&name, "links outside the bundle"));
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::os::unix::fs::symlink(&link, &target)?;
        } else if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = std::fs::File::create(&target)?;
            std::io::copy(&mut entry, &mut out)?;
            if let Some(mode) = entry.unix_mode() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))?;
            }
        }
    }
    Ok(())
}

/// The entrypoint inside an unpacked bundle, refused if it would leave it.
pub fn entrypoint(root: &Path, entrypoint: &str) -> Result<PathBuf, BundleError> {
    let relative = safe_relative(Path::new(entrypoint))
        .map_err(|reason| unsafe_entry(Path::new(entrypoint), reason))?;
    let path = root.join(relative);
    let resolved = path.canonicalize()?;
    if !resolved.starts_with(root.canonicalize()?) {
        return Err(unsafe_entry(
            Path::new(entrypoint),
            "resolves outside the bundle",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A .tar.gz with raw headers, so that hostile names can be written (the tar
    /// builder refuses them).
    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            if let Some(link) = link {
                let link = link.as_bytes();
                header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn try_unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<(), BundleError>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("bundle");
        std::fs::write(&archive, bytes).unwrap();
        let result = unpack(&archive, &dir.path().join("cache").join("out"));
        (dir, result)
    }

    #[test]
    fn a_good_tar_gz_unpacks_with_its_modes() {
        let bytes = tar_gz(&[
            ("bin/", tar::EntryType::Directory, b"", None),
            (
                "bin/run.sh",
                tar::EntryType::Regular,
                b"#!/bin/sh\necho hi\n",
                None,
            ),
            ("bin/alias", tar::EntryType::Symlink, b"", Some("run.sh")),
        ]);
        let (dir, result) = try_unpack(&bytes);
        result.unwrap();
        let out = dir.path().join("cache/out");
        assert_eq!(
            std::fs::read_to_string(out.join("bin/run.sh")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        assert!(entrypoint(&out, "bin/alias").is_ok());
        assert!(entrypoint(&out, "../out/bin/run.sh").is_err());
    }

    #[test]
    fn hostile_tar_entries_reject_the_bundle_and_write_nothing_outside() {
        let cases: Vec<Vec<u8>> = vec![
            tar_gz(&[("../escape.txt", tar::EntryType::Regular, b"x", None)]),
            tar_gz(&[(
                "/tmp/jobcenter-abs-escape.txt",
                tar::EntryType::Regular,
                b"x",
                None,
            )]),
            tar_gz(&[("link", tar::EntryType::Symlink, b"", Some("/etc"))]),
            tar_gz(&[("link", tar::EntryType::Symlink, b"", Some("../../.."))]),
            tar_gz(&[
                ("ok", tar::EntryType::Symlink, b"", Some(".")),
                ("ok/../../escape.txt", tar::EntryType::Regular, b"x", None),
            ]),
            tar_gz(&[
                ("dir", tar::EntryType::Symlink, b"", Some("sub")),
                ("dir/file", tar::EntryType::Regular, b"x", None),
            ]),
            tar_gz(&[("hard", tar::EntryType::Link, b"", Some("../outside"))]),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let (dir, result) = try_unpack(bytes);
            assert!(
                matches!(result, Err(BundleError::Unsafe { .. })),
                "case {i}: {result:?}"
            );
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(!dir.path().join("escape.txt").exists(), "case {i}");
            assert!(
                !dir.path().join("cache/out").exists(),
                "case {i}: a rejected bundle left output"
            );
            assert!(left.len() <= 2, "case {i}: {left:?}");
        }
        assert!(!Path::new("/tmp/jobcenter-abs-escape.txt").exists());
    }

    #[test]
    fn zip_bundles_unpack_and_hostile_ones_are_refused() {
        let zip_of = |name: &str| {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
            zip.start_file(name, options).unwrap();
            zip.write_all(b"#!/bin/sh\necho zipped\n").unwrap();
            zip.finish().unwrap().into_inner()
        };
        let (dir, result) = try_unpack(&zip_of("main.sh"));
        result.unwrap();
        assert!(dir.path().join("cache/out/main.sh").exists());
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
