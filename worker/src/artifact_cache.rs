//! The worker's artifact cache: each artifact is downloaded once per sha256, verified
//! against it before use, made executable and reused across runs and jobs; bundles are
//! unpacked once per sha256. Bounded in size: least recently used entries not in use
//! are evicted. Concurrent runs needing the same artifact share one download.

use crate::bundle;
use jobcenter_core::artifacts::ArtifactStore;
use sha2::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("downloading the artifact failed: {0}")]
    Download(String),
    #[error(
        "the downloaded artifact does not match its sha256 (expected {expected}, got {actual})"
    )]
    Mismatch { expected: String, actual: String },
    #[error("{0}")]
    Bundle(#[from] bundle::BundleError),
    #[error("artifact cache: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Default)]
struct Entry {
    size_bytes: u64,
    last_used: u64,
    in_use: u32,
    /// (length, mtime) of the file when its sha256 was last checked.
    verified: Option<(u64, SystemTime)>,
}

#[derive(Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total_bytes: u64,
    clock: u64,
}

pub struct ArtifactCache {
    dir: PathBuf,
    max_bytes: u64,
    bundle_limits: bundle::BundleLimits,
    store: Arc<ArtifactStore>,
    index: Mutex<Index>,
    downloads: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Hash a cached binary before every use, not only when its size or mtime changed:
    /// for runs that could write the cache (the sandbox off).
    reverify: std::sync::atomic::AtomicBool,
}

/// An artifact held for a run: not evicted until dropped.
pub struct Lease {
    cache: Arc<ArtifactCache>,
    sha256: String,
    pub path: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut index = self.cache.index.lock().expect("cache index lock");
        if let Some(entry) = index.entries.get_mut(&self.sha256) {
            entry.in_use = entry.in_use.saturating_sub(1);
        }
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

fn fingerprint(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

impl ArtifactCache {
    /// Opens the cache in `dir`, indexing what an earlier run of the worker left there
    /// (to be verified before first use).
    pub fn open(
        dir: PathBuf,
        max_bytes: u64,
        bundle_limits: bundle::BundleLimits,
        store: Arc<ArtifactStore>,
    ) -> Result<Arc<Self>, CacheError> {
        std::fs::create_dir_all(dir.join("files"))?;
        std::fs::create_dir_all(dir.join("bundles"))?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir.join("files"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                let size_bytes = entry.metadata()?.len();
                index.total_bytes += size_bytes;
                index.entries.insert(
                    name,
                    Entry {
                        size_bytes,
                        ..Entry::default()
                    },
                );
            } else {
                let _ = std::fs::remove_file(entry.path()); // a download cut off by a crash
            }
        }
        Ok(Arc::new(ArtifactCache {
            dir,
            max_bytes,
            bundle_limits,
            store,
            index: Mutex::new(index),
            downloads: Default::default(),
            reverify: Default::default(),
        }))
    }

    fn file_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("files").join(sha256)
    }

