//! Webhook notifications: signed, retried with exponential backoff, dead-lettered.
//!
//! Each request carries `X-Chat-Timestamp` (Unix seconds), `X-Chat-Delivery` (the
//! delivery id, stable across retries) and `X-Chat-Signature: sha256=<hex>`, the
//! HMAC-SHA256 with the endpoint's secret of `"<timestamp>.<body>"`. Receivers recompute
//! it, refuse old timestamps (replays) and drop delivery ids they have seen.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_domain::{ConversationId, MessageId, UserId};
use chat_jobs::{DeliverNotification, JobFailure, NotifyMessage};
use chat_service::ChatService;
use chat_service::notifications::Reason;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{WorkerSettings, failure};

/// The signature header's value for a body sent at `timestamp`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Finds who must be notified of a message and queues one delivery per endpoint (the
/// `NotifyMessage` jobs of older versions; new messages come through
/// [`follow_new_messages`]).
pub async fn fan_out(
    service: &ChatService,
    settings: &WorkerSettings,
    job: NotifyMessage,
) -> Result<(), JobFailure> {
    let conversation = ConversationId::from(job.conversation_id);
    let id = MessageId::from(job.message_id);
    match service
        .message_to_notify(conversation, id)
        .await
        .map_err(failure)?
    {
        Some(message) => notify_all(service, settings, &[message]).await,
        None => Ok(()),
    }
}

/// Decides who must be notified of these messages, in bulk, and notifies them.
async fn notify_all(
    service: &ChatService,
    settings: &WorkerSettings,
    messages: &[chat_domain::Message],
) -> Result<(), JobFailure> {
    let everyone = settings.notify_webhook_url.is_some();
    let targets = service
        .notification_targets_of(messages, everyone)
        .await
        .map_err(failure)?;
    for (message, user, reason) in targets {
        notify(service, settings, message, user, reason).await?;
    }
    Ok(())
}

/// Records one delivery per endpoint of a recipient (theirs and the installation's) and
/// queues its first attempt. Idempotent: a delivery recorded before is not queued again.
async fn notify(
    service: &ChatService,
    settings: &WorkerSettings,
    message: MessageId,
    user: UserId,
    reason: Reason,
) -> Result<(), JobFailure> {
    let mut endpoints: Vec<(Option<uuid::Uuid>, String)> = Vec::new();
    for hook in service.webhooks_for(user).await.map_err(failure)? {
        endpoints.push((Some(hook.id), hook.url));
    }
    if let Some(url) = &settings.notify_webhook_url {
        endpoints.push((None, url.clone()));
    }
    for (webhook, url) in endpoints {
        let delivery = service
            .record_delivery(webhook, &url, message, user, reason)
            .await
            .map_err(failure)?;
        if delivery.state == "pending" && delivery.attempts == 0 {
            service
                .jobs()
                .deliver_notification(
                    DeliverNotification {
                        delivery_id: delivery.id,
                        attempt: 1,
                    },
                    None,
                )
                .await
                .map_err(|e| JobFailure::Retry(e.to_string()))?;
        }
    }
    Ok(())
}

