//! Hostile bundles: an attack suite run as a developer against `jobcenter all` with its
//! defaults (no bundle limit set). Each archive is uploaded, a job runs it, and the run
//! must fail with an error naming the entry and the reason, having written nothing
//! outside the bundle (a canary where the archive aims stays absent), leaving no
//! unpacking behind in the worker's cache and the worker still running commands.
//!
//! The archives are written by Python (`tarfile`, `zipfile`, `zlib`), which writes whatever
//! names and links it is given; the gigabyte ones repeat one compressed block, so they
//! take milliseconds to make and a few MiB to upload.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Unpacking up to the 1 GiB limit takes seconds, more on a loaded machine.
const RUN_WAIT: Duration = Duration::from_secs(300);

/// Writes an archive: `python3 -c GENERATE <mode> <out> <args…>`.
/// - `tar <json>` / `zip <json>`: the members `[name, kind, content, link]` in order,
///   kind one of file, dir, symlink, hardlink;
/// - `long-link <name>`: a GNU long name, then a GNU long link of 1 GiB, then the
///   symlink `<name>` they describe;
/// - `bomb <name>`: a file entry `<name>` of 2 GiB of zeros;
/// - `many <count>`: `<count>` empty files `f0`, `f1`, …;
///
/// each tar followed by a good `app/main.sh`, so that an unpacker that lets it through
/// runs it.
const GENERATE: &str = r##"
import json, struct, sys, tarfile, zipfile, zlib

KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE,
         "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
SCRIPT = b"#!/bin/sh\necho unpacked\n"

