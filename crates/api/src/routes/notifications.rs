//! Notification settings: webhooks and muting.

use chat_domain::ConversationId;
use chat_service::ChatService;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{Auth, NoContent, Tag};
use crate::error::ApiError;
use crate::models::{MuteRequest, Webhook, WebhookRequest};

pub struct NotificationsApi;

#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// Registered; keep the secret, it is not shown again.
    #[oai(status = 201)]
    Created(Json<Webhook>),
}

#[OpenApi(tag = "Tag::Users")]
impl NotificationsApi {
    /// Register a webhook for your notifications (messages while you are offline, and
    /// mentions), except from muted conversations.
    #[oai(
        path = "/api/notifications/webhooks",
        method = "post",
        operation_id = "create_webhook"
    )]
    async fn create(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        body: Json<WebhookRequest>,
    ) -> Result<WebhookCreated, ApiError> {
        let caller = auth.caller(&svc).await?;
        let hook = svc.register_webhook(&caller, &body.url).await?;
        Ok(WebhookCreated::Created(Json(Webhook {
            id: hook.id,
            url: hook.url,
            secret: Some(hook.secret),
            created_at: hook.created_at,
        })))
    }

    /// Your webhooks (without their secrets).
    #[oai(
        path = "/api/notifications/webhooks",
        method = "get",
        operation_id = "list_webhooks"
    )]
    async fn list(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
    ) -> Result<Json<Vec<Webhook>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let hooks = svc.webhooks(&caller).await?;
        Ok(Json(
            hooks
                .into_iter()
                .map(|h| Webhook {
                    id: h.id,
                    url: h.url,
                    secret: None,
                    created_at: h.created_at,
                })
                .collect(),
        ))
    }

    /// Remove one of your webhooks.
    #[oai(
        path = "/api/notifications/webhooks/:id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.delete_webhook(&caller, id.0).await?;
        Ok(NoContent::Done)
    }

    /// Mute or unmute a conversation: no notifications from it while muted.
    #[oai(
        path = "/api/chat/conversations/:id/mute",
        method = "put",
        operation_id = "set_muted"
    )]
    async fn mute(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<MuteRequest>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.set_muted(&caller, ConversationId::from(id.0), body.muted)
            .await?;
        Ok(NoContent::Done)
    }
}
