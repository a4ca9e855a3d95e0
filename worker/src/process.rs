//! A run's process, started the way `posix_spawn` starts one: `clone(CLONE_VM |
//! CLONE_VFORK)`, so the child borrows the worker's memory until `execve` instead of
//! copying its page tables (a `fork` of the multi-threaded worker cost a third of its CPU
//! per run). Between clone and exec the child applies the sandbox, which `posix_spawn`
//! cannot: the run's namespaces, mounts and cgroups (`crate::isolation`), resource
//! limits, the user switch and the parent-death signal.
//!
//! The child shares the worker's memory and runs while the worker's other threads run,
//! so it only makes plain system calls on data prepared before the clone: no allocation,
//! no lock, no glibc function that coordinates threads (setuid and friends are issued as
//! raw system calls for that reason). The worker waits for the child through a pidfd.

use crate::isolation::{mounts, Enter};
use crate::sandbox::Sandbox;
use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// What the child needs, prepared by the worker before the clone.
pub struct Spec {
    /// Paths to try in order, as execvp would (the program, or `dir/program` for each
    /// directory of the run's PATH).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub dir: CString,
    pub sandbox: Sandbox,
    /// The run's own namespaces, mounts and cgroups; None: `JOBCENTER_SANDBOX=off`.
    pub enter: Option<Enter>,
}

