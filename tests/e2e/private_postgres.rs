//! A throwaway PostgreSQL cluster of a test's own, which the test may stop and start
//! without hurting other tests (the shared server on 5432 is never restarted).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The newest installed PostgreSQL's programs (Debian keeps each major version under
/// `/usr/lib/postgresql/<version>/bin`; 13 to 17 and later are all fine here).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version with initdb").1
}

pub struct PrivatePostgres {
    dir: PathBuf,
    pub port: u16,
}

/// Runs a PostgreSQL tool as the `postgres` user (initdb refuses root).
fn as_postgres(tool: &str, args: &[&str]) -> std::process::Output {
    let program = bin_dir().join(tool).to_string_lossy().into_owned();
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &program]);
        c
    } else {
        Command::new(&program)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivatePostgres {
    /// initdb into a fresh directory under /tmp and start the server on a free port.
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::Builder::new()
            .prefix("jc-pg-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let data = dir.join("data");
        let out = as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePostgres {
            dir,
            port: free_port(),
        };
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let out = as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (fast shutdown: sessions are terminated) and waits.
    pub fn stop(&self) {
        stop(&self.data(), "fast");
    }
}

fn stop(data: &Path, mode: &str) {
    let _ = as_postgres(
        "pg_ctl",
        &["-D", data.to_str().unwrap(), "-m", mode, "-w", "stop"],
    );
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        stop(&self.data(), "immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
