//! A run's process: started by `clone(CLONE_VM | CLONE_VFORK)` ([`clone`], the default)
//! or by `std::process::Command` ([`command`]), as `JOBCENTER_SPAWN` says; either way the
//! child applies the sandbox before exec ([`child`]): the run's namespaces, mounts and
//! cgroups (`crate::isolation`), resource limits, the user switch and the parent-death
//! signal. The worker waits for the child through a pidfd, whichever started it.
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

mod child;
mod clone;
mod command;

use crate::isolation::Enter;
use crate::sandbox::Sandbox;
pub use jobcenter_core::config::Spawn;
use std::ffi::{c_int, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// What the child needs, prepared by the worker before the spawn.
pub struct Spec {
    /// Paths to try in order, as execvp would (the program, or `dir/program` for each
    /// directory of the run's PATH).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub dir: CString,
    pub start: Start,
}

/// How the child is started and confined.
#[derive(Clone, Copy)]
pub struct Start {
    pub spawn: Spawn,
    pub sandbox: Sandbox,
    /// The run's own namespaces, mounts and cgroups; None: `JOBCENTER_SANDBOX=off`.
    pub enter: Option<Enter>,
}

impl Spec {
    fn setup(&self) -> child::Setup {
        child::Setup {
            dir: self.dir.as_ptr(),
            sandbox: self.start.sandbox,
            enter: self.start.enter,
        }
    }
}

/// A started process: its pipes and a pidfd to wait on. Dropped before it was reaped, it
/// is killed and reaped in the background.
pub struct RunProcess {
    pid: u32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    /// `command` only: the thread the child was forked from, kept until it is reaped.
    forked_from: Option<command::ForkingThread>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// What runs a file that is not a binary and has no `#!` line, as execvp does.
const SHELL: &std::ffi::CStr = c"/bin/sh";

pub fn spawn(spec: &Spec) -> io::Result<RunProcess> {
    let (stdin_read, stdin_write) = pipe_pair()?;
    let (stdout_read, stdout_write) = pipe_pair()?;
    let (stderr_read, stderr_write) = pipe_pair()?;
    let (pid, pidfd, forked_from) = match spec.start.spawn {
        Spawn::Clone => {
            let stdio = [&stdin_read, &stdout_write, &stderr_write].map(|fd| fd.as_raw_fd());
            let (pid, pidfd) = clone::spawn(spec, stdio)?;
            drop((stdin_read, stdout_write, stderr_write));
            (pid, Some(pidfd), None)
        }
        Spawn::Command => {
            let stdio = [stdin_read, stdout_write, stderr_write];
            let (pid, thread) = command::spawn(spec, stdio)?;
            (pid, None, Some(thread))
        }
    };
    let mut process = RunProcess {
        pid,
        pidfd: None,
        status: None,
        forked_from,
        stdin: None,
        stdout: None,
        stderr: None,
    };
    // From here on, a failure drops `process`, which kills and reaps the child.
    let pidfd = match pidfd {
        Some(pidfd) => pidfd,
        None => pidfd_open(pid)?,
    };
    // SAFETY: the AsyncFd owns the pidfd, which stays open until it is dropped.
    process.pidfd =
        Some(unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)? });
    process.stdin = Some(pipe::Sender::from_owned_fd(stdin_write)?);
    process.stdout = Some(pipe::Receiver::from_owned_fd(stdout_read)?);
    process.stderr = Some(pipe::Receiver::from_owned_fd(stderr_read)?);
    Ok(process)
}

impl RunProcess {
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit and reaps it; cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pidfd = self
            .pidfd
            .as_ref()
            .expect("set until the process is reaped");
        loop {
            let mut ready = pidfd.readable().await?;
            if let Some(status) = try_reap(self.pid as i32)? {
                self.status = Some(status);
                self.pidfd = None;
                self.forked_from = None;
                return Ok(status);
            }
            ready.clear_ready();
        }
    }
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let pid = self.pid as i32;
        // SAFETY: kill takes integers; the child is not reaped yet, so `pid` is still
        // ours.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || reap_blocking(pid));
            }
            Err(_) => reap_blocking(pid),
        }
    }
}

fn try_reap(pid: i32) -> io::Result<Option<ExitStatus>> {
    let mut status: c_int = 0;
    // SAFETY: waitpid writes the status we pass.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => Ok(None),
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(Some(ExitStatus::from_raw(status))),
    }
}

fn reap_blocking(pid: i32) {
    let mut status: c_int = 0;
    // SAFETY: waitpid writes the status we pass; retried when a signal interrupts it.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// A pipe whose both ends close on exec (the child's end is dup2'ed onto 0, 1 or 2).
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and nobody else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pidfd for our child `pid`, not yet reaped (so the pid is still its own).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers and returns a new descriptor, which we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as c_int) })
}

#[cfg(test)]
mod tests;
