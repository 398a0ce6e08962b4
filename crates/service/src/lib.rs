//! The service layer: every read and write of the platform, with its rules.
//!
//! The REST API and the WebSocket gateway are thin adapters over [`ChatService`]; a message
//! sent over REST and one sent over a socket run the same code. Each operation:
//! 1. validates its input (`chat_domain::validate`),
//! 2. checks the caller's membership and role,
//! 3. writes through the store in one transaction, which also writes the change's
//!    events to the outbox (sends are group-committed by [`writer`]),
//! 4. after commit, hands the events to [`publisher`], which puts them on the bus.
//!
//! A failed publish never fails the operation and loses nothing: the events stay in
//! the outbox and the relay publishes them later.
//!
//! Layout: [`auth`] (accounts and sessions), [`conversations`], [`participants`],
//! [`messages`], [`channels`] (reactions, pins, threads, moderation, search); [`ServiceError`] is the one error type, mapped to HTTP and WebSocket
//! errors by the adapters.

pub mod access;
pub mod attachments;
pub mod auth;
pub mod channels;
pub mod conversations;
mod error;
pub mod exports;
pub mod limits;
pub mod messages;
pub mod notifications;
pub mod participants;
mod publisher;
pub mod settings;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chat_auth::TokenKeys;
use chat_bus::{Bus, Envelope};
use chat_domain::{ConversationId, Event, EventPayload, Participant, SessionId, UserId};
use chat_store::{OutboxEvent, Outboxed, Store};

pub use chat_store::conversations::{ConversationChanges, ConversationFilter};
pub use chat_store::messages::{HistoryPage, HistoryQuery};
pub use chat_store::participants::Watermark;
pub use chat_store::search::SearchPosition;
pub use error::ServiceError;
pub use limits::LimitSettings;
pub use settings::ServiceSettings;
pub use writer::WriterSettings;

/// The authenticated user on whose behalf an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// Handle on the platform's logic. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    store: Store,
    bus: Bus,
    keys: TokenKeys,
    files: Files,
    stats: Arc<Stats>,
    writer: writer::Writer,
    publisher: publisher::Publisher,
    limits: Arc<limits::LimitSettings>,
    hasher: chat_auth::hasher::PasswordHasher,
    access: Arc<access::AccessCache>,
}

/// Object storage and the job queues, for files.
#[derive(Clone)]
pub struct Files {
    pub storage: chat_storage::Storage,
    pub jobs: chat_jobs::Jobs,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
}

/// Counters for metrics.
#[derive(Default, Debug)]
pub struct Stats {
    pub messages_persisted: AtomicU64,
    pub events_published: AtomicU64,
    pub publish_failures: AtomicU64,
    /// Events published by the outbox relay rather than right after their commit.
    pub events_relayed: AtomicU64,
    /// Send transactions committed (or failed), the messages they held, and the largest.
    pub write_batches: AtomicU64,
    pub write_batch_messages: AtomicU64,
    pub write_batch_largest: AtomicU64,
}

