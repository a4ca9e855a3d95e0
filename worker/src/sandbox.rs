//! Sandboxing of command and binary runs, applied in the child between spawn and exec:
//! resource limits (address space, open files, processes) and, optionally, an
//! unprivileged user to run as. The clean environment, own process group and own
//! working directory (removed afterwards) are set up by [`crate::command`].

use std::ffi::CString;
use std::io;

/// What a run's process is confined to; zero limits are not applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox {
    pub memory_bytes: u64,
    pub open_files: u64,
    pub processes: u64,
    /// (uid, gid) to switch to before exec.
    pub run_as: Option<(u32, u32)>,
}

impl Sandbox {
    /// Applies the limits, then the user switch, then the parent-death signal (a
    /// credential change clears it) to the calling process.
    ///
    /// # Safety
    /// Runs in the child between spawn and exec, which may share the worker's memory
    /// (`crate::process::child`): plain system calls only, no allocation. The user switch is
    /// issued as raw system calls: glibc's setuid would signal the worker's threads.
    pub unsafe fn apply_in_child(&self) -> Result<(), ()> {
        let limits = [
            (libc::RLIMIT_AS, self.memory_bytes),
            (libc::RLIMIT_NOFILE, self.open_files),
            (libc::RLIMIT_NPROC, self.processes),
        ];
        for (resource, value) in limits {
            if value == 0 {
                continue;
            }
            let rlimit = libc::rlimit {
                rlim_cur: value as libc::rlim_t,
                rlim_max: value as libc::rlim_t,
            };
            if libc::setrlimit(resource, &rlimit) != 0 {
                return Err(());
            }
        }
        if let Some((uid, gid)) = self.run_as {
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setgid, gid as libc::c_long) != 0
                || libc::syscall(libc::SYS_setuid, uid as libc::c_long) != 0
            {
                return Err(());
            }
        }
        // If the worker dies (SIGKILL), its direct child is killed too rather than
        // running on next to the re-queued attempt. (Grandchildren in the group are not
        // covered: a service manager's cgroup kill is the complete answer.)
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(());
        }
        // No setuid program gains a privilege the run does not have.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(());
        }
        Ok(())
    }
}

/// The uid and gid of `user` (JOBCENTER_RUN_AS_USER), looked up once at start.
pub fn lookup_user(user: &str) -> io::Result<(u32, u32)> {
    let name = CString::new(user).map_err(|_| io::Error::other("user name contains NUL"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; getpwnam_r writes into it and
    // `buf` (whose length we pass) and sets `result` to it or to null.
    let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut passwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if result.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user named {user:?}"),
        ));
    }
    Ok((passwd.pw_uid, passwd.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root_and_refuses_unknown_users() {
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
        assert!(lookup_user("no-such-user-jobcenter").is_err());
    }
}
