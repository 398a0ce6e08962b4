//! `chat-gateway`: the stateless WebSocket gateway fleet.
//!
//! Any number of gateways run at once; a client may connect to any of them. They share
//! nothing but PostgreSQL (through the service layer) and Redis (the bus). Layout:
//! - [`protocol`]: the frames (the AsyncAPI document is generated from them, [`asyncapi`]);
//! - [`hub`]: which local connection receives which conversation;
//! - [`fanout`]: the one task per gateway that reads the bus into the hub;
//! - [`connection`]: one task per socket: subscribe, catch up, serve requests, deliver;
//! - this file: settings, the HTTP endpoints that upgrade (`/ws`, `/ws/chat/{id}/`), and
//!   graceful drain.
//!
//! Invariants: the gateway holds no durable state; every write goes through
//! `ChatService` (the same code as REST), and a `send` is acknowledged only after commit.
//! A client's resume cursor is the per-conversation seq from PostgreSQL, never a stream id.

pub mod asyncapi;
pub mod connection;
pub mod fanout;
pub mod hub;
pub mod origin;
pub mod positions;
pub mod protocol;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_domain::{ConversationId, UserId};
use chat_service::{Caller, ChatService, ServiceError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::{NormalizePath, TrailingSlash};
use poem::web::websocket::{WebSocket, WebSocketConfig};
use poem::web::{Data, Path};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, Server, get, handler};
use tokio::sync::watch;

use connection::Scope;
use hub::Hub;

/// Settings of the `chat-gateway` process.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewaySettings {
    /// Address to listen on.
    #[arg(long, env = "CHAT_GATEWAY_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: String,
    /// Name of this gateway in logs and `hello` frames (default: the listen address).
    #[arg(long, env = "CHAT_GATEWAY_ID")]
    pub gateway_id: Option<String>,
    /// Milliseconds between heartbeats; silent connections close after three.
    #[arg(long, env = "CHAT_GATEWAY_HEARTBEAT_MS", default_value_t = 20_000)]
    pub heartbeat_ms: u64,
    /// Events buffered per connection before it is closed as a slow consumer.
    #[arg(long, env = "CHAT_GATEWAY_QUEUE", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Largest client frame, in bytes; larger ones close the socket with 1009.
    #[arg(long, env = "CHAT_GATEWAY_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Milliseconds a write to a client may take before the connection is dropped (a
    /// client that stops reading must not hold a task forever).
    #[arg(long, env = "CHAT_GATEWAY_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// Requests per second allowed to each user on one gateway.
    #[arg(long, env = "CHAT_GATEWAY_RATE_PER_SEC", default_value_t = 20)]
    pub rate_per_sec: u32,
    /// Burst of requests allowed above the rate.
    #[arg(long, env = "CHAT_GATEWAY_RATE_BURST", default_value_t = 40)]
    pub rate_burst: u32,
    /// Seconds between sweeps that forget the limiter state of users who have been quiet
    /// long enough to be back at full burst (without them the map only grows).
    #[arg(long, env = "CHAT_GATEWAY_LIMITER_SWEEP_SECS", default_value_t = 30)]
    pub limiter_sweep_secs: u64,
    /// Seconds connections get to close at shutdown before the process exits.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Origins (`https://chat.example.com`, scheme and port matched exactly) whose pages
    /// may connect with the session cookie; `http://*:8080` is a page on the socket's own
    /// host at port 8080. None by default: cookie sockets are refused. Comma-separated.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

impl GatewaySettings {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(100))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(10))
    }

    /// Presence entries outlive three missed heartbeats, then expire.
    pub fn presence_ttl(&self) -> Duration {
        self.heartbeat() * 3 + Duration::from_secs(1)
    }
}

/// What every connection of a gateway shares.
pub struct GatewayState {
    pub service: ChatService,
    pub hub: Arc<Hub>,
    pub settings: GatewaySettings,
    pub gateway_id: String,
    pub limiter: DefaultKeyedRateLimiter<UserId>,
    /// The pages allowed to use the session cookie.
    pub origins: origin::OriginPolicy,
    /// Flips to true when the gateway drains.
    pub shutdown: watch::Receiver<bool>,
    next_connection: AtomicU64,
}

