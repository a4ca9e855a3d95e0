//! A run's file system view, built in the child between spawn and exec (it is root in
//! a fresh mount namespace there): a small read-only tmpfs as `/` holding the host's
//! system directories bound read-only, a few of the host's device nodes, its own `/proc`, its own
//! `/tmp`, the run directory at `/work`, the artifact read-only at `/var/task`; then
//! `pivot_root` into it, the old root detached. Nothing else of the host exists there.
//!
//! The worker prepares the steps as a [`Plan`] of raw pointers into strings it owns;
//! the child only walks them with plain system calls (see `crate::process::child`).

use std::ffi::{c_char, c_ulong, CString};
use std::io;
use std::path::{Path, PathBuf};

/// Where the run's working directory appears inside the sandbox.
pub const WORK: &str = "/work";
/// Where a bundle appears inside the sandbox (Lambda's `LAMBDA_TASK_ROOT`).
pub const TASK: &str = "/var/task";
/// Where a single binary appears inside the sandbox.
pub const BINARY: &str = "/var/task/binary";

/// A host system directory as the sandbox shows it.
#[derive(Debug, Clone)]
pub enum SystemDir {
    /// Bound read-only at the same path.
    Bind(PathBuf),
    /// A symlink at the same path with the same target (merged-/usr layouts).
    Symlink(PathBuf, PathBuf),
}

/// The configured system directories that exist on this host, as they are.
pub fn system_dirs(paths: &[PathBuf]) -> Vec<SystemDir> {
    paths
        .iter()
        .filter(|path| path.is_absolute())
        .filter_map(|path| {
            let meta = std::fs::symlink_metadata(path).ok()?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(path).ok()?;
                Some(SystemDir::Symlink(path.clone(), target))
            } else if meta.is_dir() {
                Some(SystemDir::Bind(path.clone()))
            } else {
                None
            }
        })
        .collect()
}

