//! The test kit: real PostgreSQL and Redis (started by `ops/test`), a fresh database and
//! Redis key prefix per test, and the real `chat-api` served on a random port.
//!
//! `ops/test` exports `TEST_DATABASE_URL` (an admin URL of a disposable server) and
//! `TEST_REDIS_URL`. Each [`TestApp`] clones a migrated template database (created once
//! per migration set, under an advisory lock, since nextest runs tests as separate
//! processes) and gets its own key prefix, so tests never see each other's data.

pub mod fleet;

use std::time::Duration;

use anyhow::{Context, bail};
use chat_bus::{Bus, BusConfig, Delivery};
use chat_service::{ChatService, ServiceSettings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: run the tests through ./ops/test"))
}

fn with_database(admin_url: &str, db: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => format!("{admin_url}/{db}"),
    }
}

/// The migrations' content hash names the template, so a changed migration gets a new one.
fn template_name() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(std::fs::read(&f).unwrap_or_default());
    }
    let digest = hash.finalize();
    format!(
        "chat_tpl_{}",
        digest
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Creates a fresh database migrated to the current schema; returns its URL.
pub async fn fresh_database() -> anyhow::Result<String> {
    let admin_url = env("TEST_DATABASE_URL")?;
    let template = template_name();
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .context("connecting to TEST_DATABASE_URL")?;
    sqlx::query("SELECT pg_advisory_lock(7431)")
        .execute(&mut admin)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let building = format!("{template}_building");
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {building}")))
            .execute(&mut admin)
            .await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .execute(&mut admin)
            .await?;
        {
            let store =
                chat_service::settings::migrate_only(&with_database(&admin_url, &building))?;
            store.migrate().await?;
            store.pool().close().await;
        }
        sqlx::query(AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {template}"
        )))
        .execute(&mut admin)
        .await?;
    }
    sqlx::query("SELECT pg_advisory_unlock(7431)")
        .execute(&mut admin)
        .await?;
    let name = format!("t_{}", Uuid::new_v4().simple());
    let mut attempts = 0;
    loop {
        match sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .execute(&mut admin)
        .await
        {
            Ok(_) => break,
            // Concurrent clones of one template can collide briefly; try again.
            Err(e) if attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50 + 20 * attempts)).await;
                let _ = e;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(with_database(&admin_url, &name))
}

/// Settings for a service on a fresh database and a fresh Redis key prefix.
pub async fn test_settings() -> anyhow::Result<ServiceSettings> {
    Ok(ServiceSettings {
        database_url: fresh_database().await?,
        db_max_connections: 20,
        db_acquire_timeout_secs: 5,
        redis_url: env("TEST_REDIS_URL")?,
        redis_prefix: format!("t{}:", Uuid::new_v4().simple()),
        bus_shards: 4,
        bus_stream_maxlen: 10_000,
        jwt_secret: JWT_SECRET.into(),
        access_token_ttl_secs: 900,
        refresh_token_ttl_secs: 3600,
        session_max_age_secs: 7200,
        access_cache_ms: 1000,
        max_upload_bytes: 2 * 1024 * 1024,
        write_batch_max: 512,
        fault_exit_after_commit: false,
        storage: chat_storage::StorageSettings {
            storage_dir: std::env::temp_dir()
                .join(format!("chat-test-objects-{}", Uuid::new_v4().simple())),
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_path_style: true,
            signed_url_ttl_secs: 60,
        },
        limits: generous_limits(),
    })
}

/// A rate no test reaches: tests create many users and send quickly from one address.
/// Tests of the limits themselves set their own.
pub const GENEROUS_RATE: &str = "100000/s";

/// Limits no test reaches (see [`GENEROUS_RATE`]); the same as [`LIMIT_ENV`] gives child
/// processes.
pub fn generous_limits() -> chat_service::LimitSettings {
    let rate = || chat_bus::Rate::parse(GENEROUS_RATE).expect("a valid rate");
    chat_service::LimitSettings {
        login_per_address: rate(),
        login_per_account: rate(),
        register_per_address: rate(),
        requests_per_user: rate(),
        sends_per_user: rate(),
        password_hash_threads: 0,
    }
}