impl ChatService {
    /// Builds the service and starts its background tasks (the message writer, the
    /// event publisher and the outbox relay) on the current tokio runtime.
    pub fn new(
        store: Store,
        bus: Bus,
        keys: TokenKeys,
        files: Files,
        writing: WriterSettings,
        limits: limits::LimitSettings,
        access_ttl: std::time::Duration,
    ) -> Self {
        // Room for a few seconds of logins beyond those hashing; more are refused at once.
        let hasher = match limits.password_hash_threads {
            0 => chat_auth::hasher::PasswordHasher::per_core(256),
            n => chat_auth::hasher::PasswordHasher::start(n, 256),
        };
        let stats: Arc<Stats> = Arc::default();
        let publisher = publisher::Publisher::start(store.clone(), bus.clone(), stats.clone());
        let writer =
            writer::Writer::start(store.clone(), publisher.clone(), stats.clone(), writing);
        // The notifier's group must exist before the first message is published, or the
        // workers (which create it too) would start after it.
        let group_bus = bus.clone();
        tokio::spawn(async move {
            while group_bus
                .ensure_group(notifications::NOTIFY_GROUP)
                .await
                .is_err()
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        let access = Arc::new(access::AccessCache::new(access_ttl));
        match bus.dedicated_reader() {
            Ok(reader) => {
                tokio::spawn(access::follow_invalidations(reader, access.clone()));
            }
            // Without the stream nothing is ever remembered: every check is asked.
            Err(e) => tracing::warn!(error = %e, "no invalidation reader; access not cached"),
        }
        Self {
            store,
            bus,
            keys,
            files,
            stats,
            writer,
            publisher,
            limits: Arc::new(limits),
            hasher,
            access,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The outbox entry of an event, with the current trace context.
    fn event(
        &self,
        conversation: ConversationId,
        actor: Option<UserId>,
        payload: EventPayload,
    ) -> OutboxEvent {
        envelope_of(
            conversation,
            actor,
            payload,
            chat_telemetry::current_traceparent(),
        )
    }

    /// Publishes the events of a committed transaction (from its outbox row) soon; never
    /// fails: what is not published now, the relay publishes later.
    fn announce(&self, outboxed: Outboxed) {
        self.publisher.hand_over(outboxed);
    }

    /// Publishes an event that is not stored (typing, presence) directly. Failures are
    /// logged and counted: such events are not worth a retry.
    async fn publish_now(
        &self,
        conversation: ConversationId,
        actor: Option<UserId>,
        payload: EventPayload,
    ) {
        let envelope = envelope(
            conversation,
            actor,
            payload,
            chat_telemetry::current_traceparent(),
        );
        match self.bus.publish(&envelope).await {
            Ok(_) => {
                self.stats.events_published.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %err, event = envelope.event.payload.type_name(), %conversation, "ephemeral event not published");
            }
        }
    }

    /// The caller's membership of a conversation. A non-participant is told the
    /// conversation does not exist: its existence is not revealed.
    async fn membership(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<Participant, ServiceError> {
        if let Some(known) = self.access.membership(conversation, caller.user_id) {
            return Ok(known);
        }
        let participant = self
            .store
            .participant(conversation, caller.user_id)
            .await?
            .ok_or(ServiceError::NotFound("conversation"))?;
        self.access.remember_membership(&participant);
        Ok(participant)
    }

    /// Tells every process (this one first) to forget cached access. A failure is logged:
    /// the caches forget on their own within `CHAT_ACCESS_CACHE_MS`.
    async fn invalidate(&self, invalidation: chat_bus::invalidation::Invalidation) {
        self.access.forget(&invalidation);
        if let Err(e) = self.bus.publish_invalidation(&invalidation).await {
            tracing::warn!(error = %e, ?invalidation, "invalidation not published");
        }
    }
}

/// The bus envelope of an event, carrying the trace of the change that caused it.
fn envelope(
    conversation: ConversationId,
    actor: Option<UserId>,
    payload: EventPayload,
    traceparent: Option<String>,
) -> Envelope {
    let mut envelope = Envelope::new(Event::new(conversation, actor, payload));
    if let Some(tp) = traceparent {
        envelope.trace.insert("traceparent".into(), tp);
    }
    envelope
}

/// Serialises the bus envelope of an event for the outbox.
pub(crate) fn envelope_of(
    conversation: ConversationId,
    actor: Option<UserId>,
    payload: EventPayload,
    traceparent: Option<String>,
) -> OutboxEvent {
    let envelope = envelope(conversation, actor, payload, traceparent);
    // An envelope is plain data (string keys, no floats): serialising it cannot fail.
    let body = serde_json::to_string(&envelope).expect("envelopes serialise");
    OutboxEvent {
        conversation_id: conversation,
        body,
    }
}
