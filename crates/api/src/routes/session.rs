//! `/api/auth/session`: sessions of the web client, kept in `HttpOnly` cookies.
//!
//! `chat_token` holds the access token (path `/`, so the gateways on the same host get it
//! with the WebSocket upgrade); `chat_refresh` holds the single-use refresh token and is
//! only ever sent to `/api/auth/session`. Both are `SameSite=Strict`, and `Secure` when
//! [`WebSettings::secure_cookies`] is set.

use chat_service::auth::Tokens;
use chat_service::{ChatService, ServiceError};
use poem::Request;
use poem::web::Data;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::{Tag, require_csrf_header};
use crate::client::client_of;
use crate::error::ApiError;
use crate::models::{LoginRequest, Session, SessionState};
use crate::web::WebSettings;

/// The access token cookie (also read by the gateways).
pub const ACCESS_COOKIE: &str = "chat_token";
/// The refresh token cookie.
pub const REFRESH_COOKIE: &str = "chat_refresh";
const REFRESH_PATH: &str = "/api/auth/session";

pub struct SessionApi;

#[derive(ApiResponse)]
pub enum SessionClosed {
    /// The session is closed and its cookies are cleared.
    #[oai(status = 204)]
    Closed,
}

#[OpenApi(tag = "Tag::Auth")]
impl SessionApi {
    /// Web client login: like `/api/auth/login`, but the tokens are set as `HttpOnly`
    /// cookies (`chat_token`, `chat_refresh`) instead of being returned. Needs the
    /// `X-Requested-With` header.
    #[oai(
        path = "/api/auth/session",
        method = "post",
        operation_id = "open_session"
    )]
    async fn open(
        &self,
        req: &Request,
        svc: Data<&ChatService>,
        web: Data<&WebSettings>,
        jar: &CookieJar,
        body: Json<LoginRequest>,
    ) -> Result<Json<Session>, ApiError> {
        require_csrf_header(req)?;
        let tokens = svc
            .login(&client_of(req), &body.username, &body.password)
            .await?;
        session(&svc, &web, jar, tokens).await
    }

    /// The web client's session, if any: the signed-in user when the access cookie is
    /// valid; otherwise no user, and whether a refresh cookie is there to try
    /// `/api/auth/session/refresh` with. Never a 401, so a signed-out page loads cleanly.
    #[oai(
        path = "/api/auth/session",
        method = "get",
        operation_id = "current_session"
    )]
    async fn current(
        &self,
        svc: Data<&ChatService>,
        jar: &CookieJar,
    ) -> Result<Json<SessionState>, ApiError> {
        let access = jar.get(ACCESS_COOKIE).map(|c| c.value_str().to_owned());
        let caller = match access {
            Some(token) => match svc.authenticate(&token).await {
                Ok(caller) => Some(caller),
                Err(ServiceError::Unauthenticated) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let user = match caller {
            Some(caller) => Some(svc.me(&caller).await?.into()),
            None => None,
        };
        Ok(Json(SessionState {
            user,
            refreshable: jar.get(REFRESH_COOKIE).is_some(),
        }))
    }

    /// Web client refresh: trades the `chat_refresh` cookie for new cookies. Needs the
    /// `X-Requested-With` header. A missing, used or expired refresh cookie is a 401 and
    /// clears the cookies.
    #[oai(
        path = "/api/auth/session/refresh",
        method = "post",
        operation_id = "refresh_session"
    )]
    async fn refresh(
        &self,
        req: &Request,
        svc: Data<&ChatService>,
        web: Data<&WebSettings>,
        jar: &CookieJar,
    ) -> Result<Json<Session>, ApiError> {
        require_csrf_header(req)?;
        let refresh_token = jar.get(REFRESH_COOKIE).map(|c| c.value_str().to_owned());
        let refreshed = match refresh_token {
            Some(token) => svc.refresh(&token).await,
            None => Err(ServiceError::Unauthenticated),
        };
        match refreshed {
            Ok(tokens) => session(&svc, &web, jar, tokens).await,
            Err(e) => {
                clear(&web, jar);
                Err(e.into())
            }
        }
    }

    /// Web client logout: ends the session (its tokens stop working at once) and clears
    /// the cookies. Needs the `X-Requested-With` header, but no valid access cookie:
    /// the refresh cookie, or an expired access cookie, is enough to find the session,
    /// and the cookies are cleared even when neither is left.
    #[oai(
        path = "/api/auth/session",
        method = "delete",
        operation_id = "close_session"
    )]
    async fn close(
        &self,
        req: &Request,
        svc: Data<&ChatService>,
        web: Data<&WebSettings>,
        jar: &CookieJar,
    ) -> Result<SessionClosed, ApiError> {
        require_csrf_header(req)?;
        let access = jar.get(ACCESS_COOKIE).map(|c| c.value_str().to_owned());
        let refresh = jar.get(REFRESH_COOKIE).map(|c| c.value_str().to_owned());
        svc.logout_with(access.as_deref(), refresh.as_deref())
            .await?;
        clear(&web, jar);
        Ok(SessionClosed::Closed)
    }
}

async fn session(
    svc: &ChatService,
    web: &WebSettings,
    jar: &CookieJar,
    tokens: Tokens,
) -> Result<Json<Session>, ApiError> {
    let user = svc.me(&tokens.caller()).await?;
    jar.add(cookie(
        web,
        ACCESS_COOKIE,
        &tokens.access_token,
        "/",
        tokens.expires_in,
    ));
    jar.add(cookie(
        web,
        REFRESH_COOKIE,
        &tokens.refresh_token,
        REFRESH_PATH,
        tokens.refresh_expires_in,
    ));
    Ok(Json(Session {
        user: user.into(),
        expires_in: tokens.expires_in,
    }))
}

fn cookie(web: &WebSettings, name: &str, value: &str, path: &str, max_age_secs: u64) -> Cookie {
    let mut cookie = Cookie::new_with_str(name, value);
    cookie.set_path(path);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(web.secure_cookies);
    cookie.set_max_age(std::time::Duration::from_secs(max_age_secs));
    cookie
}

fn clear(web: &WebSettings, jar: &CookieJar) {
    for (name, path) in [(ACCESS_COOKIE, "/"), (REFRESH_COOKIE, REFRESH_PATH)] {
        let mut gone = cookie(web, name, "", path, 0);
        gone.make_removal();
        jar.add(gone);
    }
}
