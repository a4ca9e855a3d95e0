//! The limits on entries, bytes and link targets, and names long but within them.

use super::*;

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
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::none());
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