impl GatewayState {
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

/// A bound listener: the port is known before serving starts.
pub struct Bound {
    acceptor: TcpAcceptor,
    pub local_addr: SocketAddr,
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

/// Runs a gateway until `shutdown` resolves, then drains: every connection is told to
/// reconnect elsewhere and closed, and the process returns once they are gone (or the
/// grace period is over).
pub async fn serve(
    bound: Bound,
    service: ChatService,
    settings: GatewaySettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gateway_id = settings
        .gateway_id
        .clone()
        .unwrap_or_else(|| bound.local_addr.to_string());
    let (drain_tx, drain_rx) = watch::channel(false);
    let hub = Arc::new(Hub::default());
    let quota =
        Quota::per_second(NonZeroU32::new(settings.rate_per_sec.max(1)).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(settings.rate_burst.max(1)).unwrap_or(NonZeroU32::MIN));
    let reader = service
        .bus()
        .dedicated_reader()
        .map_err(std::io::Error::other)?;
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let origins =
        origin::OriginPolicy::parse(&settings.allowed_origins).map_err(std::io::Error::other)?;
    if origins.is_empty() {
        tracing::info!("no CHAT_ALLOWED_ORIGINS: sockets must bring a token, cookies are refused");
    }
    let state = Arc::new(GatewayState {
        service,
        hub: hub.clone(),
        settings,
        gateway_id: gateway_id.clone(),
        limiter: RateLimiter::keyed(quota),
        origins,
        shutdown: drain_rx.clone(),
        next_connection: AtomicU64::new(1),
    });
    let fanout = tokio::spawn(fanout::run(reader, hub.clone(), drain_rx.clone()));
    let sweeper = tokio::spawn(sweep_limiter(state.clone()));
    let metrics = metrics::GatewayMetrics::new(&hub);
    let app = Route::new()
        .at("/ws", get(ws_all))
        .at("/ws/chat/:conversation_id", get(ws_one))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/stats", get(stats))
        .with(NormalizePath::new(TrailingSlash::Trim))
        .data(state.clone());
    tracing::info!(addr = %bound.local_addr, %gateway_id, "chat-gateway listening");
    let mut stopping = drain_rx.clone();
    let server = Server::new_with_acceptor(bound.acceptor).run_with_graceful_shutdown(
        app,
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        },
        Some(Duration::from_millis(200)),
    );
    let drain = async move {
        shutdown.await;
        tracing::info!("draining: telling clients to reconnect");
        let _ = drain_tx.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        while hub.stats.connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (served, ()) = tokio::join!(server, drain);
    fanout.abort();
    sweeper.abort();
    drop(metrics);
    served
}

pub mod metrics {
    //! Gateway metrics: open connections, events read, deliveries, slow consumers.

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use opentelemetry::metrics::{ObservableCounter, ObservableGauge};

    use crate::hub::Hub;

    pub struct GatewayMetrics {
        _gauges: Vec<ObservableGauge<u64>>,
        _counters: Vec<ObservableCounter<u64>>,
    }