/// The environment that gives a child process [`generous_limits`].
pub const LIMIT_ENV: &[(&str, &str)] = &[
    ("CHAT_LIMIT_LOGIN_PER_ADDRESS", GENEROUS_RATE),
    ("CHAT_LIMIT_LOGIN_PER_ACCOUNT", GENEROUS_RATE),
    ("CHAT_LIMIT_REGISTER_PER_ADDRESS", GENEROUS_RATE),
    ("CHAT_LIMIT_REQUESTS_PER_USER", GENEROUS_RATE),
    ("CHAT_LIMIT_SENDS_PER_USER", GENEROUS_RATE),
];

/// The repository's `web/` directory.
pub fn web_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// Web client settings serving the repository's built client (`web/dist`), connecting
/// to these gateways.
pub fn web_settings(gateways: Vec<String>) -> chat_api::web::WebSettings {
    chat_api::web::WebSettings {
        web_dir: web_root().join("dist"),
        gateways,
        secure_cookies: false,
        trusted_proxies: Vec::new(),
    }
}

/// Serves `chat-api` on a free port until `shutdown`; returns its base URL.
async fn serve_api(
    service: ChatService,
    web: chat_api::web::WebSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<String> {
    let bound = chat_api::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", bound.local_addr);
    tokio::spawn(async move {
        let _ = chat_api::serve(bound, service, web, shutdown, Duration::from_secs(1)).await;
    });
    Ok(base)
}

/// A `chat-api` port bound but not served yet (see `TestApp::bind_web`).
pub struct WebListener {
    /// The page's origin, `http://127.0.0.1:<port>`.
    pub base: String,
    bound: chat_api::Bound,
    service: ChatService,
}

impl WebListener {
    /// Serves the API on the bound port until the test ends; returns its base URL.
    pub fn serve(self, web: chat_api::web::WebSettings) -> String {
        let (bound, service) = (self.bound, self.service);
        tokio::spawn(async move {
            let never = std::future::pending();
            let _ = chat_api::serve(bound, service, web, never, Duration::from_secs(1)).await;
        });
        self.base
    }
}

/// A running `chat-api` on its own database.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub service: ChatService,
    pub settings: ServiceSettings,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub username: String,
    pub token: String,
    pub refresh_token: String,
}

/// An HTTP answer: status, content type and parsed body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Reads a response: JSON body parsed, a non-JSON body as a string, `Null` when empty.
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Self {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// Asserts a problem+json error with this status; returns its code.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status}, got {} {}",
            self.status,
            self.body
        );
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "expected problem+json, got {:?}: {}",
            self.content_type,
            self.body
        );
        assert_eq!(
            self.body["status"], status,
            "problem status field: {}",
            self.body
        );
        self.body["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status}, got {} {}",
            self.status,
            self.body
        );
        &self.body
    }
}

impl TestApp {
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with the settings adjusted first (e.g. another Redis).
    pub async fn spawn_with(adjust: impl FnOnce(&mut ServiceSettings)) -> anyhow::Result<Self> {
        let mut settings = test_settings().await?;
        adjust(&mut settings);
        let service = settings.build()?;
        let (tx, rx) = oneshot::channel::<()>();
        let base = serve_api(service.clone(), web_settings(Vec::new()), async {
            let _ = rx.await;
        })
        .await?;
        Ok(Self {
            base,
            http: reqwest::Client::new(),
            service,
            settings,
            shutdown: Some(tx),
        })
    }

    /// Serves the API once more, on another port, with these web client settings (same
    /// service, so the same database and bus). Returns its base URL. Lets a test start
    /// the gateways first and then tell the page where they are.
    pub async fn serve_web(&self, web: chat_api::web::WebSettings) -> anyhow::Result<String> {
        serve_api(self.service.clone(), web, std::future::pending()).await
    }

    /// Another replica of the API on the same database, Redis and bus (its own service,
    /// so its own caches, as another process would have), with its settings adjusted;
    /// returns its base URL.
    pub async fn replica(
        &self,
        adjust: impl FnOnce(&mut ServiceSettings),
    ) -> anyhow::Result<String> {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        let service = settings.build()?;
        serve_api(service, web_settings(Vec::new()), std::future::pending()).await
    }

    /// Like `serve_web`, in two steps: the port is bound now, so its origin can be given
    /// to the gateways (`CHAT_ALLOWED_ORIGINS`) before the page is told where they are.
    pub async fn bind_web(&self) -> anyhow::Result<WebListener> {
        let bound = chat_api::bind("127.0.0.1:0").await?;
        Ok(WebListener {
            base: format!("http://{}", bound.local_addr),
            bound,
            service: self.service.clone(),
        })
    }

