//! Notifications: webhooks per user, muting, and who gets notified of a message.
//!
//! A participant is notified of a message when they did not send it, have not muted the
//! conversation, and are either mentioned in it or offline (no live gateway connection).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_domain::{ConversationId, EventPayload, Message, MessageId, ValidationError};
use chat_store::notifications::{Delivery, Webhook};

use crate::{Caller, ChatService, ServiceError};

/// Why someone is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Mention,
    Offline,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Mention => "mention",
            Reason::Offline => "offline",
        }
    }
}

fn validate_url(url: &str) -> Result<String, ValidationError> {
    let url = url.trim();
    let ok_scheme = url.starts_with("https://") || url.starts_with("http://");
    if !ok_scheme || url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(
            "url",
            "must be an http(s) URL of at most 2000 characters",
        ));
    }
    Ok(url.to_owned())
}

impl ChatService {
    /// Registers a webhook for the caller's notifications; the secret that signs them is
    /// returned here, and only here.
    pub async fn register_webhook(
        &self,
        caller: &Caller,
        url: &str,
    ) -> Result<Webhook, ServiceError> {
        let url = validate_url(url)?;
        if self.store.webhooks_of(caller.user_id).await?.len() >= 10 {
            return Err(ServiceError::conflict(
                "too_many_webhooks",
                "at most 10 webhooks per user",
            ));
        }
        Ok(self
            .store
            .add_webhook(caller.user_id, &url, &chat_auth::new_secret())
            .await?)
    }

