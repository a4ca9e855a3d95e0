//! The artifact store: where uploaded functions live. One interface, two places: a
//! local directory (`file://DIR`, the zero-setup default) and S3-compatible storage
//! (`s3://bucket/prefix`; Garage, MinIO, AWS S3).
//!
//! Objects are immutable and written whole or not at all: a local upload goes to a
//! temporary file renamed into place; an S3 upload is one PUT or a multipart upload
//! completed only at the end (aborted on any failure). Bodies stream through in chunks,
//! hashed (sha256) on the way, never held whole in memory.

mod local;
mod s3;

use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;

pub use local::LocalStore;
pub use s3::{S3Credentials, S3Settings, S3Store};

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// An object found by [`ArtifactStore::list`].
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub modified: std::time::SystemTime,
}

/// What a completed upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size_bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the body is larger than {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("the artifact store is unavailable: {0}")]
    Unavailable(String),
    #[error("no such object")]
    NotFound,
    #[error("artifact store error: {0}")]
    Other(String),
}

pub enum ArtifactStore {
    Local(LocalStore),
    S3(S3Store),
}

impl ArtifactStore {
    /// Opens the store `JOBCENTER_ARTIFACTS` names (`file://DIR` or `s3://bucket/prefix`).
    pub async fn open(location: &str, s3: &S3Settings) -> Result<ArtifactStore, StoreError> {
        if let Some(dir) = location.strip_prefix("file://") {
            return Ok(ArtifactStore::Local(LocalStore::open(dir).await?));
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(ArtifactStore::S3(S3Store::open(bucket, prefix, s3).await));
        }
        Err(StoreError::Other(format!(
            "{location:?} is neither file:// nor s3://"
        )))
    }

    /// Streams `body` into a new object at `key`; nothing is left behind on failure.
    pub async fn put<S, E>(
        &self,
        key: &str,
        body: S,
        limit_bytes: u64,
    ) -> Result<Stored, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        check_key(key)?;
        match self {
            ArtifactStore::Local(store) => store.put(key, body, limit_bytes).await,
            ArtifactStore::S3(store) => store.put(key, body, limit_bytes).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        check_key(key)?;
        match self {
            ArtifactStore::Local(store) => store.get(key).await,
            ArtifactStore::S3(store) => store.get(key).await,
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            ArtifactStore::Local(store) => store.delete(key).await,
            ArtifactStore::S3(store) => store.delete(key).await,
        }
    }

    /// Keys under `prefix` with their last modification, in byte order, the first
    /// `limit` of those after `start_after` (a cursor: the last key of the previous page,
    /// unmoved by deletions meanwhile). For the orphan sweeper and tests.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        match self {
            ArtifactStore::Local(store) => store.list(prefix, start_after, limit).await,
            ArtifactStore::S3(store) => store.list(prefix, start_after, limit).await,
        }
    }

    /// Readiness: the store answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            ArtifactStore::Local(store) => store.check().await,
            ArtifactStore::S3(store) => store.check().await,
        }
    }
}

/// Keys are ours (`projects/<uuid>/<name>/<uuid>`), but a store is a file system too:
/// refuse anything that could climb out of it.
fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(StoreError::Other(format!("invalid object key {key:?}")))
    }
}

/// sha256 and size of a stream as it passes, with the size limit enforced.
struct Tally {
    hasher: sha2::Sha256,
    size_bytes: u64,
    limit_bytes: u64,
}

impl Tally {
    fn new(limit_bytes: u64) -> Self {
        use sha2::Digest;
        Tally {
            hasher: sha2::Sha256::new(),
            size_bytes: 0,
            limit_bytes,
        }
    }

    fn add(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        use sha2::Digest;
        self.size_bytes += chunk.len() as u64;
        if self.size_bytes > self.limit_bytes {
            return Err(StoreError::TooLarge {
                limit_bytes: self.limit_bytes,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    fn finish(self) -> Stored {
        use sha2::Digest;
        Stored {
            size_bytes: self.size_bytes,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        assert!(check_key("projects/a/b/c").is_ok());
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a/.."] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tally_hashes_and_limits() {
        let mut tally = Tally::new(5);
        tally.add(b"abc").unwrap();
        assert!(matches!(
            tally.add(b"def"),
            Err(StoreError::TooLarge { limit_bytes: 5 })
        ));
        let mut tally = Tally::new(10);
        tally.add(b"abc").unwrap();
        let stored = tally.finish();
        assert_eq!(stored.size_bytes, 3);
        assert_eq!(
            stored.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
