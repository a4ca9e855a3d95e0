//! The OpenAPI document as users' tools read it: openapi-python-client and
//! openapi-typescript (with openapi-fetch) generate clients from the committed
//! `openapi/openapi.json` without a warning or a skipped endpoint, and each client, driven
//! by `tests/clients/drive.*`, logs in and takes a run to success on the real binary.

use crate::client_tools::{clients_dir, run, Tools};
use crate::harness::{Component, TestDb, ADMIN_PASSWORD, ADMIN_USER};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A generator or a compiler: seconds, far more on a loaded two-core machine.
const TOOL_LIMIT: Duration = Duration::from_secs(300);
/// A driver: a few requests and one run of `sh`.
const DRIVER_LIMIT: Duration = Duration::from_secs(240);

#[test]
fn generated_python_and_typescript_clients_drive_a_run() {
    let tools = Tools::install();
    let document = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let work = tempfile::tempdir().unwrap();
    let python_path = generate_python(&tools, &document, work.path());
    let typescript = generate_typescript(&tools, &document, work.path());

    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let base = app.base_url.clone().expect("the api listens");
    let drive = |what: &str, command: &mut Command| {
        let output = run(
            what,
            command
                .env("JOBCENTER_URL", &base)
                .env("JOBCENTER_USERNAME", ADMIN_USER)
                .env("JOBCENTER_PASSWORD", ADMIN_PASSWORD),
            DRIVER_LIMIT,
        );
        println!("{output}");
    };
    drive(
        "the Python driver",
        Command::new(tools.python_bin("python"))
            .arg(clients_dir().join("drive.py"))
            .env("PYTHONPATH", python_path),
    );
    drive(
        "the TypeScript driver",
        Command::new("node").arg(typescript.join("out/drive.mjs")),
    );
}

/// The Python client as package `jobcenter_client`; returns the folder to import it from.
fn generate_python(tools: &Tools, document: &Path, work: &Path) -> PathBuf {
    let path = work.join("python");
    let output = run(
        "openapi-python-client generate",
        Command::new(tools.python_bin("openapi-python-client"))
            .arg("generate")
            .arg("--path")
            .arg(document)
            .arg("--output-path")
            .arg(path.join("jobcenter_client"))
            .args(["--meta", "none"])
            .env("PATH", tools.path_env()),
        TOOL_LIMIT,
    );
    assert_quiet("openapi-python-client", &output, &[document, work]);
    path
}

/// The TypeScript driver beside the types generated for it, type-checked (strict) and
/// compiled; returns its folder (the driver is `out/drive.mjs` in it).
fn generate_typescript(tools: &Tools, document: &Path, work: &Path) -> PathBuf {
    let dir = work.join("typescript");
    std::fs::create_dir(&dir).unwrap();
    for file in ["drive.mts", "tsconfig.json"] {
        std::fs::copy(clients_dir().join(file), dir.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(tools.node_modules(), dir.join("node_modules")).unwrap();
    let output = run(
        "openapi-typescript",
        Command::new(tools.npm_bin("openapi-typescript"))
            .arg(document)
            .arg("--output")
            .arg(dir.join("schema.d.ts")),
        TOOL_LIMIT,
    );
    assert_quiet("openapi-typescript", &output, &[document, work]);
    let tsc = |what: &str, args: &[&str]| {
        let output = run(
            what,
            Command::new(tools.npm_bin("tsc"))
                .arg("-p")
                .arg(dir.join("tsconfig.json"))
                .args(args),
            TOOL_LIMIT,
        );
        assert!(output.trim().is_empty(), "{what} said:\n{output}");
    };
    tsc("tsc --noEmit", &["--noEmit"]);
    tsc("tsc", &[]);
    dir
}

/// A generator that warns has left something out or guessed: openapi-python-client
/// says "WARNING parsing ... Endpoint will not be generated" and still exits 0. The
/// `paths` it names are not read as words.
fn assert_quiet(tool: &str, output: &str, paths: &[&Path]) {
    let mut words = output.to_string();
    for path in paths {
        words = words.replace(&*path.to_string_lossy(), "");
    }
    let lower = words.to_lowercase();
    for word in [
        "warn",
        "skip",
        "will not be generated",
        "unable to",
        "error",
    ] {
        assert!(
            !lower.contains(word),
            "{tool} says {word:?} about openapi/openapi.json:\n{output}"
        );
    }
    println!("{output}");
}
