//! What a run's child does between its birth and `execve`, whichever way it was born
//! (`clone` or `std::process::Command`'s fork): the sandbox (cgroups, mounts, user
//! namespace), its directory, its own process group, resource limits, clean signals.
//!
//! The same code runs in both children, so it obeys the stricter rules of the `clone`
//! child, which shares the worker's memory: plain system calls on data prepared before
//! the spawn, no allocation, no lock. A failure is reported as `step << 16 | errno`.

use crate::isolation::{mounts, Enter};
use crate::sandbox::Sandbox;
use std::ffi::{c_char, c_void};
use std::io;

/// The step of the child's setup that failed, for the error message.
const STEPS: [&str; 11] = [
    "",
    "cannot connect the standard streams",
    "cannot enter the run directory",
    "cannot start a process group",
    "cannot apply the sandbox",
    "cannot run the program",
    "cannot reset the signal mask",
    "cannot join the run's cgroups",
    "cannot build the run's file system view",
    "cannot enter the run's user namespace",
    "cannot make the run's namespaces",
];
pub const STEP_STDIO: i32 = 1;
const STEP_DIR: i32 = 2;
const STEP_GROUP: i32 = 3;
const STEP_SANDBOX: i32 = 4;
pub const STEP_EXEC: i32 = 5;
const STEP_SIGNALS: i32 = 6;
const STEP_CGROUP: i32 = 7;
const STEP_MOUNTS: i32 = 8;
const STEP_USERNS: i32 = 9;
pub const STEP_NAMESPACES: i32 = 10;

/// What the child applies; raw pointers into what the worker keeps alive until the
/// spawn has returned.
#[derive(Clone, Copy)]
pub struct Setup {
    pub dir: *const c_char,
    pub sandbox: Sandbox,
    pub enter: Option<Enter>,
}

/// `step << 16 | errno` of the calling thread's errno.
pub fn failure(step: i32) -> i32 {
    (step << 16) | io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The error for a child's `step << 16 | errno`; a bare errno is an exec's.
pub fn error(failure: i32) -> io::Error {
    let (step, errno) = match failure >> 16 {
        0 => (STEP_EXEC, failure),
        step => (step, failure & 0xffff),
    };
    let step = STEPS.get(step as usize).copied().unwrap_or("cannot start");
    let cause = io::Error::from_raw_os_error(errno);
    io::Error::new(cause.kind(), format!("{step}: {cause}"))
}

/// Sets every signal handler back to the default: no handler of the worker may run in
/// the child, nor in the program it becomes.
///
/// # Safety
/// Only in a child between spawn and exec: the worker's handlers are gone for it.
pub unsafe fn reset_signal_handlers() {
    let default_action = [0u64; 4];
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: rt_sigaction reads the zeroed (SIG_DFL) action we pass.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    default_action.as_ptr(),
                    std::ptr::null::<c_void>(),
                    8usize,
                );
            }
        }
    }
}

/// Applies `setup` to the calling process: cgroups, file system view and host name
/// (still as the worker's root), directory, process group, the run's user namespace,
/// limits and user; then unblocks every signal.
///
/// # Safety
/// Only in a child between spawn and exec, in the namespaces `setup.enter` asks for;
/// `setup`'s pointers must be valid (the worker keeps them alive until the spawn
/// returns).
pub unsafe fn apply(setup: &Setup) -> Result<(), i32> {
    if let Some(enter) = &setup.enter {
        for &fd in &enter.cgroup_procs[..enter.cgroup_count] {
            // SAFETY: write reads one byte of a static string.
            if unsafe { libc::write(fd, c"0".as_ptr().cast(), 1) } != 1 {
                return Err(failure(STEP_CGROUP));
            }
        }
        // SAFETY: umask has no failure mode; the steps point into the worker's plan,
        // alive until the spawn returns (this function's contract).
        unsafe {
            let previous_mask = libc::umask(0);
            let ops = std::slice::from_raw_parts(enter.ops, enter.ops_len);
            if mounts::apply(ops).is_err() {
                return Err(failure(STEP_MOUNTS));
            }
            libc::umask(previous_mask);
        }
        let name = c"jobcenter";
        // SAFETY: sethostname reads the bytes of a static string, in our own UTS
        // namespace.
        unsafe { libc::sethostname(name.as_ptr(), name.count_bytes()) };
    }
    // SAFETY: chdir reads the NUL-terminated path the worker prepared.
    if unsafe { libc::chdir(setup.dir) } != 0 {
        return Err(failure(STEP_DIR));
    }
    // SAFETY: setpgid takes integers only.
    if unsafe { libc::setpgid(0, 0) } != 0 {
        return Err(failure(STEP_GROUP));
    }
    if let Some(enter) = &setup.enter {
        // Root of the run's own user namespace: host uid of its own, no group. Raw system
        // calls: glibc's would signal the worker's threads to change their ids too.
        // SAFETY: integers and a null group list; `userns` is a descriptor the worker
        // holds open.
        let entered = unsafe {
            libc::syscall(libc::SYS_setns, enter.userns, libc::CLONE_NEWUSER) == 0
                && libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) == 0
                && libc::syscall(libc::SYS_setresgid, 0, 0, 0) == 0
                && libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0
        };
        if !entered {
            return Err(failure(STEP_USERNS));
        }
    }
    // SAFETY: this function's contract is apply_in_child's.
    if unsafe { setup.sandbox.apply_in_child() }.is_err() {
        return Err(failure(STEP_SANDBOX));
    }
    let empty = 0u64;
    // SAFETY: rt_sigprocmask reads the empty set we pass.
    let unblocked = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null::<c_void>(),
            8usize,
        )
    };
    if unblocked != 0 {
        return Err(failure(STEP_SIGNALS));
    }
    Ok(())
}
