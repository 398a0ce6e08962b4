//! Reactions, pins, threads, flags and moderation, and search.

use chat_domain::{ConversationId, MessageId, ValidationError};
use chat_service::{ChatService, ServiceError};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::messages::render_page;
use super::{Auth, NoContent, Tag};
use crate::error::ApiError;
use crate::models::{
    Flag, FlagRequest, FlagState, Message, ModerationDecision, ModerationRecord, ModerationRequest,
    PinRequest, PinnedMessage, SearchHit, Thread, parse_search_cursor, search_cursor,
};

pub struct ChannelsApi;

#[derive(ApiResponse)]
pub enum Flagged {
    /// The flag is recorded; moderators will review the message.
    #[oai(status = 201)]
    Created(Json<Flag>),
}

fn ids(conversation: Uuid, message: Uuid) -> (ConversationId, MessageId) {
    (ConversationId::from(conversation), MessageId::from(message))
}

#[OpenApi(tag = "Tag::Messages")]
impl ChannelsApi {
    /// React to a message with an emoji (idempotent).
    #[oai(
        path = "/api/chat/conversations/:id/messages/:message_id/reactions/:emoji",
        method = "put",
        operation_id = "add_reaction"
    )]
    async fn add_reaction(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
        /// The emoji (URL-encoded), e.g. `%F0%9F%91%8D` for 👍.
        emoji: Path<String>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        svc.react(&caller, c, m, &emoji.0, true).await?;
        Ok(NoContent::Done)
    }

    /// Remove your reaction (idempotent).
    #[oai(
        path = "/api/chat/conversations/:id/messages/:message_id/reactions/:emoji",
        method = "delete",
        operation_id = "remove_reaction"
    )]
    async fn remove_reaction(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
        emoji: Path<String>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        svc.react(&caller, c, m, &emoji.0, false).await?;
        Ok(NoContent::Done)
    }

    /// The conversation's pinned messages, newest pin first.
    #[oai(
        path = "/api/chat/conversations/:id/pins/",
        method = "get",
        operation_id = "list_pins"
    )]
    async fn pins(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<PinnedMessage>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let conversation = ConversationId::from(id.0);
        let pins = svc.pins(&caller, conversation).await?;
        let participants = svc.participants(&caller, conversation).await?;
        let (meta, messages): (Vec<_>, Vec<_>) = pins.into_iter().unzip();
        let rendered = render_page(&svc, &caller, messages, &participants).await?;
        Ok(Json(
            meta.into_iter()
                .zip(rendered)
                .map(|(p, message)| PinnedMessage {
                    message,
                    pinned_by: p.pinned_by.map(|u| u.as_uuid()),
                    pinned_at: p.pinned_at,
                })
                .collect(),
        ))
    }

    /// Pin a message (moderators, admins and owners).
    #[oai(
        path = "/api/chat/conversations/:id/pins/",
        method = "post",
        operation_id = "pin_message"
    )]
    async fn pin(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PinRequest>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, body.message_id);
        svc.set_pinned(&caller, c, m, true).await?;
        Ok(NoContent::Done)
    }

    /// Unpin a message (moderators, admins and owners).
    #[oai(
        path = "/api/chat/conversations/:id/pins/:message_id/",
        method = "delete",
        operation_id = "unpin_message"
    )]
    async fn unpin(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        svc.set_pinned(&caller, c, m, false).await?;
        Ok(NoContent::Done)
    }

    /// A message and its replies.
    #[oai(
        path = "/api/chat/conversations/:id/messages/:message_id/thread/",
        method = "get",
        operation_id = "message_thread"
    )]
    async fn thread(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
        /// Only replies with a greater seq.
        after: Query<Option<i64>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<i64>>,
    ) -> Result<Json<Thread>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        let (root, page) = svc
            .thread(&caller, c, m, after.0.unwrap_or(0), limit.0.unwrap_or(50))
            .await?;
        let participants = svc.participants(&caller, c).await?;
        let mut all = vec![root];
        all.extend(page.messages);
        let mut rendered = render_page(&svc, &caller, all, &participants).await?;
        let root = rendered.remove(0);
        Ok(Json(Thread {
            root,
            replies: rendered,
            has_more: page.has_more,
        }))
    }

    /// Flag a message for moderators, with a reason. Any participant, once per message.
    #[oai(
        path = "/api/chat/conversations/:id/messages/:message_id/flags/",
        method = "post",
        operation_id = "flag_message"
    )]
    async fn flag(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
        body: Json<FlagRequest>,
    ) -> Result<Flagged, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        Ok(Flagged::Created(Json(
            svc.flag(&caller, c, m, &body.reason).await?.into(),
        )))
    }

    /// Flags to review (moderators, admins and owners).
    #[oai(
        path = "/api/chat/conversations/:id/flags/",
        method = "get",
        operation_id = "list_flags"
    )]
    async fn flags(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        /// Only flags in this state (default: all).
        state: Query<Option<FlagState>>,
    ) -> Result<Json<Vec<Flag>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let flags = svc
            .flags(&caller, ConversationId::from(id.0), state.0.map(Into::into))
            .await?;
        Ok(Json(flags.into_iter().map(Into::into).collect()))
    }

    /// Approve or hide a message (moderators, admins and owners). Hidden messages vanish
    /// from history, search and exports for everyone but moderators.
    #[oai(
        path = "/api/chat/conversations/:id/messages/:message_id/moderation/",
        method = "post",
        operation_id = "moderate_message"
    )]
    async fn moderate(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
        body: Json<ModerationRequest>,
    ) -> Result<Json<ModerationDecision>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        let body = body.0;
        let decision = svc
            .moderate(&caller, c, m, body.decision.into(), body.reason.as_deref())
            .await?;
        Ok(Json(decision.into()))
    }

    /// A message's flags and moderation decisions (moderators, admins and owners).
    #[oai(
        path = "/api/chat/conversations/:id/messages/:message_id/moderation/",
        method = "get",
        operation_id = "moderation_record"
    )]
    async fn moderation_record(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
    ) -> Result<Json<ModerationRecord>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (c, m) = ids(id.0, message_id.0);
        let (flags, decisions) = svc.moderation_record(&caller, c, m).await?;
        Ok(Json(ModerationRecord {
            flags: flags.into_iter().map(Into::into).collect(),
            decisions: decisions.into_iter().map(Into::into).collect(),
        }))
    }

    /// Search your conversations: words, "phrases" and -exclusions, accents and case
    /// folded, Portuguese and English stems; best matches first.
    #[oai(
        path = "/api/chat/search",
        method = "get",
        operation_id = "search_messages"
    )]
    async fn search(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        q: Query<String>,
        /// 1–100 (default 20).
        limit: Query<Option<i64>>,
        /// The previous page's last `cursor`: the page after it.
        after: Query<Option<String>>,
        /// No longer accepted (a 422): page with `after`, which costs the same at any depth.
        #[oai(deprecated)]
        offset: Query<Option<i64>>,
    ) -> Result<Json<Vec<SearchHit>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        if offset.0.is_some() {
            return Err(ServiceError::from(ValidationError::new(
                "offset",
                "search pages by `after`, the previous page's last cursor",
            ))
            .into());
        }
        let after = match after.0.as_deref() {
            None => None,
            Some(cursor) => Some(parse_search_cursor(cursor).ok_or_else(|| {
                ServiceError::from(ValidationError::new(
                    "after",
                    "is not the cursor of a search hit",
                ))
            })?),
        };
        let hits = svc
            .search(&caller, &q.0, limit.0.unwrap_or(20), after)
            .await?;
        let ids: Vec<MessageId> = hits.iter().map(|h| h.message.id).collect();
        let reactions = if ids.is_empty() {
            Vec::new()
        } else {
            svc.reactions(&caller, &ids).await?
        };
        Ok(Json(
            hits.into_iter()
                .map(|h| SearchHit {
                    conversation_id: h.message.conversation_id.as_uuid(),
                    rank: h.rank,
                    cursor: search_cursor(&h.position()),
                    message: Message::without_statuses(h.message).with_reactions(&reactions),
                })
                .collect(),
        ))
    }
}
