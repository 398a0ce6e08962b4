//! The PostgreSQL store: the only crate that holds SQL.
//!
//! Layout:
//! - [`Store`]: a cheap-to-clone handle on the connection pool; migrations.
//! - [`users`], [`sessions`], [`conversations`], [`participants`], [`messages`],
//!   [`reactions`] (and pins), [`moderation`] (flags, decisions), [`search`]: the
//!   queries, one module per table family, as methods on [`Store`].
//! - [`StoreError`]: database failures classified so that callers can tell "not found",
//!   "conflict" and "database unavailable" apart without looking at SQL states.
//!
//! Invariants kept here, in SQL, because only a transaction can keep them:
//! - `seq` is dense and gap-free per conversation: it is taken from
//!   `conversations.last_seq` under that row's lock, in the transaction that inserts the
//!   message (a rollback gives the number back).
//! - a sender's `client_msg_id` is used once (unique constraint); a retry returns the
//!   original message.
//! - a conversation with participants always keeps at least one owner.
//!
//! The store checks no permissions: that is the service layer's job.

pub mod attachments;
pub mod conversations;
mod error;
pub mod exports;
pub mod messages;
pub mod moderation;
pub mod notifications;
pub mod outbox;
pub mod participants;
pub mod reactions;
pub mod search;
pub mod sessions;
pub mod users;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use error::StoreError;
pub use outbox::{OutboxEvent, Outboxed};

/// Writes the outbox row of `events` in `tx`, then commits: the change and its events
/// become durable together.
/// Commits a change of at most one row with the events of the row it changed (none when
/// it changed nothing).
pub(crate) async fn commit_row_with_events<T>(
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    row: Option<T>,
    events: impl FnOnce(&T) -> Vec<OutboxEvent>,
) -> Result<(Option<T>, Outboxed), StoreError> {
    let events = row.as_ref().map(events).unwrap_or_default();
    let outboxed = commit_with_events(tx, events).await?;
    Ok((row, outboxed))
}

pub(crate) async fn commit_with_events(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    events: Vec<OutboxEvent>,
) -> Result<Outboxed, StoreError> {
    let outboxed = outbox::write(&mut tx, events).await?;
    tx.commit().await?;
    Ok(outboxed)
}

/// How long a pooled connection may sit idle before it is pinged when next handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Handle on the database. Clones share one pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// How to reach PostgreSQL.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing as "unavailable".
    pub acquire_timeout: Duration,
}

impl Store {
    /// Opens the pool lazily: the process starts even if PostgreSQL is down, and requests
    /// fail with [`StoreError::Unavailable`] until it is back.
    pub fn connect_lazy(config: &StoreConfig) -> Result<Self, StoreError> {
        let options: PgConnectOptions = config.url.parse().map_err(StoreError::Config)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            // sqlx pings every connection it hands out by default: a second round trip
            // per statement. A connection in steady use proves itself with its last
            // statement, so only one idle for a while (which a restart or a firewall may
            // have cut) is pinged; a hot one that broke fails its statement, which is
            // answered as unavailable (503, retryable) and the connection is dropped.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options.application_name("chat"));
        Ok(Self { pool })
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the forward-only migrations in `migrations/` that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// A trivial query: is the database reachable?
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Pool use, for metrics: (connections open, connections idle).
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }
}