    pub async fn webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.webhooks_of(caller.user_id).await?)
    }

    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
    ) -> Result<(), ServiceError> {
        if !self.store.delete_webhook(caller.user_id, id).await? {
            return Err(ServiceError::NotFound("webhook"));
        }
        Ok(())
    }

    /// Mutes or unmutes a conversation for the caller (no notifications while muted).
    pub async fn set_muted(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        muted: bool,
    ) -> Result<(), ServiceError> {
        self.membership(caller, conversation).await?;
        Ok(self
            .store
            .set_muted(conversation, caller.user_id, muted)
            .await?)
    }

    /// For the worker: a recipient's webhooks.
    pub async fn webhooks_for(
        &self,
        user: chat_domain::UserId,
    ) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.webhooks_of(user).await?)
    }

    /// For the worker: a message as its `message.created` event carries it (mentions
    /// included), for `NotifyMessage` jobs queued by older versions.
    pub async fn message_to_notify(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, ServiceError> {
        let Some(message) = self.store.message(conversation, id).await? else {
            return Ok(None);
        };
        let mut messages = [message];
        self.store.load_mentions(&mut messages).await?;
        let [message] = messages;
        Ok(Some(message))
    }

    /// For the worker: who must be notified of each of a batch of new messages (as their
    /// `message.created` events carry them), decided in bulk: one query for the
    /// candidates of all their conversations and one presence lookup for all of them,
    /// so a batch whose recipients are all online (or have no endpoint) costs two round
    /// trips whatever its size. `everyone`: the installation has an endpoint, so users
    /// without a webhook of their own are candidates too.
    pub async fn notification_targets_of(
        &self,
        messages: &[Message],
        everyone: bool,
    ) -> Result<Vec<(MessageId, chat_domain::UserId, Reason)>, ServiceError> {
        let messages: Vec<&Message> = messages
            .iter()
            .filter(|m| {
                m.deleted_at.is_none() && m.moderation != chat_domain::ModerationState::Hidden
            })
            .collect();
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut conversations: Vec<ConversationId> =
            messages.iter().map(|m| m.conversation_id).collect();
        conversations.sort_unstable();
        conversations.dedup();
        let candidates = self
            .store
            .notification_candidates(&conversations, everyone)
            .await?;
        let mut by_conversation: HashMap<ConversationId, Vec<chat_domain::UserId>> = HashMap::new();
        for (c, u) in candidates {
            by_conversation.entry(c).or_default().push(u);
        }
        let mut pairs: Vec<(MessageId, chat_domain::UserId, bool)> = Vec::new();
        for m in &messages {
            for &u in by_conversation
                .get(&m.conversation_id)
                .into_iter()
                .flatten()
            {
                if Some(u) != m.sender_id {
                    pairs.push((m.id, u, m.mentions.contains(&u)));
                }
            }
        }
        // Presence only matters for those not mentioned.
        let mut ask: Vec<chat_domain::UserId> =
            pairs.iter().filter(|p| !p.2).map(|p| p.1).collect();
        ask.sort_unstable();
        ask.dedup();
        let online: HashMap<chat_domain::UserId, bool> = self
            .bus
            .presence_of(&ask)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "presence unavailable");
                ServiceError::Unavailable
            })?
            .into_iter()
            .collect();
        Ok(pairs
            .into_iter()
            .filter_map(|(m, u, mentioned)| {
                if mentioned {
                    Some((m, u, Reason::Mention))
                } else if !online.get(&u).copied().unwrap_or(false) {
                    Some((m, u, Reason::Offline))
                } else {
                    None
                }
            })
            .collect())
    }

    /// For the worker: a delivery, with the URL and secret of its user's webhook (`None`
    /// for the installation's endpoint, which the worker knows from its settings).
    pub async fn delivery(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<(Delivery, Option<Webhook>)>, ServiceError> {
        let Some(delivery) = self.store.delivery_by_id(id).await? else {
            return Ok(None);
        };
        let webhook = match delivery.webhook_id {
            Some(w) => match self
                .store
                .webhooks_of(delivery.user_id)
                .await?
                .into_iter()
                .find(|h| h.id == w)
            {
                Some(h) => Some(h),
                // The webhook was deleted since: nothing to deliver to.
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some((delivery, webhook)))
    }

    /// For the worker: records an attempt (delivered, failed, or failed for good).
    pub async fn delivery_attempt(
        &self,
        id: uuid::Uuid,
        delivered: bool,
        dead: bool,
        status: Option<i32>,
        error: Option<&str>,
    ) -> Result<(), ServiceError> {
        Ok(self
            .store
            .delivery_attempt(id, delivered, dead, status, error)
            .await?)
    }

    /// For the worker: the message a delivery is about, as sent in the notification.
    pub async fn notified_message(&self, id: MessageId) -> Result<Option<Message>, ServiceError> {
        Ok(self.store.message_by_id(id).await?)
    }

    /// For the worker: records a delivery to make (once per endpoint, message, user).
    pub async fn record_delivery(
        &self,
        webhook: Option<uuid::Uuid>,
        endpoint: &str,
        message: MessageId,
        user: chat_domain::UserId,
        reason: Reason,
    ) -> Result<Delivery, ServiceError> {
        Ok(self
            .store
            .delivery(webhook, endpoint, message, user, reason.as_str())
            .await?)
    }

    /// For the worker: the job queues (to schedule delivery attempts).
    pub fn jobs(&self) -> &chat_jobs::Jobs {
        &self.files.jobs
    }
}

/// The bus consumer group of the notifier: every new message is handed to one worker.
pub const NOTIFY_GROUP: &str = "notify";
/// Least time between two reads of the feed. Notifications are not in a hurry: letting
/// events gather for this long turns many small reads (each with its queries) into few
/// large ones at low load; at high load a read returns a full batch anyway.
const NOTIFY_READ_EVERY: Duration = Duration::from_millis(100);
/// How long an entry stays with a consumer that took it and did not acknowledge it (it
/// died, or the batch failed) before another consumer takes it over.
const NOTIFY_RECLAIM_AFTER: Duration = Duration::from_secs(30);

/// New messages read from the bus for notifying, shared out between the workers (a Redis
/// consumer group), each message to one of them. A batch stays pending until
/// [`NewMessages::done`]; what a worker took and did not finish goes to another after
/// [`NOTIFY_RECLAIM_AFTER`]. The group starts at the streams' end when first created
/// (by any process at start-up): messages older than the stream caps (`MAXLEN`) when a
/// worker comes back are not notified.
pub struct NewMessages {
    bus: chat_bus::Bus,
    consumer: String,
    last_reclaim: Instant,
    last_read: Instant,
    /// Whether the group is known to exist: checked at start and after any failed read
    /// (a restarted Redis has lost it).
    group_ready: bool,
}

/// The stream entries of one batch, to acknowledge once handled.
pub struct Taken(Vec<chat_bus::Delivery>);

impl ChatService {
    /// A reader of new messages for the notifier `consumer` (unique per worker process).
    pub async fn new_messages(&self, consumer: String) -> Result<NewMessages, ServiceError> {
        // Its own connection: a blocking read holds it.
        let bus = self
            .bus
            .dedicated_reader()
            .map_err(|_| ServiceError::Unavailable)?;
        Ok(NewMessages {
            bus,
            consumer,
            last_reclaim: Instant::now(),
            last_read: Instant::now(),
            group_ready: false,
        })
    }
}

impl NewMessages {
    /// The next batch: new messages, waiting up to a second for some, or (every so often)
    /// the ones a dead consumer left pending.
    pub async fn next(&mut self) -> Result<(Vec<Message>, Taken), ServiceError> {
        let unavailable = |e: chat_bus::BusError| {
            tracing::debug!(error = %e, "bus unavailable");
            ServiceError::Unavailable
        };
        tokio::time::sleep_until((self.last_read + NOTIFY_READ_EVERY).into()).await;
        self.last_read = Instant::now();
        if !self.group_ready {
            self.bus
                .ensure_group(NOTIFY_GROUP)
                .await
                .map_err(unavailable)?;
            self.group_ready = true;
        }
        let read = if self.last_reclaim.elapsed() >= NOTIFY_RECLAIM_AFTER {
            self.last_reclaim = Instant::now();
            self.bus
                .claim_idle(NOTIFY_GROUP, &self.consumer, NOTIFY_RECLAIM_AFTER, 256)
                .await
        } else {
            self.bus
                .read_group(NOTIFY_GROUP, &self.consumer, 512, Duration::from_secs(1))
                .await
        };
        let entries = read.map_err(|e| {
            self.group_ready = false;
            unavailable(e)
        })?;
        let messages = entries
            .iter()
            .filter_map(|d| match &d.envelope.event.payload {
                EventPayload::MessageCreated { message } => Some(message.clone()),
                _ => None,
            })
            .collect();
        Ok((messages, Taken(entries)))
    }

    /// Acknowledges a handled batch.
    pub async fn done(&self, taken: Taken) -> Result<(), ServiceError> {
        self.bus
            .ack(NOTIFY_GROUP, &taken.0)
            .await
            .map_err(|_| ServiceError::Unavailable)
    }
}
