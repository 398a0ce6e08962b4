//! `/api/auth/*` and `/api/users*`.

use chat_service::ChatService;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::{Auth, NoContent, Tag};
use crate::client::client_address;
use crate::error::ApiError;
use crate::models::{LoginRequest, Presence, RefreshRequest, RegisterRequest, TokenPair, User};

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
            svc.login(client_address(req), &body.username, &body.password)
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
