//! `/api/chat/conversations/{conversation_pk}/messages/…`, statuses and watermarks.

use chat_domain::{AttachmentId, ConversationId, MessageId};
use chat_service::messages::{DEFAULT_PAGE, SendMessage};
use chat_service::{ChatService, HistoryQuery, Watermark};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{Auth, Tag};
use crate::error::ApiError;
use crate::models::{
    EditMessageRequest, Message, MessageStatuses, SendMessageRequest, WatermarkRequest, Watermarks,
};

use crate::serialized::Serialized;

pub struct MessagesApi;

#[derive(ApiResponse)]
pub enum MessagePage {
    /// Messages in ascending seq order. Page back with `before=<seq of the first>`,
    /// catch up with `after=<seq of the last>`.
    #[oai(status = 200)]
    Ok(
        Serialized<Vec<Message>>,
        /// `true` when more messages lie beyond this page in the direction of travel.
        #[oai(header = "X-Has-More")]
        bool,
    ),
}

#[derive(ApiResponse)]
pub enum MessageSent {
    /// Committed, with its seq.
    #[oai(status = 201)]
    Created(Json<Message>),
    /// A retry: this `client_msg_id` was already used; the original message.
    #[oai(status = 200)]
    Existing(Json<Message>),
}

/// Query window shared by the canonical and seed-002 history endpoints.
pub struct Window {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

/// Reads a page of history and renders it with statuses.
pub async fn history_page(
    svc: &ChatService,
    auth: &Auth,
    conversation: Uuid,
    window: Window,
) -> Result<MessagePage, ApiError> {
    let (messages, has_more) = history_rendered(svc, auth, conversation, window).await?;
    Ok(MessagePage::Ok(Serialized(messages), has_more))
}

/// A rendered page of history and whether more lies beyond it.
pub async fn history_rendered(
    svc: &ChatService,
    auth: &Auth,
    conversation: Uuid,
    window: Window,
) -> Result<(Vec<Message>, bool), ApiError> {
    let caller = auth.caller(svc).await?;
    let query = HistoryQuery {
        before: window.before,
        after: window.after,
        since: window.since,
        until: window.until,
        limit: window.limit.unwrap_or(DEFAULT_PAGE),
        include_hidden: false,
    };
    let (page, participants) = svc
        .history(&caller, ConversationId::from(conversation), query)
        .await?;
    // Reactions are looked up only for the messages that have some.
    let reactions = if page.reacted.is_empty() {
        Vec::new()
    } else {
        svc.reactions(&caller, &page.reacted).await?
    };
    let messages = page
        .messages
        .into_iter()
        .map(|m| Message::with_statuses(m, &participants).with_reactions(&reactions))
        .collect();
    Ok((messages, page.has_more))
}

/// Renders messages with their statuses and reactions (one query for all reactions).
pub async fn render_page(
    svc: &ChatService,
    caller: &chat_service::Caller,
    messages: Vec<chat_domain::Message>,
    participants: &[chat_domain::Participant],
) -> Result<Vec<Message>, ApiError> {
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    let reactions = if ids.is_empty() {
        Vec::new()
    } else {
        svc.reactions(caller, &ids).await?
    };
    Ok(messages
        .into_iter()
        .map(|m| Message::with_statuses(m, participants).with_reactions(&reactions))
        .collect())
}

#[OpenApi(tag = "Tag::Messages")]
impl MessagesApi {
    /// A page of history, keyset-paginated by seq. Without `before`/`after`: the newest
    /// page. `since`/`until` (RFC 3339) filter by creation time, inclusive.
    #[oai(
        path = "/api/chat/conversations/:conversation_pk/messages/",
        method = "get",
        operation_id = "list_messages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        conversation_pk: Path<Uuid>,
        /// Only messages with a smaller seq.
        before: Query<Option<i64>>,
        /// Only messages with a greater seq (takes precedence over `before`).
        after: Query<Option<i64>>,
        /// Created at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Created at or before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<i64>>,
    ) -> Result<MessagePage, ApiError> {
        let window = Window {
            before: before.0,
            after: after.0,
            since: since.0,
            until: until.0,
            limit: limit.0,
        };
        history_page(&svc, &auth, conversation_pk.0, window).await
    }

