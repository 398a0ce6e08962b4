//! The operations of the REST API, one module per resource.

pub mod attachments;
pub mod auth;
pub mod channels;
pub mod conversations;
pub mod exports;
pub mod health;
pub mod messages;
pub mod notifications;
pub mod seed;

use chat_service::{Caller, ChatService};
use poem_openapi::auth::Bearer;
use poem_openapi::{ApiResponse, SecurityScheme, Tags};

use crate::error::ApiError;

#[derive(Tags)]
pub enum Tag {
    /// Accounts, sessions and tokens.
    Auth,
    /// Finding people.
    Users,
    /// Conversations (seed 002: channels) and their participants.
    Conversations,
    /// Messages, statuses and watermarks.
    Messages,
    /// Liveness and readiness.
    Health,
}

/// `Authorization: Bearer <access_token>` from `/api/auth/login`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

impl BearerAuth {
    /// The caller behind the token; expired or revoked tokens are refused.
    pub async fn caller(&self, service: &ChatService) -> Result<Caller, ApiError> {
        Ok(service.authenticate(&self.0.token).await?)
    }
}

/// An operation that answers with no body.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}
