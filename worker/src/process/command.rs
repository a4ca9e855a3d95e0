//! `JOBCENTER_SPAWN=command`: the child is started by `std::process::Command` (a `fork`
//! of the worker), which connects the streams, sets the environment and execs the program
//! the way `execvp` does; in between, a `pre_exec` hook applies the same setup as the
//! `clone` child ([`super::child`]). The safe reference for the clone path, at the cost
//! of copying the worker's page tables per run.
//!
//! Two things only the parent can do are done by a thread of its own per run: a process
//! cannot move itself into a new PID namespace, so the thread unshares one for its
//! children before it forks (the thread's state, not the worker's); and the parent-death
//! signal is sent when the *thread* that forked the child ends, so the thread lives until
//! the child is reaped.

use super::child::{self, Setup};
use super::Spec;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// The thread a child was forked from; dropped once the child is reaped, it ends.
pub struct ForkingThread {
    _reaped: mpsc::Sender<()>,
}

/// The setup, sendable to the forking thread.
struct SendSetup(Setup);

// SAFETY: the pointers in the setup point into what the worker keeps alive until
// `spawn` returns, and `spawn` waits for the forking thread's answer, after which the
// hook that reads them is never run again (the forked child reads them in its own copy
// of the memory).
unsafe impl Send for SendSetup {}
// SAFETY: as for Send; the setup is only read.
unsafe impl Sync for SendSetup {}

/// Starts `spec` with `stdio` as its standard streams: its pid and the thread to keep.
pub fn spawn(spec: &Spec, stdio: [OwnedFd; 3]) -> io::Result<(u32, ForkingThread)> {
    let [stdin, stdout, stderr] = stdio;
    let program = spec
        .argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = Command::new(OsStr::from_bytes(program.as_bytes()));
    command
        .args(
            spec.argv[1..]
                .iter()
                .map(|a| OsStr::from_bytes(a.as_bytes())),
        )
        .env_clear()
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    for variable in &spec.envp {
        let bytes = variable.as_bytes();
        let split = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        let value = bytes.get(split + 1..).unwrap_or_default();
        command.env(OsStr::from_bytes(&bytes[..split]), OsStr::from_bytes(value));
    }
    let setup = SendSetup(spec.setup());
    // The namespaces the clone child is born in, less the PID namespace (the thread's).
    let unshare = spec
        .start
        .enter
        .map_or(0, |enter| enter.clone_flags & !libc::CLONE_NEWPID);
    // SAFETY: pre_exec's contract: the hook runs in the forked copy of a multi-threaded
    // process, where another thread may have held a lock at the fork, so it may only make
    // async-signal-safe calls. It makes plain system calls on prepared data, with no
    // allocation or lock (an `io::Error` from an errno allocates nothing); the setup's
    // pointers are alive (see SendSetup); the child has one thread, as unshare and
    // setns(CLONE_NEWUSER) require.
    unsafe {
        command.pre_exec(move || {
            let setup = &setup;
            child::reset_signal_handlers();
            if unshare != 0 && libc::unshare(unshare) != 0 {
                return Err(io::Error::from_raw_os_error(child::failure(
                    child::STEP_NAMESPACES,
                )));
            }
            child::apply(&setup.0).map_err(io::Error::from_raw_os_error)
        });
    }
    let new_pid_namespace = spec
        .start
        .enter
        .is_some_and(|enter| enter.clone_flags & libc::CLONE_NEWPID != 0);
    let (started_tx, started_rx) = mpsc::channel();
    let (reaped_tx, reaped_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("jobcenter-fork".into())
        .spawn(move || {
            let started = fork(command, new_pid_namespace);
            let forked = started.is_ok();
            let _ = started_tx.send(started);
            if forked {
                // Until the sender is dropped: the child is reaped.
                let _ = reaped_rx.recv();
            }
        })?;
    let pid = started_rx
        .recv()
        .map_err(|_| io::Error::other("the forking thread ended"))?
        .map_err(|e| match e.raw_os_error() {
            Some(failure) => child::error(failure),
            None => e,
        })?;
    Ok((pid, ForkingThread { _reaped: reaped_tx }))
}

/// Forks the child, in a PID namespace of its own when asked.
fn fork(mut command: Command, new_pid_namespace: bool) -> io::Result<u32> {
    // SAFETY: unshare takes a flag; it changes only this thread's children's PID
    // namespace, and this thread forks nothing else.
    if new_pid_namespace && unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(io::Error::from_raw_os_error(child::failure(
            child::STEP_NAMESPACES,
        )));
    }
    // Its std handle is not needed: the worker waits through a pidfd, as for a clone.
    command.spawn().map(|child| child.id())
}
