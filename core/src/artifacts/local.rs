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

    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<Listed>, StoreError> {
        let mut found = Vec::new();
        let mut pending = vec![self.root.join(prefix)];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("list", e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| io_error("list", e))?
            {
                let meta = entry.metadata().await.map_err(|e| io_error("stat", e))?;
                let path = entry.path();
                if meta.is_dir() {
                    if !path.ends_with(".incoming") {
                        pending.push(path);
                    }
                    continue;
                }
                let key = path
                    .strip_prefix(&self.root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                found.push(Listed {
                    key,
                    modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                });
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
        Ok(found)
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
