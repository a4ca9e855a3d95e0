//! The host uids of sandboxes. A worker takes a block of 65,536 uids (held by a lock
//! file, so that workers on one host never share one) and gives each run one uid of it
//! for as long as the run lives: no two live runs share a uid, and no jobcenter
//! process has one.
//!
//! Each uid has a user namespace made once, in which uid 0 is that host uid. A run's
//! process enters it with `setns` after the worker (root) has built its mounts; so the
//! run is root in a namespace that owns none of its other namespaces, and an
//! unprivileged stranger on the host.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Mutex;

/// A worker's uid block: the lock that holds it, and its free uids.
pub struct Uids {
    pub first: u32,
    pub block: u32,
    _lock: File,
    free: Mutex<Vec<Slot>>,
}

/// One uid with its user namespace.
pub struct Slot {
    pub uid: u32,
    pub index: usize,
    userns: OwnedFd,
}

impl Slot {
    pub fn userns(&self) -> RawFd {
        self.userns.as_raw_fd()
    }
}

impl Uids {
    /// Takes the first free block of `block` uids from `base`, at most `blocks` of them
    /// (lock files under `lock_dir`), and makes `count` uids ready. `block` 0: every run
    /// has uid `base` (a worker without a uid range of its own).
    pub fn take(
        base: u32,
        block: u32,
        blocks: u32,
        count: usize,
        lock_dir: &Path,
    ) -> io::Result<Uids> {
        std::fs::create_dir_all(lock_dir)?;
        for index in 0..blocks {
            let Some(first) = index.checked_mul(block).and_then(|o| base.checked_add(o)) else {
                break;
            };
            let block_number = index;
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_dir.join(format!("uid-block-{block_number}.lock")))?;
            // SAFETY: flock on a descriptor we own; it touches no memory.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            let mut free = Vec::with_capacity(count);
            for index in (0..count).rev() {
                let uid = if block == 0 {
                    first
                } else {
                    first + index as u32
                };
                free.push(Slot {
                    uid,
                    index,
                    userns: user_namespace(uid)?,
                });
            }
            return Ok(Uids {
                first,
                block,
                _lock: lock,
                free: Mutex::new(free),
            });
        }
        Err(io::Error::other("no free block of sandbox uids"))
    }

    pub fn last(&self) -> u32 {
        self.first + self.block.max(1) - 1
    }

    /// A uid for one run; None when every one is in use (more runs than slots).
    pub fn acquire(&self) -> Option<Slot> {
        self.free.lock().expect("not poisoned").pop()
    }

    /// Back once every process of the run is gone.
    pub fn release(&self, slot: Slot) {
        self.free.lock().expect("not poisoned").push(slot);
    }
}

/// A user namespace whose uid and gid 0 are `uid` on the host, kept by its descriptor.
/// Made by a short-lived `sleep` that unshares it; the worker (root) writes its maps.
fn user_namespace(uid: u32) -> io::Result<OwnedFd> {
    let mut command = std::process::Command::new("/bin/sleep");
    command
        .arg("60")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: unshare is a plain system call, fine between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let made = (|| {
        let proc_dir = format!("/proc/{}", child.id());
        File::options()
            .write(true)
            .open(format!("{proc_dir}/uid_map"))?
            .write_all(format!("0 {uid} 1\n").as_bytes())?;
        File::options()
            .write(true)
            .open(format!("{proc_dir}/gid_map"))?
            .write_all(format!("0 {uid} 1\n").as_bytes())?;
        let ns = File::open(format!("{proc_dir}/ns/user"))?;
        Ok(OwnedFd::from(ns))
    })();
    let _ = child.kill();
    let _ = child.wait();
    made
}
