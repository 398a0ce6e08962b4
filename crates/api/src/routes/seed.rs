//! The seed-002 ("Hubx") surface: `/api/chat/channels/…` with Portuguese field names, as
//! thin aliases over the same service calls as the canonical API.

use chat_domain::{ConversationId, UserId, ValidationError};
use chat_service::conversations::CreateConversation;
use chat_service::{ChatService, ConversationFilter, ServiceError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::exports::ExportAccepted;
use super::messages::{Window, history_rendered};
use super::{Auth, Tag};
use crate::error::ApiError;
use crate::models::{Conversation, Message, Text, parse_context_type};

pub struct SeedApi;

/// Seed 002's `ChatChannel`: our conversation with its Portuguese field names beside ours.
#[derive(Debug, Clone, Object)]
pub struct Channel {
    /// `privado`, `núcleo`, `evento` or `organização`.
    pub contexto_tipo: String,
    pub contexto_id: Option<String>,
    pub titulo: Option<String>,
    #[oai(flatten)]
    pub conversation: Conversation,
}

impl From<chat_domain::ConversationSummary> for Channel {
    fn from(s: chat_domain::ConversationSummary) -> Self {
        Self {
            contexto_tipo: s.conversation.context_type.portuguese().to_owned(),
            contexto_id: s.conversation.context_id.clone(),
            titulo: s.conversation.name.clone(),
            conversation: s.into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct CreateChannelRequest {
    /// `privado`, `núcleo`, `evento`, `organização` (or the English names).
    pub contexto_tipo: Text,
    pub titulo: Text,
    pub contexto_id: Option<Text>,
    /// User ids of the other participants.
    #[oai(default)]
    pub participantes: Vec<Uuid>,
}

/// Seed 002's `ChatMessage`: our message with `remetente`, `tipo`, `conteudo` and
/// `timestamp` beside our fields.
#[derive(Debug, Clone, Object)]
pub struct ChannelMessage {
    /// The sender's user id.
    pub remetente: Option<Uuid>,
    /// The message kind (`text`, `file`, `image`, `system`).
    pub tipo: String,
    /// The text.
    pub conteudo: String,
    pub timestamp: DateTime<Utc>,
    #[oai(flatten)]
    pub message: Message,
}

impl From<Message> for ChannelMessage {
    fn from(m: Message) -> Self {
        Self {
            remetente: m.sender,
            tipo: serde_json::to_value(chat_domain::MessageKind::from(m.kind))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            conteudo: m.text.clone(),
            timestamp: m.created_at,
            message: m,
        }
    }
}

#[derive(ApiResponse)]
pub enum ChannelCreated {
    #[oai(status = 201)]
    Created(Json<Channel>),
}

/// Reads a seed timestamp: RFC 3339, `YYYY-MM-DDTHH:MM:SS` (UTC), or `YYYY-MM-DD`
/// (midnight UTC; for `ate`, the end of that day).
fn parse_timestamp(
    field: &'static str,
    raw: &str,
    end_of_day: bool,
) -> Result<DateTime<Utc>, ValidationError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let t = if end_of_day {
            d.and_hms_milli_opt(23, 59, 59, 999)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        if let Some(t) = t {
            return Ok(t.and_utc());
        }
    }
    Err(ValidationError::new(
        field,
        "expected a date (YYYY-MM-DD) or an RFC 3339 timestamp",
    ))
}

#[OpenApi(tag = "Tag::Conversations")]
impl SeedApi {
    /// Seed 002: create a channel (`{"contexto_tipo": "privado", "titulo": "…"}`). The
    /// caller becomes its owner.
    #[oai(
        path = "/api/chat/channels/",
        method = "post",
        operation_id = "seed_create_channel"
    )]
    async fn create(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        body: Json<CreateChannelRequest>,
    ) -> Result<ChannelCreated, ApiError> {
        let caller = auth.caller(&svc).await?;
        let body = body.0;
        let context_type = parse_context_type(&body.contexto_tipo).map_err(ServiceError::from)?;
        let request = CreateConversation {
            name: Some(body.titulo.into()),
            is_group: true,
            participants: body.participantes.into_iter().map(UserId::from).collect(),
            context_type: Some(context_type),
            context_id: body.contexto_id.map(String::from),
        };
        let (summary, _) = svc.create_conversation(&caller, request).await?;
        Ok(ChannelCreated::Created(Json(summary.into())))
    }

    /// Seed 002: the caller's channels, optionally of one context.
    #[oai(
        path = "/api/chat/channels/",
        method = "get",
        operation_id = "seed_list_channels"
    )]
    async fn list(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        contexto_tipo: Query<Option<String>>,
        contexto_id: Query<Option<String>>,
    ) -> Result<Json<Vec<Channel>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let context_type = contexto_tipo
            .0
            .as_deref()
            .map(parse_context_type)
            .transpose()
            .map_err(ServiceError::from)?;
        let filter = ConversationFilter {
            context_type,
            context_id: contexto_id.0,
            limit: 200,
            ..Default::default()
        };
        Ok(Json(
            svc.conversations(&caller, filter)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Seed 002: a channel's messages, optionally `desde` (from) and `ate` (until) a
    /// date or time, inclusive; oldest first, at most `limit` (default 50, up to 200).
    #[oai(
        path = "/api/chat/channels/:id/messages/",
        method = "get",
        operation_id = "seed_channel_messages"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter is how poem-openapi declares them"
    )]
    async fn messages(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        desde: Query<Option<String>>,
        ate: Query<Option<String>>,
        before: Query<Option<i64>>,
        after: Query<Option<i64>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<Vec<ChannelMessage>>, ApiError> {
        let since = desde
            .0
            .as_deref()
            .map(|d| parse_timestamp("desde", d, false))
            .transpose()
            .map_err(ServiceError::from)?;
        let until = ate
            .0
            .as_deref()
            .map(|d| parse_timestamp("ate", d, true))
            .transpose()
            .map_err(ServiceError::from)?;
        // With only `desde`, read forward from it; otherwise newest first like the canonical endpoint.
        let after = after.0.or(if since.is_some() && before.0.is_none() {
            Some(0)
        } else {
            None
        });
        let window = Window {
            before: before.0,
            after,
            since,
            until,
            limit: limit.0,
        };
        let (messages, _) =
            history_rendered(&svc, &auth, ConversationId::from(id.0).as_uuid(), window).await?;
        Ok(Json(messages.into_iter().map(Into::into).collect()))
    }
}

