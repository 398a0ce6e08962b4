//! Object storage for files (attachments, thumbnails, exports), through `object_store`:
//! a local directory by default, any S3-compatible store by configuration.
//!
//! Invariants: object keys are generated here ([`new_key`]), never taken from user
//! input; uploads are streamed (never held whole in memory) and stopped at a size limit,
//! leaving nothing behind; downloads are short-lived signed URLs on S3 and streams from
//! the local directory. This crate knows nothing about chats or permissions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// Where files are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageSettings {
    /// Local directory for files when no S3 bucket is configured.
    #[arg(long, env = "CHAT_STORAGE_DIR", default_value = ".local/objects")]
    pub storage_dir: PathBuf,
    /// S3 bucket; setting it switches storage to S3.
    #[arg(long, env = "CHAT_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint URL (for S3-compatible stores), e.g. `http://127.0.0.1:9000`.
    #[arg(long, env = "CHAT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "CHAT_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, env = "CHAT_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "CHAT_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    #[arg(long, env = "CHAT_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_path_style: bool,
    /// Lifetime of signed download URLs, in seconds.
    #[arg(long, env = "CHAT_SIGNED_URL_TTL_SECS", default_value_t = 300)]
    pub signed_url_ttl_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("object not found")]
    NotFound,
    #[error("reading the upload failed: {0}")]
    Upload(#[source] std::io::Error),
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("object store: {0}")]
    Store(#[source] object_store::Error),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            other => StorageError::Store(other),
        }
    }
}

/// Handle on the store. Clones share it.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Set on S3: signs download URLs.
    signer: Option<Arc<AmazonS3>>,
    url_ttl: Duration,
}

/// Streams one object in parts, with back-pressure (a few parts in flight at most).
pub struct ObjectWriter {
    inner: WriteMultipart,
    size: u64,
}

impl ObjectWriter {
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        self.inner.wait_for_capacity(4).await?;
        self.size += bytes.len() as u64;
        self.inner.put(bytes);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Completes the object; returns its size.
    pub async fn finish(self) -> Result<u64, StorageError> {
        let size = self.size;
        self.inner.finish().await?;
        Ok(size)
    }

    /// Gives up; nothing is left behind.
    pub async fn abort(self) {
        let _ = self.inner.abort().await;
    }
}

/// A new object key under `kind` (e.g. `attachments`), partitioned by month.
pub fn new_key(kind: &str) -> String {
    let now = chrono::Utc::now();
    format!("{kind}/{}/{}", now.format("%Y/%m"), uuid::Uuid::now_v7())
}

impl Storage {
    pub fn from_settings(settings: &StorageSettings) -> Result<Self, StorageError> {
        let url_ttl = Duration::from_secs(settings.signed_url_ttl_secs.max(1));
        match &settings.s3_bucket {
            Some(bucket) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&settings.s3_region)
                    .with_virtual_hosted_style_request(!settings.s3_path_style);
                if let Some(endpoint) = &settings.s3_endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let (Some(id), Some(secret)) =
                    (&settings.s3_access_key_id, &settings.s3_secret_access_key)
                {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                }
                let s3 = Arc::new(
                    builder
                        .build()
                        .map_err(|e| StorageError::Config(e.to_string()))?,
                );
                Ok(Self {
                    store: s3.clone(),
                    signer: Some(s3),
                    url_ttl,
                })
            }
            None => {
                std::fs::create_dir_all(&settings.storage_dir).map_err(|e| {
                    StorageError::Config(format!("{}: {e}", settings.storage_dir.display()))
                })?;
                let local = LocalFileSystem::new_with_prefix(&settings.storage_dir)
                    .map_err(|e| StorageError::Config(e.to_string()))?;
                Ok(Self {
                    store: Arc::new(local),
                    signer: None,
                    url_ttl,
                })
            }
        }
    }

    /// Streams an upload into `key`, part by part. Past `limit` bytes the upload is
    /// aborted and nothing is left behind.
    pub async fn put_stream<S>(
        &self,
        key: &str,
        mut body: S,
        limit: u64,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
    {
        let mut writer = self.writer(key).await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    writer.abort().await;
                    return Err(StorageError::Upload(e));
                }
            };
            if writer.size + chunk.len() as u64 > limit {
                writer.abort().await;
                return Err(StorageError::TooLarge { limit });
            }
            writer.write(chunk).await?;
        }
        writer.finish().await
    }

    /// A writer that streams an object in parts; nothing is visible under `key` until
    /// [`ObjectWriter::finish`].
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, StorageError> {
        let upload = self.store.put_multipart(&Path::from(key)).await?;
        Ok(ObjectWriter {
            inner: WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024),
            size: 0,
        })
    }

    /// Writes a small object at once (thumbnails).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Reads a whole object (for processing objects whose size is already bounded).
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        Ok(self.store.get(&Path::from(key)).await?.bytes().await?)
    }

    /// Streams an object: its size and its bytes.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, std::io::Error>>), StorageError> {
        let result = self.store.get(&Path::from(key)).await?;
        let size = result.meta.size;
        let stream = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok((size, stream))
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object (missing objects are fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A short-lived signed GET URL on S3; `None` for the local directory (stream it).
    pub async fn download_url(&self, key: &str) -> Result<Option<String>, StorageError> {
        match &self.signer {
            Some(s3) => {
                let url = s3
                    .signed_url(http::Method::GET, &Path::from(key), self.url_ttl)
                    .await?;
                Ok(Some(url.to_string()))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &std::path::Path) -> Storage {
        let settings = StorageSettings {
            storage_dir: dir.to_path_buf(),
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_path_style: true,
            signed_url_ttl_secs: 60,
        };
        Storage::from_settings(&settings).expect("storage")
    }

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        futures::stream::iter((0..n).map(move |_| Ok(Bytes::from(vec![7u8; size]))))
    }

    #[tokio::test]
    async fn streams_in_and_out_and_refuses_oversize_leaving_nothing() {
        let dir = std::env::temp_dir().join(format!("chat-storage-{}", uuid::Uuid::new_v4()));
        let storage = local(&dir);
        let key = new_key("test");
        let size = storage
            .put_stream(&key, chunks(10, 1000), 20_000)
            .await
            .expect("put");
        assert_eq!(size, 10_000);
        assert_eq!(storage.get(&key).await.expect("get").len(), 10_000);
        assert!(storage.download_url(&key).await.expect("url").is_none());
        let too_big = new_key("test");
        let err = storage
            .put_stream(&too_big, chunks(30, 1000), 20_000)
            .await
            .expect_err("too large");
        assert!(matches!(err, StorageError::TooLarge { limit: 20_000 }));
        assert!(!storage.exists(&too_big).await.expect("head"));
        storage.delete(&key).await.expect("delete");
        assert!(!storage.exists(&key).await.expect("head"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
