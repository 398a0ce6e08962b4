//! `chat-api`: the REST service (poem-openapi) over the service layer.
//!
//! Layout:
//! - [`routes`]: the operations, one module per resource; each handler authenticates,
//!   calls one [`ChatService`] method and converts the result with [`models`].
//! - [`models`]: the JSON shapes (the OpenAPI schemas).
//! - [`error`]: the single mapping of errors to `application/problem+json`.
//!
//! [`app`] builds the HTTP endpoint (also used by tests); [`serve`] runs it until a
//! shutdown future resolves; [`openapi_json`] renders the spec committed in `openapi/`.

pub mod client;
pub mod error;
pub mod metrics;
pub mod models;
pub mod routes;
pub mod serialized;
pub mod strict;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chat_service::ChatService;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::{CookieJarManager, NormalizePath, Tracing, TrailingSlash};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server};
use poem_openapi::OpenApiService;

use routes::attachments::AttachmentsApi;
use routes::auth::{AuthApi, UsersApi};
use routes::channels::ChannelsApi;
use routes::conversations::ConversationsApi;
use routes::exports::ExportsApi;
use routes::health::HealthApi;
use routes::messages::MessagesApi;
use routes::notifications::NotificationsApi;
use routes::seed::{SeedApi, SeedExportApi};
use routes::session::SessionApi;

/// Largest JSON request body accepted (bytes).
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// Room for multipart framing around an upload of the maximum size.
const UPLOAD_OVERHEAD: u64 = 64 * 1024;

/// Settings of the `chat-api` process.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiSettings {
    /// Address to listen on.
    #[arg(long, env = "CHAT_API_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Seconds in-flight requests get to finish at shutdown.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    #[command(flatten)]
    pub web: web::WebSettings,
}

type Apis = (
    AuthApi,
    SessionApi,
    UsersApi,
    ConversationsApi,
    MessagesApi,
    AttachmentsApi,
    ExportsApi,
    NotificationsApi,
    ChannelsApi,
    SeedApi,
    SeedExportApi,
    HealthApi,
);

fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            AuthApi,
            SessionApi,
            UsersApi,
            ConversationsApi,
            MessagesApi,
            AttachmentsApi,
            ExportsApi,
            NotificationsApi,
            ChannelsApi,
            SeedApi,
            SeedExportApi,
            HealthApi,
        ),
        "Chat API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "REST API of the chat platform: accounts, conversations (direct and group), \
             participants with roles, messages with dense per-conversation `seq`, statuses and \
             watermarks. Errors are `application/problem+json` with a stable `code`. Real-time \
             delivery is over the WebSocket gateway.",
    )
}

/// Paths the seed documents write with a trailing slash. poem-openapi lists every path
/// without one; the document lists these as the seeds write them, so that a client
/// generated from it calls what the seeds name (both forms are served).
const SEED_PATHS: [&str; 5] = [
    "/api/chat/conversations",
    "/api/chat/conversations/{conversation_pk}/messages",
    "/api/chat/channels",
    "/api/chat/channels/{id}/messages",
    "/api/chat/channels/{id}/export",
];

/// The OpenAPI document, as committed in `openapi/chat-api.json` and served at
/// `/openapi.json`.
pub fn openapi_json() -> String {
    let mut spec = SEED_PATHS
        .iter()
        .fold(openapi_service().spec(), |spec, path| {
            spec.replacen(&format!("\"{path}\": {{"), &format!("\"{path}/\": {{"), 1)
        });
    spec.push('\n');
    spec
}

/// The HTTP application: the API, `/openapi.json`, `/docs`, the web client at `/chat/`,
/// and problem+json for every error.
pub fn app(service: ChatService, web: web::WebSettings) -> impl Endpoint {
    let metrics = metrics::ApiMetrics::new(&service);
    let api = openapi_service();
    let docs = api.swagger_ui();
    let spec = openapi_json();
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    });
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/chat", web::endpoint(&web))
        .around(limit_body)
        // Seed clients use `/api/chat/conversations/`; the spec lists most paths without
        // the trailing slash. Both are served.
        .with(NormalizePath::new(TrailingSlash::Trim))
        .catch_all_error(|err| async move { error::problem_from_poem_error(err) })
        .around(move |next, req| {
            let metrics = metrics.clone();
            async move { metrics::record(metrics, &next, req).await }
        })
        .with(Tracing)
        .with(CookieJarManager::new())
        .data(service)
        .data(web)
}

