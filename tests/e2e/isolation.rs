//! The run sandbox under attack: a developer's runs against `jobcenter all` with its
//! defaults try to read the worker's secrets and other tenants' files, reach the host's
//! loopback services, outlive their run, tamper with the artifact cache, and starve
//! other tenants. Each attack is first shown to work where the sandbox does not stand in
//! its way (the test process itself, or a worker with `JOBCENTER_SANDBOX=off`), so a
//! test fails if the protection goes.
//!
//! Every test runs whether or not the suite runs as root. Run by an ordinary user, the
//! worker is that user (root of a user namespace of its own, runs on its subordinate
//! uids): what needs the host's root (the "outbound" firewall, cgroups) is then checked
//! as reported in `sandbox.unenforced`, and everything else as for a root worker.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::time::Duration;

/// A developer of their own project on `app`.
async fn developer(app: &Component, admin: &Api, name: &str) -> (Api, String) {
    let password = "a-long-enough-password-1";
    admin.create_user(name, password, "developer").await;
    let api = Api::login(app, name, password).await;
    let project = api.create_project(&format!("{name}-project")).await;
    (api, project)
}

/// Runs `script` with `sh -c` as a job of `project` (extra job fields merged in) and
/// returns the finished run and its log.
async fn run_script(
    api: &Api,
    project: &str,
    name: &str,
    script: &str,
    extra: Value,
) -> (Value, String) {
    let mut body =
        json!({"name": name, "target": {"kind": "command", "command": ["bash", "-c", script]}});
    for (key, value) in extra.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    let job = api.create_job(project, body).await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let run = api.wait_finished(&run_id).await;
    let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    (run, logs.text().to_string())
}

