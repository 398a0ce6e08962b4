//! Getting committed events onto the bus: at once after each commit, and from the outbox
//! for whatever that missed.
//!
//! Every write puts its events in an `event_outbox` row of its own transaction, then
//! hands the row to this process's [`Publisher`]. One task publishes what is handed over
//! in pipelined XADDs (all rows waiting at that moment in one round trip, in hand-over
//! order) and deletes the rows it published, together, every [`FORGET_AFTER`]. A row that stays (the process died between
//! commit and publish, Redis was down, the hand-over queue was full) is claimed after
//! [`STALE_AFTER`] by the relay task that every process runs, and published then. An
//! event can thus reach the bus twice, never zero times: readers drop repeats by
//! envelope id (messages also by seq).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_bus::Bus;
use chat_store::{Outboxed, Store};
use tokio::sync::mpsc;

use crate::Stats;

/// How old an outbox row must be before a relay publishes it: the writer's own publish
/// normally takes milliseconds.
pub const STALE_AFTER: Duration = Duration::from_secs(2);
/// How long a relay holds the rows it claimed before another may take them.
const CLAIM_HOLD: Duration = Duration::from_secs(10);
/// How often the relay looks for stale rows.
const RELAY_EVERY: Duration = Duration::from_millis(500);
/// Rows per relay claim.
const RELAY_BATCH: i64 = 200;
/// Rows waiting for the publish task; past it, rows are left to the relay.
const QUEUE: usize = 8192;
/// Most rows in one pipelined publish.
const MOST_ROWS_PER_PUBLISH: usize = 512;
/// Published rows are deleted together, this long after the first of them was published
/// (well before a relay would take them), or once this many wait.
const FORGET_AFTER: Duration = Duration::from_millis(100);
const MOST_ROWS_PER_FORGET: usize = 4096;

/// The publishing half of the outbox, for one process.
#[derive(Clone)]
pub(crate) struct Publisher {
    queue: mpsc::Sender<Outboxed>,
}

impl Publisher {
    /// Starts the publish and relay tasks (on the current tokio runtime).
    pub(crate) fn start(store: Store, bus: Bus, stats: Arc<Stats>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(publish_loop(rx, store.clone(), bus.clone(), stats.clone()));
        tokio::spawn(relay_loop(store, bus, stats));
        Self { queue }
    }

    /// Publishes the events of a committed transaction soon. Never waits: if the queue
    /// is full, the row stays in the outbox for the relay.
    pub(crate) fn hand_over(&self, outboxed: Outboxed) {
        if outboxed.events.is_empty() {
            return;
        }
        if self.queue.try_send(outboxed).is_err() {
            tracing::warn!("publish queue full; the outbox relay will publish these events");
        }
    }
}

async fn publish_loop(mut rx: mpsc::Receiver<Outboxed>, store: Store, bus: Bus, stats: Arc<Stats>) {
    let mut rows = Vec::new();
    let mut published: Vec<i64> = Vec::new();
    let mut forget_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            n = rx.recv_many(&mut rows, MOST_ROWS_PER_PUBLISH) => {
                if n == 0 {
                    break;
                }
                let batch = std::mem::take(&mut rows);
                let ids: Vec<i64> = batch.iter().filter_map(|r| r.id).collect();
                if publish_rows(&bus, &stats, &batch).await && !ids.is_empty() {
                    published.extend(ids);
                    forget_at.get_or_insert_with(|| tokio::time::Instant::now() + FORGET_AFTER);
                }
            }
            _ = tokio::time::sleep_until(forget_at.unwrap_or_else(tokio::time::Instant::now)), if forget_at.is_some() => {
                forget(&store, std::mem::take(&mut published)).await;
                forget_at = None;
            }
        }
        if published.len() >= MOST_ROWS_PER_FORGET {
            forget(&store, std::mem::take(&mut published)).await;
            forget_at = None;
        }
    }
    forget(&store, published).await;
}

/// Deletes outbox rows whose events were published.
async fn forget(store: &Store, ids: Vec<i64>) {
    if let Err(e) = store.outbox_done(&ids).await {
        // Still listed: the relay publishes them again and readers drop the repeats.
        tracing::warn!(error = %e, rows = ids.len(), "published outbox rows not deleted");
    }
}

/// Claims and publishes stale outbox rows, forever.
async fn relay_loop(store: Store, bus: Bus, stats: Arc<Stats>) {
    let mut tick = tokio::time::interval(RELAY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let rows = match store
                .claim_stale_outbox(STALE_AFTER, CLAIM_HOLD, RELAY_BATCH)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::debug!(error = %e, "outbox relay: database unavailable");
                    break;
                }
            };
            let full = rows.len() as i64 == RELAY_BATCH;
            if !rows.is_empty() {
                stats.events_relayed.fetch_add(
                    rows.iter().map(|r| r.events.len() as u64).sum(),
                    Ordering::Relaxed,
                );
                tracing::info!(
                    rows = rows.len(),
                    "outbox relay: publishing events their writer did not"
                );
            }
            let ids: Vec<i64> = rows.iter().filter_map(|r| r.id).collect();
            if !publish_rows(&bus, &stats, &rows).await {
                break;
            }
            forget(&store, ids).await;
            if !full {
                break;
            }
        }
    }
}

/// Publishes the rows' events in one pipeline; `false` if Redis refused (the rows stay
/// for the relay).
async fn publish_rows(bus: &Bus, stats: &Stats, rows: &[Outboxed]) -> bool {
    if rows.is_empty() {
        return true;
    }
    let events: Vec<_> = rows
        .iter()
        .flat_map(|r| {
            r.events
                .iter()
                .map(|e| (e.conversation_id, e.body.as_str()))
        })
        .collect();
    match bus.publish_serialised(&events).await {
        Ok(()) => {
            stats
                .events_published
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            true
        }
        Err(e) => {
            stats
                .publish_failures
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, events = events.len(), "events not published yet; they stay in the outbox");
            false
        }
    }
}
