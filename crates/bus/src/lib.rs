//! The event bus: every committed change is published here, on Redis streams, and the
//! gateway fleet reads it back.
//!
//! Layout of the streams (see `ARCHITECTURE.md` for why):
//! - a fixed number of shard streams, `{prefix}{ev-<n>}`, `n` in `0..shards`;
//! - a conversation's events all go to shard `hash(conversation_id) % shards`, so they
//!   keep their order;
//! - each entry has one field, `e`, holding a JSON [`Envelope`];
//! - streams are capped (`MAXLEN ~`): they are the fast path, not the record. PostgreSQL
//!   is the record; a reader that finds its position trimmed away falls back to it.
//!
//! Redis work therefore grows with published events × readers, never with the number of
//! conversations. The braces are a Redis Cluster hash tag: each shard hashes to its own
//! slot, so shards spread over the cluster's nodes.
//!
//! This crate knows nothing of HTTP, WebSockets or SQL.

pub mod invalidation;
pub mod presence;
pub mod throttle;

pub use throttle::Rate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{ConversationId, Event};
use fred::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Stream entries as Redis returns them: (entry id, field → value).
pub(crate) type StreamEntries = Vec<(String, HashMap<String, String>)>;

/// The envelope format version written by this code.
pub const ENVELOPE_VERSION: u8 = 1;

/// How to reach Redis and lay out the streams.
#[derive(Clone, Debug)]
pub struct BusConfig {
    pub redis_url: String,
    /// Prepended to every key (lets several deployments or tests share one Redis).
    pub prefix: String,
    /// Number of shard streams. Changing it re-routes conversations; do it only with the
    /// fleet stopped.
    pub shards: u16,
    /// Approximate cap of each shard stream, in entries.
    pub stream_maxlen: u64,
}

/// One event as it travels on the bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version; readers skip versions they do not know.
    pub v: u8,
    /// Unique per published event (readers may use it to drop duplicates).
    pub id: Uuid,
    #[serde(flatten)]
    pub event: Event,
    /// W3C trace context of the change that caused the event (`traceparent`, …).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub trace: HashMap<String, String>,
}

impl Envelope {
    pub fn new(event: Event) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            id: Uuid::now_v7(),
            event,
            trace: HashMap::new(),
        }
    }
}

/// See [`Bus::reconnections`].
pub struct Reconnections(tokio::sync::broadcast::Receiver<fred::types::config::Server>);

impl Reconnections {
    /// Waits for the next reconnection (forever once the client is gone).
    pub async fn next(&mut self) {
        loop {
            match self.0.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await
                }
            }
        }
    }
}

