//! Sandboxing of command and binary runs, applied in the child between fork and exec:
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
    /// Applies the limits and the user switch to the calling process. Runs in the
    /// forked child before exec: only async-signal-safe calls (setrlimit, setgroups,
    /// setgid, setuid), no allocation.
    pub fn apply_in_child(&self) -> io::Result<()> {
        limit(libc::RLIMIT_AS, self.memory_bytes)?;
        limit(libc::RLIMIT_NOFILE, self.open_files)?;
        limit(libc::RLIMIT_NPROC, self.processes)?;
        if let Some((uid, gid)) = self.run_as {
            // SAFETY: plain system calls on integers; the order drops root last.
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        // If the worker dies (SIGKILL), its direct child is killed too rather than
        // running on next to the re-queued attempt. Set last: a credential change
        // clears it. (Grandchildren in the group are not covered: a service manager's
        // cgroup kill is the complete answer.)
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    if value == 0 {
        return Ok(());
    }
    let rlimit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass; it touches no other memory.
    if unsafe { libc::setrlimit(resource, &rlimit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
