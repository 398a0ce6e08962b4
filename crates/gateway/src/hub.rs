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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

/// Shards of the conversation index: dispatch and (un)subscription of one conversation
/// lock only its shard.
const SHARDS: usize = 64;

/// A connection and the conversations it receives: what `unregister` and `broadcast`
/// walk, so their cost is the connection's, not the gateway's.
struct Subscriptions {
    member: Arc<Member>,
    conversations: HashSet<ConversationId>,
}

type ConversationShard = RwLock<HashMap<ConversationId, Vec<Arc<Member>>>>;

/// The indexes, both ways: conversation → connections (sharded), connection →
/// conversations, and user → `/ws` connections. No method holds two of their locks at
/// once.
pub struct Hub {
    conversations: Box<[ConversationShard]>,
    connections: Mutex<HashMap<ConnId, Subscriptions>>,
    /// `/ws` connections by user, to subscribe them to conversations they join.
    users: RwLock<HashMap<UserId, Vec<Arc<Member>>>>,
    pub stats: HubStats,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            conversations: (0..SHARDS).map(|_| RwLock::default()).collect(),
            connections: Mutex::default(),
            users: RwLock::default(),
            stats: HubStats::default(),
        }
    }
}

impl Hub {
    fn shard(&self, conversation: ConversationId) -> &ConversationShard {
        // The random half of a UUIDv7 spreads conversations evenly.
        &self.conversations[(conversation.as_uuid().as_u128() as usize) % SHARDS]
    }

