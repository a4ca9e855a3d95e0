//! The S3-compatible store (aws-sdk-s3): path-style addressing, a custom endpoint,
//! credentials from the usual `AWS_*` variables, read once with the configuration (so
//! that they can leave the process environment), or else the default provider chain.
//!
//! Uploads under one part size are a single PUT; larger ones are multipart uploads
//! whose parts are sent as they fill and which are completed only after the last part,
//! or aborted. Request checksums are computed only when required: Garage (and others)
//! reject the multipart checksums aws-sdk-s3 sends by default.

use super::{ByteStream, Listed, StoreError, Stored, Tally};
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Static S3 credentials; `Debug` prints only the key id.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: crate::config::Secret,
    pub session_token: Option<crate::config::Secret>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Credentials({}, [redacted])", self.access_key_id)
    }
}

/// Part size of multipart uploads (S3's minimum is 5 MiB): what an upload holds in memory.
const PART_BYTES: usize = 8 << 20;

/// Where the S3-compatible server is (from `JOBCENTER_S3_ENDPOINT`, `JOBCENTER_S3_REGION`).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, when set.
    pub credentials: Option<S3Credentials>,
    pub region: String,
}

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

fn classify<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> StoreError {
    let text = DisplayErrorContext(&e).to_string();
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StoreError::Unavailable(text),
        SdkError::ServiceError(ref service) if format!("{:?}", service.raw()).contains("404") => {
            StoreError::NotFound
        }
        _ => StoreError::Other(text),
    }
}

impl S3Store {
    pub async fn open(bucket: &str, prefix: &str, settings: &S3Settings) -> S3Store {
        let region = if settings.region.is_empty() {
            "us-east-1"
        } else {
            &settings.region
        };
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(region.to_string()));
        if let Some(keys) = &settings.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                keys.access_key_id.clone(),
                keys.secret_access_key.expose().to_string(),
                keys.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "jobcenter-configuration",
            ));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        S3Store {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
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
        let key = self.object_key(key);
        let mut tally = Tally::new(limit_bytes);
        let mut buffer = BytesMut::new();
        let mut upload: Option<Multipart> = None;
        let result = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Interrupted(e.to_string()))?;
                tally.add(&chunk)?;
                buffer.extend_from_slice(&chunk);
                if buffer.len() >= PART_BYTES {
                    if upload.is_none() {
                        upload = Some(Multipart::start(&self.client, &self.bucket, &key).await?);
                    }
                    let part = buffer.split().freeze();
                    upload
                        .as_mut()
                        .expect("started above")
                        .send_part(&self.client, part)
                        .await?;
                }
            }
            match upload.as_mut() {
                None => {
                    self.client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(&key)
                        .body(S3Body::from(buffer.split().freeze()))
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Some(multipart) => {
                    if !buffer.is_empty() {
                        multipart
                            .send_part(&self.client, buffer.split().freeze())
                            .await?;
                    }
                    multipart.complete(&self.client).await?;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(tally.finish()),
            Err(e) => {
                if let Some(multipart) = upload {
                    multipart.abort(&self.client).await;
                }
                Err(e)
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(classify)?;
        Ok(Box::pin(tokio_util::io::ReaderStream::new(
            object.body.into_async_read(),
        )))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        let start_after = start_after.map(|key| self.object_key(key));
        while found.len() < limit {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.object_key(prefix))
                // A continuation goes on from where the previous page ended.
                .set_start_after(token.is_none().then(|| start_after.clone()).flatten())
                .max_keys((limit - found.len()).min(1000) as i32)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(classify)?;
            for object in page.contents() {
                let Some(full) = object.key() else { continue };
                let key = match self.prefix.is_empty() {
                    true => full.to_string(),
                    false => full
                        .strip_prefix(&format!("{}/", self.prefix))
                        .unwrap_or(full)
                        .to_string(),
                };
                let modified = object
                    .last_modified()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                    .unwrap_or(std::time::UNIX_EPOCH);
                found.push(Listed { key, modified });
            }
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// A multipart upload in progress.
struct Multipart {
    bucket: String,
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl Multipart {
    async fn start(client: &Client, bucket: &str, key: &str) -> Result<Multipart, StoreError> {
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)?;
        Ok(Multipart {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: created
                .upload_id()
                .ok_or_else(|| StoreError::Other("no upload id".into()))?
                .to_string(),
            parts: Vec::new(),
        })
    }

    async fn send_part(&mut self, client: &Client, part: Bytes) -> Result<(), StoreError> {
        let number = self.parts.len() as i32 + 1;
        let sent = client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(S3Body::from(part))
            .send()
            .await
            .map_err(classify)?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn complete(&mut self, client: &Client) -> Result<(), StoreError> {
        client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Best effort: an upload left incomplete is invisible, and stores expire them.
    async fn abort(self, client: &Client) {
        let aborted = client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(error = %DisplayErrorContext(&e), key = %self.key, "aborting a multipart upload failed");
        }
    }
}
