//! Messages: send (idempotent), history, edit, delete, statuses, watermarks.

use chat_domain::{
    ConversationId, DeliveryStatus, EventPayload, Message, MessageId, MessageKind, Participant,
    UserId, ValidationError, validate,
};
use chat_store::messages::{Inserted, NewMessage};
use chat_store::participants::WatermarkMove;

use crate::{Caller, ChatService, HistoryPage, HistoryQuery, ServiceError, Watermark};

/// Most messages in one history page.
pub const MAX_PAGE: i64 = 200;
/// Messages in a history page when the client does not say.
pub const DEFAULT_PAGE: i64 = 50;

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct SendMessage {
    pub text: String,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<MessageId>,
    /// Attachments uploaded beforehand (processing must have made them ready).
    pub attachments: Vec<chat_domain::AttachmentId>,
}

/// The result of a send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    /// False when this was a retry of an earlier send with the same `client_msg_id`.
    pub created: bool,
}

/// A send queued for commit: [`PendingSend::committed`] waits for it. Taking several
/// before waiting on any (a pipelining socket) keeps their order.
pub struct PendingSend {
    conversation: ConversationId,
    queued: crate::writer::Queued,
}

impl PendingSend {
    /// Waits until the message is committed (or refused); then its event is on its way.
    pub async fn committed(self) -> Result<Sent, ServiceError> {
        match self.queued.outcome().await? {
            Inserted::New(message) => Ok(Sent {
                message,
                created: true,
            }),
            Inserted::Existing(message) if message.conversation_id == self.conversation => {
                Ok(Sent {
                    message,
                    created: false,
                })
            }
            Inserted::Existing(_) => Err(ServiceError::conflict(
                "client_msg_id_reused",
                "this client_msg_id was already used for a message in another conversation",
            )),
        }
    }
}

/// A recipient's state of one message.
#[derive(Debug, Clone)]
pub struct RecipientStatus {
    pub user_id: chat_domain::UserId,
    pub status: DeliveryStatus,
}

/// A page of one message's recipient statuses (see [`ChatService::message_statuses`]).
#[derive(Debug, Clone)]
pub struct MessageStatusPage {
    pub message: Message,
    pub reach: Reach,
    pub statuses: Vec<RecipientStatus>,
    /// The `after` of the next page; `None` on the last.
    pub next: Option<UserId>,
}

