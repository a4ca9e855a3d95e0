//! Run directories, reused. Each run gets a directory of its own holding its input and
//! state files; when the run ends, the directory is emptied of what the run left (the
//! result file, anything it created) and kept for a later run, instead of being removed
//! and a new one made. Creating and deleting three inodes per run was the worker's
//! largest cost on a busy filesystem (ext4 scans past recently deleted inodes to
//! allocate a new one); a run that writes nothing now creates no inode at all.
//!
//! Only when nothing of the run can outlive it: in a sandbox (its PID namespace dies with
//! it), or without one when runs are not confined to a user (`JOBCENTER_RUN_AS_USER`
//! unset: they run as the worker, with nothing to hide from each other). Otherwise the
//! directory is removed and the next run gets a fresh one: a process that escaped the
//! run's process group keeps its working directory, and must not see later runs there.
//! A directory is handed to the run's owner (its sandbox uid, or the run-as user) before
//! each run.
//!
//! A directory is only reused when what stays in it is what the worker put there: the
//! input and state files as regular files with a single link (a run that swapped one for
//! a symlink or a hard link loses it), and the directory itself unchanged. The files are
//! rewritten before every run. What a run left is read only from regular, singly linked
//! files, opened without following a symlink or blocking on a FIFO.

use crate::command::RunFiles;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The directories of finished runs, emptied and ready for the next ones.
pub struct RunDirs {
    root: PathBuf,
    idle: Mutex<Vec<PathBuf>>,
}

/// A run's directory; back to the pool with [`RunDir::collect_and_release`], removed
/// if dropped.
pub struct RunDir {
    path: Option<PathBuf>,
    dirs: Arc<RunDirs>,
    owner: Option<(u32, u32)>,
    reusable: bool,
}