/// Every line of `log` that starts with `key=`, as its value.
fn value<'a>(log: &'a str, key: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// Pids whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn root() -> bool {
    // SAFETY: geteuid only reads the caller's id.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn a_run_reaches_nothing_of_the_worker_its_host_or_other_tenants() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let (alice, alice_project) = developer(&app, &admin, "alice").await;
    let (mallory, mallory_project) = developer(&app, &admin, "mallory").await;
    let workdir = app.workdir.path().to_path_buf();

    // Alice's run sits in its directory with a file of hers while Mallory looks for it.
    let secret = format!("alice-private-{}", uuid::Uuid::new_v4().simple());
    let alice_job = alice
        .create_job(
            &alice_project,
            json!({"name": "holder", "target": {"kind": "command",
            "command": ["sh", "-c", format!("echo {secret} > mine.txt; sleep 30")]}}),
        )
        .await;
    let alice_run = alice
        .trigger(alice_job["id"].as_str().unwrap(), json!(null))
        .await;
    alice.wait_running(&alice_run).await;
    // Without a sandbox, the file is there for anyone on the host to read. (A worker that
    // is not root gives it an owner of its subordinate range, unreadable by this test,
    // so its path is then only a pattern.)
    let alice_file = if root() {
        let file = eventually(Duration::from_secs(10), "alice's file", || async {
            walk(&workdir).into_iter().find(|p| p.ends_with("mine.txt"))
        })
        .await;
        assert!(std::fs::read_to_string(&file).unwrap().contains(&secret));
        file.display().to_string()
    } else {
        format!("{}/*/mine.txt", workdir.display())
    };

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let marker = format!("jc-sleeper-{}", uuid::Uuid::new_v4().simple());
    let script = format!(
        r#"
        echo "environ=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -c '^JOBCENTER_JWT_SECRET=')"
        echo "parent-environ=$(tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | grep -c JOBCENTER_DATABASE)"
        echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
        echo "variables=$(tr '\0' '\n' < /proc/1/environ | cut -d= -f1 | sort | tr '\n' ' ')"
        echo "workdir=$(ls -d {workdir} 2>/dev/null | wc -l)"
        echo "alice=$(cat {alice_file} 2>/dev/null; grep -rls {secret} /tmp /work /var /dev /run 2>/dev/null | head -1)"
        echo "home=$(ls /root /home 2>/dev/null | wc -l)"
        (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo loopback=connected || echo loopback=refused
        (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null && echo postgres=connected || echo postgres=refused
        (echo > /dev/tcp/169.254.169.254/80) 2>/dev/null && echo metadata=connected || echo metadata=refused
        echo "uid=$(id -u) host-uid=$(awk '{{print $2}}' /proc/self/uid_map)"
        echo "namespaces=$(readlink /proc/self/ns/{{user,pid,mnt,ipc,uts}} | tr '\n' ' ')"
        echo "hostname=$(hostname)"
        echo x > /usr/jc-test 2>/dev/null && echo usr=written || echo usr=read-only
        echo x > /tmp/mine && echo tmp=written
        setsid sh -c 'sleep 300; : {marker}' > /dev/null 2>&1 < /dev/null &
        echo sleeper=started
        "#,
        workdir = workdir.display(),
    );
    let (run, log) = run_script(&mallory, &mallory_project, "attack", &script, json!({})).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");
    // The worker's environment (JWT secret, database URL) is out of reach.
    assert_eq!(value(&log, "environ"), ["0"], "{log}");
    assert_eq!(value(&log, "parent-environ"), ["0"], "{log}");
    // Its environment is exactly the README's list (the job sets no env, the project no
    // config): what its first process started with.
    assert_eq!(
        value(&log, "variables"),
        [
            "HOME JOBCENTER_ATTEMPT JOBCENTER_INPUT_FILE JOBCENTER_JOB_ID JOBCENTER_PROJECT_ID \
          JOBCENTER_RESULT_FILE JOBCENTER_RUN_ID JOBCENTER_SCHEDULED_FOR JOBCENTER_STATE_FILE \
          JOBCENTER_TRIGGER PATH TMPDIR "
        ],
        "{log}"
    );
    // The run sees its own processes only (bash, its pipeline, ls, wc).
    let processes: usize = value(&log, "processes")[0].parse().unwrap();
    assert!(processes < 10, "{log}");
    // No worker data, no other run's files, no home directories.
    assert_eq!(value(&log, "workdir"), ["0"], "{log}");
    assert_eq!(value(&log, "alice"), [""], "{log}");
    assert_eq!(value(&log, "home"), ["0"], "{log}");
    // No loopback service of the host, Postgres included, and no metadata address.
    assert_eq!(value(&log, "loopback"), ["refused"], "{log}");
    assert_eq!(value(&log, "postgres"), ["refused"], "{log}");
    assert_eq!(value(&log, "metadata"), ["refused"], "{log}");
    assert!(
        listener.accept().is_err(),
        "the run reached the test's loopback listener"
    );
    std::net::TcpStream::connect(("127.0.0.1", port))
        .expect("the listener is reachable outside the sandbox");
    // Root of its own user namespace, an unprivileged uid of its own on the host: one of
    // the sandbox's block (root worker), or of the worker's subordinate range (as seen
    // from the worker's own namespace, where the worker is 0).
    let ids = value(&log, "uid")[0];
    let host_uid: u64 = ids.split("host-uid=").nth(1).unwrap().parse().unwrap();
    assert!(ids.starts_with("0 "), "{log}");
    assert!(
        if root() {
            host_uid >= 100_000
        } else {
            host_uid > 0
        },
        "{log}"
    );
    assert_eq!(value(&log, "usr"), ["read-only"], "{log}");
    assert_eq!(value(&log, "tmp"), ["written"], "{log}");
    // Its own user, PID, mount, IPC and UTS namespaces: none is the host's.
    let theirs = value(&log, "namespaces")[0];
    for kind in ["user", "pid", "mnt", "ipc", "uts"] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        let ours = ours.to_string_lossy();
        assert!(theirs.contains(&format!("{kind}:[")), "{log}");
        assert!(
            !theirs.contains(ours.as_ref()),
            "the run shares the {kind} namespace: {log}"
        );
    }
    assert_eq!(value(&log, "hostname"), ["jobcenter"], "{log}");
    // The setsid sleeper died with the run.
    assert_eq!(value(&log, "sleeper"), ["started"], "{log}");
    assert!(
        processes_with(&marker).is_empty(),
        "a process outlived its run"
    );

    if !root() {
        // No firewall for an ordinary user: "outbound" runs get no network, and say so.
        let workers = admin.get("/api/v1/workers").await;
        let unenforced = workers.body[0]["sandbox"]["unenforced"].to_string();
        assert!(unenforced.contains("outbound"), "{unenforced}");
    }

    // Alice's run is untouched and finishes as hers.
    let cancel = alice
        .post(&format!("/api/v1/runs/{alice_run}/cancel"), json!({}))
        .await;
    assert!(cancel.status < 300, "{cancel:?}");
    assert_eq!(alice.wait_finished(&alice_run).await["state"], "cancelled");
}

