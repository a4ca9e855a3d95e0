//! Entries that try to write outside the bundle.

use super::*;

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
