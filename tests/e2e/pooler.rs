//! A leader's lock must live on a session of its own: through a transaction-mode
//! PgBouncer the scheduler refuses leadership with a clear error, through a
//! session-mode one it leads.

use crate::harness::{eventually, Component, TestDb};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A PgBouncer of the test's own in front of the test database, killed when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    database: String,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start(db: &TestDb, pool_mode: &str) -> PgBouncer {
        let target: tokio_postgres::Config = db.url.parse().unwrap();
        let host = match &target.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        };
        let (server_port, user) = (target.get_ports()[0], target.get_user().unwrap());
        let database = target.get_dbname().unwrap().to_string();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{database} = host={host} port={server_port} user={user} \
                 dbname={database}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = any\npool_mode = {pool_mode}\n\
                 default_pool_size = 4\nlogfile = {log}\n",
                log = dir.path().join("pgbouncer.log").display()
            ),
        )
        .unwrap();
        let child = as_unprivileged(dir.path(), &ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PGBOUNCER} (make test installs it): {e}"));
        let bouncer = PgBouncer {
            child,
            port,
            database,
            _dir: dir,
        };
        bouncer.wait_listening();
        bouncer
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    fn wait_listening(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("pgbouncer did not listen on {}", self.port);
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PgBouncer refuses to run as root: as root, it is told to become `postgres`.
fn as_unprivileged(dir: &Path, ini: &Path) -> Command {
    let mut command = Command::new(PGBOUNCER);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir)
            .status()
            .unwrap();
        command.args(["-u", "postgres"]);
    }
    command.arg(ini);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_transaction_mode_pooler_is_refused_for_leadership_and_a_session_one_is_not() {
    let db = TestDb::new();

    let transaction = PgBouncer::start(&db, "transaction");
    let leader_url = transaction.url();
    let mut refused = Component::start(
        "scheduler",
        &db,
        &[("JOBCENTER_LEADER_DATABASE_URL", leader_url.as_str())],
    );
    let status = refused
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("kept running:\n{}", refused.stderr()));
    assert!(!status.success(), "{}", refused.stderr());
    let stderr = refused.stderr();
    assert!(stderr.contains("transaction-mode pooler"), "{stderr}");
    assert!(stderr.contains("JOBCENTER_LEADER_DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("became the scheduling leader"), "{stderr}");
    // The refusal gave the lock back, so the pooled session does not keep it.
    let held = db
        .count(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await;
    assert_eq!(held, 0, "the refused lock is still held");

    let session = PgBouncer::start(&db, "session");
    let leader_url = session.url();
    let accepted = Component::start(
        "scheduler",
        &db,
        &[("JOBCENTER_LEADER_DATABASE_URL", leader_url.as_str())],
    );
    eventually(Duration::from_secs(20), "a leader", || async {
        accepted
            .stderr()
            .contains("became the scheduling leader")
            .then_some(())
    })
    .await;
}
