//! The hub: which local connection receives which conversation's events.
//!
//! One hub per gateway process. The fan-out task hands it every event read from the bus;
//! the hub puts the event, serialized once, on the bounded queue of each local connection
//! subscribed to the event's conversation. A queue that is full means the client does not
//! read fast enough: that connection is told to close ("slow consumer") instead of
//! buffering without bound, and the client resumes elsewhere by seq.
//!
//! Membership changes travel in the same queues as the events (`Subscribed`,
//! `Unsubscribed`), so a connection sees them in order with the events around them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chat_domain::{ConversationId, Event, EventPayload, UserId};
use tokio::sync::{Notify, mpsc};

pub type ConnId = u64;

/// An event read from the bus, with its JSON text (serialized once for all receivers).
#[derive(Debug)]
pub struct SharedEvent {
    pub event: Event,
    pub json: String,
}

/// What a connection's queue carries.
#[derive(Debug, Clone)]
pub enum Outbound {
    Event(Arc<SharedEvent>),
    /// The connection now receives this conversation; messages after `start` (when known).
    Subscribed {
        conversation: ConversationId,
        start: Option<i64>,
    },
    /// The connection no longer receives this conversation.
    Unsubscribed {
        conversation: ConversationId,
    },
    /// The bus may have lost events (Redis was unreachable): check every conversation
    /// against PostgreSQL and fill gaps.
    Resync,
}

/// One local connection, as the hub sees it.
#[derive(Debug)]
pub struct Member {
    pub conn: ConnId,
    pub user: UserId,
    /// On `/ws` (every conversation of the user, including ones joined later), or bound
    /// to one conversation.
    pub all_conversations: bool,
    pub tx: mpsc::Sender<Outbound>,
    /// Notified when the connection must close because its queue overflowed.
    pub kick: Arc<Notify>,
    /// Set with the notification, for a connection that is busy writing.
    pub kicked: Arc<AtomicBool>,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct HubStats {
    pub events_dispatched: AtomicU64,
    pub deliveries: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub connections: AtomicU64,
}

#[derive(Default)]
pub struct Hub {
    conversations: RwLock<HashMap<ConversationId, Vec<Arc<Member>>>>,
    /// `/ws` connections by user, to subscribe them to conversations they join.
    users: RwLock<HashMap<UserId, Vec<Arc<Member>>>>,
    pub stats: HubStats,
}

impl Hub {
    /// Subscribes a connection to conversations (before their backlog is read, so that
    /// nothing published in between is missed).
    pub fn register(&self, member: Arc<Member>, conversations: &[ConversationId]) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self
                .conversations
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for c in conversations {
                map.entry(*c).or_default().push(member.clone());
            }
        }
        if member.all_conversations {
            let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
            users.entry(member.user).or_default().push(member);
        }
    }

    /// Removes a connection everywhere.
    pub fn unregister(&self, conn: ConnId, user: UserId) {
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        {
            let mut map = self
                .conversations
                .write()
                .unwrap_or_else(|e| e.into_inner());
            map.retain(|_, members| {
                members.retain(|m| m.conn != conn);
                !members.is_empty()
            });
        }
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = users.get_mut(&user) {
            list.retain(|m| m.conn != conn);
            if list.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Sends a control message to every local connection (e.g. after a bus outage).
    pub fn broadcast(&self, message: Outbound) {
        let map = self.conversations.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        for member in map.values().flatten() {
            if seen.insert(member.conn) {
                self.offer(member, message.clone());
            }
        }
    }

    /// Hands an event to every local subscriber of its conversation, applying the
    /// membership changes it carries.
    pub fn dispatch(&self, shared: Arc<SharedEvent>) {
        self.stats.events_dispatched.fetch_add(1, Ordering::Relaxed);
        let conversation = shared.event.conversation_id;
        // Joins first: a user who joins receives the event of their own joining.
        match &shared.event.payload {
            EventPayload::ConversationCreated { participants, .. } => {
                self.subscribe_users(conversation, participants, Some(0));
            }
            EventPayload::ParticipantJoined { participant } => {
                self.subscribe_users(conversation, &[participant.user_id], None);
            }
            _ => {}
        }
        {
            let map = self.conversations.read().unwrap_or_else(|e| e.into_inner());
            if let Some(members) = map.get(&conversation) {
                for member in members {
                    self.offer(member, Outbound::Event(shared.clone()));
                }
            }
        }
        // Departures last: the user who leaves still sees that they left.
        match &shared.event.payload {
            EventPayload::ParticipantLeft { user_id, .. } => {
                self.unsubscribe(conversation, Some(*user_id))
            }
            EventPayload::ConversationDeleted {} => self.unsubscribe(conversation, None),
            _ => {}
        }
    }

    fn subscribe_users(
        &self,
        conversation: ConversationId,
        users: &[chat_domain::UserId],
        start: Option<i64>,
    ) {
        let joining: Vec<Arc<Member>> = {
            let by_user = self.users.read().unwrap_or_else(|e| e.into_inner());
            users
                .iter()
                .filter_map(|u| by_user.get(u))
                .flatten()
                .cloned()
                .collect()
        };
        if joining.is_empty() {
            return;
        }
        let mut map = self
            .conversations
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let members = map.entry(conversation).or_default();
        for m in joining {
            if !members.iter().any(|x| x.conn == m.conn) {
                self.offer(
                    &m,
                    Outbound::Subscribed {
                        conversation,
                        start,
                    },
                );
                members.push(m);
            }
        }
    }

    /// Unsubscribes one user's connections (or everyone's) from a conversation.
    fn unsubscribe(&self, conversation: ConversationId, user: Option<UserId>) {
        let mut map = self
            .conversations
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(members) = map.get_mut(&conversation) {
            members.retain(|m| {
                let leaving = user.is_none_or(|u| u == m.user);
                if leaving {
                    self.offer(m, Outbound::Unsubscribed { conversation });
                }
                !leaving
            });
            if members.is_empty() {
                map.remove(&conversation);
            }
        }
    }

    /// Queues without waiting; a full queue gets its connection kicked.
    fn offer(&self, member: &Member, message: Outbound) {
        match member.tx.try_send(message) {
            Ok(()) => {
                self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !member.kicked.swap(true, Ordering::Relaxed) {
                    self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                }
                member.kick.notify_one();
            }
            // The connection is closing; it unregisters itself.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