    impl GatewayMetrics {
        pub fn new(hub: &Arc<Hub>) -> Self {
            let meter = chat_telemetry::meter("chat-gateway");
            let h = hub.clone();
            let gauge = meter
                .u64_observable_gauge("chat.gateway.connections")
                .with_description("Open WebSocket connections")
                .with_callback(move |o| o.observe(h.stats.connections.load(Ordering::Relaxed), &[]))
                .build();
            let counter = |name: &'static str, read: fn(&Hub) -> u64| {
                let h = hub.clone();
                meter
                    .u64_observable_counter(name)
                    .with_callback(move |o| o.observe(read(&h), &[]))
                    .build()
            };
            Self {
                _gauges: vec![gauge],
                _counters: vec![
                    counter("chat.gateway.events", |h| {
                        h.stats.events_dispatched.load(Ordering::Relaxed)
                    }),
                    counter("chat.gateway.deliveries", |h| {
                        h.stats.deliveries.load(Ordering::Relaxed)
                    }),
                    counter("chat.gateway.slow_consumers", |h| {
                        h.stats.slow_consumers.load(Ordering::Relaxed)
                    }),
                ],
            }
        }
    }
}

/// A refusal before the upgrade, as problem+json.
fn refuse(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("/errors/{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(body.to_string())
}

fn service_refusal(err: ServiceError) -> Response {
    match err {
        ServiceError::Unauthenticated => refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid access token is required",
        ),
        ServiceError::NotFound(_) => {
            refuse(StatusCode::NOT_FOUND, "not_found", "conversation not found")
        }
        ServiceError::RateLimited { retry_after } => {
            let mut response = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            );
            response.headers_mut().insert(
                "retry-after",
                poem::http::HeaderValue::from(chat_service::limits::retry_after_secs(retry_after)),
            );
            response
        }
        ServiceError::Unavailable => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "retry later",
        ),
        other => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            other.code(),
            "internal error",
        ),
    }
}

/// Where the access token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    /// Set by the client itself (header, subprotocol, query).
    Explicit,
    /// The `chat_token` cookie, which a browser sends whichever page opens the socket.
    Cookie,
}

/// The access token, from (in order) the `Authorization: Bearer` header, a
/// `Sec-WebSocket-Protocol` entry `bearer.<token>`, the `token` query parameter, or the
/// `chat_token` cookie.
fn token_of(req: &Request) -> Option<(String, TokenSource)> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(t) = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    }) {
        return Some((t.trim().to_owned(), TokenSource::Explicit));
    }
    if let Some(protocols) = header("sec-websocket-protocol")
        && let Some(t) = protocols
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("bearer."))
    {
        return Some((t.to_owned(), TokenSource::Explicit));
    }
    if let Some(t) = query_param(req, "token") {
        return Some((t, TokenSource::Explicit));
    }
    header("cookie").and_then(|cookies| {
        cookies
            .split(';')
            .map(str::trim)
            .find_map(|c| c.strip_prefix("chat_token="))
            .map(|t| (t.to_owned(), TokenSource::Cookie))
    })
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    })
}

/// `since=<conversation>:<seq>,…` (or, on `/ws/chat/{id}/`, `after=<seq>`): resume
/// positions given in the URL.
fn resume_positions(
    req: &Request,
    scope: Scope,
) -> Result<BTreeMap<ConversationId, i64>, Response> {
    let mut out = BTreeMap::new();
    let bad = |detail: &str| refuse(StatusCode::BAD_REQUEST, "bad_request", detail);
    if let Some(since) = query_param(req, "since") {
        for item in since.split(',').filter(|s| !s.is_empty()) {
            let (c, s) = item
                .split_once(':')
                .ok_or_else(|| bad("since: expected <conversation>:<seq>,…"))?;
            let c: ConversationId = c
                .parse()
                .map_err(|_| bad("since: invalid conversation id"))?;
            let s: i64 = s
                .parse()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| bad("since: invalid seq"))?;
            out.insert(c, s);
        }
    }
    if let Scope::One(c) = scope
        && let Some(other) = out.keys().find(|k| **k != c)
    {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("conversation {other} not found"),
        ));
    }
    if let (Scope::One(c), Some(after)) = (scope, query_param(req, "after")) {
        let s: i64 = after
            .parse()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| bad("after: invalid seq"))?;
        out.insert(c, s);
    }
    Ok(out)
}

async fn authenticate(state: &GatewayState, req: &Request) -> Result<Caller, Response> {
    let (token, source) = token_of(req).ok_or_else(|| {
        refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid access token is required",
        )
    })?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if source == TokenSource::Cookie && !state.origins.allows(header("origin"), header("host")) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "cookie sessions are accepted only from the chat's own pages",
        ));
    }
    state
        .service
        .authenticate(&token)
        .await
        .map_err(service_refusal)
}

