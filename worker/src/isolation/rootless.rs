//! A worker that is not root: at start-up, before any thread exists, it becomes root of a
//! user namespace of its own, so that it can make each run's namespaces as a root worker
//! does. With a subordinate uid range for its user (`/etc/subuid`, `/etc/subgid`, written
//! into the namespace by `newuidmap`/`newgidmap` from Debian's `uidmap`), each run still
//! gets a host uid of its own; without one, runs share the worker's uid, and say so.
//! The host's firewall and cgroups stay out of reach of an ordinary user: what that leaves
//! unenforced is reported like any other gap.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::sync::OnceLock;

/// The uids of the worker's own namespace that runs may take.
#[derive(Debug, Clone, Copy)]
pub struct Rootless {
    /// First namespace uid for runs, and how many (0: runs share the worker's uid).
    pub first: u32,
    pub count: u32,
    /// The worker's uid on the host.
    pub host_uid: u32,
}

static ROOTLESS: OnceLock<Rootless> = OnceLock::new();

/// Set when the worker entered its own user namespace.
pub fn current() -> Option<Rootless> {
    ROOTLESS.get().copied()
}

/// A `name:start:count` range of `file` for the user `name` or `uid`.
fn subordinate(file: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (owner, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        (owner == name || owner == uid.to_string())
            .then(|| Some((start.parse().ok()?, count.parse().ok()?)))
            .flatten()
    })
}

fn user_name(uid: u32) -> String {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let mut parts = line.split(':');
            let name = parts.next()?;
            (parts.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
        .unwrap_or_default()
}

fn write_file(path: &str, text: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// Enters a user namespace of the worker's own. Must be called before any other thread
/// starts (a threaded process cannot change its user namespace).
pub fn enter() -> io::Result<Rootless> {
    // SAFETY: getuid and getgid have no failure mode.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let name = user_name(uid);
    let ranges = subordinate("/etc/subuid", &name, uid).zip(subordinate("/etc/subgid", &name, uid));
    let helpers = ["/usr/bin/newuidmap", "/usr/bin/newgidmap"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    let rootless = match ranges.filter(|_| helpers) {
        Some(((uid_start, uid_count), (gid_start, gid_count))) => {
            let count = uid_count.min(gid_count);
            map_with_helpers(uid, gid, uid_start, gid_start, count)?;
            Rootless {
                first: 1,
                count,
                host_uid: uid,
            }
        }
        None => {
            // SAFETY: unshare with a flag; the process is single-threaded here.
            if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
                return Err(io::Error::last_os_error());
            }
            write_file("/proc/self/setgroups", "deny")?;
            write_file("/proc/self/uid_map", &format!("0 {uid} 1\n"))?;
            write_file("/proc/self/gid_map", &format!("0 {gid} 1\n"))?;
            Rootless {
                first: 0,
                count: 0,
                host_uid: uid,
            }
        }
    };
    let _ = ROOTLESS.set(rootless);
    Ok(rootless)
}

/// Unshares the user namespace while a forked child, still outside it, has
/// `newuidmap`/`newgidmap` write its maps: the worker's own ids as 0, the subordinate
/// ranges from 1.
fn map_with_helpers(
    uid: u32,
    gid: u32,
    uid_start: u32,
    gid_start: u32,
    count: u32,
) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors, which we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and nobody else owns them.
    let (mut ready_read, mut ready_write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: getpid has no failure mode.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the process is single-threaded here (before any thread starts), so the
    // child may run any code, not only async-signal-safe calls.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(ready_write);
            let mut byte = [0u8];
            let mapped = ready_read.read_exact(&mut byte).is_ok()
                && run(
                    "/usr/bin/newuidmap",
                    &[
                        parent.to_string(),
                        "0".into(),
                        uid.to_string(),
                        "1".into(),
                        "1".into(),
                        uid_start.to_string(),
                        count.to_string(),
                    ],
                )
                && run(
                    "/usr/bin/newgidmap",
                    &[
                        parent.to_string(),
                        "0".into(),
                        gid.to_string(),
                        "1".into(),
                        "1".into(),
                        gid_start.to_string(),
                        count.to_string(),
                    ],
                );
            // SAFETY: leaves the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(if mapped { 0 } else { 1 }) }
        }
        child => {
            drop(ready_read);
            // SAFETY: unshare with a flag; the process is single-threaded here.
            let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
            let error = io::Error::last_os_error();
            let _ = ready_write.write_all(if unshared { b"1" } else { b"0" });
            drop(ready_write);
            let mut status = 0;
            // SAFETY: waits for the child we forked, writing into a live local.
            unsafe { libc::waitpid(child, &mut status, 0) };
            if !unshared {
                return Err(error);
            }
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                return Err(io::Error::other(
                    "newuidmap/newgidmap could not map the subordinate ids of /etc/subuid and /etc/subgid",
                ));
            }
            Ok(())
        }
    }
}

fn run(program: &str, args: &[String]) -> bool {
    let Ok(program) = CString::new(program) else {
        return false;
    };
    std::process::Command::new(program.to_str().unwrap_or_default())
        .args(args)
        .stdin(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
