//! Messages: send (idempotent), history, edit, delete, statuses, watermarks.

use chat_domain::{
    ConversationId, DeliveryStatus, EventPayload, Message, MessageId, MessageKind, Participant,
    ValidationError, validate,
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
        // One query gives both the caller's membership and everyone's watermarks.
        let participants = self.store.participants(conversation).await?;
        let me = participants
            .iter()
            .find(|p| p.user_id == caller.user_id)
            .ok_or(ServiceError::NotFound("conversation"))?;
        query.include_hidden = me.role.can_moderate();
        let page = self.store.history(conversation, &query).await?;
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

    /// The state of a message for each recipient (everyone but its sender).
    pub async fn message_statuses(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<(Message, Vec<RecipientStatus>), ServiceError> {
        let me = self.membership(caller, conversation).await?;
        let message = self.visible_message(&me, conversation, id).await?;
        let participants = self.store.participants(conversation).await?;
        let statuses = statuses_of(&message, &participants);
        Ok((message, statuses))
    }

    /// Each recipient's status of a message the caller has just been allowed to act on
    /// (sent, edited, deleted): for rendering the result of that operation.
    pub async fn recipient_statuses(
        &self,
        message: &Message,
    ) -> Result<Vec<RecipientStatus>, ServiceError> {
        let participants = self.store.participants(message.conversation_id).await?;
        Ok(statuses_of(message, &participants))
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