    /// Send a message. Answered only after it is committed, with its seq. A retry with the
    /// same `client_msg_id` returns the original (200) instead of sending twice.
    #[oai(
        path = "/api/chat/conversations/:conversation_pk/messages/",
        method = "post",
        operation_id = "send_message"
    )]
    async fn send(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        conversation_pk: Path<Uuid>,
        body: Json<SendMessageRequest>,
    ) -> Result<MessageSent, ApiError> {
        let caller = auth.caller(&svc).await?;
        let conversation = ConversationId::from(conversation_pk.0);
        let body = body.0;
        let request = SendMessage {
            text: body.text.into(),
            client_msg_id: body.client_msg_id.map(String::from),
            reply_to: body.reply_to.map(MessageId::from),
            attachments: body
                .attachments
                .into_iter()
                .map(AttachmentId::from)
                .collect(),
        };
        let sent = svc.send_message(&caller, conversation, request).await?;
        let audience = svc.audience_of(&sent.message).await?;
        let message = Message::with_statuses(sent.message, &audience);
        Ok(if sent.created {
            MessageSent::Created(Json(message))
        } else {
            MessageSent::Existing(Json(message))
        })
    }

    /// Edit your own message.
    #[oai(
        path = "/api/chat/conversations/:conversation_pk/messages/:id/",
        method = "patch",
        operation_id = "edit_message"
    )]
    async fn edit(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        conversation_pk: Path<Uuid>,
        id: Path<Uuid>,
        body: Json<EditMessageRequest>,
    ) -> Result<Json<Message>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let conversation = ConversationId::from(conversation_pk.0);
        let edited = svc
            .edit_message(&caller, conversation, MessageId::from(id.0), &body.text)
            .await?;
        let audience = svc.audience_of(&edited).await?;
        let reactions = svc.reactions(&caller, &[edited.id]).await?;
        Ok(Json(
            Message::with_statuses(edited, &audience).with_reactions(&reactions),
        ))
    }

    /// Delete a message: your own, or anyone's as a moderator. Its seq stays, its text goes.
    #[oai(
        path = "/api/chat/conversations/:conversation_pk/messages/:id/",
        method = "delete",
        operation_id = "delete_message"
    )]
    async fn delete(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        conversation_pk: Path<Uuid>,
        id: Path<Uuid>,
    ) -> Result<Json<Message>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let conversation = ConversationId::from(conversation_pk.0);
        let deleted = svc
            .delete_message(&caller, conversation, MessageId::from(id.0))
            .await?;
        let audience = svc.audience_of(&deleted).await?;
        Ok(Json(Message::with_statuses(deleted, &audience)))
    }

    /// A message's delivery over all recipients, and each recipient's state (sent,
    /// delivered or read), a page at a time in user id order.
    #[oai(
        path = "/api/chat/conversations/:conversation_pk/messages/:id/statuses/",
        method = "get",
        operation_id = "message_statuses"
    )]
    async fn statuses(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        conversation_pk: Path<Uuid>,
        id: Path<Uuid>,
        /// Only recipients with a greater user id (the previous page's `next`).
        after: Query<Option<Uuid>>,
        /// Page size, 1–200 (default 100).
        limit: Query<Option<i64>>,
    ) -> Result<Json<MessageStatuses>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let page = svc
            .message_statuses(
                &caller,
                ConversationId::from(conversation_pk.0),
                MessageId::from(id.0),
                after.0.map(chat_domain::UserId::from),
                limit.0.unwrap_or(100),
            )
            .await?;
        Ok(Json(MessageStatuses {
            message_id: page.message.id.as_uuid(),
            seq: page.message.seq,
            delivery: page.reach.into(),
            statuses: page.statuses.into_iter().map(Into::into).collect(),
            next: page.next.map(|u| u.as_uuid()),
        }))
    }

    /// Mark everything up to `seq` as read (also delivered). Never moves backwards.
    #[oai(
        path = "/api/chat/conversations/:id/read",
        method = "post",
        operation_id = "mark_read"
    )]
    async fn read(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<WatermarkRequest>,
    ) -> Result<Json<Watermarks>, ApiError> {
        mark(&svc, &auth, id.0, Watermark::Read, body.seq).await
    }

    /// Mark everything up to `seq` as delivered to one of your devices.
    #[oai(
        path = "/api/chat/conversations/:id/delivered",
        method = "post",
        operation_id = "mark_delivered"
    )]
    async fn delivered(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<WatermarkRequest>,
    ) -> Result<Json<Watermarks>, ApiError> {
        mark(&svc, &auth, id.0, Watermark::Delivered, body.seq).await
    }
}

async fn mark(
    svc: &ChatService,
    auth: &Auth,
    conversation: Uuid,
    which: Watermark,
    seq: i64,
) -> Result<Json<Watermarks>, ApiError> {
    let caller = auth.caller(svc).await?;
    let moved = svc
        .advance_watermark(&caller, ConversationId::from(conversation), which, seq)
        .await?;
    Ok(Json(Watermarks {
        last_delivered_seq: moved.delivered,
        last_read_seq: moved.read,
    }))
}
