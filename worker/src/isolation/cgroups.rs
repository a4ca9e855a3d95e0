//! Resource limits per run, not per uid: one cgroup per sandbox uid, made at start-up
//! with the run limits written once, joined by the run's first process before exec.
//! cgroup v2 where the host delegates its controllers at `/sys/fs/cgroup`, else the v1
//! hierarchies `memory`, `pids` and `cpu`; what neither offers is reported.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The limits every run of this worker gets.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub memory_bytes: u64,
    pub processes: u64,
    pub cpu_shares: u64,
}

/// One uid's cgroups: the `cgroup.procs` files its run joins, and where it counts
/// OOM kills.
pub struct RunCgroup {
    procs: Vec<File>,
    oom_events: Option<(PathBuf, &'static str)>,
}

impl RunCgroup {
    /// Descriptors of the `cgroup.procs` files (written "0" by the child: itself).
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// How many processes of this cgroup the kernel's OOM killer has killed so far.
    pub fn oom_kills(&self) -> u64 {
        let Some((path, key)) = &self.oom_events else {
            return 0;
        };
        let text = fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.strip_prefix(key))
            .filter_map(|rest| rest.trim().parse().ok())
            .next()
            .unwrap_or(0)
    }
}

/// Which cgroup interface the host offers.
pub enum Cgroups {
    V2,
    V1,
    /// No writable cgroup: limits fall back to rlimits, as reported.
    None,
}

impl Cgroups {
    pub fn detect() -> Cgroups {
        let v2_controllers = fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"));
        match v2_controllers {
            Ok(list)
                if ["memory", "pids"]
                    .iter()
                    .all(|c| list.split_whitespace().any(|x| x == *c)) =>
            {
                Cgroups::V2
            }
            _ if writable_dir(&Path::new(ROOT).join("memory"))
                && writable_dir(&Path::new(ROOT).join("pids")) =>
            {
                Cgroups::V1
            }
            _ => Cgroups::None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Cgroups::V2 => "cgroup v2",
            Cgroups::V1 => "cgroup v1",
            Cgroups::None => "none",
        }
    }

    /// The cgroup of sandbox uid `uid`, made (or reused) with `limits`.
    pub fn make(&self, uid: u32, limits: RunLimits) -> io::Result<Option<RunCgroup>> {
        match self {
            Cgroups::None => Ok(None),
            Cgroups::V2 => v2(uid, limits).map(Some),
            Cgroups::V1 => v1(uid, limits).map(Some),
        }
    }
}

fn writable_dir(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access reads the NUL-terminated path we pass.
    path.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}/{file}: {e}", dir.display())))
}

fn procs(dir: &Path) -> io::Result<File> {
    File::options().write(true).open(dir.join("cgroup.procs"))
}

fn v1(uid: u32, limits: RunLimits) -> io::Result<RunCgroup> {
    let dir = |controller: &str| {
        Path::new(ROOT)
            .join(controller)
            .join("jobcenter")
            .join(uid.to_string())
    };
    let (memory, pids) = (dir("memory"), dir("pids"));
    fs::create_dir_all(&memory)?;
    fs::create_dir_all(&pids)?;
    if limits.memory_bytes > 0 {
        write(
            &memory,
            "memory.limit_in_bytes",
            &limits.memory_bytes.to_string(),
        )?;
    }
    let max = if limits.processes > 0 {
        limits.processes.to_string()
    } else {
        "max".into()
    };
    write(&pids, "pids.max", &max)?;
    let mut procs_files = vec![procs(&memory)?, procs(&pids)?];
    let cpu = dir("cpu");
    if writable_dir(
        cpu.parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/")),
    ) && fs::create_dir_all(&cpu).is_ok()
    {
        write(&cpu, "cpu.shares", &limits.cpu_shares.to_string())?;
        procs_files.push(procs(&cpu)?);
    }
    Ok(RunCgroup {
        procs: procs_files,
        oom_events: Some((memory.join("memory.oom_control"), "oom_kill ")),
    })
}

fn v2(uid: u32, limits: RunLimits) -> io::Result<RunCgroup> {
    let parent = Path::new(ROOT).join("jobcenter");
    fs::create_dir_all(&parent)?;
    // Controllers are handed down level by level; "cpu" may be missing (then no share).
    for level in [Path::new(ROOT), parent.as_path()] {
        for controller in ["+memory", "+pids", "+cpu"] {
            let _ = write(level, "cgroup.subtree_control", controller);
        }
    }
    let dir = parent.join(uid.to_string());
    fs::create_dir_all(&dir)?;
    if limits.memory_bytes > 0 {
        write(&dir, "memory.max", &limits.memory_bytes.to_string())?;
        let _ = write(&dir, "memory.swap.max", "0");
    }
    let max = if limits.processes > 0 {
        limits.processes.to_string()
    } else {
        "max".into()
    };
    write(&dir, "pids.max", &max)?;
    // cpu.shares 2..262144 onto cpu.weight 1..10000, as the kernel's own conversion.
    let weight = 1 + (limits.cpu_shares.saturating_sub(2) * 9999) / 262_142;
    let _ = write(&dir, "cpu.weight", &weight.to_string());
    Ok(RunCgroup {
        procs: vec![procs(&dir)?],
        oom_events: Some((dir.join("memory.events"), "oom_kill ")),
    })
}

/// Moving a process into a cgroup takes the kernel's global threadgroup lock for
/// writing, which waits for an RCU grace period each time the lock has been idle: a few
/// milliseconds per run start. The cgroup2 mount option `favordynmods` keeps that lock
/// ready for writers (at a small cost to every fork and exit on the host), and it covers
/// the v1 hierarchies too, the lock being one for all. Set on the host's cgroup2 mount,
/// keeping its other options; without one, nothing is changed.
pub fn favor_dynamic_changes() -> io::Result<bool> {
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    let Some((target, options)) = mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&"cgroup2")).then(|| (fields[1].to_string(), fields[3].to_string()))
    }) else {
        return Ok(false);
    };
    if options.split(',').any(|o| o == "favordynmods") {
        return Ok(true);
    }
    // The cgroup2 options of the mount, then ours (generic ones like rw are flags).
    let own: Vec<&str> = options
        .split(',')
        .filter(|o| {
            [
                "nsdelegate",
                "memory_recursiveprot",
                "memory_localevents",
                "memory_hugetlb_accounting",
            ]
            .contains(o)
        })
        .chain(["favordynmods"])
        .collect();
    let target_c = std::ffi::CString::new(target).map_err(io::Error::other)?;
    let data = std::ffi::CString::new(own.join(",")).map_err(io::Error::other)?;
    // SAFETY: mount reads the NUL-terminated strings we pass.
    let done = unsafe {
        libc::mount(
            std::ptr::null(),
            target_c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT,
            data.as_ptr().cast(),
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