/// What a run has to be given read-only.
pub enum Artifact<'a> {
    None,
    Binary(&'a Path),
    Bundle(&'a Path),
}

/// One step of the child's setup.
#[derive(Clone, Copy)]
pub enum Op {
    Mount {
        source: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_char,
    },
    Mkdir {
        path: *const c_char,
        mode: libc::mode_t,
    },
    Symlink {
        target: *const c_char,
        link: *const c_char,
    },
    /// An empty file to bind a file onto.
    Touch { path: *const c_char },
    /// Make `path` the root and detach the old one.
    PivotRoot { path: *const c_char },
}

/// The steps, and the strings they point into (kept alive with them).
pub struct Plan {
    strings: Vec<CString>,
    pub ops: Vec<Op>,
}

// SAFETY: the pointers point into `strings`, owned by the plan and never changed after
// it is built (moving a CString moves its handle, not its bytes); the plan is only read.
unsafe impl Send for Plan {}
// SAFETY: as for Send: nothing reachable through a shared plan is ever written.
unsafe impl Sync for Plan {}

const NONE: *const c_char = std::ptr::null();

impl Plan {
    /// The steps that give a run under `root` (an empty host directory, the mount
    /// point of the new root) its view.
    pub fn build(
        root: &Path,
        system: &[SystemDir],
        work: &Path,
        artifact: Artifact<'_>,
        tmp_bytes: u64,
    ) -> io::Result<Plan> {
        let mut plan = Plan {
            strings: Vec::new(),
            ops: Vec::new(),
        };
        let inside = |path: &str| root.join(path.trim_start_matches('/'));
        let root_s = plan.path(root)?;
        let tmpfs = plan.text("tmpfs")?;
        let root_data = plan.text("mode=0755,size=1m,nr_inodes=4096")?;
        plan.ops.push(Op::Mount {
            source: tmpfs,
            target: root_s,
            fstype: tmpfs,
            flags: libc::MS_NOSUID,
            data: root_data,
        });
        for dir in system {
            match dir {
                SystemDir::Bind(path) => {
                    let target = inside(&path.to_string_lossy());
                    plan.mkdir_all(root, &target)?;
                    plan.bind(path, &target, true, true)?;
                }
                SystemDir::Symlink(path, link_target) => {
                    let link = inside(&path.to_string_lossy());
                    if let Some(parent) = link.parent() {
                        plan.mkdir_all(root, parent)?;
                    }
                    let target = plan.path(link_target)?;
                    let link = plan.path(&link)?;
                    plan.ops.push(Op::Symlink { target, link });
                }
            }
        }
        plan.devices(&inside("dev"))?;
        let proc_dir = inside("proc");
        plan.mkdir(&proc_dir, 0o555)?;
        let (proc_s, proc_path) = (plan.text("proc")?, plan.path(&proc_dir)?);
        plan.ops.push(Op::Mount {
            source: proc_s,
            target: proc_path,
            fstype: proc_s,
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: NONE,
        });
        let tmp = inside("tmp");
        plan.mkdir(&tmp, 0o1777)?;
        let tmp_data = plan.text(&format!("mode=1777,size={tmp_bytes}"))?;
        let tmp_path = plan.path(&tmp)?;
        plan.ops.push(Op::Mount {
            source: tmpfs,
            target: tmp_path,
            fstype: tmpfs,
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: tmp_data,
        });
        let work_dir = inside(WORK);
        plan.mkdir(&work_dir, 0o755)?;
        plan.bind(work, &work_dir, false, false)?;
        match artifact {
            Artifact::None => {}
            Artifact::Bundle(dir) => {
                let task = inside(TASK);
                plan.mkdir_all(root, &task)?;
                plan.bind(dir, &task, true, true)?;
            }
            Artifact::Binary(file) => {
                let task = inside(TASK);
                plan.mkdir_all(root, &task)?;
                let binary = inside(BINARY);
                let path = plan.path(&binary)?;
                plan.ops.push(Op::Touch { path });
                plan.bind(file, &binary, true, false)?;
            }
        }
        // The skeleton itself becomes read-only, then the root.
        plan.ops.push(Op::Mount {
            source: NONE,
            target: root_s,
            fstype: NONE,
            flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID,
            data: NONE,
        });
        plan.ops.push(Op::PivotRoot { path: root_s });
        Ok(plan)
    }

    fn text(&mut self, text: &str) -> io::Result<*const c_char> {
        let c = CString::new(text).map_err(|_| io::Error::other("a NUL byte in a path"))?;
        let pointer = c.as_ptr();
        // Moving the CString moves only its handle: the bytes stay where they are.
        self.strings.push(c);
        Ok(pointer)
    }

    fn path(&mut self, path: &Path) -> io::Result<*const c_char> {
        self.text(&path.to_string_lossy())
    }

    fn mkdir(&mut self, path: &Path, mode: libc::mode_t) -> io::Result<()> {
        let path = self.path(path)?;
        self.ops.push(Op::Mkdir { path, mode });
        Ok(())
    }

    /// `path` and its ancestors below `root`.
    fn mkdir_all(&mut self, root: &Path, path: &Path) -> io::Result<()> {
        let relative = path.strip_prefix(root).map_err(io::Error::other)?;
        let mut current = root.to_path_buf();
        for part in relative.components() {
            current.push(part);
            self.mkdir(&current.clone(), 0o755)?;
        }
        Ok(())
    }

    /// Binds `source` on `target`, then remounts it nosuid, nodev and (if asked)
    /// read-only: a bind mount ignores those flags on its first call.
    fn bind(
        &mut self,
        source: &Path,
        target: &Path,
        read_only: bool,
        recursive: bool,
    ) -> io::Result<()> {
        let (source, target) = (self.path(source)?, self.path(target)?);
        let recursive = if recursive { libc::MS_REC } else { 0 };
        self.ops.push(Op::Mount {
            source,
            target,
            fstype: NONE,
            flags: libc::MS_BIND | recursive,
            data: NONE,
        });
        let read_only = if read_only { libc::MS_RDONLY } else { 0 };
        self.ops.push(Op::Mount {
            source: NONE,
            target,
            fstype: NONE,
            flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV | read_only,
            data: NONE,
        });
        Ok(())
    }

    /// The device nodes programs expect, and the usual links.
    fn devices(&mut self, dev: &Path) -> io::Result<()> {
        self.mkdir(dev, 0o755)?;
        // Bound from the host's /dev (a node made here would need CAP_MKNOD on the host,
        // which a worker in its own user namespace lacks).
        for name in ["null", "zero", "full", "random", "urandom", "tty"] {
            let host = Path::new("/dev").join(name);
            let node = dev.join(name);
            let (source, target) = (self.path(&host)?, self.path(&node)?);
            self.ops.push(Op::Touch { path: target });
            self.ops.push(Op::Mount {
                source,
                target,
                fstype: NONE,
                flags: libc::MS_BIND,
                data: NONE,
            });
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("shm", "/tmp"),
        ] {
            let (target, link) = (self.text(target)?, self.path(&dev.join(name))?);
            self.ops.push(Op::Symlink { target, link });
        }
        Ok(())
    }
}

/// Walks the steps; on failure, the index of the step that failed (errno is set).
///
/// # Safety
/// Runs in the child between spawn and exec (`crate::process::child`), root of fresh
/// mount and PID namespaces: `ops` point into a [`Plan`]'s strings, which the worker
/// keeps alive until the spawn has returned.
pub unsafe fn apply(ops: &[Op]) -> Result<(), usize> {
    let dot = c".".as_ptr();
    let slash = c"/".as_ptr();
    // Nothing done here may propagate back to the host's mounts.
    // SAFETY: mount reads the static strings we pass; null is allowed for the others.
    let private = unsafe {
        libc::mount(
            NONE,
            slash,
            NONE,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if private != 0 {
        return Err(0);
    }
    for (index, op) in ops.iter().enumerate() {
        // SAFETY: each pointer is null where the call allows it or a NUL-terminated
        // string of the plan, alive as this function's contract says; the calls change
        // only this process's (new) mount namespace and its own descriptors.
        let ok = unsafe { step(*op, dot, slash) };
        if !ok {
            return Err(index + 1);
        }
    }
    Ok(())
}

/// One step; false (with errno set) if it failed.
///
/// # Safety
/// As [`apply`]'s, for `op`; `dot` and `slash` are `"."` and `"/"`.
unsafe fn step(op: Op, dot: *const c_char, slash: *const c_char) -> bool {
    // SAFETY: this function's contract: valid strings, in the run's own namespaces.
    unsafe {
        match op {
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => libc::mount(source, target, fstype, flags, data.cast()) == 0,
            Op::Mkdir { path, mode } => {
                libc::mkdir(path, mode) == 0 || *libc::__errno_location() == libc::EEXIST
            }
            Op::Symlink { target, link } => libc::symlink(target, link) == 0,
            Op::Touch { path } => {
                let fd = libc::open(
                    path,
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o444,
                );
                fd >= 0 && libc::close(fd) == 0
            }
            Op::PivotRoot { path } => {
                libc::chdir(path) == 0
                    && libc::syscall(libc::SYS_pivot_root, dot, dot) == 0
                    && libc::umount2(dot, libc::MNT_DETACH) == 0
                    && libc::chdir(slash) == 0
            }
        }
    }
}