def header(name, kind, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.linkname = kind, size, 0o755, link
    return info.tobuf(tarfile.GNU_FORMAT)

def padded(data):
    return data + bytes(-len(data) % 512)

MAIN = header("app/main.sh", tarfile.REGTYPE, len(SCRIPT)) + padded(SCRIPT)
END = bytes(1024)

class Gzip:
    # Raw deflate blocks from a fresh compressor refer only to their own bytes, so one
    # compressed chunk may be written any number of times.
    def __init__(self, path):
        self.out = open(path, "wb")
        self.out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        self.crc, self.size = 0, 0

    def write(self, data, times=1):
        compress = zlib.compressobj(6, zlib.DEFLATED, -15)
        block = compress.compress(data) + compress.flush(zlib.Z_SYNC_FLUSH)
        for _ in range(times):
            self.out.write(block)
            self.crc = zlib.crc32(data, self.crc)
        self.size += len(data) * times

    def close(self):
        self.out.write(zlib.compressobj(6, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
        self.out.write(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))
        self.out.close()

mode, out = sys.argv[1], sys.argv[2]
if mode == "zip":
    with zipfile.ZipFile(out, "w") as archive:
        for name, kind, content, link in json.loads(sys.argv[3]):
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            if kind == "symlink":
                info.external_attr, content = 0o120777 << 16, link
            else:
                info.external_attr = 0o100755 << 16
            archive.writestr(info, content)
    sys.exit(0)
gz = Gzip(out)
if mode == "tar":
    data = b""
    for name, kind, content, link in json.loads(sys.argv[3]):
        content = content.encode()
        data += header(name, KINDS[kind], len(content), link) + padded(content)
    gz.write(data + MAIN + END)
elif mode == "long-link":
    name = sys.argv[3].encode() + b"\0"
    gz.write(header("././@LongLink", tarfile.GNUTYPE_LONGNAME, len(name)) + padded(name)
             + header("././@LongLink", tarfile.GNUTYPE_LONGLINK, (1 << 30) + 1))
    gz.write(b"a/" * (1 << 19), 1024)
    gz.write(padded(b"\0") + header(sys.argv[3], tarfile.SYMTYPE, 0, "a") + MAIN + END)
elif mode == "bomb":
    gz.write(header(sys.argv[3], tarfile.REGTYPE, 2 << 30))
    gz.write(bytes(1 << 20), 2048)
    gz.write(MAIN + END)
elif mode == "many":
    count = int(sys.argv[3])
    gz.write(b"".join(header(f"f{i}", tarfile.REGTYPE) for i in range(count)) + MAIN + END)
gz.close()
"##;

/// The archive `GENERATE` writes for `args`. Made before the component starts: Python
/// takes seconds for some, and a connection of the client idle that long is closed by
/// the server (5 s keep-alive), which a large upload on it would meet as a broken pipe.
fn generate(args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(GENERATE)
        .arg(args[0])
        .arg(&out)
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).unwrap()
}

/// A .tar.gz or .zip (`format`) of `members` `(name, kind, content, link)`, in order.
fn archive(format: &str, members: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let members: Vec<_> = members
        .iter()
        .map(|(name, kind, content, link)| json!([name, kind, content, link]))
        .collect();
    generate(&[format, &Value::from(members).to_string()])
}

/// `a1/a2/…/a12`
fn deep() -> String {
    (1..=12)
        .map(|i| format!("a{i}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The symlink `a1/…/a12/up` → `../` × 12: the bundle's root, wherever it is unpacked.
fn chain_to_root() -> (String, String) {
    (format!("{}/up", deep()), "../".repeat(12))
}

/// A link target through the chain to `path` on the host: from the bundle's root, 13
/// levels up reach `/` (the worker's cache is fewer levels deep).
fn through_the_chain(path: &Path) -> String {
    let absolute = path.strip_prefix("/").expect("an absolute path");
    format!("{}/up/{}{}", deep(), "../".repeat(13), absolute.display())
}

/// A developer of their own project on `app`.
async fn developer(app: &Component) -> (Api, String) {
    let admin = Api::login_admin(app).await;
    let password = "a-long-enough-password-1";
    admin.create_user("mallory", password, "developer").await;
    let api = Api::login(app, "mallory", password).await;
    let project = api.create_project("mallory-project").await;
    (api, project)
}

/// Uploads `bundle` as the artifact `name`, runs a job with its `app/main.sh` and returns
/// the finished run.
async fn run_bundle(api: &Api, project: &str, name: &str, bundle: Vec<u8>) -> Value {
    let reply = api
        .request(
            "PUT",
            &format!("/api/v1/projects/{project}/artifacts/{name}"),
            &[],
            Some(bundle),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let job = api
        .create_job(
            project,
            json!({"name": name, "target": {"kind": "binary", "artifact": name,
                "entrypoint": "app/main.sh"}}),
        )
        .await;
    let run = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    eventually(RUN_WAIT, "the bundle's run to finish", || async {
        let reply = api.get(&format!("/api/v1/runs/{run}")).await;
        let state = reply.body["state"].as_str().unwrap_or("").to_string();
        (state != "queued" && state != "running").then_some(reply.body)
    })
    .await
}

/// The run failed with an error saying `says` (the entry and the reason).
#[track_caller]
fn assert_refused(run: &Value, says: &str) {
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "{error:?} does not say {says:?}");
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// The worker's cache holds no unpacked bundle and no unpacking in progress.
#[track_caller]
fn assert_nothing_unpacked(app: &Component) {
    let cache = app.workdir.path().join("runs/artifact-cache");
    let bundles = cache.join("bundles");
    assert!(bundles.is_dir(), "{} is missing", bundles.display());
    let left: Vec<_> = walk(&cache)
        .into_iter()
        .filter(|p| p.starts_with(&bundles) || p.to_string_lossy().contains(".unpacking-"))
        .filter(|p| *p != bundles)
        .collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}

/// The most memory the `jobcenter all` process has held (VmHWM).
fn peak_memory_bytes(app: &Component) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// After the attack, the worker still runs a plain command.
async fn assert_the_worker_survives(api: &Api, project: &str) {
    let job = api
        .create_job(
            project,
            json!({"name": "after", "target": {"kind": "command",
                "command": ["sh", "-c", "echo still-alive"]}}),
        )
        .await;
    let run = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let finished = api.wait_finished(&run).await;
    assert_eq!(finished["state"], "succeeded", "{finished}");
    let logs = api.get(&format!("/api/v1/runs/{run}/logs")).await;
    assert_eq!(logs.text(), "still-alive\n");
}

/// (a) The zip of a symlink chain: `a1/…/a12/up` → the bundle's root, `f` → through it
/// and 13 levels up to a canary on the host, then a file entry `./f` written through `f`.
#[tokio::test]
async fn a_zip_symlink_chain_writes_nothing_outside() {
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("canary");
    let (up, root) = chain_to_root();
    let escape = through_the_chain(&canary);
    let bundle = archive(
        "zip",
        &[
            ("app/main.sh", "file", "#!/bin/sh\necho unpacked\n", ""),
            (&up, "symlink", "", &root),
            ("f", "symlink", "", &escape),
            ("./f", "file", "* * * * * root touch /pwned\n", ""),
        ],
    );
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let (api, project) = developer(&app).await;
    let run = run_bundle(&api, &project, "zip-chain", bundle).await;
    assert!(!canary.exists(), "written through the chain: {run}");
    assert_refused(&run, "bundle entry \"./f\" is written through a symlink");
    assert_nothing_unpacked(&app);
    assert_the_worker_survives(&api, &project).await;
}

/// (b) Tar hard links through the same chain: `h` linking a host file in through `f`
/// (which would give the run a second name for it), and `f/canary` linked out through
/// `f`.
#[tokio::test]
async fn tar_hard_links_through_a_symlink_chain_touch_nothing_outside() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let canary = outside.path().join("canary");
    let (up, root) = chain_to_root();
    let escape = through_the_chain(outside.path());
    let chain = |last: (&str, &str)| {
        archive(
            "tar",
            &[
                ("ok.txt", "file", "ok", ""),
                (&up, "symlink", "", &root),
                ("f", "symlink", "", &escape),
                (last.0, "hardlink", "", last.1),
            ],
        )
    };
    let cases = [
        (
            "link-in",
            chain(("h", "f/secret")),
            "bundle entry \"h\" is a hard link to \"f/secret\"",
        ),
        (
            "link-out",
            chain(("f/canary", "ok.txt")),
            "bundle entry \"f/canary\" is written through a symlink",
        ),
    ];
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let (api, project) = developer(&app).await;
    for (name, bundle, says) in cases {
        let run = run_bundle(&api, &project, name, bundle).await;
        use std::os::unix::fs::MetadataExt;
        let links = std::fs::metadata(&secret).unwrap().nlink();
        assert_eq!(links, 1, "{name}: the host file was linked into the bundle");
        assert!(!canary.exists(), "{name}: linked outside: {run}");
        assert_refused(&run, says);
        assert_nothing_unpacked(&app);
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
    assert_the_worker_survives(&api, &project).await;
}

/// (c) A symlink whose GNU long link is 1 GiB: refused from its header, before the worker
/// reads (or holds) a byte of it.
#[tokio::test]
async fn a_gigabyte_link_target_is_refused_unread() {
    let bundle = generate(&["long-link", "app/link"]);
    assert!(bundle.len() < 8 << 20, "{} bytes to upload", bundle.len());
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let (api, project) = developer(&app).await;
    let run = run_bundle(&api, &project, "long-link", bundle).await;
    assert_refused(
        &run,
        "bundle entry \"app/link\" has a link target longer than 4096 bytes",
    );
    let peak = peak_memory_bytes(&app);
    assert!(peak < 512 << 20, "the worker held {peak} bytes");
    assert_nothing_unpacked(&app);
    assert_the_worker_survives(&api, &project).await;
}

/// (d) A gzip bomb: one tar entry of 2 GiB of zeros in a 2 MiB upload. Unpacking stops
/// at the 1 GiB default and its staging directory goes.
#[tokio::test]
async fn a_gzip_bomb_stops_at_the_byte_limit_and_leaves_nothing() {
    let bundle = generate(&["bomb", "app/zeros"]);
    assert!(bundle.len() < 8 << 20, "{} bytes to upload", bundle.len());
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let (api, project) = developer(&app).await;
    let run = run_bundle(&api, &project, "bomb", bundle).await;
    assert_refused(
        &run,
        "bundle unpacks to more than 1073741824 bytes (at \"app/zeros\")",
    );
    assert_nothing_unpacked(&app);
    assert_the_worker_survives(&api, &project).await;
}

/// (e) 100,000 empty files: refused at the 20,000 entry default.
#[tokio::test]
async fn a_hundred_thousand_entries_are_refused_at_the_entry_limit() {
    let bundle = generate(&["many", "100000"]);
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let (api, project) = developer(&app).await;
    let run = run_bundle(&api, &project, "many", bundle).await;
    assert_refused(&run, "bundle has more than 20000 entries (at \"f20000\")");
    assert_nothing_unpacked(&app);
    assert_the_worker_survives(&api, &project).await;
}