    /// Uploads `bytes` as a file named `name`, declared as `declared`, into a conversation.
    pub async fn upload(
        &self,
        user: &TestUser,
        conversation: Uuid,
        name: &str,
        declared: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(declared)
            .expect("mime");
        self.http
            .post(format!(
                "{}/api/chat/conversations/{conversation}/attachments/",
                self.base
            ))
            .bearer_auth(&user.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .expect("upload")
    }

    /// A reader on this app's bus, positioned at the current end of every shard.
    pub async fn bus_tail(&self) -> anyhow::Result<BusTail> {
        let bus = Bus::connect(BusConfig {
            redis_url: self.settings.redis_url.clone(),
            prefix: self.settings.redis_prefix.clone(),
            shards: self.settings.bus_shards,
            stream_maxlen: self.settings.bus_stream_maxlen,
        })?;
        bus.wait_connected(Duration::from_secs(5)).await?;
        let positions = bus.tail_positions().await?;
        Ok(BusTail { bus, positions })
    }

    /// Sends a raw request; `body` is sent as JSON unless it is a string (sent verbatim).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match body {
            Some(Value::String(s)) => req = req.header("content-type", "application/json").body(s),
            Some(v) => req = req.json(&v),
            None => {}
        }
        Answer::read(req.send().await.expect("request failed")).await
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> Answer {
        self.raw(Method::GET, path, Some(&user.token), None).await
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: Value) -> Answer {
        self.raw(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, user: &TestUser, body: Value) -> Answer {
        self.raw(Method::PATCH, path, Some(&user.token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, user: &TestUser) -> Answer {
        self.raw(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// Registers and logs in a user whose name starts with `name`.
    pub async fn user(&self, name: &str) -> TestUser {
        let username = format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..8]);
        let reg = self
            .raw(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"username": username, "password": "correct horse battery", "display_name": name})),
            )
            .await;
        reg.ok(201);
        let login = self
            .raw(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": "correct horse battery"})),
            )
            .await;
        let body = login.ok(200);
        TestUser {
            id: body["user_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user_id"),
            username,
            token: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh_token: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }

    /// Creates a group owned by `owner` with `members`; returns its id.
    pub async fn group(&self, owner: &TestUser, members: &[&TestUser]) -> Uuid {
        let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
        let answer = self
            .post(
                "/api/chat/conversations/",
                owner,
                json!({"name": "team", "is_group": true, "participants": ids}),
            )
            .await;
        answer.ok(201)["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("conversation id")
    }

    /// Creates (or finds) the direct conversation of `a` and `b`.
    pub async fn direct(&self, a: &TestUser, b: &TestUser) -> Uuid {
        let answer = self
            .post(
                "/api/chat/conversations/",
                a,
                json!({"is_group": false, "participants": [b.id.to_string()]}),
            )
            .await;
        assert!(answer.status.is_success(), "{answer:?}");
        answer.body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("conversation id")
    }

    /// Sends a text message; returns the message JSON.
    pub async fn send(&self, user: &TestUser, conversation: Uuid, text: &str) -> Value {
        let answer = self
            .post(
                &format!("/api/chat/conversations/{conversation}/messages/"),
                user,
                json!({"text": text}),
            )
            .await;
        answer.ok(201).clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads what the app publishes on the bus.
pub struct BusTail {
    bus: Bus,
    positions: Vec<(u16, String)>,
}

impl BusTail {
    /// Every event published since the last call, waiting until `pred` matches one of the
    /// collected events or `timeout` passes.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&[Delivery]) -> bool,
    ) -> anyhow::Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let batch = self
                .bus
                .read(&self.positions, 1000, Some(Duration::from_millis(200)))
                .await?;
            for d in &batch {
                if let Some(p) = self.positions.iter_mut().find(|(s, _)| *s == d.shard) {
                    p.1 = d.stream_id.clone();
                }
            }
            seen.extend(batch);
            if pred(&seen) {
                return Ok(seen);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "timed out; events seen: {:?}",
                    seen.iter()
                        .map(|d| d.envelope.event.payload.type_name())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

/// The `type` names of some deliveries.
pub fn types(deliveries: &[Delivery]) -> Vec<&'static str> {
    deliveries
        .iter()
        .map(|d| d.envelope.event.payload.type_name())
        .collect()
}