    /// Subscribes a connection to conversations (before their backlog is read, so that
    /// nothing published in between is missed).
    pub fn register(&self, member: Arc<Member>, conversations: &[ConversationId]) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        lock(&self.connections).insert(
            member.conn,
            Subscriptions {
                member: member.clone(),
                conversations: conversations.iter().copied().collect(),
            },
        );
        for c in conversations {
            write(self.shard(*c))
                .entry(*c)
                .or_default()
                .push(member.clone());
        }
        if member.all_conversations {
            write(&self.users)
                .entry(member.user)
                .or_default()
                .push(member);
        }
    }

    /// Removes a connection everywhere: from the conversations it receives only.
    pub fn unregister(&self, conn: ConnId, user: UserId) {
        // First out of the connection index, so that a join racing with this cannot add
        // it back for good (see `subscribe_users`).
        let Some(subscriptions) = lock(&self.connections).remove(&conn) else {
            return;
        };
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        for c in subscriptions.conversations {
            remove_member(&mut write(self.shard(c)), c, conn);
        }
        let mut users = write(&self.users);
        if let Some(list) = users.get_mut(&user) {
            list.retain(|m| m.conn != conn);
            if list.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Sends a control message to every local connection (e.g. after a bus outage).
    pub fn broadcast(&self, message: Outbound) {
        let members: Vec<Arc<Member>> = lock(&self.connections)
            .values()
            .map(|s| s.member.clone())
            .collect();
        for member in members {
            self.offer(&member, message.clone());
        }
    }

    /// How many connections receive this conversation here.
    pub fn subscribers(&self, conversation: ConversationId) -> usize {
        read(self.shard(conversation))
            .get(&conversation)
            .map_or(0, Vec::len)
    }

    /// The conversations a connection receives, if it is registered.
    pub fn subscriptions_of(&self, conn: ConnId) -> Option<HashSet<ConversationId>> {
        lock(&self.connections)
            .get(&conn)
            .map(|s| s.conversations.clone())
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
            let shard = read(self.shard(conversation));
            if let Some(members) = shard.get(&conversation) {
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
            let by_user = read(&self.users);
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
        let mut added = Vec::new();
        {
            let mut shard = write(self.shard(conversation));
            let members = shard.entry(conversation).or_default();
            for m in joining {
                if !members.iter().any(|x| x.conn == m.conn) {
                    self.offer(
                        &m,
                        Outbound::Subscribed {
                            conversation,
                            start,
                        },
                    );
                    added.push(m.conn);
                    members.push(m);
                }
            }
        }
        // Recorded on each connection; one that unregistered meanwhile is taken out again.
        let gone: Vec<ConnId> = {
            let mut connections = lock(&self.connections);
            added
                .into_iter()
                .filter(|conn| match connections.get_mut(conn) {
                    Some(s) => {
                        s.conversations.insert(conversation);
                        false
                    }
                    None => true,
                })
                .collect()
        };
        if !gone.is_empty() {
            let mut shard = write(self.shard(conversation));
            for conn in gone {
                remove_member(&mut shard, conversation, conn);
            }
        }
    }

    /// Unsubscribes one user's connections (or everyone's) from a conversation.
    fn unsubscribe(&self, conversation: ConversationId, user: Option<UserId>) {
        let mut left = Vec::new();
        {
            let mut shard = write(self.shard(conversation));
            if let Some(members) = shard.get_mut(&conversation) {
                members.retain(|m| {
                    let leaving = user.is_none_or(|u| u == m.user);
                    if leaving {
                        self.offer(m, Outbound::Unsubscribed { conversation });
                        left.push(m.conn);
                    }
                    !leaving
                });
                if members.is_empty() {
                    shard.remove(&conversation);
                }
            }
        }
        let mut connections = lock(&self.connections);
        for conn in left {
            if let Some(s) = connections.get_mut(&conn) {
                s.conversations.remove(&conversation);
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

/// Takes `conn` out of one conversation's list (and the list out when it empties).
fn remove_member(
    shard: &mut HashMap<ConversationId, Vec<Arc<Member>>>,
    conversation: ConversationId,
    conn: ConnId,
) {
    if let Some(members) = shard.get_mut(&conversation) {
        members.retain(|m| m.conn != conn);
        if members.is_empty() {
            shard.remove(&conversation);
        }
    }
}

// A panic while a lock was held leaves data that is still consistent (each method's
// changes are single inserts and removals), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::{Event, EventPayload};

    fn member(
        hub_conn: ConnId,
        user: UserId,
        all: bool,
    ) -> (Arc<Member>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(64);
        let m = Arc::new(Member {
            conn: hub_conn,
            user,
            all_conversations: all,
            tx,
            kick: Arc::new(Notify::new()),
            kicked: Arc::new(AtomicBool::new(false)),
        });
        (m, rx)
    }

    fn id() -> ConversationId {
        ConversationId::from(uuid::Uuid::now_v7())
    }

    fn user() -> UserId {
        UserId::from(uuid::Uuid::now_v7())
    }

    fn event(conversation: ConversationId, payload: EventPayload) -> Arc<SharedEvent> {
        let event = Event::new(conversation, None, payload);
        let json = serde_json::to_string(&event).expect("json");
        Arc::new(SharedEvent { event, json })
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Outbound> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(m);
        }
        out
    }

    #[test]
    fn both_indexes_agree_through_register_and_unregister() {
        let hub = Hub::default();
        let (a, b) = (id(), id());
        let u = user();
        let (m1, _rx1) = member(1, u, true);
        let (m2, _rx2) = member(2, u, false);
        hub.register(m1, &[a, b]);
        hub.register(m2, &[a]);
        assert_eq!(hub.subscribers(a), 2);
        assert_eq!(hub.subscribers(b), 1);
        assert_eq!(hub.subscriptions_of(1), Some(HashSet::from([a, b])));
        hub.unregister(1, u);
        assert_eq!(hub.subscribers(a), 1);
        assert_eq!(hub.subscribers(b), 0);
        assert_eq!(hub.subscriptions_of(1), None);
        hub.unregister(2, u);
        assert_eq!(hub.subscribers(a), 0);
        assert!(read(&hub.users).is_empty());
        // Unregistering twice is harmless.
        hub.unregister(2, u);
        assert_eq!(hub.stats.connections.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn events_reach_subscribers_only_and_joins_and_leaves_update_both_ways() {
        let hub = Hub::default();
        let (a, b) = (id(), id());
        let (alice, bob) = (user(), user());
        let (ma, mut rxa) = member(1, alice, true);
        let (mb, mut rxb) = member(2, bob, true);
        hub.register(ma, &[a]);
        hub.register(mb, &[]);
        hub.dispatch(event(a, EventPayload::ConversationDeleted {}));
        assert!(drain(&mut rxb).is_empty(), "bob is not in a");
        assert_eq!(hub.subscribers(a), 0, "deleted: nobody receives it");
        assert_eq!(hub.subscriptions_of(1), Some(HashSet::new()));
        drain(&mut rxa);
        // Bob's /ws joins b when he is added, and receives its events from then on.
        let participant = chat_domain::Participant {
            conversation_id: b,
            user_id: bob,
            username: "bob".into(),
            display_name: "Bob".into(),
            role: chat_domain::Role::Member,
            joined_at: chrono::Utc::now(),
            last_delivered_seq: 0,
            last_read_seq: 0,
            muted: false,
        };
        hub.dispatch(event(b, EventPayload::ParticipantJoined { participant }));
        let got = drain(&mut rxb);
        assert!(matches!(got[0], Outbound::Subscribed { conversation, .. } if conversation == b));
        assert!(matches!(got[1], Outbound::Event(_)));
        assert_eq!(hub.subscriptions_of(2), Some(HashSet::from([b])));
        hub.dispatch(event(
            b,
            EventPayload::ParticipantLeft {
                user_id: bob,
                removed_by: None,
            },
        ));
        let got = drain(&mut rxb);
        assert!(matches!(got[0], Outbound::Event(_)), "sees that he left");
        assert!(matches!(got[1], Outbound::Unsubscribed { conversation } if conversation == b));
        assert_eq!(hub.subscriptions_of(2), Some(HashSet::new()));
        assert_eq!(hub.subscribers(b), 0);
    }

    #[test]
    fn broadcast_reaches_each_connection_once_even_with_no_conversation() {
        let hub = Hub::default();
        let (a, b) = (id(), id());
        let (m1, mut rx1) = member(1, user(), true);
        let (m2, mut rx2) = member(2, user(), true);
        hub.register(m1, &[a, b]);
        hub.register(m2, &[]);
        hub.broadcast(Outbound::Resync);
        assert_eq!(drain(&mut rx1).len(), 1);
        assert_eq!(drain(&mut rx2).len(), 1);
    }

    #[test]
    fn a_full_queue_kicks_its_connection_only() {
        let hub = Hub::default();
        let a = id();
        let (tx, _rx) = mpsc::channel(1);
        let slow = Arc::new(Member {
            conn: 1,
            user: user(),
            all_conversations: false,
            tx,
            kick: Arc::new(Notify::new()),
            kicked: Arc::new(AtomicBool::new(false)),
        });
        let (fast, mut rx_fast) = member(2, user(), false);
        hub.register(slow.clone(), &[a]);
        hub.register(fast, &[a]);
        for _ in 0..3 {
            hub.dispatch(event(
                a,
                EventPayload::ReadUpTo {
                    user_id: user(),
                    seq: 1,
                },
            ));
        }
        assert!(slow.kicked.load(Ordering::Relaxed));
        assert_eq!(drain(&mut rx_fast).len(), 3);
        assert_eq!(hub.stats.slow_consumers.load(Ordering::Relaxed), 1);
    }
}
