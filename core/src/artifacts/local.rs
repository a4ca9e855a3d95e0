//! The local-directory store: objects are files under a root; uploads land in
//! `.incoming/` and are renamed into place only when complete and synced.

use super::{ByteStream, Listed, StoreError, Stored, Tally};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

pub struct LocalStore {
    root: PathBuf,
}

/// An entry met while listing: a file's key, or a directory's key prefix.
enum Walk {
    File(String),
    Dir(String),
}

impl Walk {
    fn key(&self) -> &str {
        match self {
            Walk::File(key) | Walk::Dir(key) => key,
        }
    }
}

fn io_error(context: &str, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{context}: {e}"))
}

impl LocalStore {
    pub async fn open(dir: &str) -> Result<LocalStore, StoreError> {
        let root = PathBuf::from(dir);
        tokio::fs::create_dir_all(root.join(".incoming"))
            .await
            .map_err(|e| io_error(&format!("cannot create {dir}"), e))?;
        Ok(LocalStore { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub async fn put<S, E>(
        &self,
        key: &str,
        mut body: S,
        limit_bytes: u64,
    ) -> Result<Stored, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let incoming = self
            .root
            .join(".incoming")
            .join(uuid::Uuid::new_v4().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&incoming)
                .await
                .map_err(|e| io_error("cannot create the upload file", e))?;
            let mut tally = Tally::new(limit_bytes);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Interrupted(e.to_string()))?;
                tally.add(&chunk)?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_error("write", e))?;
            }
            file.sync_all().await.map_err(|e| io_error("sync", e))?;
            Ok(tally.finish())
        }
        .await;
        match result {
            Ok(stored) => {
                let target = self.path(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| io_error("mkdir", e))?;
                }
                tokio::fs::rename(&incoming, &target)
                    .await
                    .map_err(|e| io_error("rename", e))?;
                Ok(stored)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&incoming).await;
                Err(e)
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => Ok(Box::pin(tokio_util::io::ReaderStream::new(file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(io_error("open", e)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", e)),
        }
    }

    /// A walk of the tree in key order (a directory sorts as its name and a slash, as
    /// its keys do), skipping the subtrees whose keys all come before `start_after`.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        let after = start_after.unwrap_or_default();
        let mut found = Vec::new();
        let top = match prefix.trim_end_matches('/') {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        // What is left to visit, the next one last.
        let mut pending = vec![Walk::Dir(top)];
        while found.len() < limit {
            let Some(next) = pending.pop() else { break };
            match next {
                Walk::File(key) => match tokio::fs::metadata(self.path(&key)).await {
                    Ok(meta) => found.push(Listed {
                        key,
                        modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    }),
                    // Deleted since its directory was read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("stat", e)),
                },
                Walk::Dir(dir) => {
                    let mut children = self.children(&dir, after).await?;
                    children.sort_by(|a, b| b.key().cmp(a.key()));
                    pending.extend(children);
                }
            }
        }
        Ok(found)
    }

    /// The entries of the directory `dir` (a key prefix ending in `/`, or empty) that
    /// may hold keys after `after`; uploads in progress aside.
    async fn children(&self, dir: &str, after: &str) -> Result<Vec<Walk>, StoreError> {
        let mut entries = match tokio::fs::read_dir(self.root.join(dir)).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", e)),
        };
        let mut children = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("list", e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry
                .file_type()
                .await
                .map_err(|e| io_error("stat", e))?
                .is_dir();
            if is_dir && name != ".incoming" {
                let keys = format!("{dir}{name}/");
                // Every key below starts with `keys`: all before `after` unless `after`
                // lies below too or `keys` sorts after it.
                if after.starts_with(&keys) || keys.as_str() > after {
                    children.push(Walk::Dir(keys));
                }
            } else if !is_dir {
                let key = format!("{dir}{name}");
                if key.as_str() > after {
                    children.push(Walk::File(key));
                }
            }
        }
        Ok(children)
    }

    /// Files of uploads in progress (or cut off by a crash).
    pub async fn incoming_count(&self) -> usize {
        let Ok(mut entries) = tokio::fs::read_dir(self.root.join(".incoming")).await else {
            return 0;
        };
        let mut count = 0;
        while let Ok(Some(_)) = entries.next_entry().await {
            count += 1;
        }
        count
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        tokio::fs::metadata(&self.root)
            .await
            .map(|_| ())
            .map_err(|e| io_error(&self.root.display().to_string(), e))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(store: &LocalStore, key: &str) {
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("x"))]);
        store.put(key, body, 10).await.unwrap();
    }

    async fn keys(store: &LocalStore, after: Option<&str>, limit: usize) -> Vec<String> {
        let listed = store.list("projects", after, limit).await.unwrap();
        listed.into_iter().map(|l| l.key).collect()
    }

    #[tokio::test]
    async fn pages_follow_key_order_from_the_cursor_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        // '-' sorts before '/': "a-b/…" comes before "a/…", as in S3's listing.
        let mut all = vec!["projects/b/z/1", "projects/a/x/2", "projects/a-b/y/1"];
        all.extend(["projects/a/x/1", "projects/a/x/10"]);
        for key in &all {
            put(&store, key).await;
        }
        all.sort();
        assert_eq!(keys(&store, None, 100).await, all);

        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = keys(&store, after.as_deref(), 2).await;
            // Deleting what was listed moves no later key out of reach.
            for key in &page {
                store.delete(key).await.unwrap();
            }
            paged.extend(page.iter().cloned());
            match page.last() {
                Some(last) if page.len() == 2 => after = Some(last.clone()),
                _ => break,
            }
        }
        assert_eq!(paged, all);
        assert!(keys(&store, None, 100).await.is_empty());
    }

    #[tokio::test]
    async fn a_cursor_inside_a_directory_skips_only_what_precedes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        for key in [
            "projects/a/x/1",
            "projects/a/x/2",
            "projects/a/y/1",
            "projects/b/x/1",
        ] {
            put(&store, key).await;
        }
        assert_eq!(
            keys(&store, Some("projects/a/x/1"), 2).await,
            ["projects/a/x/2", "projects/a/y/1"]
        );
        assert_eq!(
            keys(&store, Some("projects/a/y"), 10).await,
            ["projects/a/y/1", "projects/b/x/1"]
        );
        assert!(keys(&store, Some("projects/b/x/1"), 10).await.is_empty());
        assert!(keys(&store, None, 0).await.is_empty());
    }
}