impl ChatService {
    /// Sends a message. It is committed with the conversation's next seq before this
    /// returns; a retry with the same `client_msg_id` returns the original message.
    pub async fn send_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        request: SendMessage,
    ) -> Result<Sent, ServiceError> {
        self.submit_message(caller, conversation, request)
            .await?
            .committed()
            .await
    }

    /// Validates a message and queues it for the next commit batch, without waiting for
    /// the commit. Membership, `reply_to`, attachments and `client_msg_id` are checked
    /// in the batch's transaction: their refusals come from [`PendingSend::committed`].
    pub async fn submit_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        request: SendMessage,
    ) -> Result<PendingSend, ServiceError> {
        // A message with files may have no text.
        let text = if request.attachments.is_empty() || !request.text.trim().is_empty() {
            validate::message_text("text", &request.text)?
        } else {
            String::new()
        };
        let client_msg_id = request
            .client_msg_id
            .as_deref()
            .map(validate::client_msg_id)
            .transpose()?;
        if request.attachments.len() > 10 {
            return Err(ValidationError::new("attachments", "at most 10 files per message").into());
        }
        // One budget for REST and every socket of the user, on every replica.
        self.throttle_send(caller.user_id).await?;
        let kind = self
            .kind_for(caller, conversation, &request.attachments)
            .await?;
        let new = NewMessage {
            id: MessageId::new(),
            conversation_id: conversation,
            sender_id: caller.user_id,
            kind,
            attachments: request.attachments.clone(),
            mentions: validate::mentioned_usernames(&text),
            text,
            client_msg_id,
            reply_to: request.reply_to,
        };
        // Committed with whatever other sends wait at the moment; its event goes to the
        // outbox in the same transaction and is published by the writer.
        let queued = self.writer.enqueue(new).await?;
        Ok(PendingSend {
            conversation,
            queued,
        })
    }

    /// The kind of a message with these attachments: `text` without, `image` when all are
    /// images, `file` otherwise. Checks each is a ready upload of the caller's here (the
    /// insert checks again, atomically).
    async fn kind_for(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        attachments: &[chat_domain::AttachmentId],
    ) -> Result<MessageKind, ServiceError> {
        if attachments.is_empty() {
            return Ok(MessageKind::Text);
        }
        let unavailable = || {
            ValidationError::new(
                "attachments",
                "unknown, unprocessed or already sent attachment",
            )
        };
        let mut all_images = true;
        for id in attachments {
            let a = self.store.attachment(*id).await?.ok_or_else(unavailable)?;
            let usable = a.conversation_id == conversation
                && a.uploader_id == Some(caller.user_id)
                && a.state == chat_domain::AttachmentState::Ready
                && a.message_id.is_none();
            if !usable {
                return Err(unavailable().into());
            }
            all_images &= a
                .content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("image/"));
        }
        Ok(if all_images {
            MessageKind::Image
        } else {
            MessageKind::File
        })
    }

    /// A page of history, with the conversation's participants (from which each
    /// message's statuses follow). Moderators also see hidden messages.
    pub async fn history(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        mut query: HistoryQuery,
    ) -> Result<(HistoryPage, Vec<Participant>), ServiceError> {
        if !(1..=MAX_PAGE).contains(&query.limit) {
            return Err(
                ValidationError::new("limit", format!("must be between 1 and {MAX_PAGE}")).into(),
            );
        }
        for (field, value) in [("before", query.before), ("after", query.after)] {
            if value.is_some_and(|v| v < 0) {
                return Err(ValidationError::new(field, "must not be negative").into());
            }
        }
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since > until
        {
            return Err(ValidationError::new("since", "must not be after until").into());
        }
        // The membership (usually cached) decides what the page may hold; then the page
        // and everyone's watermarks (for the statuses) are read at once, on two
        // connections: one round trip's wait.
        let me = self.membership(caller, conversation).await?;
        query.include_hidden = me.role.can_moderate();
        let (participants, page) = tokio::join!(
            self.store.participants(conversation),
            self.store.history(conversation, &query)
        );
        let participants = participants?;
        let mut page = page?;
        // The fresh membership has the last word: removed since the cached one was found
        // is refused like a stranger, and a moderator demoted meanwhile sees no hidden
        // message.
        let Some(fresh) = participants.iter().find(|p| p.user_id == caller.user_id) else {
            return Err(ServiceError::NotFound("conversation"));
        };
        if query.include_hidden && !fresh.role.can_moderate() {
            page.messages
                .retain(|m| m.moderation != chat_domain::ModerationState::Hidden);
        }
        Ok((page, participants))
    }

    /// One message, as the caller may see it.
    pub async fn message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Message, ServiceError> {
        let me = self.membership(caller, conversation).await?;
        self.visible_message(&me, conversation, id).await
    }

    async fn visible_message(
        &self,
        me: &Participant,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Message, ServiceError> {
        let message = self
            .store
            .message(conversation, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        if message.moderation == chat_domain::ModerationState::Hidden && !me.role.can_moderate() {
            return Err(ServiceError::NotFound("message"));
        }
        Ok(message)
    }

    /// Edits the text of one's own message.
    pub async fn edit_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
        text: &str,
    ) -> Result<Message, ServiceError> {
        let text = validate::message_text("text", text)?;
        let me = self.membership(caller, conversation).await?;
        let message = self.visible_message(&me, conversation, id).await?;
        if message.sender_id != Some(caller.user_id) {
            return Err(ServiceError::Forbidden(
                "only the sender can edit a message",
            ));
        }
        if message.deleted_at.is_some() {
            return Err(ServiceError::conflict(
                "message_deleted",
                "a deleted message cannot be edited",
            ));
        }
        // Its edit would go to every participant, text included: a moderator who may
        // still see their own hidden message must not publish it that way.
        if message.moderation == chat_domain::ModerationState::Hidden {
            return Err(ServiceError::conflict(
                "message_hidden",
                "a hidden message cannot be edited",
            ));
        }
        let actor = Some(caller.user_id);
        let events = |m: &Message| {
            vec![self.event(
                conversation,
                actor,
                EventPayload::MessageEdited { message: m.clone() },
            )]
        };
        let (edited, outboxed) = self
            .store
            .edit_message(conversation, id, &text, events)
            .await
            .map_err(|e| match e {
                chat_store::StoreError::NotFound => ServiceError::conflict(
                    "message_deleted",
                    "the message was deleted or hidden meanwhile; it cannot be edited",
                ),
                other => other.into(),
            })?;
        self.announce(outboxed);
        Ok(edited)
    }

    /// Deletes a message: the sender's own, or anyone's for moderators and above.
    pub async fn delete_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Message, ServiceError> {
        let me = self.membership(caller, conversation).await?;
        let message = self.visible_message(&me, conversation, id).await?;
        if message.sender_id != Some(caller.user_id) && !me.role.can_moderate() {
            return Err(ServiceError::Forbidden(
                "only the sender or a moderator can delete a message",
            ));
        }
        if message.deleted_at.is_some() {
            return Ok(message);
        }
        let actor = Some(caller.user_id);
        let events = |m: &Message| {
            vec![self.event(
                conversation,
                actor,
                EventPayload::MessageDeleted {
                    message_id: id,
                    seq: m.seq,
                },
            )]
        };
        let deleted = match self.store.delete_message(conversation, id, events).await {
            Ok((m, files, outboxed)) => {
                self.announce(outboxed);
                self.forget_objects(files).await;
                m
            }
            // Deleted concurrently: deleting is idempotent.
            Err(chat_store::StoreError::NotFound) => {
                return self.visible_message(&me, conversation, id).await;
            }
            Err(e) => return Err(e.into()),
        };
        Ok(deleted)
    }

    /// A message's reach, and the state of a page of its recipients (everyone but its
    /// sender) in user id order after `after`; the cursor of the next page, if any.
    pub async fn message_statuses(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
        after: Option<UserId>,
        limit: i64,
    ) -> Result<MessageStatusPage, ServiceError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(
                ValidationError::new("limit", format!("must be between 1 and {MAX_PAGE}")).into(),
            );
        }
        let me = self.membership(caller, conversation).await?;
        let message = self.visible_message(&me, conversation, id).await?;
        // The counts in PostgreSQL, and only this page's recipients read: bounded by the
        // page in a group of any size. One row more than the page (and one for the sender,
        // who is not a recipient) tells whether another page follows.
        let (recipients, delivered, read) = self
            .store
            .reach(conversation, message.sender_id, message.seq)
            .await?;
        let reach = Reach {
            recipients,
            delivered,
            read,
        };
        let mut page: Vec<Participant> = self
            .store
            .participants_page(conversation, after, limit + 2)
            .await?
            .into_iter()
            .filter(|p| Some(p.user_id) != message.sender_id)
            .collect();
        let more = page.len() as i64 > limit;
        page.truncate(limit as usize);
        let statuses: Vec<RecipientStatus> = page
            .iter()
            .map(|p| RecipientStatus {
                user_id: p.user_id,
                status: DeliveryStatus::from_watermarks(
                    message.seq,
                    p.last_delivered_seq,
                    p.last_read_seq,
                ),
            })
            .collect();
        let next = more.then(|| statuses.last().map(|s| s.user_id)).flatten();
        Ok(MessageStatusPage {
            message,
            reach,
            statuses,
            next,
        })
    }

    /// The participants of the conversation of a message the caller has just been
    /// allowed to act on (sent, edited, deleted): for rendering its statuses.
    pub async fn audience_of(&self, message: &Message) -> Result<Vec<Participant>, ServiceError> {
        Ok(self.store.participants(message.conversation_id).await?)
    }

    /// Moves the caller's delivered or read watermark forward to `seq`.
    pub async fn advance_watermark(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        which: Watermark,
        seq: i64,
    ) -> Result<WatermarkMove, ServiceError> {
        if seq < 0 {
            return Err(ValidationError::new("seq", "must not be negative").into());
        }
        let user_id = caller.user_id;
        let events = |moved: &WatermarkMove| {
            let payload = match which {
                Watermark::Read => EventPayload::ReadUpTo {
                    user_id,
                    seq: moved.read,
                },
                Watermark::Delivered => EventPayload::DeliveredUpTo {
                    user_id,
                    seq: moved.delivered,
                },
            };
            vec![self.event(conversation, Some(user_id), payload)]
        };
        let (moved, outboxed) = self
            .store
            .advance_watermark(conversation, user_id, which, seq, events)
            .await
            .map_err(|e| match e {
                chat_store::StoreError::NotFound => ServiceError::NotFound("conversation"),
                other => other.into(),
            })?;
        self.announce(outboxed);
        Ok(moved)
    }
}

