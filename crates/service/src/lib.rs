//! The service layer: every read and write of the platform, with its rules.
//!
//! The REST API and the WebSocket gateway are thin adapters over [`ChatService`]; a message
//! sent over REST and one sent over a socket run the same code. Each operation:
//! 1. validates its input (`chat_domain::validate`),
//! 2. checks the caller's membership and role,
//! 3. writes through the store (one transaction),
//! 4. after commit, publishes the event of the change on the bus.
//!
//! A failed publish never fails the operation: the change is committed, and readers
//! recover it from PostgreSQL (the source of truth) by seq.
//!
//! Layout: [`auth`] (accounts and sessions), [`conversations`], [`participants`],
//! [`messages`], [`channels`] (reactions, pins, threads, moderation, search); [`ServiceError`] is the one error type, mapped to HTTP and WebSocket
//! errors by the adapters.

pub mod attachments;
pub mod auth;
pub mod channels;
pub mod conversations;
pub mod exports;
mod error;
pub mod messages;
pub mod notifications;
pub mod participants;
pub mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chat_auth::TokenKeys;
use chat_bus::{Bus, Envelope};
use chat_domain::{ConversationId, Event, EventPayload, Participant, SessionId, UserId};
use chat_store::Store;

pub use chat_store::conversations::{ConversationChanges, ConversationFilter};
pub use chat_store::messages::{HistoryPage, HistoryQuery};
pub use chat_store::participants::Watermark;
pub use error::ServiceError;
pub use settings::ServiceSettings;

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
}

impl ChatService {
    pub fn new(store: Store, bus: Bus, keys: TokenKeys, files: Files) -> Self {
        Self { store, bus, keys, files, stats: Arc::default() }
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

    /// Publishes the event of a committed change. Failures are logged and counted, not
    /// returned: the change is already committed and readers recover it from the store.
    async fn publish(&self, conversation: ConversationId, actor: Option<UserId>, payload: EventPayload) {
        let mut envelope = Envelope::new(Event::new(conversation, actor, payload));
        if let Some(tp) = chat_telemetry::current_traceparent() {
            envelope.trace.insert("traceparent".into(), tp);
        }
        match self.bus.publish(&envelope).await {
            Ok(_) => {
                self.stats.events_published.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    error = %err,
                    event = envelope.event.payload.type_name(),
                    %conversation,
                    "event not published; readers will recover it from the store"
                );
            }
        }
    }

    /// The caller's membership of a conversation. A non-participant is told the
    /// conversation does not exist: its existence is not revealed.
    async fn membership(&self, caller: &Caller, conversation: ConversationId) -> Result<Participant, ServiceError> {
        self.store
            .participant(conversation, caller.user_id)
            .await?
            .ok_or(ServiceError::NotFound("conversation"))
    }
}
