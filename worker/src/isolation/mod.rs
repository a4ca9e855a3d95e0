//! Every command, binary and bundle run in a sandbox of its own, built from Linux
//! namespaces in the spawn path (`crate::process`), with no launcher in between:
//!
//! - a user namespace whose root is a host uid of this worker's block, unique to the
//!   run while it lives ([`uids`]);
//! - PID, mount, IPC and UTS namespaces: the run sees only its processes, all of which
//!   die with its first one; its file system view is [`mounts`]';
//! - a cgroup per uid for memory, processes and CPU share ([`cgroups`]);
//! - `network: "none"`: a network namespace of its own; `"outbound"`: the host's, behind
//!   an nftables table keyed on the block's uids ([`firewall`]).
//!
//! A worker that is not root first becomes root of a user namespace of its own
//! ([`rootless`]). What this host cannot enforce is reported at start-up and shown by
//! `GET /api/v1/workers`; `JOBCENTER_SANDBOX=off` turns it all off.
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub mod cgroups;
pub mod firewall;
pub mod mounts;
pub mod rootless;
pub mod uids;

use jobcenter_core::config::Config;
use jobcenter_core::sandbox::{Network, SandboxReport};
use std::ffi::c_int;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Uids beyond the worker's capacity, for runs still being torn down when the next
/// claim arrives.
const SPARE_UIDS: usize = 8;

/// The sandbox machinery of one worker, set up once at start-up.
pub struct Isolation {
    uids: uids::Uids,
    /// Indexed by a uid's slot index; None where cgroups are unavailable.
    cgroups: Vec<Option<cgroups::RunCgroup>>,
    system: Vec<mounts::SystemDir>,
    /// The empty directory each run mounts its new root on (in its own namespace).
    root: PathBuf,
    tmp_bytes: u64,
    /// The outbound firewall is installed; without it "outbound" runs get no network.
    outbound_filtered: bool,
    pub report: SandboxReport,
}

/// What the child applies to enter its sandbox; raw data, see `crate::process`.
#[derive(Clone, Copy)]
pub struct Enter {
    /// Namespaces for `clone`.
    pub clone_flags: c_int,
    pub cgroup_procs: [RawFd; 3],
    pub cgroup_count: usize,
    pub ops: *const mounts::Op,
    pub ops_len: usize,
    pub userns: RawFd,
}

/// One run's place in the sandbox: its uid (with user namespace and cgroup) until the
/// run is over.
pub struct RunSandbox {
    isolation: Arc<Isolation>,
    slot: Option<uids::Slot>,
    oom_kills_before: u64,
}