/// A started process: its pipes and a pidfd to wait on. Dropped before it was reaped, it
/// is killed and reaped in the background.
pub struct RunProcess {
    pid: u32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// What runs a file that is not a binary and has no `#!` line, as execvp does.
const SHELL: &std::ffi::CStr = c"/bin/sh";

/// The child's stack: it runs only the setup below, in small frames.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// The step of the child's setup that failed, for the error message.
const STEPS: [&str; 10] = [
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
];
const STEP_STDIO: i32 = 1;
const STEP_DIR: i32 = 2;
const STEP_GROUP: i32 = 3;
const STEP_SANDBOX: i32 = 4;
const STEP_EXEC: i32 = 5;
const STEP_SIGNALS: i32 = 6;
const STEP_CGROUP: i32 = 7;
const STEP_MOUNTS: i32 = 8;
const STEP_USERNS: i32 = 9;

/// Everything the child reads, as raw pointers into the worker's (shared) memory.
struct ChildArgs {
    candidates: Vec<*const c_char>,
    argv: Vec<*const c_char>,
    /// `/bin/sh`, (the candidate), the arguments: execvp's answer to a file without `#!`.
    /// Slot 1 is filled in by the child.
    sh_argv: *mut *const c_char,
    envp: Vec<*const c_char>,
    dir: *const c_char,
    stdio: [RawFd; 3],
    sandbox: Sandbox,
    enter: Option<Enter>,
    /// Written by a failing child before it exits: step * 65536 + errno.
    failure: AtomicI32,
}

pub fn spawn(spec: &Spec) -> io::Result<RunProcess> {
    let (stdin_read, stdin_write) = pipe_pair()?;
    let (stdout_read, stdout_write) = pipe_pair()?;
    let (stderr_read, stderr_write) = pipe_pair()?;
    let null_terminated = |strings: &[CString]| {
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
        dir: spec.dir.as_ptr(),
        stdio: [
            stdin_read.as_raw_fd(),
            stdout_write.as_raw_fd(),
            stderr_write.as_raw_fd(),
        ],
        sandbox: spec.sandbox,
        enter: spec.enter,
        failure: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; CHILD_STACK_BYTES];
    // The stack grows down: the child starts at its (16-byte aligned) top.
    let top = stack.as_mut_ptr() as usize + CHILD_STACK_BYTES;
    let top = (top & !15) as *mut c_void;
    let mut pidfd: c_int = -1;
    let namespaces = spec.enter.map_or(0, |enter| enter.clone_flags);

    // Signals stay blocked from before the clone until the child has reset its handlers:
    // none may run a worker handler on the child's stack.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset and pthread_sigmask only write the sets we pass.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
    }
    // SAFETY: the child runs `child_main` on `stack` with `args`, both alive until the
    // clone returns: CLONE_VFORK suspends this thread until the child has exec'd or
    // exited. CLONE_PIDFD writes the pidfd into `pidfd` (the parent_tid argument).
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
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    drop((stack, sh_argv));
    drop((stdin_read, stdout_write, stderr_write));
    if pid < 0 {
        return Err(clone_error);
    }
    // SAFETY: CLONE_PIDFD gave us this descriptor; nobody else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let failure = args.failure.load(Ordering::SeqCst);
    if failure != 0 {
        reap_blocking(pid);
        let (step, errno) = (failure >> 16, failure & 0xffff);
        let step = STEPS.get(step as usize).copied().unwrap_or("cannot start");
        let cause = io::Error::from_raw_os_error(errno);
        return Err(io::Error::new(cause.kind(), format!("{step}: {cause}")));
    }
    let mut process = RunProcess {
        pid: pid as u32,
        pidfd: None,
        status: None,
        stdin: None,
        stdout: None,
        stderr: None,
    };
    // From here on, a failure drops `process`, which kills and reaps the child.
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
        // SAFETY: the child is not reaped yet, so `pid` is still ours.
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
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child, between clone and exec. Only system calls on prepared data.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the ChildArgs the parent keeps alive while it is suspended.
    let args = unsafe { &*(arg as *const ChildArgs) };
    let fail = |step: i32| -> ! {
        // SAFETY: reading errno, then leaving without running any exit handler.
        unsafe {
            let errno = *libc::__errno_location();
            args.failure.store((step << 16) | errno, Ordering::SeqCst);
            libc::_exit(127)
        }
    };
    // SAFETY (whole block): plain system calls with integers and pointers to the
    // NUL-terminated strings and arrays prepared by the parent.
    unsafe {
        // Every handler back to the default (a worker handler must never run here or in
        // the program), then unblock everything: a fresh process's signals.
        let default_action = [0u64; 4];
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    default_action.as_ptr(),
                    std::ptr::null::<c_void>(),
                    8usize,
                );
            }
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            let target = target as c_int;
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let connected = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if connected == -1 {
                fail(STEP_STDIO);
            }
        }
        if let Some(enter) = &args.enter {
            // Still the worker's root here: join the cgroups, build the view.
            for &fd in &enter.cgroup_procs[..enter.cgroup_count] {
                if libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                    fail(STEP_CGROUP);
                }
            }
            let previous_mask = libc::umask(0);
            let ops = std::slice::from_raw_parts(enter.ops, enter.ops_len);
            if mounts::apply(ops).is_err() {
                fail(STEP_MOUNTS);
            }
            libc::umask(previous_mask);
            let name = c"jobcenter";
            libc::sethostname(name.as_ptr(), name.count_bytes());
        }
        if libc::chdir(args.dir) != 0 {
            fail(STEP_DIR);
        }
        if libc::setpgid(0, 0) != 0 {
            fail(STEP_GROUP);
        }
        if let Some(enter) = &args.enter {
            // Root of the run's own user namespace: host uid of its own, no group.
            if libc::syscall(libc::SYS_setns, enter.userns, libc::CLONE_NEWUSER) != 0
                || libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
            {
                fail(STEP_USERNS);
            }
        }
        if args.sandbox.apply_in_child().is_err() {
            fail(STEP_SANDBOX);
        }
        let empty = 0u64;
        if libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null::<c_void>(),
            8usize,
        ) != 0
        {
            fail(STEP_SIGNALS);
        }
        // execvp's search: a missing or inaccessible candidate moves on to the next; a
        // file without `#!` is run by /bin/sh; any other failure stops there.
        let mut denied = false;
        for &path in &args.candidates {
            libc::execve(path, args.argv.as_ptr(), args.envp.as_ptr());
            match *libc::__errno_location() {
                libc::EACCES => denied = true,
                libc::ENOEXEC => {
                    *args.sh_argv.add(1) = path;
                    libc::execve(SHELL.as_ptr(), args.sh_argv, args.envp.as_ptr());
                    fail(STEP_EXEC)
                }
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => fail(STEP_EXEC),
            }
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
        fail(STEP_EXEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn spec(argv: &[&str], candidates: &[&str]) -> Spec {
        let c = |s: &&str| CString::new(*s).unwrap();
        Spec {
            candidates: candidates.iter().map(c).collect(),
            argv: argv.iter().map(c).collect(),
            envp: vec![CString::new("GREETING=hello").unwrap()],
            dir: CString::new("/tmp").unwrap(),
            sandbox: Sandbox::default(),
            enter: None,
        }
    }

    /// What the process printed on stdout, and how it exited.
    async fn output(spec: &Spec) -> (String, ExitStatus) {
        let mut process = spawn(spec).unwrap();
        let mut out = String::new();
        let mut stdout = process.stdout.take().unwrap();
        stdout.read_to_string(&mut out).await.unwrap();
        (out, process.wait().await.unwrap())
    }

    #[tokio::test]
    async fn runs_a_program_with_its_environment_directory_and_streams() {
        let script = "read line; echo \"$GREETING $line from $(pwd)\"; echo oops >&2; exit 3";
        let mut process = spawn(&spec(
            &["sh", "-c", script],
            &["/nonexistent/sh", "/bin/sh"],
        ))
        .unwrap();
        let mut stdin = process.stdin.take().unwrap();
        stdin.write_all(b"world\n").await.unwrap();
        drop(stdin);
        let (mut out, mut err) = (String::new(), String::new());
        process
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        process
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        let status = process.wait().await.unwrap();
        assert_eq!(out, "hello world from /tmp\n");
        assert_eq!(err, "oops\n");
        assert_eq!(status.code(), Some(3));
        // Waiting again answers the same.
        assert_eq!(process.wait().await.unwrap().code(), Some(3));
    }

    #[tokio::test]
    async fn reports_a_program_that_cannot_be_found() {
        let error = spawn(&spec(&["nope"], &["/nonexistent/nope", "/also/not/nope"]))
            .err()
            .expect("spawning a missing program fails");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            error.to_string().starts_with("cannot run the program"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_script_without_a_shebang_is_run_by_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("plain");
        std::fs::write(&script, "echo \"plain $1\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = script.to_str().unwrap();
        let (out, status) = output(&spec(&["plain", "arg"], &[path])).await;
        assert!(status.success());
        assert_eq!(out, "plain arg\n");
    }

    #[tokio::test]
    async fn applies_the_sandbox_and_leads_its_own_group() {
        let mut spec = spec(
            &[
                "sh",
                "-c",
                "ulimit -n; test \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ && echo leader",
            ],
            &["/bin/sh"],
        );
        spec.sandbox.open_files = 37;
        let (out, status) = output(&spec).await;
        assert!(status.success());
        assert_eq!(out, "37\nleader\n");
    }

    #[tokio::test]
    async fn a_dropped_process_is_killed() {
        let mut process = spawn(&spec(&["sleep", "30"], &["/bin/sleep"])).unwrap();
        let pid = process.id();
        let mut out = process.stdout.take().unwrap();
        drop(process);
        // Its stdout closes once it is dead, and it is reaped (no zombie left).
        let mut rest = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            out.read_to_end(&mut rest),
        )
        .await
        .expect("the process was killed")
        .unwrap();
        let reaped = async {
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), reaped)
            .await
            .expect("the process was reaped");
    }
}