/// Files below `dir`, depth first.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => found.extend(walk(&path)),
            Ok(_) => found.push(path),
            Err(_) => {}
        }
    }
    found
}

#[tokio::test]
async fn the_same_attacks_succeed_with_the_sandbox_off_and_the_worker_says_so() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[("JOBCENTER_SANDBOX", "off")]);
    let admin = Api::login_admin(&app).await;
    let (mallory, project) = developer(&app, &admin, "mallory").await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        r#"echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
        (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo loopback=connected || echo loopback=refused"#
    );
    let (run, log) = run_script(&mallory, &project, "attack", &script, json!({})).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");
    assert_eq!(value(&log, "loopback"), ["connected"], "{log}");
    let processes: usize = value(&log, "processes")[0].parse().unwrap();
    assert!(processes >= 10, "{log}");
    // The switch is visible to admins, and logged at start.
    let workers = admin.get("/api/v1/workers").await;
    let sandbox = &workers.body[0]["sandbox"];
    assert_eq!(sandbox["enabled"], false, "{workers:?}");
    assert!(
        app.stderr().contains("JOBCENTER_SANDBOX=off"),
        "{}",
        app.stderr()
    );
}

#[tokio::test]
async fn a_fork_bomb_and_a_memory_hog_stay_in_their_runs() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[("JOBCENTER_WORKER_CAPACITY", "4")]);
    let admin = Api::login_admin(&app).await;
    let (mallory, evil) = developer(&app, &admin, "mallory").await;
    let (alice, good) = developer(&app, &admin, "alice").await;
    let workers = admin.get("/api/v1/workers").await;
    assert_eq!(workers.body[0]["sandbox"]["enabled"], true, "{workers:?}");

    let bomb = mallory
        .create_job(
            &evil,
            json!({"name": "bomb", "timeout_seconds": 8, "target": {"kind": "command",
            "command": ["bash", "-c", "b() { b | b & }; b; sleep 30"]}}),
        )
        .await;
    let hog = mallory
        .create_job(
            &evil,
            json!({"name": "hog", "target": {"kind": "command",
            "command": ["python3", "-c", "x = bytearray(b'a') * (2 << 30); print('survived')"]}}),
        )
        .await;
    let bomb_run = mallory
        .trigger(bomb["id"].as_str().unwrap(), json!(null))
        .await;
    let hog_run = mallory
        .trigger(hog["id"].as_str().unwrap(), json!(null))
        .await;
    mallory.wait_running(&bomb_run).await;
    // Alice's runs keep starting and succeeding meanwhile.
    let fine = alice
        .create_job(&good, json!({"name": "fine", "target": {"kind": "command", "command": ["sh", "-c", "echo fine"]}}))
        .await;
    for _ in 0..5 {
        let run = alice
            .trigger(fine["id"].as_str().unwrap(), json!(null))
            .await;
        assert_eq!(alice.wait_finished(&run).await["state"], "succeeded");
    }
    let hog = mallory.wait_finished(&hog_run).await;
    assert_eq!(hog["state"], "failed", "{hog}");
    if root() {
        assert_eq!(hog["error"], "out of memory", "{hog}");
    } else {
        // An ordinary user cannot make cgroups: rlimits stand in, and that is said.
        let unenforced = workers.body[0]["sandbox"]["unenforced"].to_string();
        assert!(unenforced.contains("limits"), "{unenforced}");
    }
    let bomb = mallory.wait_finished(&bomb_run).await;
    assert_eq!(bomb["state"], "timed_out", "{bomb}");
}