impl Isolation {
    pub fn start(config: &Config, workdir: &Path) -> io::Result<Isolation> {
        // SAFETY: geteuid has no failure mode.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the run sandbox needs the worker to be root, or root of its own user \
                 namespace (or set JOBCENTER_SANDBOX=off)",
            ));
        }
        let count = config.worker_capacity + SPARE_UIDS;
        let mut unenforced = Vec::new();
        let uids = match rootless::current() {
            None => uids::Uids::take(
                config.sandbox_uid_base,
                65_536,
                256,
                count,
                Path::new("/run/jobcenter"),
            )?,
            Some(range) => {
                // The user's subordinate range, shared by up to 16 workers of that user.
                let lock_dir =
                    std::env::temp_dir().join(format!("jobcenter-uids-{}", range.host_uid));
                let block = range.count / 16;
                if block < count as u32 {
                    unenforced.push(format!(
                        "a host uid of its own per run (the worker's user has {} subordinate \
                         uids in /etc/subuid, or newuidmap is missing): runs share the worker's uid",
                        range.count
                    ));
                    uids::Uids::take(0, 0, 1024, count, &lock_dir)?
                } else {
                    uids::Uids::take(range.first, block, 16, count, &lock_dir)?
                }
            }
        };
        let kind = cgroups::Cgroups::detect();
        let limits = cgroups::RunLimits {
            memory_bytes: config.run_memory_max_bytes,
            processes: config.run_processes_max,
            cpu_shares: config.run_cpu_shares,
        };
        if !matches!(kind, cgroups::Cgroups::None) && rootless::current().is_none() {
            if let Err(e) = cgroups::favor_dynamic_changes() {
                tracing::warn!(error = %e, "cgroup2 favordynmods not set: each run start waits for an RCU grace period");
            }
        }
        let mut groups = Vec::with_capacity(count);
        for index in 0..count {
            match kind.make(uids.first + index as u32, limits) {
                Ok(group) => groups.push(group),
                Err(e) => {
                    unenforced.push(format!("per-run memory, process and CPU limits ({e})"));
                    groups.clear();
                    break;
                }
            }
        }
        if matches!(kind, cgroups::Cgroups::None) {
            unenforced.push(
                "per-run memory, process and CPU limits (no writable cgroup v1 or v2): \
                 address-space and per-uid process rlimits instead"
                    .into(),
            );
        }
        let script = firewall::script(
            uids.first,
            uids.last(),
            config.http_allow_private,
            &firewall::private_resolvers(),
        );
        let outbound_filtered = match firewall::install(&script) {
            Ok(()) => true,
            Err(e) => {
                unenforced.push(format!(
                    "network \"outbound\" ({e}): such runs get no network at all"
                ));
                false
            }
        };
        let root = workdir.join(".sandbox-root");
        std::fs::create_dir_all(&root)?;
        for problem in &unenforced {
            tracing::warn!(%problem, "the run sandbox cannot enforce this on this host");
        }
        tracing::info!(
            uids = %format!("{}-{}", uids.first, uids.last()),
            cgroups = kind.name(),
            "runs start in a sandbox of their own"
        );
        Ok(Isolation {
            cgroups: if groups.len() == count {
                groups
            } else {
                Vec::new()
            },
            system: mounts::system_dirs(&config.sandbox_system_dirs),
            root,
            tmp_bytes: config.sandbox_tmp_bytes,
            outbound_filtered,
            report: SandboxReport {
                enabled: true,
                unenforced,
            },
            uids,
        })
    }

    /// Whether memory is limited by a cgroup (else by RLIMIT_AS).
    pub fn limits_memory(&self) -> bool {
        self.cgroups.iter().any(Option::is_some)
    }

    /// A sandbox for one run; fails only when every uid is taken.
    pub fn acquire(self: &Arc<Self>) -> io::Result<RunSandbox> {
        let slot = self
            .uids
            .acquire()
            .ok_or_else(|| io::Error::other("every sandbox uid is in use"))?;
        let oom_kills_before = self.cgroup(&slot).map_or(0, |g| g.oom_kills());
        Ok(RunSandbox {
            isolation: self.clone(),
            slot: Some(slot),
            oom_kills_before,
        })
    }

    fn cgroup(&self, slot: &uids::Slot) -> Option<&cgroups::RunCgroup> {
        self.cgroups.get(slot.index).and_then(Option::as_ref)
    }

    pub fn uninstall(&self) {
        if self.outbound_filtered {
            firewall::remove(self.uids.first);
        }
    }
}

impl RunSandbox {
    /// The host uid (and gid) the run's root is.
    pub fn host_uid(&self) -> u32 {
        self.slot.as_ref().expect("held until dropped").uid
    }

    /// The mount plan for a run of `work` (its directory on the host) and `artifact`.
    pub fn plan(&self, work: &Path, artifact: mounts::Artifact<'_>) -> io::Result<mounts::Plan> {
        let iso = &self.isolation;
        mounts::Plan::build(&iso.root, &iso.system, work, artifact, iso.tmp_bytes)
    }

    /// What the child applies, pointing into `plan` (which must outlive the spawn).
    pub fn enter(&self, plan: &mounts::Plan, network: Network) -> Enter {
        let slot = self.slot.as_ref().expect("held until dropped");
        let mut flags =
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        if network == Network::None || !self.isolation.outbound_filtered {
            flags |= libc::CLONE_NEWNET;
        }
        let mut cgroup_procs = [-1; 3];
        let mut cgroup_count = 0;
        if let Some(group) = self.isolation.cgroup(slot) {
            for (i, fd) in group.procs_fds().into_iter().take(3).enumerate() {
                cgroup_procs[i] = fd;
                cgroup_count = i + 1;
            }
        }
        Enter {
            clone_flags: flags,
            cgroup_procs,
            cgroup_count,
            ops: plan.ops.as_ptr(),
            ops_len: plan.ops.len(),
            userns: slot.userns(),
        }
    }

    /// Whether the kernel's OOM killer killed a process of this run.
    pub fn ran_out_of_memory(&self) -> bool {
        let slot = self.slot.as_ref().expect("held until dropped");
        self.isolation
            .cgroup(slot)
            .is_some_and(|g| g.oom_kills() > self.oom_kills_before)
    }
}

impl Drop for RunSandbox {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.isolation.uids.release(slot);
        }
    }
}

/// Whether process `pid` handles SIGTERM. A sandbox's first process is its PID
/// namespace's init, which the kernel shields from signals it does not handle: one that
/// does not would ignore the SIGTERM that ends any other run.
pub fn handles_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caught| caught & (1 << (libc::SIGTERM - 1)) != 0)
}
