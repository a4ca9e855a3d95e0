use super::*;
use std::cell::Cell;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use tar::EntryType;

mod hostile;
mod limits;

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