/// An envelope read back from a shard, with its position.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub shard: u16,
    /// The Redis stream entry id: where to continue reading this shard from.
    pub stream_id: String,
    pub envelope: Envelope,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid Redis configuration: {0}")]
    Config(#[source] fred::error::Error),
    #[error("Redis unavailable: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("could not encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Handle on the bus. Clones share one Redis connection (commands are pipelined).
#[derive(Clone)]
pub struct Bus {
    client: Client,
    config: Arc<BusConfig>,
}

impl Bus {
    /// Starts connecting in the background and returns at once: the process runs while
    /// Redis is down, and commands fail (after a short timeout) until it is back.
    pub fn connect(config: BusConfig) -> Result<Self, BusError> {
        let client = build_client(&config.redis_url)?;
        client.connect();
        Ok(Self {
            client,
            config: Arc::new(config),
        })
    }

    /// A bus with its own connection, for blocking reads: a blocking XREAD holds up every
    /// other command on its connection.
    pub fn dedicated_reader(&self) -> Result<Self, BusError> {
        Self::connect((*self.config).clone())
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Waits until the connection is up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), BusError> {
        tokio::time::timeout(timeout, self.client.wait_for_connect())
            .await
            .map_err(|_| {
                BusError::Redis(fred::error::Error::new(
                    fred::error::ErrorKind::Timeout,
                    "connect",
                ))
            })??;
        Ok(())
    }

    /// Tells each time this bus's connection comes (back) up after it was lost: a Redis
    /// that restarted has lost its streams, and what they held must be read from
    /// PostgreSQL. (fred retries a command across a reconnection, so a blocking read may
    /// never fail during a quick restart.)
    pub fn reconnections(&self) -> Reconnections {
        Reconnections(self.client.reconnect_rx())
    }

    /// Is Redis answering?
    pub async fn ping(&self) -> Result<(), BusError> {
        let _: String = self.client.ping(None).await?;
        Ok(())
    }

    /// The shard a conversation's events go to. Uses the random half of the UUID, so
    /// conversations spread evenly whatever their creation time.
    pub fn shard_of(&self, conversation: ConversationId) -> u16 {
        let bytes = conversation.as_uuid().as_u128();
        (bytes as u64 % u64::from(self.config.shards.max(1))) as u16
    }

    /// The stream key of a shard.
    pub fn stream_key(&self, shard: u16) -> String {
        format!("{}{{ev-{shard}}}", self.config.prefix)
    }

    /// Publishes an event, returning the stream entry id.
    pub async fn publish(&self, envelope: &Envelope) -> Result<String, BusError> {
        let body = serde_json::to_string(envelope)?;
        let key = self.stream_key(self.shard_of(envelope.event.conversation_id));
        let id: String = self
            .client
            .xadd(
                key,
                false,
                ("MAXLEN", "~", self.config.stream_maxlen as i64),
                "*",
                vec![("e", body)],
            )
            .await?;
        Ok(id)
    }

    /// Publishes already serialised envelopes, each on its conversation's shard, in one
    /// pipeline (one round trip for the lot). Order is kept within a shard. Fails as a
    /// whole if any XADD fails: the caller publishes them again later, and readers drop
    /// the duplicates by envelope id.
    pub async fn publish_serialised(
        &self,
        events: &[(ConversationId, &str)],
    ) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let pipeline = self.client.pipeline();
        for (conversation, body) in events {
            let key = self.stream_key(self.shard_of(*conversation));
            let _: () = pipeline
                .xadd(
                    key,
                    false,
                    ("MAXLEN", "~", self.config.stream_maxlen as i64),
                    "*",
                    vec![("e", *body)],
                )
                .await?;
        }
        let _: Vec<Value> = pipeline.all().await?;
        Ok(())
    }

    /// The id of the newest entry of each shard ("$" positions made concrete), so that a
    /// reader can start from "now" without missing what is published next.
    pub async fn tail_positions(&self) -> Result<Vec<(u16, String)>, BusError> {
        let mut out = Vec::with_capacity(self.config.shards as usize);
        for shard in 0..self.config.shards {
            let last: StreamEntries = self
                .client
                .xrevrange(self.stream_key(shard), "+", "-", Some(1))
                .await?;
            out.push((
                shard,
                last.into_iter()
                    .next()
                    .map(|(id, _)| id)
                    .unwrap_or_else(|| "0-0".into()),
            ));
        }
        Ok(out)
    }

    /// Reads the entries after each given position, waiting up to `block` for some to
    /// arrive. Entries that do not parse, or carry an unknown envelope version, are
    /// skipped (and logged) but still advance the position.
    ///
    /// All positions are read with one XREAD. On a single Redis that is one command for
    /// every shard; on a Redis Cluster a multi-key XREAD needs all keys in one hash slot,
    /// so a cluster reader calls this once per shard.
    ///
    /// Within a shard, entries are in publish order, which is not always seq order:
    /// two concurrent sends commit seq 7 then 8 but may publish 8 first. Readers order
    /// (and gap-fill) by seq.
    pub async fn read(
        &self,
        positions: &[(u16, String)],
        count: u64,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, BusError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = positions.iter().map(|(s, _)| self.stream_key(*s)).collect();
        let ids: Vec<String> = positions.iter().map(|(_, id)| id.clone()).collect();
        let block_ms = block.map(|d| d.as_millis() as u64);
        let raw: Value = self.client.xread(Some(count), block_ms, keys, ids).await?;
        if raw.is_null() {
            // The block timed out with nothing new.
            return Ok(Vec::new());
        }
        let response = raw.into_xread_response::<String, String, String, String>()?;
        Ok(self.deliveries(
            response
                .into_iter()
                .map(|(k, entries)| (k, entries.into_iter().collect())),
        ))
    }
}

