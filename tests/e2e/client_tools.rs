//! The client generators and compilers of `tests/clients`, at the versions pinned there
//! (requirements.txt, package-lock.json), installed once under the target directory and
//! installed again when a pin changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Installing from PyPI or npm on a slow network; a cached install takes no time.
const INSTALL_LIMIT: Duration = Duration::from_secs(900);

pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    /// The pinned tools, installed if missing or pinned differently since.
    pub fn install() -> Tools {
        let tools = Tools {
            dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-tools"),
        };
        let pins = clients_dir();
        let venv = tools.dir.join("venv");
        fresh_install(&venv, &[pins.join("requirements.txt")], |dir| {
            run(
                "python3 -m venv",
                Command::new("python3").args(["-m", "venv"]).arg(dir),
                INSTALL_LIMIT,
            );
            run(
                "pip install -r tests/clients/requirements.txt",
                Command::new(dir.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(pins.join("requirements.txt")),
                INSTALL_LIMIT,
            );
        });
        let npm = tools.dir.join("npm");
        let manifests = [pins.join("package.json"), pins.join("package-lock.json")];
        fresh_install(&npm, &manifests, |dir| {
            for file in &manifests {
                std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
            }
            run(
                "npm ci in tests/clients",
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(dir),
                INSTALL_LIMIT,
            );
        });
        tools
    }

    /// A program of the Python virtual environment (`python`, `openapi-python-client`).
    pub fn python_bin(&self, name: &str) -> PathBuf {
        self.dir.join("venv/bin").join(name)
    }

    /// A program of the npm packages (`openapi-typescript`, `tsc`).
    pub fn npm_bin(&self, name: &str) -> PathBuf {
        self.node_modules().join(".bin").join(name)
    }

    pub fn node_modules(&self) -> PathBuf {
        self.dir.join("npm/node_modules")
    }

    /// PATH with the virtual environment first: openapi-python-client formats what it
    /// writes with the pinned `ruff` it finds there.
    pub fn path_env(&self) -> String {
        let path = std::env::var("PATH").unwrap_or_default();
        format!("{}:{path}", self.dir.join("venv/bin").display())
    }
}

/// `tests/clients`, where the drivers and the pins are.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs `install` into an emptied `dir` unless `dir` was installed from these `pins`
/// (copies of them are kept in `dir/.pins` once an install succeeds).
fn fresh_install(dir: &Path, pins: &[PathBuf], install: impl FnOnce(&Path)) {
    let stamp = dir.join(".pins");
    let wanted: Vec<u8> = pins
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    if std::fs::read(&stamp).is_ok_and(|installed| installed == wanted) {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    install(dir);
    std::fs::write(stamp, wanted).unwrap();
}

/// Runs `command` within `limit` and returns what it printed (stdout and stderr, as
/// they interleaved); panics with that output when it fails or overruns.
pub fn run(what: &str, command: &mut Command, limit: Duration) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        Some(status) if status.success() => output,
        Some(status) => panic!("{what} failed ({status}):\n{output}"),
        None => panic!("{what} did not finish within {limit:?}:\n{output}"),
    }
}
