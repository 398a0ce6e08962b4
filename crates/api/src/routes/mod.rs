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
pub mod session;

use chat_service::{Caller, ChatService};
use poem_openapi::auth::{ApiKey, Bearer};
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
pub struct BearerToken(Bearer);

/// The web client's session: the `chat_token` cookie set by `POST /api/auth/session`.
/// Requests that change something must also carry the header `X-Requested-With`, which a
/// page of another site cannot add (cross-site request forgery).
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "chat_token",
    key_in = "cookie",
    checker = "session_cookie_guard"
)]
pub struct SessionCookie(String);

/// Header that cookie-authenticated writes must carry.
const CSRF_HEADER: &str = "x-requested-with";

/// Refuses a request without [`CSRF_HEADER`] (403): a page of another site cannot add it.
pub fn require_csrf_header(req: &poem::Request) -> Result<(), ApiError> {
    if req.headers().contains_key(CSRF_HEADER) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "requests with the session cookie must carry the X-Requested-With header",
        ))
    }
}

async fn session_cookie_guard(req: &poem::Request, cookie: ApiKey) -> poem::Result<String> {
    let safe = matches!(
        *req.method(),
        poem::http::Method::GET | poem::http::Method::HEAD
    );
    if !safe {
        require_csrf_header(req)?;
    }
    Ok(cookie.key)
}

/// How a request authenticates: a bearer token (API clients) or the session cookie (the
/// web client at `/chat/`). The bearer token wins when both are present.
#[derive(SecurityScheme)]
pub enum Auth {
    Bearer(BearerToken),
    Cookie(SessionCookie),
}

impl Auth {
    fn token(&self) -> &str {
        match self {
            Auth::Bearer(BearerToken(bearer)) => &bearer.token,
            Auth::Cookie(SessionCookie(token)) => token,
        }
    }

    /// The caller behind the token; expired or revoked tokens are refused. Counts the
    /// call against the user's REST limit.
    pub async fn caller(&self, service: &ChatService) -> Result<Caller, ApiError> {
        let caller = service.authenticate(self.token()).await?;
        service.throttle_request(caller.user_id).await?;
        Ok(caller)
    }
}

/// An operation that answers with no body.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}