/// Consumer groups: for readers that must each handle every event once between them
/// (the workers' notifier), rather than every reader seeing everything (gateways).
impl Bus {
    /// Creates `group` on every shard (reading from new entries on), if missing.
    pub async fn ensure_group(&self, group: &str) -> Result<(), BusError> {
        for shard in 0..self.config.shards {
            let created: Result<Value, _> = self
                .client
                .xgroup_create(self.stream_key(shard), group, "$", true)
                .await;
            match created {
                Ok(_) => {}
                Err(e) if e.details().starts_with("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads up to `count` entries per shard that no consumer of `group` got yet, waiting
    /// up to `block` for some. They stay pending for `consumer` until [`Bus::ack`].
    pub async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: u64,
        block: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let keys: Vec<String> = (0..self.config.shards)
            .map(|s| self.stream_key(s))
            .collect();
        let ids: Vec<&str> = keys.iter().map(|_| ">").collect();
        let raw: Value = self
            .client
            .xreadgroup(
                group,
                consumer,
                Some(count),
                Some(block.as_millis() as u64),
                false,
                keys,
                ids,
            )
            .await?;
        if raw.is_null() {
            return Ok(Vec::new());
        }
        let response = raw.into_xread_response::<String, String, String, String>()?;
        Ok(self.deliveries(
            response
                .into_iter()
                .map(|(k, entries)| (k, entries.into_iter().collect())),
        ))
    }

    /// Takes over entries of `group` pending for longer than `min_idle` (their consumer
    /// died before acknowledging them), up to `count` per shard.
    pub async fn claim_idle(
        &self,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: u64,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut out = Vec::new();
        for shard in 0..self.config.shards {
            let key = self.stream_key(shard);
            let (_, entries): (String, StreamEntries) = self
                .client
                .xautoclaim_values(
                    &key,
                    group,
                    consumer,
                    min_idle.as_millis() as u64,
                    "0-0",
                    Some(count),
                    false,
                )
                .await?;
            out.extend(self.deliveries(std::iter::once((key, entries))));
        }
        Ok(out)
    }

    /// Acknowledges handled entries of `group`, in one pipeline.
    pub async fn ack(&self, group: &str, handled: &[Delivery]) -> Result<(), BusError> {
        if handled.is_empty() {
            return Ok(());
        }
        let mut by_shard: HashMap<u16, Vec<String>> = HashMap::new();
        for d in handled {
            by_shard
                .entry(d.shard)
                .or_default()
                .push(d.stream_id.clone());
        }
        let pipeline = self.client.pipeline();
        for (shard, ids) in by_shard {
            let _: () = pipeline.xack(self.stream_key(shard), group, ids).await?;
        }
        let _: Vec<Value> = pipeline.all().await?;
        Ok(())
    }

    /// Parses stream entries of known shards, skipping (and logging) unreadable ones.
    fn deliveries(&self, streams: impl Iterator<Item = (String, StreamEntries)>) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (key, entries) in streams {
            let Some(shard) = (0..self.config.shards).find(|s| self.stream_key(*s) == key) else {
                continue;
            };
            for (stream_id, fields) in entries {
                match fields
                    .get("e")
                    .map(|raw| serde_json::from_str::<Envelope>(raw))
                {
                    Some(Ok(envelope)) if envelope.v == ENVELOPE_VERSION => out.push(Delivery {
                        shard,
                        stream_id,
                        envelope,
                    }),
                    other => {
                        tracing::warn!(%key, %stream_id, ok = matches!(other, Some(Ok(_))), "skipping unreadable bus entry");
                    }
                }
            }
        }
        out
    }
}

fn build_client(url: &str) -> Result<Client, BusError> {
    let config = Config::from_url(url).map_err(BusError::Config)?;
    Builder::from_config(config)
        .with_performance_config(|perf| {
            // A publish must not hang a request while Redis is away.
            perf.default_command_timeout = Duration::from_secs(2);
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = Duration::from_secs(2);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build()
        .map_err(BusError::Config)
}