/// A network namespace with a veth to the host: a "public" address (TEST-NET-3) and a
/// private one on its side, and a TCP listener on each (removed when dropped).
struct TestNet {
    name: String,
    host_if: String,
}

impl TestNet {
    fn new() -> TestNet {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let net = TestNet {
            name: format!("jc-{id}"),
            host_if: format!("jch{id}"),
        };
        let ip = |args: &str| {
            let status = std::process::Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .unwrap();
            assert!(status.success(), "ip {args}");
        };
        let peer = format!("jcp{id}");
        ip(&format!("netns add {}", net.name));
        ip(&format!(
            "link add {} type veth peer name {peer}",
            net.host_if
        ));
        ip(&format!("link set {peer} netns {}", net.name));
        ip(&format!("addr add 203.0.113.1/24 dev {}", net.host_if));
        ip(&format!("addr add 10.213.0.1/24 dev {}", net.host_if));
        ip(&format!("link set {} up", net.host_if));
        ip(&format!(
            "-n {} addr add 203.0.113.2/24 dev {peer}",
            net.name
        ));
        ip(&format!(
            "-n {} addr add 10.213.0.2/24 dev {peer}",
            net.name
        ));
        ip(&format!("-n {} link set {peer} up", net.name));
        ip(&format!("-n {} link set lo up", net.name));
        net
    }

    /// A listener inside the namespace on `address`, answering "hello" to each client.
    fn serve(&self, address: &str) -> u16 {
        let path = format!("/var/run/netns/{}", self.name);
        let address = address.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write;
            use std::os::fd::AsRawFd;
            let ns = std::fs::File::open(path).unwrap();
            // SAFETY: setns on this thread only, with a descriptor we own.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let listener = TcpListener::bind((address.as_str(), 0)).unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(b"hello\n");
            }
        });
        rx.recv().unwrap()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[tokio::test]
