//! `/api/chat/conversations/…`: conversations and participants.

use chat_domain::{ConversationId, UserId};
use chat_service::conversations::CreateConversation;
use chat_service::{ChatService, ConversationChanges, ConversationFilter};
use poem::web::Data;
use poem_openapi::param::{Path, Query};

use crate::serialized::Serialized;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{Auth, NoContent, Tag};
use crate::error::ApiError;
use crate::models::{
    AddParticipantRequest, Conversation, ConversationInfo, CreateConversationRequest, Participant,
    UpdateConversationRequest, UpdateParticipantRequest, parse_context_type,
};

pub struct ConversationsApi;

#[derive(ApiResponse)]
pub enum ConversationCreated {
    /// A new conversation.
    #[oai(status = 201)]
    Created(Json<Conversation>),
    /// The direct conversation between these two users already existed.
    #[oai(status = 200)]
    Existing(Json<Conversation>),
}

#[OpenApi(tag = "Tag::Conversations")]
impl ConversationsApi {
    /// The caller's conversations, most recently active first, each with its last message
    /// and the caller's unread count.
    #[oai(
        path = "/api/chat/conversations/",
        method = "get",
        operation_id = "list_conversations"
    )]
    async fn list(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        /// Only conversations of this context type (English or Portuguese name).
        context_type: Query<Option<String>>,
        /// Only conversations of this context id.
        context_id: Query<Option<String>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<i64>>,
        /// Conversations to skip.
        offset: Query<Option<i64>>,
    ) -> Result<Serialized<Vec<Conversation>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let context_type = context_type
            .0
            .as_deref()
            .map(parse_context_type)
            .transpose()
            .map_err(chat_service::ServiceError::from)?;
        let filter = ConversationFilter {
            only: None,
            context_type,
            context_id: context_id.0,
            limit: limit.0.unwrap_or(50),
            offset: offset.0.unwrap_or(0),
        };
        let list = svc.conversations(&caller, filter).await?;
        Ok(Serialized(list.into_iter().map(Into::into).collect()))
    }

    /// Create a direct conversation (exactly one other participant; creating it again
    /// returns the existing one) or a group (the caller becomes its owner).
    #[oai(
        path = "/api/chat/conversations/",
        method = "post",
        operation_id = "create_conversation"
    )]
    async fn create(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        body: Json<CreateConversationRequest>,
    ) -> Result<ConversationCreated, ApiError> {
        let caller = auth.caller(&svc).await?;
        let body = body.0;
        let context_type = body
            .context_type
            .as_deref()
            .map(parse_context_type)
            .transpose()
            .map_err(chat_service::ServiceError::from)?;
        let request = CreateConversation {
            name: body.name.map(String::from),
            is_group: body.is_group,
            participants: body.participants.into_iter().map(UserId::from).collect(),
            context_type,
            context_id: body.context_id.map(String::from),
        };
        let (summary, created) = svc.create_conversation(&caller, request).await?;
        Ok(if created {
            ConversationCreated::Created(Json(summary.into()))
        } else {
            ConversationCreated::Existing(Json(summary.into()))
        })
    }

    /// One of the caller's conversations.
    #[oai(
        path = "/api/chat/conversations/:id/",
        method = "get",
        operation_id = "get_conversation"
    )]
    async fn get(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Conversation>, ApiError> {
        let caller = auth.caller(&svc).await?;
        Ok(Json(
            svc.conversation(&caller, ConversationId::from(id.0))
                .await?
                .into(),
        ))
    }

    /// Rename a group or change its context (admins and owners).
    #[oai(
        path = "/api/chat/conversations/:id/",
        method = "patch",
        operation_id = "update_conversation"
    )]
    async fn update(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<UpdateConversationRequest>,
    ) -> Result<Json<ConversationInfo>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let body = body.0;
        let changes = ConversationChanges {
            name: body.name.map(String::from),
            context_type: body
                .context_type
                .as_deref()
                .map(parse_context_type)
                .transpose()
                .map_err(chat_service::ServiceError::from)?,
            context_id: body.context_id.map(String::from),
        };
        Ok(Json(
            svc.update_conversation(&caller, ConversationId::from(id.0), changes)
                .await?
                .into(),
        ))
    }

    /// Delete a group with all its messages (owners).
    #[oai(
        path = "/api/chat/conversations/:id/",
        method = "delete",
        operation_id = "delete_conversation"
    )]
    async fn delete(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.delete_conversation(&caller, ConversationId::from(id.0))
            .await?;
        Ok(NoContent::Done)
    }

    /// The participants of a conversation, with roles and watermarks: a page at a time in
    /// user id order (ask for the next with `after` set to the last one's `user_id`).
    #[oai(
        path = "/api/chat/conversations/:id/participants/",
        method = "get",
        operation_id = "list_participants"
    )]
    async fn participants(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        /// Only participants with a greater user id.
        after: Query<Option<Uuid>>,
        /// Page size, 1–200 (default 100).
        limit: Query<Option<i64>>,
    ) -> Result<Json<Vec<Participant>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let list = svc
            .participants_page(
                &caller,
                ConversationId::from(id.0),
                after.0.map(UserId::from),
                limit.0.unwrap_or(100),
            )
            .await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Add a user to a group (admins and owners; a role up to the caller's own).
    #[oai(
        path = "/api/chat/conversations/:id/participants/",
        method = "post",
        operation_id = "add_participant"
    )]
    async fn add_participant(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<AddParticipantRequest>,
    ) -> Result<ParticipantAdded, ApiError> {
        let caller = auth.caller(&svc).await?;
        let added = svc
            .add_participant(
                &caller,
                ConversationId::from(id.0),
                UserId::from(body.user_id),
                body.role.map(Into::into),
            )
            .await?;
        Ok(ParticipantAdded::Created(Json(added.into())))
    }

    /// Change a participant's role (admins and owners, on lower ranks).
    #[oai(
        path = "/api/chat/conversations/:id/participants/:user_id/",
        method = "patch",
        operation_id = "update_participant"
    )]
    async fn update_participant(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: Json<UpdateParticipantRequest>,
    ) -> Result<Json<Participant>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let p = svc
            .change_role(
                &caller,
                ConversationId::from(id.0),
                UserId::from(user_id.0),
                body.role.into(),
            )
            .await?;
        Ok(Json(p.into()))
    }

    /// Remove a participant (admins and owners, on lower ranks), or leave (your own id).
    #[oai(
        path = "/api/chat/conversations/:id/participants/:user_id/",
        method = "delete",
        operation_id = "remove_participant"
    )]
    async fn remove_participant(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.remove_participant(&caller, ConversationId::from(id.0), UserId::from(user_id.0))
            .await?;
        Ok(NoContent::Done)
    }
}

#[derive(ApiResponse)]
pub enum ParticipantAdded {
    /// The user is now a participant.
    #[oai(status = 201)]
    Created(Json<Participant>),
}