#[OpenApi(tag = "Tag::Conversations")]
impl SeedExportApi {
    /// Seed 002: export a channel's history (`formato=csv|json`, optional `desde`/`ate`).
    /// Creates the export (the seed's `RelatorioChatExport`) and answers 202 with its URL in
    /// `Location` and in the body's `url`: `/api/chat/conversations/{id}/exports/{export_id}`.
    /// Though a GET, it starts work: with the session cookie it needs the
    /// `X-Requested-With` header like any write, and the same request again (while that
    /// export is unfinished, or within a minute of it) returns the same export.
    #[oai(
        path = "/api/chat/channels/:id/export/",
        method = "get",
        operation_id = "seed_export_channel"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn export(
        &self,
        req: &poem::Request,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        formato: Query<Option<String>>,
        desde: Query<Option<String>>,
        ate: Query<Option<String>>,
    ) -> Result<ExportAccepted, ApiError> {
        // A link or an <img> on another site sends the cookie with a GET: not enough here.
        if matches!(auth, Auth::Cookie(_)) {
            super::require_csrf_header(req)?;
        }
        let caller = auth.caller(&svc).await?;
        let format = match formato.0.as_deref().unwrap_or("json") {
            "json" => chat_domain::ExportFormat::Json,
            "csv" => chat_domain::ExportFormat::Csv,
            _ => {
                return Err(ServiceError::from(ValidationError::new(
                    "formato",
                    "must be csv or json",
                ))
                .into());
            }
        };
        let since = desde
            .0
            .as_deref()
            .map(|d| parse_timestamp("desde", d, false))
            .transpose()
            .map_err(ServiceError::from)?;
        let until = ate
            .0
            .as_deref()
            .map(|d| parse_timestamp("ate", d, true))
            .transpose()
            .map_err(ServiceError::from)?;
        let export = svc
            .request_export(&caller, ConversationId::from(id.0), format, since, until)
            .await?;
        Ok(crate::models::Export::from(export).into())
    }
}

pub struct SeedExportApi;

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn seed_timestamps() {
        assert!(parse_timestamp("desde", "2026-01-02", false).is_ok());
        assert_eq!(
            parse_timestamp("ate", "2026-01-02", true)
                .map(|t| t.to_rfc3339())
                .ok()
                .as_deref(),
            Some("2026-01-02T23:59:59.999+00:00")
        );
        assert!(parse_timestamp("desde", "2026-01-02T10:00:00Z", false).is_ok());
        assert!(parse_timestamp("desde", "2026-01-02T10:00:00", false).is_ok());
        assert!(parse_timestamp("desde", "ontem", false).is_err());
    }
}
