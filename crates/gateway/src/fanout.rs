//! The fan-out task: reads every shard stream of the bus and hands each event to the hub.
//!
//! One task per gateway, on its own Redis connection (a blocking XREAD holds its
//! connection). Redis work is one blocking read per batch of events, whatever the number
//! of conversations or connections: events × gateways.
//!
//! An event can reach the bus twice (the outbox relay republishes what its writer may
//! have published before dying): `message.created` repeats are dropped per connection
//! by seq, every other event here by envelope id, against the ids of the last
//! [`RECENT_IDS`] such events.
//!
//! When a read fails (Redis restarting, network), or the connection to Redis is
//! re-established (a quick restart may fail no read), the task keeps its positions,
//! retries with backoff, and once reads work again asks every connection to resync against
//! PostgreSQL: a restarted Redis has lost its streams (and what was in them), so the
//! messages are sent from PostgreSQL at once; events committed during the outage were
//! kept in the outbox and arrive when the relay publishes them.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chat_bus::Bus;
use chat_domain::EventPayload;
use tokio::sync::watch;
use uuid::Uuid;

use crate::hub::{Hub, Outbound, SharedEvent};

/// Envelope ids remembered to drop republished events: far more than a relay delay's
/// worth of non-message events.
pub const RECENT_IDS: usize = 65_536;

/// The ids of the most recent events, oldest forgotten first.
#[derive(Default)]
pub struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl RecentIds {
    /// Remembers `id`; `false` if it was seen already.
    pub fn first_time(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

pub async fn run(bus: Bus, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let mut positions = loop {
        match bus.tail_positions().await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(error = %e, "bus unavailable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut seen = RecentIds::default();
    // From now on: a reconnection after this point means Redis may have lost its streams.
    let mut reconnected = bus.reconnections();
    let mut failing = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let read = tokio::select! {
            r = bus.read(&positions, 1024, Some(Duration::from_millis(1000))) => r,
            _ = reconnected.next() => {
                tracing::info!("bus connection re-established; resyncing connections from PostgreSQL");
                hub.broadcast(Outbound::Resync);
                continue;
            }
            _ = shutdown.changed() => return,
        };
        match read {
            Ok(batch) => {
                if failing {
                    tracing::info!("bus reachable again; resyncing connections from PostgreSQL");
                    hub.broadcast(Outbound::Resync);
                    failing = false;
                    backoff = Duration::from_millis(100);
                }
                for delivery in batch {
                    if let Some(p) = positions.iter_mut().find(|(s, _)| *s == delivery.shard) {
                        p.1 = delivery.stream_id.clone();
                    }
                    // Messages are checked by seq per connection, which also covers them.
                    let is_message = matches!(
                        delivery.envelope.event.payload,
                        EventPayload::MessageCreated { .. }
                    );
                    if !is_message && !seen.first_time(delivery.envelope.id) {
                        continue;
                    }
                    let event = delivery.envelope.event;
                    match serde_json::to_string(&event) {
                        Ok(json) => hub.dispatch(Arc::new(SharedEvent { event, json })),
                        Err(e) => tracing::error!(error = %e, "could not encode event"),
                    }
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "bus read failed; retrying");
                }
                failing = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_caught_until_forgotten() {
        let mut seen = RecentIds::default();
        let first = Uuid::now_v7();
        assert!(seen.first_time(first));
        assert!(
            !seen.first_time(first),
            "a republished event must be dropped"
        );
        for _ in 0..RECENT_IDS {
            assert!(seen.first_time(Uuid::now_v7()));
        }
        // Bounded: the oldest id is forgotten once RECENT_IDS newer ones were seen.
        assert_eq!(seen.order.len(), RECENT_IDS);
        assert!(seen.first_time(first));
    }
}