async fn network_none_reaches_nothing_and_outbound_only_public_addresses() {
    if !root() {
        return an_ordinary_users_worker_gives_runs_no_network().await;
    }
    let net = TestNet::new();
    let public = net.serve("203.0.113.2");
    let private = net.serve("10.213.0.2");
    // Both answer the test process itself (no sandbox in the way).
    for (address, port) in [("203.0.113.2", public), ("10.213.0.2", private)] {
        std::net::TcpStream::connect((address, port)).unwrap_or_else(|e| panic!("{address}: {e}"));
    }
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let (dev, project) = developer(&app, &admin, "dev").await;
    let probe = format!(
        r#"(exec 3<>/dev/tcp/203.0.113.2/{public} && head -1 <&3 | sed 's/^/public=/') || echo public=refused
        (exec 3<>/dev/tcp/10.213.0.2/{private} && head -1 <&3 | sed 's/^/private=/') 2>/dev/null || echo private=refused
        getent hosts crates.io > /dev/null && echo resolve=ok || echo resolve=failed
        echo "interfaces=$(awk -F: 'NR > 2 {{ gsub(/ /, "", $1); printf "%s ", $1 }}' /proc/net/dev)""#
    );
    let (run, log) = run_script(&dev, &project, "outbound", &probe, json!({})).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");
    assert_eq!(value(&log, "public"), ["hello"], "{log}");
    assert_eq!(value(&log, "private"), ["refused"], "{log}");
    // The host's resolver stays reachable, even on a private address.
    let host_resolves = std::process::Command::new("getent")
        .args(["hosts", "crates.io"])
        .output()
        .is_ok_and(|o| o.status.success());
    if host_resolves {
        assert_eq!(value(&log, "resolve"), ["ok"], "{log}");
    }

    let (run, log) = run_script(
        &dev,
        &project,
        "isolated",
        &probe,
        json!({"network": "none"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");
    assert_eq!(value(&log, "public"), ["refused"], "{log}");
    assert_eq!(value(&log, "private"), ["refused"], "{log}");
    assert_eq!(value(&log, "resolve"), ["failed"], "{log}");
    assert_eq!(value(&log, "interfaces"), ["lo "], "{log}");
}

/// Without root there is no firewall to filter "outbound": such runs, like "none", reach
/// nothing, not even the host's loopback, and the worker says so.
async fn an_ordinary_users_worker_gives_runs_no_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let (dev, project) = developer(&app, &admin, "dev").await;
    let probe = format!(
        r#"(echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo loopback=connected || echo loopback=refused
        echo "interfaces=$(awk -F: 'NR > 2 {{ gsub(/ /, "", $1); printf "%s ", $1 }}' /proc/net/dev)""#
    );
    for network in ["outbound", "none"] {
        let (run, log) =
            run_script(&dev, &project, network, &probe, json!({"network": network})).await;
        assert_eq!(run["state"], "succeeded", "{run}\n{log}");
        assert_eq!(value(&log, "loopback"), ["refused"], "{log}");
        assert_eq!(value(&log, "interfaces"), ["lo "], "{log}");
    }
    let workers = admin.get("/api/v1/workers").await;
    let unenforced = workers.body[0]["sandbox"]["unenforced"].to_string();
    assert!(unenforced.contains("outbound"), "{unenforced}");
}

/// The uid and gid of `name`, if the account exists.
fn account(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let parts: Vec<&str> = line.split(':').collect();
        (parts.first() == Some(&name))
            .then(|| Some((parts[2].parse().ok()?, parts[3].parse().ok()?)))?
    })
}