/// How far a message got with its recipients (every participant but its sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    pub recipients: i64,
    /// Recipients it reached (delivered or read).
    pub delivered: i64,
    pub read: i64,
}

impl Reach {
    /// `read` once every recipient read it, `delivered` once it reached each, else `sent`.
    pub fn state(&self) -> DeliveryStatus {
        if self.recipients > 0 && self.read == self.recipients {
            DeliveryStatus::Read
        } else if self.recipients > 0 && self.delivered == self.recipients {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Sent
        }
    }
}

/// A message's [`Reach`] over these participants (all of its conversation's).
pub fn reach_of(message: &Message, participants: &[Participant]) -> Reach {
    let mut reach = Reach {
        recipients: 0,
        delivered: 0,
        read: 0,
    };
    for p in participants
        .iter()
        .filter(|p| Some(p.user_id) != message.sender_id)
    {
        reach.recipients += 1;
        match DeliveryStatus::from_watermarks(message.seq, p.last_delivered_seq, p.last_read_seq) {
            DeliveryStatus::Read => {
                reach.read += 1;
                reach.delivered += 1;
            }
            DeliveryStatus::Delivered => reach.delivered += 1,
            DeliveryStatus::Sent => {}
        }
    }
    reach
}

/// Statuses of a message for every participant except its sender.
pub fn statuses_of(message: &Message, participants: &[Participant]) -> Vec<RecipientStatus> {
    participants
        .iter()
        .filter(|p| Some(p.user_id) != message.sender_id)
        .map(|p| RecipientStatus {
            status: DeliveryStatus::from_watermarks(
                message.seq,
                p.last_delivered_seq,
                p.last_read_seq,
            ),
            user_id: p.user_id,
        })
        .collect()
}

impl ChatService {
    /// Where the caller's live subscriptions start: each of their conversations with its
    /// newest seq.
    pub async fn positions(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(ConversationId, i64)>, ServiceError> {
        Ok(self.store.positions_of(caller.user_id).await?)
    }

    /// Of these conversations, the ones the caller is still in (for a gateway's periodic
    /// check: a removal whose event was lost must still take effect).
    pub async fn still_participant_of(
        &self,
        caller: &Caller,
        conversations: &[ConversationId],
    ) -> Result<std::collections::HashSet<ConversationId>, ServiceError> {
        Ok(self
            .store
            .still_joined(caller.user_id, conversations)
            .await?
            .into_iter()
            .collect())
    }

    /// The caller's membership of one conversation (`not_found` for non-participants).
    pub async fn participant(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<Participant, ServiceError> {
        self.membership(caller, conversation).await
    }

    /// Publishes an ephemeral event (typing, presence) that is not stored. The caller
    /// (the gateway) has checked membership.
    pub async fn publish_ephemeral(
        &self,
        conversation: ConversationId,
        actor: chat_domain::UserId,
        payload: EventPayload,
    ) {
        self.publish_now(conversation, Some(actor), payload).await;
    }
}