fn upgrade(
    ws: WebSocket,
    state: Arc<GatewayState>,
    caller: Caller,
    scope: Scope,
    conversations: Vec<ConversationId>,
    resume: BTreeMap<ConversationId, i64>,
) -> Response {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(state.settings.max_frame_bytes);
    config.max_frame_size = Some(state.settings.max_frame_bytes);
    // Small buffers: most sockets are idle most of the time, and the defaults (128 KiB
    // each way) would cost far more memory per connection than everything else.
    config.read_buffer_size = 4 * 1024;
    config.write_buffer_size = 4 * 1024;
    ws.protocols(["chat.v1"])
        .config(config)
        .on_upgrade(move |socket| {
            connection::serve(socket, state, caller, scope, conversations, resume)
        })
        .into_response()
}

/// `/ws`: every conversation of the user on one socket.
#[handler]
async fn ws_all(req: &Request, ws: WebSocket, state: Data<&Arc<GatewayState>>) -> Response {
    let caller = match authenticate(&state, req).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let resume = match resume_positions(req, Scope::All) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let conversations = match state.service.positions(&caller).await {
        Ok(p) => p.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        Err(e) => return service_refusal(e),
    };
    if let Some(unknown) = resume.keys().find(|c| !conversations.contains(c)) {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("conversation {unknown} not found"),
        );
    }
    upgrade(ws, state.clone(), caller, Scope::All, conversations, resume)
}

/// `/ws/chat/{conversation_id}/`: one conversation (seed 000). Non-participants are
/// refused before the upgrade.
#[handler]
async fn ws_one(
    req: &Request,
    ws: WebSocket,
    Path(conversation_id): Path<String>,
    state: Data<&Arc<GatewayState>>,
) -> Response {
    let caller = match authenticate(&state, req).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let Ok(conversation) = conversation_id.parse::<ConversationId>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid conversation id",
        );
    };
    if let Err(e) = state.service.participant(&caller, conversation).await {
        return service_refusal(e);
    }
    let resume = match resume_positions(req, Scope::One(conversation)) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    upgrade(
        ws,
        state.clone(),
        caller,
        Scope::One(conversation),
        vec![conversation],
        resume,
    )
}

#[handler]
fn healthz() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Forgets, now and then, the users whose buckets are full again: keeping them changes
/// no decision, and the map would otherwise hold every user the gateway ever saw.
async fn sweep_limiter(state: Arc<GatewayState>) {
    let every = Duration::from_secs(state.settings.limiter_sweep_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        state.limiter.retain_recent();
        state.limiter.shrink_to_fit();
    }
}

/// This process's counters since it started (the load tool reads them around a run):
/// group-commit batches, events, deliveries. Plain counters, no chat data.
#[handler]
fn stats(state: Data<&Arc<GatewayState>>) -> Response {
    let s = state.service.stats();
    let hub = &state.hub.stats;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "messages_persisted": n(&s.messages_persisted),
        "write_batches": n(&s.write_batches),
        "write_batch_messages": n(&s.write_batch_messages),
        "write_batch_largest": n(&s.write_batch_largest),
        "events_published": n(&s.events_published),
        "events_relayed": n(&s.events_relayed),
        "publish_failures": n(&s.publish_failures),
        "events_dispatched": n(&hub.events_dispatched),
        "deliveries": n(&hub.deliveries),
        "slow_consumers": n(&hub.slow_consumers),
        "connections": n(&hub.connections),
        "limiter_users": state.limiter.len(),
    });
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
async fn readyz(state: Data<&Arc<GatewayState>>) -> Response {
    let (pg, redis) = tokio::join!(state.service.store().ping(), state.service.bus().ping());
    let ok = pg.is_ok() && redis.is_ok();
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "postgres": word(pg.is_ok()),
        "redis": word(redis.is_ok()),
        "connections": state.hub.stats.connections.load(Ordering::Relaxed),
    });
    Response::builder()
        .status(if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        })
        .content_type("application/json")
        .body(body.to_string())
}