#[tokio::test]
async fn a_worker_that_is_not_root_sandboxes_its_runs_in_a_namespace_of_its_own() {
    // As root, the worker runs as this account (make test creates it, with a subordinate
    // uid range in /etc/subuid); otherwise as the user running the tests.
    let (name, user) = if root() {
        let user = account("jobcenter-rootless")
            .expect("a jobcenter-rootless account (make test creates it)");
        ("jobcenter-rootless".to_string(), Some(user))
    } else {
        (
            std::env::var("USER").expect("USER names who runs the tests"),
            None,
        )
    };
    let subuids = std::fs::read_to_string("/etc/subuid").unwrap();
    let (first, count): (u32, u32) = subuids
        .lines()
        .find_map(|l| {
            let p: Vec<&str> = l.split(':').collect();
            (p[0] == name).then(|| (p[1].parse().unwrap(), p[2].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("{name} has no subordinate uid range in /etc/subuid"));
    // SAFETY: getuid only reads the caller's id.
    let worker_uid = user.map_or_else(|| unsafe { libc::getuid() }, |(uid, _)| uid);
    let db = TestDb::new();
    let app = Component::start_as("all", &db, &[], user);
    let admin = Api::login_admin(&app).await;
    let (dev, project) = developer(&app, &admin, "dev").await;
    let marker = format!("jc-rootless-{}", uuid::Uuid::new_v4().simple());
    let job = dev
        .create_job(
            &project,
            json!({"name": "probe", "target": {"kind": "command", "command": ["bash", "-c",
            format!(r#"echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
            echo "workdir=$(ls -d {} 2>/dev/null | wc -l)"
            echo "uid=$(id -u)"
            exec -a {marker} sleep 30"#, app.workdir.path().display())]}}),
        )
        .await;
    let run = dev.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    dev.wait_running(&run).await;
    // Seen from the host: the run's process has a uid of the user's subordinate range,
    // neither root nor the worker's own.
    let pid = eventually(Duration::from_secs(10), "the run's process", || async {
        processes_with(&marker).into_iter().next()
    })
    .await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        (first..first + count).contains(&host_uid),
        "the run's host uid {host_uid} is not of the subordinate range {first}+{count}"
    );
    assert_ne!(host_uid, worker_uid);
    let cancel = dev
        .post(&format!("/api/v1/runs/{run}/cancel"), json!({}))
        .await;
    assert!(cancel.status < 300, "{cancel:?}");
    assert_eq!(dev.wait_finished(&run).await["state"], "cancelled");
    let log = dev
        .get(&format!("/api/v1/runs/{run}/logs"))
        .await
        .text()
        .to_string();
    assert_eq!(value(&log, "uid"), ["0"], "{log}");
    assert_eq!(value(&log, "workdir"), ["0"], "{log}");
    let processes: usize = value(&log, "processes")[0].parse().unwrap();
    assert!(processes < 10, "{log}");
    // What an ordinary user cannot enforce is said, not hidden.
    let workers = admin.get("/api/v1/workers").await;
    let sandbox = &workers.body[0]["sandbox"];
    assert_eq!(sandbox["enabled"], true, "{workers:?}");
    let unenforced = sandbox["unenforced"].to_string();
    assert!(unenforced.contains("outbound"), "{unenforced}");
}

#[tokio::test]
async fn a_run_can_neither_see_the_artifact_cache_nor_change_its_own_artifact() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let (alice, alice_project) = developer(&app, &admin, "alice").await;
    let (mallory, mallory_project) = developer(&app, &admin, "mallory").await;
    upload_tool(
        &alice,
        &alice_project,
        "#!/bin/sh\necho genuine-alice\n".into(),
    )
    .await;
    let alice_job = alice
        .create_job(
            &alice_project,
            json!({"name": "tool", "target": {"kind": "binary", "artifact": "tool"}}),
        )
        .await;
    let first = alice
        .trigger(alice_job["id"].as_str().unwrap(), json!(null))
        .await;
    assert_eq!(alice.wait_finished(&first).await["state"], "succeeded");
    let cache = app.workdir.path().join("runs").join("artifact-cache");
    assert!(
        cache.exists(),
        "the worker caches artifacts under {}",
        cache.display()
    );

    // Mallory's own binary tries to rewrite itself and to reach the cache.
    let script = format!(
        "#!/bin/bash\n(echo 'echo owned' >> \"$0\") 2>/dev/null && echo self=written || echo self=read-only\n\
         echo \"cache=$(ls -d {} 2>/dev/null | wc -l)\"\n\
         echo \"task=$(ls /var/task)\"\n",
        cache.display()
    );
    upload_tool(&mallory, &mallory_project, script).await;
    let job = mallory
        .create_job(
            &mallory_project,
            json!({"name": "tool", "target": {"kind": "binary", "artifact": "tool"}}),
        )
        .await;
    let run = mallory
        .trigger(job["id"].as_str().unwrap(), json!(null))
        .await;
    let finished = mallory.wait_finished(&run).await;
    assert_eq!(finished["state"], "succeeded", "{finished}");
    let log = mallory
        .get(&format!("/api/v1/runs/{run}/logs"))
        .await
        .text()
        .to_string();
    assert_eq!(value(&log, "self"), ["read-only"], "{log}");
    assert_eq!(value(&log, "cache"), ["0"], "{log}");
    assert_eq!(value(&log, "task"), ["binary"], "{log}");
    // Alice's cached binary is what she uploaded.
    let again = alice
        .trigger(alice_job["id"].as_str().unwrap(), json!(null))
        .await;
    assert_eq!(alice.wait_finished(&again).await["state"], "succeeded");
    let log = alice
        .get(&format!("/api/v1/runs/{again}/logs"))
        .await
        .text()
        .to_string();
    assert_eq!(log, "genuine-alice\n");
}

async fn upload_tool(api: &Api, project: &str, body: String) {
    let reply = api
        .request(
            "PUT",
            &format!("/api/v1/projects/{project}/artifacts/tool"),
            &[],
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
}
