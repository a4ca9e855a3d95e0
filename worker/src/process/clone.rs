//! `JOBCENTER_SPAWN=clone` (the default): the child is started the way `posix_spawn`
//! starts one, `clone(CLONE_VM | CLONE_VFORK)`, so it borrows the worker's memory until
//! `execve` instead of copying its page tables, as a `fork` of the worker does for every
//! run, and is born in the run's namespaces.
//!
//! The child shares the worker's memory and runs while the worker's other threads run,
//! so it only makes plain system calls on data prepared before the clone ([`super::child`]).

use super::child::{self, Setup};
use super::{Spec, SHELL};
use std::ffi::{c_char, c_int, c_void};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's stack: it runs only the setup, in small frames.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// Everything the child reads, as raw pointers into the worker's (shared) memory.
struct ChildArgs {
    candidates: Vec<*const c_char>,
    argv: Vec<*const c_char>,
    /// `/bin/sh`, (the candidate), the arguments: execvp's answer to a file without `#!`.
    /// Slot 1 is filled in by the child.
    sh_argv: *mut *const c_char,
    envp: Vec<*const c_char>,
    stdio: [RawFd; 3],
    setup: Setup,
    /// Written by a failing child before it exits: step << 16 | errno.
    failure: AtomicI32,
}

/// Starts `spec` with `stdio` as its standard streams: its pid and a pidfd.
pub fn spawn(spec: &Spec, stdio: [RawFd; 3]) -> io::Result<(u32, OwnedFd)> {
    let null_terminated = |strings: &[std::ffi::CString]| {
        let mut pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(std::ptr::null());
        pointers
    };
    let mut sh_argv = vec![SHELL.as_ptr(), std::ptr::null()];
    sh_argv.extend(null_terminated(spec.argv.get(1..).unwrap_or_default()));
    let args = ChildArgs {
        candidates: spec.candidates.iter().map(|s| s.as_ptr()).collect(),
        argv: null_terminated(&spec.argv),
        sh_argv: sh_argv.as_mut_ptr(),
        envp: null_terminated(&spec.envp),
        stdio,
        setup: spec.setup(),
        failure: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; CHILD_STACK_BYTES];
    // The stack grows down: the child starts at its (16-byte aligned) top.
    let top = stack.as_mut_ptr() as usize + CHILD_STACK_BYTES;
    let top = (top & !15) as *mut c_void;
    let mut pidfd: c_int = -1;
    let namespaces = spec.start.enter.map_or(0, |enter| enter.clone_flags);

    // Signals stay blocked from before the clone until the child has reset its handlers:
    // none may run a worker handler on the child's stack.
    // SAFETY: a zeroed sigset_t is a valid (empty) set.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pthread_sigmask overwrites it.
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset and pthread_sigmask only write the sets we pass, which live on
    // this stack frame.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
    }
    // SAFETY: the child runs `child_main` on `stack` with `args`, both alive until the
    // clone returns: CLONE_VFORK suspends this thread until the child has exec'd or
    // exited, so nothing they point into is freed or moved while the child reads it.
    // The child's own stack keeps it off this thread's frames. CLONE_PIDFD writes the
    // pidfd into `pidfd` (the parent_tid argument), a live local.
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD | namespaces,
            &args as *const ChildArgs as *mut c_void,
            &mut pidfd as *mut c_int,
            std::ptr::null_mut::<c_void>(),
            std::ptr::null_mut::<c_int>(),
        )
    };
    let clone_error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above, from a live local.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    drop((stack, sh_argv));
    if pid < 0 {
        return Err(clone_error);
    }
    // SAFETY: CLONE_PIDFD gave us this descriptor; nobody else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let failure = args.failure.load(Ordering::SeqCst);
    if failure != 0 {
        super::reap_blocking(pid);
        return Err(child::error(failure));
    }
    Ok((pid as u32, pidfd))
}

/// The child, between clone and exec. Only system calls on prepared data.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the ChildArgs the parent keeps alive while it is suspended.
    let args = unsafe { &*(arg as *const ChildArgs) };
    let fail = |failure: i32| -> ! {
        args.failure.store(failure, Ordering::SeqCst);
        // SAFETY: leaves without running any exit handler: they are the worker's.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: this is a child between clone and exec.
    unsafe { child::reset_signal_handlers() };
    for (target, &fd) in args.stdio.iter().enumerate() {
        let target = target as c_int;
        // dup2 onto itself would keep close-on-exec: clear it instead.
        // SAFETY: fcntl and dup2 take integers only; `fd` is open (the parent holds it).
        let connected = unsafe {
            if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            }
        };
        if connected == -1 {
            fail(child::failure(child::STEP_STDIO));
        }
    }
    // SAFETY: a child between clone and exec, born in the namespaces `enter` asks for;
    // the setup's pointers live until the clone returns in the parent.
    if let Err(failure) = unsafe { child::apply(&args.setup) } {
        fail(failure);
    }
    // execvp's search: a missing or inaccessible candidate moves on to the next; a
    // file without `#!` is run by /bin/sh; any other failure stops there.
    let mut denied = false;
    for &path in &args.candidates {
        // SAFETY: NUL-terminated strings and null-terminated arrays the parent prepared
        // and keeps alive; execve only returns on failure, and errno is this thread's.
        let errno = unsafe {
            libc::execve(path, args.argv.as_ptr(), args.envp.as_ptr());
            *libc::__errno_location()
        };
        match errno {
            libc::EACCES => denied = true,
            libc::ENOEXEC => {
                // SAFETY: slot 1 of `sh_argv` exists (the parent made it) and is only
                // written here, by the one child; the rest as for the execve above.
                unsafe {
                    *args.sh_argv.add(1) = path;
                    libc::execve(SHELL.as_ptr(), args.sh_argv, args.envp.as_ptr());
                }
                fail(child::failure(child::STEP_EXEC))
            }
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => fail(child::failure(child::STEP_EXEC)),
        }
    }
    if denied {
        // SAFETY: errno is this thread's, and read by `failure` just after.
        unsafe { *libc::__errno_location() = libc::EACCES };
    }
    fail(child::failure(child::STEP_EXEC))
}