impl RunDirs {
    pub fn new(root: PathBuf) -> Arc<Self> {
        Arc::new(RunDirs {
            root,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A directory with `input` and `state` written into the run's files, handed to
    /// `owner` (the uid and gid the run has on the host) when set; kept for a later run
    /// afterwards if `reusable`.
    pub async fn prepare(
        self: &Arc<Self>,
        input: Vec<u8>,
        state: Vec<u8>,
        owner: Option<(u32, u32)>,
        reusable: bool,
    ) -> io::Result<RunDir> {
        let dirs = self.clone();
        tokio::task::spawn_blocking(move || {
            let reused = dirs.idle.lock().expect("not poisoned").pop();
            let path = match reused {
                Some(path) => path,
                None => {
                    let path = dirs.root.join(format!("run-{}", uuid::Uuid::new_v4()));
                    fs::create_dir(&path)?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
                    path
                }
            };
            // From here on, a failure drops the RunDir, which removes the directory.
            let dir = RunDir {
                path: Some(path),
                dirs,
                owner,
                reusable,
            };
            let files = RunFiles::in_dir(dir.path());
            write_owned(&files.input, &input, owner)?;
            write_owned(&files.state, &state, owner)?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&files.dir, Some(uid), Some(gid))?;
            }
            Ok(dir)
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// What a run left in its directory.
pub struct Left {
    pub result: Option<Vec<u8>>,
    /// None also when not asked for, absent, or over the cap.
    pub state: Option<Vec<u8>>,
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        for path in self.idle.get_mut().expect("not poisoned").drain(..) {
            let _ = fs::remove_dir_all(path);
        }
    }
}

impl RunDir {
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("set until released")
    }

    /// Reads what the run left (its result, at most `result_cap` bytes, and its state
    /// when `state_cap` is given), then empties the directory and keeps it for another
    /// run; a directory that cannot be trusted or emptied is removed instead. One trip
    /// to a blocking thread for all of it.
    pub async fn collect_and_release(
        mut self,
        result_cap: usize,
        state_cap: Option<usize>,
    ) -> Left {
        let path = self.path.take().expect("released once");
        let (dirs, owner, reusable) = (self.dirs.clone(), self.owner, self.reusable);
        let collect = move || {
            let files = RunFiles::in_dir(&path);
            let left = Left {
                result: read_capped(&files.result, result_cap),
                state: state_cap.and_then(|cap| read_state(&files.state, cap)),
            };
            // A directory not to be reused is not emptied first.
            match reusable.then(|| empty_for_reuse(&path, owner)) {
                Some(Ok(())) => dirs.idle.lock().expect("not poisoned").push(path),
                None => {
                    let _ = fs::remove_dir_all(&path);
                }
                Some(Err(e)) => {
                    tracing::warn!(dir = %path.display(), error = %e, "run directory not reused");
                    let _ = fs::remove_dir_all(&path);
                }
            }
            left
        };
        tokio::task::spawn_blocking(collect).await.unwrap_or(Left {
            result: None,
            state: None,
        })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// A file the run left, opened only if it is a regular file with one link (not through
/// a symlink, not blocking on a FIFO), with its size.
fn open_left(path: &Path) -> Option<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.nlink() == 1).then_some((file, meta.len()))
}

/// At most `cap` bytes of a file the run may have written; None if there is none.
fn read_capped(path: &Path, cap: usize) -> Option<Vec<u8>> {
    let (file, _) = open_left(path)?;
    read_up_to(file, cap)
}

fn read_up_to(file: File, cap: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(cap as u64).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The state a run leaves; a state file over the cap is refused, not cut.
fn read_state(path: &Path, cap: usize) -> Option<Vec<u8>> {
    let (file, size) = open_left(path)?;
    if size as usize > cap {
        tracing::warn!(size, cap, "state file over the cap; previous state kept");
        return None;
    }
    read_up_to(file, cap)
}

/// Writes `bytes` as the whole content of `path` (never through a symlink, never
/// blocking on a FIFO), owned by `owner` or the worker, mode 0644.
///
/// The content is written over the old in place and the length set after, rather than
/// truncating first: ext4 frees (and, mounted with `discard`, discards) a truncated
/// file's blocks and flushes the rewritten file at close (`auto_da_alloc`); a rewrite of
/// the same length only touches the page cache. Mode and owner are set only when they
/// differ.
fn write_owned(path: &Path, bytes: &[u8], owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io::Error::other("not a plain file of the worker's"));
    }
    file.write_all_at(bytes, 0)?;
    // Always: whatever was appended since `metadata` goes too (same length frees nothing).
    file.set_len(bytes.len() as u64)?;
    if meta.mode() & 0o7777 != 0o644 {
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    if let Some((uid, gid)) = owner {
        if (meta.uid(), meta.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// Removes everything but the worker's own input and state files, and those too unless
/// they are still plain files with one link. Fails if the directory is not one.
fn empty_for_reuse(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    // SAFETY: geteuid has no failure mode and touches no memory.
    let owner = owner.map_or(unsafe { libc::geteuid() }, |(uid, _)| uid);
    if !meta.is_dir() || meta.uid() != owner {
        return Err(io::Error::other("no longer the directory the worker made"));
    }
    if meta.mode() & 0o7777 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    let files = RunFiles::in_dir(path);
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let entry_path = entry.path();
        let meta = fs::symlink_metadata(&entry_path)?;
        let ours = entry_path == files.input || entry_path == files.state;
        // Kept only as the worker left it: a plain file, its owner, mode 0644 (a file the
        // run made read-only would fail the next run's preparation).
        let as_left = meta.is_file()
            && meta.nlink() == 1
            && meta.uid() == owner
            && meta.mode() & 0o7777 == 0o644;
        if ours && as_left {
            continue;
        }
        if meta.is_dir() {
            fs::remove_dir_all(&entry_path)?;
        } else {
            fs::remove_file(&entry_path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reusable directory for a run with no input and no state.
    async fn prepare_empty(dirs: &Arc<RunDirs>) -> RunDir {
        dirs.prepare(Vec::new(), Vec::new(), None, true)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_released_directory_is_emptied_of_what_the_run_left_and_reused() {
        let root = tempfile::tempdir().unwrap();
        let dirs = RunDirs::new(root.path().to_path_buf());
        let dir = dirs
            .prepare(b"{}".to_vec(), b"s1".to_vec(), None, true)
            .await
            .unwrap();
        let first = dir.path().to_path_buf();
        let files = RunFiles::in_dir(&first);
        fs::write(&files.result, "r").unwrap();
        fs::create_dir_all(first.join("sub/deeper")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", first.join("link")).unwrap();
        // A state file replaced by a symlink is not written through.
        fs::remove_file(&files.state).unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), &files.state).unwrap();
        let left = dir.collect_and_release(1024, Some(1024)).await;
        assert_eq!(left.result.as_deref(), Some(&b"r"[..]));
        assert_eq!(left.state, None, "not read through the symlink");

        let dir = dirs
            .prepare(b"[1]".to_vec(), Vec::new(), None, true)
            .await
            .unwrap();
        assert_eq!(dir.path(), first, "the directory is reused");
        let mut left: Vec<_> = fs::read_dir(&first)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".jobcenter-input.json", ".jobcenter-state"]);
        assert_eq!(fs::read(&files.input).unwrap(), b"[1]");
        assert_eq!(fs::read(&files.state).unwrap(), b"");
        assert!(fs::symlink_metadata(&files.state).unwrap().is_file());
        assert!(!root.path().join("outside").exists());

        // Rewritten in place: a longer file left by the run is cut to the new content;
        // modes the run changed are set back.
        fs::write(&files.input, "[1, 2, 3, 4, 5, 6]").unwrap();
        fs::set_permissions(&files.input, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&first, fs::Permissions::from_mode(0o755)).unwrap();
        dir.collect_and_release(1024, None).await;
        let dir = dirs
            .prepare(b"7".to_vec(), b"s".to_vec(), None, true)
            .await
            .unwrap();
        assert_eq!(dir.path(), first);
        assert_eq!(fs::read(&files.input).unwrap(), b"7");
        assert_eq!(fs::read(&files.state).unwrap(), b"s");
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&files.input), 0o644);
        assert_eq!(mode(&first), 0o700);

        // A FIFO in place of the result does not block the worker.
        let c = std::ffi::CString::new(files.result.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let left = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            dir.collect_and_release(1024, None),
        )
        .await
        .expect("a FIFO result does not hang the worker");
        assert_eq!(left.result, None);
        let dir = prepare_empty(&dirs).await;
        assert_eq!(dir.path(), first);

        // What a run links to is not read (the worker may be root, the run not).
        fs::write(root.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), &files.result).unwrap();
        let left = dir.collect_and_release(1024, None).await;
        assert_eq!(left.result, None);
        let dir = prepare_empty(&dirs).await;
        assert_eq!(dir.path(), first);
        assert!(!files.result.exists());

        // A second directory is made while the first is in use; a dropped one is removed.
        let other = prepare_empty(&dirs).await;
        assert_ne!(other.path(), first);
        drop(dir);
        assert!(!first.exists());
    }

    #[tokio::test]
    async fn a_confined_runs_directory_is_removed_not_reused() {
        let root = tempfile::tempdir().unwrap();
        let dirs = RunDirs::new(root.path().to_path_buf());
        // SAFETY: getuid/getgid only read the caller's ids.
        let me = unsafe { (libc::getuid(), libc::getgid()) };
        let dir = dirs
            .prepare(Vec::new(), Vec::new(), Some(me), false)
            .await
            .unwrap();
        let first = dir.path().to_path_buf();
        dir.collect_and_release(1024, None).await;
        assert!(!first.exists());
        let next = dirs
            .prepare(Vec::new(), Vec::new(), Some(me), false)
            .await
            .unwrap();
        assert_ne!(next.path(), first);
    }
}