/// A bound listener: the port is known before serving starts (tests bind port 0).
pub struct Bound {
    acceptor: poem::listener::TcpAcceptor,
    pub local_addr: SocketAddr,
}

impl Bound {
    /// The listening socket, for serving something else on it (tests).
    pub fn into_acceptor(self) -> poem::listener::TcpAcceptor {
        self.acceptor
    }
}

pub async fn bind(addr: &str) -> std::io::Result<Bound> {
    let acceptor = TcpListener::bind(addr.to_owned()).into_acceptor().await?;
    let local_addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| std::io::Error::other("listener has no socket address"))?;
    Ok(Bound {
        acceptor,
        local_addr,
    })
}

/// Serves the API until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    bound: Bound,
    service: ChatService,
    web: web::WebSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    tracing::info!(addr = %bound.local_addr, "chat-api listening");
    Server::new_with_acceptor(bound.acceptor)
        .run_with_graceful_shutdown(app(service, web), shutdown, Some(grace))
        .await
}

/// Caps every request body, whatever its headers say (HTTP/2 bodies need neither
/// `Content-Length` nor `Transfer-Encoding`): JSON bodies are read here up to
/// [`MAX_JSON_BODY`] (413 beyond), and uploads must declare a length within the upload
/// limit (411 / 413), which the HTTP layer then holds them to. An upload is also let
/// through only from a participant of its conversation: nothing is spooled for a caller
/// who could not store it.
async fn limit_body<E: Endpoint>(
    next: std::sync::Arc<E>,
    mut req: Request,
) -> poem::Result<Response> {
    let too_large =
        || poem::Error::from_string("request body too large", StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(conversation) = upload_target(&req) {
        let service = req
            .data::<ChatService>()
            .cloned()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        let limit = service.max_upload_bytes() + UPLOAD_OVERHEAD;
        match declared {
            None => {
                return Err(poem::Error::from_string(
                    "uploads need a Content-Length",
                    StatusCode::LENGTH_REQUIRED,
                ));
            }
            Some(len) if len > limit => return Err(too_large()),
            Some(_) => {}
        }
        admit_upload(&service, &req, conversation).await?;
        return Ok(next.call(req).await?.into_response());
    }
    if declared.is_some_and(|len| len > MAX_JSON_BODY as u64) {
        return Err(too_large());
    }
    let body = req
        .take_body()
        .into_bytes_limit(MAX_JSON_BODY)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => too_large(),
            other => other.into(),
        })?;
    req.set_body(body);
    Ok(next.call(req).await?.into_response())
}

/// The conversation of an upload request (`POST /api/chat/conversations/{id}/attachments`).
fn upload_target(req: &Request) -> Option<chat_domain::ConversationId> {
    if req.method() != poem::http::Method::POST {
        return None;
    }
    let path = req.uri().path().trim_end_matches('/');
    let rest = path.strip_prefix("/api/chat/conversations/")?;
    let (id, tail) = rest.split_once('/')?;
    if tail != "attachments" {
        return None;
    }
    // An id that does not parse is left to the route, which answers 400.
    id.parse::<uuid::Uuid>().ok().map(Into::into)
}

/// Authenticates an upload and checks the caller's membership and upload quota before
/// its body is read.
async fn admit_upload(
    service: &ChatService,
    req: &Request,
    conversation: chat_domain::ConversationId,
) -> poem::Result<()> {
    let bearer = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let token = match bearer {
        Some(token) => token,
        None => {
            let cookie = req.cookie().get(routes::session::ACCESS_COOKIE);
            match cookie {
                Some(c) => {
                    routes::require_csrf_header(req)?;
                    c.value_str().to_owned()
                }
                None => {
                    return Err(
                        error::ApiError::from(chat_service::ServiceError::Unauthenticated).into(),
                    );
                }
            }
        }
    };
    let caller = service
        .authenticate(&token)
        .await
        .map_err(error::ApiError::from)?;
    service
        .admit_upload(&caller, conversation)
        .await
        .map_err(error::ApiError::from)?;
    Ok(())
}
