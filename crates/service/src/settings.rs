//! Settings every process shares: where PostgreSQL and Redis are, how the bus is laid
//! out, and the token secret. Read from flags or environment variables.

use std::time::Duration;

use chat_auth::TokenKeys;
use chat_bus::{Bus, BusConfig};
use chat_store::{Store, StoreConfig};

use crate::ChatService;

#[derive(Debug, Clone, clap::Args)]
pub struct ServiceSettings {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Most PostgreSQL connections this process opens.
    #[arg(long, env = "CHAT_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,
    /// Seconds a request waits for a database connection before failing with 503.
    #[arg(long, env = "CHAT_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 3)]
    pub db_acquire_timeout_secs: u64,
    /// Redis URL (`redis://host:port/db`).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every Redis key this deployment uses.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "chat:")]
    pub redis_prefix: String,
    /// Number of event stream shards. Every process of a deployment must agree.
    #[arg(long, env = "CHAT_BUS_SHARDS", default_value_t = 16)]
    pub bus_shards: u16,
    /// Approximate length cap of each event stream shard.
    #[arg(long, env = "CHAT_BUS_STREAM_MAXLEN", default_value_t = 100_000)]
    pub bus_stream_maxlen: u64,
    /// Secret that signs access tokens (at least 32 bytes). Required.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "CHAT_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens (and sessions), in seconds.
    #[arg(long, env = "CHAT_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,
    /// Longest a session lives, however often it is refreshed, in seconds; then its user
    /// logs in again.
    #[arg(long, env = "CHAT_SESSION_MAX_AGE_SECS", default_value_t = 90 * 24 * 3600)]
    pub session_max_age_secs: u64,
    /// How long a process trusts what it found about a session or a membership before
    /// asking PostgreSQL again; changes reach every process at once over Redis anyway.
    /// 0 turns the cache off.
    #[arg(long, env = "CHAT_ACCESS_CACHE_MS", default_value_t = 1000)]
    pub access_cache_ms: u64,
    /// Largest attachment accepted, in bytes.
    #[arg(long, env = "CHAT_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// Most messages one send transaction commits (group commit).
    #[arg(long, env = "CHAT_WRITE_BATCH_MAX", default_value_t = 512)]
    pub write_batch_max: usize,
    /// Fault injection for tests: exit right after the first committed send batch,
    /// before its events are published. Never set it in production.
    #[arg(
        long,
        env = "CHAT_FAULT_EXIT_AFTER_COMMIT",
        default_value_t = false,
        hide = true
    )]
    pub fault_exit_after_commit: bool,
    #[command(flatten)]
    pub storage: chat_storage::StorageSettings,
    #[command(flatten)]
    pub limits: crate::LimitSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("CHAT_JWT_SECRET: {0}")]
    Secret(#[from] chat_auth::AuthError),
    #[error("DATABASE_URL: {0}")]
    Store(#[from] chat_store::StoreError),
    #[error("REDIS_URL: {0}")]
    Bus(#[from] chat_bus::BusError),
    #[error("storage: {0}")]
    Storage(#[from] chat_storage::StorageError),
}

impl ServiceSettings {
    pub fn store(&self) -> Result<Store, SettingsError> {
        Ok(Store::connect_lazy(&StoreConfig {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_secs),
        })?)
    }

    pub fn bus_config(&self) -> BusConfig {
        BusConfig {
            redis_url: self.redis_url.clone(),
            prefix: self.redis_prefix.clone(),
            shards: self.bus_shards.max(1),
            stream_maxlen: self.bus_stream_maxlen,
        }
    }

    pub fn token_keys(&self) -> Result<TokenKeys, SettingsError> {
        Ok(TokenKeys::new(
            self.jwt_secret.as_bytes(),
            Duration::from_secs(self.access_token_ttl_secs),
            Duration::from_secs(self.refresh_token_ttl_secs),
        )?
        .with_session_max_age(Duration::from_secs(self.session_max_age_secs)))
    }

    /// Builds the service. Connections open lazily: this succeeds while PostgreSQL or
    /// Redis are down, and operations fail with "unavailable" until they are back.
    pub fn build(&self) -> Result<ChatService, SettingsError> {
        let keys = self.token_keys()?;
        let store = self.store()?;
        let bus = Bus::connect(self.bus_config())?;
        let files = crate::Files {
            storage: chat_storage::Storage::from_settings(&self.storage)?,
            jobs: chat_jobs::Jobs::new(&self.redis_url, &self.redis_prefix),
            max_upload_bytes: self.max_upload_bytes,
        };
        let writing = crate::WriterSettings {
            max_batch: self.write_batch_max.max(1),
            exit_after_commit: self.fault_exit_after_commit,
        };
        Ok(ChatService::new(
            store,
            bus,
            keys,
            files,
            writing,
            self.limits.clone(),
            std::time::Duration::from_millis(self.access_cache_ms),
        ))
    }
}

/// A store for one-off administration (migrations), with a small pool.
pub fn migrate_only(database_url: &str) -> Result<Store, SettingsError> {
    Ok(Store::connect_lazy(&StoreConfig {
        url: database_url.to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
    })?)
}
