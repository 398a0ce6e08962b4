//! `/api/auth/*` and `/api/users*`.

use chat_service::ChatService;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::{Auth, NoContent, Tag};
use crate::client::{client_address, client_of};
use crate::error::ApiError;
use crate::models::{
    ChangePasswordRequest, LoginRequest, Presence, RefreshRequest, RegisterRequest, SessionInfo,
    TokenPair, User,
};

pub struct AuthApi;

#[derive(ApiResponse)]
pub enum Registered {
    /// The account was created; log in to get tokens.
    #[oai(status = 201)]
    Created(Json<User>),
}

#[OpenApi(tag = "Tag::Auth")]
impl AuthApi {
    /// Create an account.
    #[oai(
        path = "/api/auth/register",
        method = "post",
        operation_id = "register"
    )]
    async fn register(
        &self,
        req: &poem::Request,
        svc: Data<&ChatService>,
        body: Json<RegisterRequest>,
    ) -> Result<Registered, ApiError> {
        let user = svc
            .register(
                client_address(req),
                &body.username,
                &body.password,
                body.display_name.as_deref(),
            )
            .await?;
        Ok(Registered::Created(Json(user.into())))
    }

    /// Log in: exchange a username and password for an access and a refresh token.
    #[oai(path = "/api/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &poem::Request,
        svc: Data<&ChatService>,
        body: Json<LoginRequest>,
    ) -> Result<Json<TokenPair>, ApiError> {
        Ok(Json(
            svc.login(&client_of(req), &body.username, &body.password)
                .await?
                .into(),
        ))
    }

    /// Trade a refresh token for new tokens. The refresh token is single-use.
    #[oai(path = "/api/auth/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        svc: Data<&ChatService>,
        body: Json<RefreshRequest>,
    ) -> Result<Json<TokenPair>, ApiError> {
        Ok(Json(svc.refresh(&body.refresh_token).await?.into()))
    }

    /// Log out: the session's access and refresh tokens stop working at once.
    #[oai(path = "/api/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, svc: Data<&ChatService>, auth: Auth) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.logout(&caller).await?;
        Ok(NoContent::Done)
    }
    /// The caller's live sessions (logins on each device), oldest first.
    #[oai(
        path = "/api/auth/sessions",
        method = "get",
        operation_id = "list_sessions"
    )]
    async fn sessions(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
    ) -> Result<Json<Vec<SessionInfo>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let sessions = svc.sessions(&caller).await?;
        Ok(Json(
            sessions
                .into_iter()
                .map(|s| SessionInfo {
                    id: s.id.as_uuid(),
                    created_at: s.created_at,
                    last_used_at: s.last_used_at,
                    expires_at: s.expires_at,
                    absolute_expires_at: s.absolute_expires_at,
                    user_agent: s.user_agent,
                    current: s.id == caller.session_id,
                })
                .collect(),
        ))
    }

    /// End one of the caller's sessions (another device's, or this one): its tokens
    /// stop working at once, and its sockets close at their next heartbeat.
    #[oai(
        path = "/api/auth/sessions/:id",
        method = "delete",
        operation_id = "revoke_session"
    )]
    async fn revoke_session(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<uuid::Uuid>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.revoke_session(&caller, chat_domain::SessionId::from(id.0))
            .await?;
        Ok(NoContent::Done)
    }

    /// Change the caller's password. Every other session of theirs ends; this one goes
    /// on. A wrong current password is a 403, and attempts count against the account's
    /// login limit.
    #[oai(
        path = "/api/auth/password",
        method = "post",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        req: &poem::Request,
        svc: Data<&ChatService>,
        auth: Auth,
        body: Json<ChangePasswordRequest>,
    ) -> Result<NoContent, ApiError> {
        let caller = auth.caller(&svc).await?;
        svc.change_password(
            &caller,
            client_address(req),
            &body.current_password,
            &body.new_password,
        )
        .await?;
        Ok(NoContent::Done)
    }
}

pub struct UsersApi;

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// The caller's own account.
    #[oai(path = "/api/users/me", method = "get", operation_id = "me")]
    async fn me(&self, svc: Data<&ChatService>, auth: Auth) -> Result<Json<User>, ApiError> {
        let caller = auth.caller(&svc).await?;
        Ok(Json(svc.me(&caller).await?.into()))
    }

    /// Find people to talk to: username prefix or display-name substring.
    #[oai(path = "/api/users", method = "get", operation_id = "search_users")]
    async fn search(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        /// Text to look for.
        q: Query<String>,
        /// At most this many users (1–50, default 20).
        limit: Query<Option<i64>>,
    ) -> Result<Json<Vec<User>>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let users = svc.search_users(&caller, &q, limit.0.unwrap_or(20)).await?;
        Ok(Json(users.into_iter().map(Into::into).collect()))
    }

    /// Whether a user is online: yourself, or someone you share a conversation with.
    #[oai(
        path = "/api/users/:id/presence",
        method = "get",
        operation_id = "user_presence"
    )]
    async fn presence(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<uuid::Uuid>,
    ) -> Result<Json<Presence>, ApiError> {
        let caller = auth.caller(&svc).await?;
        let answer = svc
            .presence(&caller, &[chat_domain::UserId::from(id.0)])
            .await?;
        let (user, online) = answer
            .into_iter()
            .next()
            .ok_or(chat_service::ServiceError::NotFound("user"))?;
        Ok(Json(Presence {
            user_id: user.as_uuid(),
            online,
        }))
    }
}