/// Notifies of new messages as they reach the bus, in batches shared out between the
/// worker processes: who needs a push is decided for a whole batch at once, so messages
/// whose recipients are all online cost no job and no per-message query. Runs until the
/// process stops.
pub async fn follow_new_messages(service: ChatService, settings: WorkerSettings, consumer: String) {
    let mut feed = loop {
        match service.new_messages(consumer.clone()).await {
            Ok(feed) => break feed,
            Err(e) => {
                tracing::warn!(error = %e, "notifier: bus unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        let (messages, taken) = match feed.next().await {
            Ok(batch) => batch,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match notify_all(&service, &settings, &messages).await {
            // Left pending otherwise: taken over again after the reclaim delay.
            Ok(()) => {
                if let Err(e) = feed.done(taken).await {
                    tracing::warn!(error = %e, "notifier: batch not acknowledged; it will be handled again");
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, messages = messages.len(), "notifier: batch failed; retried later")
            }
        }
    }
}

/// Makes one delivery attempt; on failure schedules the next one after an exponential
/// backoff, or dead-letters the delivery after the last attempt.
/// The HTTP clients of webhook calls: one for users' endpoints (public addresses only)
/// and one for the installation's.
#[derive(Clone)]
pub struct WebhookClients {
    pub public: reqwest::Client,
    pub trusted: reqwest::Client,
}

impl WebhookClients {
    pub fn new() -> Self {
        Self {
            public: crate::endpoints::public_client(),
            trusted: crate::endpoints::trusted_client(),
        }
    }
}

impl Default for WebhookClients {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn deliver(
    service: &ChatService,
    settings: &WorkerSettings,
    clients: &WebhookClients,
    job: DeliverNotification,
) -> Result<(), JobFailure> {
    let Some((delivery, webhook)) = service.delivery(job.delivery_id).await.map_err(failure)?
    else {
        return Ok(());
    };
    if delivery.state != "pending" || delivery.attempts >= job.attempt as i32 {
        // Delivered, dead, or this attempt already ran (a re-run after a crash).
        return Ok(());
    }
    let secret = match &webhook {
        Some(h) => h.secret.clone(),
        None => settings.notify_webhook_secret.clone().unwrap_or_default(),
    };
    let Some(message) = service
        .notified_message(delivery.message_id)
        .await
        .map_err(failure)?
    else {
        return Ok(());
    };
    // Hidden or deleted since it was fanned out (this may be a retry): its text must not
    // leave now.
    if message.deleted_at.is_some() || message.moderation == chat_domain::ModerationState::Hidden {
        service
            .delivery_attempt(
                delivery.id,
                false,
                true,
                None,
                Some("the message was hidden or deleted"),
            )
            .await
            .map_err(failure)?;
        return Ok(());
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "message.notification",
        "delivery_id": delivery.id,
        "reason": delivery.reason,
        "user_id": delivery.user_id,
        "conversation_id": message.conversation_id,
        "message": {
            "id": message.id,
            "seq": message.seq,
            "sender": message.sender_id,
            "kind": message.kind,
            "text": message.text,
            "created_at": message.created_at,
        },
    }))
    .map_err(|e| JobFailure::Permanent(e.to_string()))?;
    // A user's webhook goes only to public addresses (the installation's is the
    // operator's own): checked here for address URLs, and at connect time, by the
    // client's resolver, for names.
    let guarded = webhook.is_some() && !settings.notify_allow_private;
    if guarded && let Err(why) = crate::endpoints::check_endpoint(&delivery.endpoint) {
        service
            .delivery_attempt(delivery.id, false, true, None, Some(&why))
            .await
            .map_err(failure)?;
        tracing::warn!(delivery = %delivery.id, endpoint = %delivery.endpoint, %why, "notification refused");
        return Ok(());
    }
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let http = if guarded {
        &clients.public
    } else {
        &clients.trusted
    };
    let result = http
        .post(&delivery.endpoint)
        .header("content-type", "application/json")
        .header("x-chat-timestamp", timestamp.to_string())
        .header("x-chat-delivery", delivery.id.to_string())
        .header("x-chat-signature", signature(&secret, timestamp, &body))
        .body(body)
        .send()
        .await;
    let (ok, status, error) = match result {
        Ok(r) if r.status().is_success() => (true, Some(i32::from(r.status().as_u16())), None),
        Ok(r) => (
            false,
            Some(i32::from(r.status().as_u16())),
            Some(format!("HTTP {}", r.status())),
        ),
        Err(e) => (false, None, Some(e.to_string())),
    };
    let last = job.attempt >= settings.notify_max_attempts;
    service
        .delivery_attempt(delivery.id, ok, !ok && last, status, error.as_deref())
        .await
        .map_err(failure)?;
    if !ok && !last {
        let delay = settings.notify_backoff() * 2u32.saturating_pow(job.attempt - 1);
        service
            .jobs()
            .deliver_notification(
                DeliverNotification {
                    delivery_id: delivery.id,
                    attempt: job.attempt + 1,
                },
                Some(delay),
            )
            .await
            .map_err(|e| JobFailure::Retry(e.to_string()))?;
    }
    if !ok && last {
        tracing::warn!(delivery = %delivery.id, endpoint = %delivery.endpoint, "notification dead-lettered");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = super::signature("secret", 1000, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, super::signature("secret", 1001, b"{}"));
        assert_ne!(a, super::signature("secret", 1000, b"{ }"));
        assert_ne!(a, super::signature("other", 1000, b"{}"));
    }
}
