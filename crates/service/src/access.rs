//! What this process remembers about access, so an authenticated read is not three round
//! trips (session, membership, page): live sessions and memberships, each for at most
//! `CHAT_ACCESS_CACHE_MS`, forgotten at once when any process publishes an
//! [`Invalidation`] (logout, revocation, removal, role change). Only positive answers are
//! kept: a refusal is always asked again, so a new session or membership works at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chat_bus::Bus;
use chat_bus::invalidation::Invalidation;
use chat_domain::{ConversationId, Participant, SessionId, UserId};

/// Entries above which a map is emptied rather than grown (a crude bound; the TTL keeps
/// the working set far below it).
const MAX_ENTRIES: usize = 200_000;

/// The caches of one process.
pub struct AccessCache {
    ttl: Duration,
    /// Whether the invalidation stream is being read: nothing is remembered otherwise.
    following: AtomicBool,
    sessions: Mutex<HashMap<SessionId, (UserId, Instant)>>,
    memberships: Mutex<HashMap<(ConversationId, UserId), (Participant, Instant)>>,
}

impl AccessCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            following: AtomicBool::new(false),
            sessions: Mutex::default(),
            memberships: Mutex::default(),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.following.load(Ordering::Relaxed)
    }

    /// Stops remembering and forgets everything (the stream cannot be read).
    fn lose_stream(&self) {
        self.following.store(false, Ordering::Relaxed);
        self.forget_everything();
    }

    /// Whether `session` of `user` was found live within the TTL.
    pub fn session_live(&self, session: SessionId, user: UserId) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        matches!(sessions.get(&session), Some((u, at)) if *u == user && at.elapsed() < self.ttl)
    }

    pub fn remember_session(&self, session: SessionId, user: UserId) {
        if !self.enabled() {
            return;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_ENTRIES {
            sessions.clear();
        }
        sessions.insert(session, (user, Instant::now()));
    }

    /// `user`'s membership of `conversation`, if found within the TTL.
    pub fn membership(&self, conversation: ConversationId, user: UserId) -> Option<Participant> {
        let memberships = self.memberships.lock().unwrap_or_else(|p| p.into_inner());
        match memberships.get(&(conversation, user)) {
            Some((p, at)) if at.elapsed() < self.ttl => Some(p.clone()),
            _ => None,
        }
    }

    pub fn remember_membership(&self, participant: &Participant) {
        if !self.enabled() {
            return;
        }
        let mut memberships = self.memberships.lock().unwrap_or_else(|p| p.into_inner());
        if memberships.len() >= MAX_ENTRIES {
            memberships.clear();
        }
        memberships.insert(
            (participant.conversation_id, participant.user_id),
            (participant.clone(), Instant::now()),
        );
    }

    /// Forgets what `invalidation` names.
    pub fn forget(&self, invalidation: &Invalidation) {
        match invalidation {
            Invalidation::Session { session } => {
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                sessions.remove(session);
            }
            Invalidation::Sessions { user } => {
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                sessions.retain(|_, (u, _)| u != user);
            }
            Invalidation::Membership { conversation, user } => {
                let mut memberships = self.memberships.lock().unwrap_or_else(|p| p.into_inner());
                memberships.remove(&(*conversation, *user));
            }
            Invalidation::Conversation { conversation } => {
                let mut memberships = self.memberships.lock().unwrap_or_else(|p| p.into_inner());
                memberships.retain(|(c, _), _| c != conversation);
            }
        }
    }

    pub fn forget_everything(&self) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.memberships
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Sweeps expired entries (the maps would otherwise keep every session ever seen).
    fn sweep(&self) {
        let ttl = self.ttl;
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, at)| at.elapsed() < ttl);
        self.memberships
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, at)| at.elapsed() < ttl);
    }
}

/// Reads the invalidation stream until the process ends, applying each to `cache`.
/// While Redis is away the cache is emptied and remembers nothing until the stream can
/// be read again (every check then goes to PostgreSQL).
pub async fn follow_invalidations(bus: Bus, cache: std::sync::Arc<AccessCache>) {
    let mut position: Option<String> = None;
    let mut last_sweep = Instant::now();
    loop {
        if last_sweep.elapsed() > Duration::from_secs(10) {
            cache.sweep();
            last_sweep = Instant::now();
        }
        let from = match &position {
            Some(p) => p.clone(),
            None => match bus.invalidations_tail().await {
                Ok(tail) => {
                    cache.following.store(true, Ordering::Relaxed);
                    tail
                }
                Err(e) => {
                    tracing::debug!(error = %e, "invalidations unreadable; cache off");
                    cache.lose_stream();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        match bus
            .read_invalidations(&from, Duration::from_millis(1000))
            .await
        {
            Ok(read) => {
                if read.lost_track {
                    cache.forget_everything();
                }
                for item in &read.items {
                    cache.forget(item);
                }
                position = Some(read.position);
            }
            Err(e) => {
                tracing::debug!(error = %e, "invalidations unreadable; cache off");
                cache.lose_stream();
                // Start again from the tail: what was missed meanwhile is covered by
                // having forgotten everything.
                position = None;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