    fn bundle_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("bundles").join(sha256)
    }

    /// The verified, executable file of an artifact version.
    pub async fn binary(
        self: &Arc<Self>,
        sha256: &str,
        storage_key: &str,
    ) -> Result<Lease, CacheError> {
        self.fetch_and_lease(sha256, storage_key, self.file_path(sha256))
            .await
    }

    /// The unpacked directory of a bundle version.
    pub async fn bundle(
        self: &Arc<Self>,
        sha256: &str,
        storage_key: &str,
    ) -> Result<Lease, CacheError> {
        let unpacked = self.bundle_path(sha256);
        let lease = self
            .fetch_and_lease(sha256, storage_key, unpacked.clone())
            .await?;
        if !unpacked.exists() {
            let archive = self.file_path(sha256);
            let target = unpacked.clone();
            let limits = self.bundle_limits;
            tokio::task::spawn_blocking(move || bundle::unpack(&archive, &target, &limits))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
        }
        Ok(lease)
    }

    /// Makes sure the verified file is here, then leases the entry for `path` (the file
    /// or what is unpacked from it) and evicts what the budget no longer holds: never the
    /// entry just leased.
    async fn fetch_and_lease(
        self: &Arc<Self>,
        sha256: &str,
        storage_key: &str,
        path: PathBuf,
    ) -> Result<Lease, CacheError> {
        self.ensure_file(sha256, storage_key).await?;
        let lease = self.lease(sha256, path);
        self.evict_over_budget();
        Ok(lease)
    }

    fn lease(self: &Arc<Self>, sha256: &str, path: PathBuf) -> Lease {
        let mut index = self.index.lock().expect("cache index lock");
        index.clock += 1;
        let now = index.clock;
        let entry = index.entries.entry(sha256.to_string()).or_default();
        entry.in_use += 1;
        entry.last_used = now;
        Lease {
            cache: self.clone(),
            sha256: sha256.to_string(),
            path,
        }
    }

    async fn ensure_file(
        self: &Arc<Self>,
        sha256: &str,
        storage_key: &str,
    ) -> Result<(), CacheError> {
        let gate = {
            let mut downloads = self.downloads.lock().await;
            downloads.entry(sha256.to_string()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        let path = self.file_path(sha256);
        if path.exists() {
            if self.still_verified(sha256, &path) {
                return Ok(());
            }
            let (actual, expected) = (
                tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || sha256_of(&path)
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
                sha256.to_string(),
            );
            if actual == expected {
                self.mark_verified(sha256, &path);
                return Ok(());
            }
            tracing::warn!(
                sha256,
                actual,
                "cached artifact is corrupted; downloading it again"
            );
            self.forget(sha256);
        }
        self.download(sha256, storage_key, &path).await?;
        self.mark_verified(sha256, &path);
        Ok(())
    }

    /// From now on, every lease of a binary hashes the file first.
    pub fn reverify_every_use(&self) {
        self.reverify
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn still_verified(&self, sha256: &str, path: &Path) -> bool {
        if self.reverify.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let index = self.index.lock().expect("cache index lock");
        let recorded = index.entries.get(sha256).and_then(|e| e.verified);
        recorded.is_some() && recorded == fingerprint(path)
    }

    fn mark_verified(&self, sha256: &str, path: &Path) {
        let mut index = self.index.lock().expect("cache index lock");
        let size_bytes = fingerprint(path).map_or(0, |f| f.0);
        let entry = index.entries.entry(sha256.to_string()).or_default();
        let previous = entry.size_bytes;
        entry.size_bytes = size_bytes;
        entry.verified = fingerprint(path);
        index.total_bytes = index.total_bytes - previous + size_bytes;
    }

    async fn download(
        &self,
        sha256: &str,
        storage_key: &str,
        path: &Path,
    ) -> Result<(), CacheError> {
        use futures_util::StreamExt;
        let partial = self
            .dir
            .join("files")
            .join(format!(".{sha256}.{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut body = self
                .store
                .get(storage_key)
                .await
                .map_err(|e| CacheError::Download(e.to_string()))?;
            let mut file = tokio::fs::File::create(&partial).await?;
            let mut hasher = sha2::Sha256::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| CacheError::Download(e.to_string()))?;
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            let actual = hex::encode(hasher.finalize());
            if actual != sha256 {
                return Err(CacheError::Mismatch {
                    expected: sha256.to_string(),
                    actual,
                });
            }
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).await?;
            tokio::fs::rename(&partial, path).await?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// Removes an entry's file and unpacked bundle (it is not in use, or is corrupted).
    fn forget(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.file_path(sha256));
        let _ = std::fs::remove_dir_all(self.bundle_path(sha256));
        let mut index = self.index.lock().expect("cache index lock");
        if let Some(entry) = index.entries.get_mut(sha256) {
            let size = entry.size_bytes;
            entry.size_bytes = 0;
            entry.verified = None;
            index.total_bytes -= size;
        }
    }

    /// Removes the copy and its entry, which no run holds.
    fn remove(&self, sha256: &str) {
        self.forget(sha256);
        self.index
            .lock()
            .expect("cache index lock")
            .entries
            .remove(sha256);
    }

    /// Evicts least recently used entries that no run holds until under the budget.
    fn evict_over_budget(&self) {
        loop {
            let victim = {
                let index = self.index.lock().expect("cache index lock");
                if index.total_bytes <= self.max_bytes {
                    return;
                }
                index
                    .entries
                    .iter()
                    .filter(|(_, e)| e.in_use == 0 && e.size_bytes > 0)
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(sha, _)| sha.clone())
            };
            match victim {
                Some(sha) => {
                    tracing::info!(sha256 = %sha, "evicting a cached artifact");
                    self.remove(&sha);
                }
                None => return, // everything is in use: over budget until runs end
            }
        }
    }

    /// Drops cached copies of artifacts no longer stored (their versions were deleted).
    pub fn retain_only(&self, live: &std::collections::HashSet<String>) {
        let stale: Vec<String> = {
            let index = self.index.lock().expect("cache index lock");
            index
                .entries
                .iter()
                .filter(|(sha, e)| !live.contains(*sha) && e.in_use == 0)
                .map(|(sha, _)| sha.clone())
                .collect()
        };
        for sha in stale {
            self.remove(&sha);
        }
    }

    #[cfg(test)]
    fn total_bytes(&self) -> u64 {
        self.index.lock().unwrap().total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobcenter_core::artifacts::S3Settings;

    /// A cache of at most `max_bytes` in `dir/cache`, over a local store in `dir/store`
    /// holding `objects` (key, bytes).
    async fn cache_with(
        dir: &Path,
        max_bytes: u64,
        objects: &[(&str, &[u8])],
    ) -> Arc<ArtifactCache> {
        let url = format!("file://{}", dir.join("store").display());
        let store = ArtifactStore::open(&url, &S3Settings::default())
            .await
            .unwrap();
        for (key, bytes) in objects {
            let body = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
                bytes::Bytes::copy_from_slice(bytes),
            )]);
            store.put(key, body, 1 << 20).await.unwrap();
        }
        ArtifactCache::open(
            dir.join("cache"),
            max_bytes,
            Default::default(),
            Arc::new(store),
        )
        .unwrap()
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn downloads_once_verifies_and_repairs_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let content = b"#!/bin/sh\necho cached\n";
        let cache = cache_with(tmp.path(), 1 << 20, &[("p/a/1", content)]).await;
        let id = sha(content);
        let lease = cache.binary(&id, "p/a/1").await.unwrap();
        assert_eq!(std::fs::read(&lease.path).unwrap(), content);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&lease.path).unwrap().permissions().mode() & 0o111,
            0o111
        );
        drop(lease);
        // Corrupt the cached copy: the next use detects it and downloads again.
        std::fs::write(cache.file_path(&id), b"tampered").unwrap();
        let lease = cache.binary(&id, "p/a/1").await.unwrap();
        assert_eq!(std::fs::read(&lease.path).unwrap(), content);
        // A stored object that does not match the expected sha256 is refused.
        let wrong = cache.binary(&sha(b"other"), "p/a/1").await;
        assert!(
            matches!(wrong, Err(CacheError::Mismatch { .. })),
            "{:?}",
            wrong.err()
        );
    }

    #[tokio::test]
    async fn least_recently_used_entries_not_in_use_are_evicted() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (vec![1u8; 400], vec![2u8; 400], vec![3u8; 400]);
        let cache = cache_with(tmp.path(), 1000, &[("a", &a), ("b", &b), ("c", &c)]).await;
        let held = cache.binary(&sha(&a), "a").await.unwrap();
        drop(cache.binary(&sha(&b), "b").await.unwrap());
        drop(cache.binary(&sha(&c), "c").await.unwrap());
        // 1200 bytes > 1000: b (least recent, not held) goes; a is held, c is newest.
        assert!(cache.file_path(&sha(&a)).exists());
        assert!(!cache.file_path(&sha(&b)).exists());
        assert!(cache.file_path(&sha(&c)).exists());
        assert_eq!(cache.total_bytes(), 800);
        drop(held);
    }

    #[tokio::test]
    async fn copies_of_deleted_versions_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (b"a-content".to_vec(), b"b-content".to_vec());
        let cache = cache_with(tmp.path(), 1 << 20, &[("a", &a), ("b", &b)]).await;
        drop(cache.binary(&sha(&a), "a").await.unwrap());
        drop(cache.binary(&sha(&b), "b").await.unwrap());
        cache.retain_only(&[sha(&a)].into_iter().collect());
        assert!(cache.file_path(&sha(&a)).exists());
        assert!(!cache.file_path(&sha(&b)).exists());
        assert_eq!(cache.total_bytes(), a.len() as u64);
    }

    #[tokio::test]
    async fn concurrent_runs_share_one_download() {
        let tmp = tempfile::tempdir().unwrap();
        let content = vec![9u8; 100_000];
        let cache = cache_with(tmp.path(), 1 << 20, &[("x", &content)]).await;
        let id = sha(&content);
        let leases = futures_util::future::join_all((0..8).map(|_| cache.binary(&id, "x"))).await;
        assert!(leases.iter().all(|l| l.is_ok()));
        let files = std::fs::read_dir(tmp.path().join("cache/files"))
            .unwrap()
            .count();
        assert_eq!(files, 1, "one copy, no leftover partial downloads");
    }

    /// A cached binary changed in place, its size and mtime restored, is served as it is
    /// unless every use is verified; then the genuine file is fetched again.
    #[tokio::test]
    async fn reverifying_catches_a_tampered_file_with_its_fingerprint_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let content = b"#!/bin/sh\necho genuine\n";
        let cache = cache_with(tmp.path(), 1 << 20, &[("p/a/1", content)]).await;
        let id = sha(content);
        let path = cache.binary(&id, "p/a/1").await.unwrap().path.clone();
        let tamper = || {
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            std::fs::write(&path, b"#!/bin/sh\necho hacked!\n").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(mtime).unwrap();
        };
        tamper();
        let trusted = cache.binary(&id, "p/a/1").await.unwrap();
        assert_eq!(
            std::fs::read(&trusted.path).unwrap(),
            b"#!/bin/sh\necho hacked!\n"
        );
        drop(trusted);
        cache.reverify_every_use();
        let checked = cache.binary(&id, "p/a/1").await.unwrap();
        assert_eq!(std::fs::read(&checked.path).unwrap(), content);
    }
}
