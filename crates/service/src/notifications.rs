//! Notifications: webhooks per user, muting, and who gets notified of a message.
//!
//! A participant is notified of a message when they did not send it, have not muted the
//! conversation, and are either mentioned in it or offline (no live gateway connection).

use chat_domain::{ConversationId, Message, MessageId, Participant, ValidationError};
use chat_jobs::NotifyMessage;
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
        return Err(ValidationError::new("url", "must be an http(s) URL of at most 2000 characters"));
    }
    Ok(url.to_owned())
}

impl ChatService {
    /// Registers a webhook for the caller's notifications; the secret that signs them is
    /// returned here, and only here.
    pub async fn register_webhook(&self, caller: &Caller, url: &str) -> Result<Webhook, ServiceError> {
        let url = validate_url(url)?;
        if self.store.webhooks_of(caller.user_id).await?.len() >= 10 {
            return Err(ServiceError::conflict("too_many_webhooks", "at most 10 webhooks per user"));
        }
        Ok(self.store.add_webhook(caller.user_id, &url, &chat_auth::new_secret()).await?)
    }

    pub async fn webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.webhooks_of(caller.user_id).await?)
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: uuid::Uuid) -> Result<(), ServiceError> {
        if !self.store.delete_webhook(caller.user_id, id).await? {
            return Err(ServiceError::NotFound("webhook"));
        }
        Ok(())
    }

    /// Mutes or unmutes a conversation for the caller (no notifications while muted).
    pub async fn set_muted(&self, caller: &Caller, conversation: ConversationId, muted: bool) -> Result<(), ServiceError> {
        self.membership(caller, conversation).await?;
        Ok(self.store.set_muted(conversation, caller.user_id, muted).await?)
    }

    /// Queues the notifications of a committed message.
    pub(crate) async fn queue_notifications(&self, message: &Message) {
        let job = NotifyMessage {
            message_id: message.id.as_uuid(),
            conversation_id: message.conversation_id.as_uuid(),
            traceparent: chat_telemetry::current_traceparent(),
        };
        if let Err(e) = self.files.jobs.notify_message(job).await {
            tracing::warn!(error = %e, message = %message.id, "notifications not queued");
        }
    }

    /// For the worker: a recipient's webhooks.
    pub async fn webhooks_for(&self, user: chat_domain::UserId) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.webhooks_of(user).await?)
    }

    /// For the worker: who must be notified of a message, and why.
    pub async fn notification_targets(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<(Message, Vec<(Participant, Reason)>)>, ServiceError> {
        let Some(message) = self.store.message(conversation, id).await? else { return Ok(None) };
        if message.deleted_at.is_some() || message.moderation == chat_domain::ModerationState::Hidden {
            return Ok(None);
        }
        let mut messages = [message];
        self.store.load_mentions(&mut messages).await?;
        let [message] = messages;
        let candidates: Vec<Participant> = self
            .store
            .participants(conversation)
            .await?
            .into_iter()
            .filter(|p| Some(p.user_id) != message.sender_id && !p.muted)
            .collect();
        let ids: Vec<_> = candidates.iter().map(|p| p.user_id).collect();
        let online = self.bus.presence_of(&ids).await.map_err(|e| {
            tracing::warn!(error = %e, "presence unavailable");
            ServiceError::Unavailable
        })?;
        let targets = candidates
            .into_iter()
            .zip(online)
            .filter_map(|(p, (_, is_online))| {
                if message.mentions.contains(&p.user_id) {
                    Some((p, Reason::Mention))
                } else if !is_online {
                    Some((p, Reason::Offline))
                } else {
                    None
                }
            })
            .collect();
        Ok(Some((message, targets)))
    }

    /// For the worker: a delivery, with the URL and secret of its user's webhook (`None`
    /// for the installation's endpoint, which the worker knows from its settings).
    pub async fn delivery(&self, id: uuid::Uuid) -> Result<Option<(Delivery, Option<Webhook>)>, ServiceError> {
        let Some(delivery) = self.store.delivery_by_id(id).await? else { return Ok(None) };
        let webhook = match delivery.webhook_id {
            Some(w) => match self.store.webhooks_of(delivery.user_id).await?.into_iter().find(|h| h.id == w) {
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
        Ok(self.store.delivery_attempt(id, delivered, dead, status, error).await?)
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
        Ok(self.store.delivery(webhook, endpoint, message, user, reason.as_str()).await?)
    }

    /// For the worker: the job queues (to schedule delivery attempts).
    pub fn jobs(&self) -> &chat_jobs::Jobs {
        &self.files.jobs
    }
}
