//! Real gateway processes and WebSocket clients for the cross-process tests.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use chat_service::ServiceSettings;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A workspace binary, built by `ops/test` (`cargo build --bins`) next to the test
/// executables.
pub fn binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> → target/debug/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("test executable has no target dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the binaries first (`cargo build --bins`; ./ops/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A `chat-gateway` process.
pub struct Gateway {
    pub addr: String,
    pub name: String,
    child: Child,
}

impl Gateway {
    /// Starts a gateway on the given service settings; waits until it answers.
    pub async fn spawn(
        name: &str,
        settings: &ServiceSettings,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(binary("chat-gateway")?);
        cmd.arg("serve")
            .env("CHAT_GATEWAY_ADDR", &addr)
            .env("CHAT_GATEWAY_ID", name)
            .env("DATABASE_URL", &settings.database_url)
            .env("CHAT_DB_MAX_CONNECTIONS", "10")
            .env("REDIS_URL", &settings.redis_url)
            .env("CHAT_REDIS_PREFIX", &settings.redis_prefix)
            .env("CHAT_BUS_SHARDS", settings.bus_shards.to_string())
            .env(
                "CHAT_BUS_STREAM_MAXLEN",
                settings.bus_stream_maxlen.to_string(),
            )
            .env("CHAT_JWT_SECRET", &settings.jwt_secret)
            .env("CHAT_STORAGE_DIR", &settings.storage.storage_dir)
            .env("CHAT_SHUTDOWN_GRACE_SECS", "3")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in crate::LIMIT_ENV.iter().chain(extra_env) {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting chat-gateway")?;
        let gateway = Self {
            addr,
            name: name.to_owned(),
            child,
        };
        for _ in 0..200 {
            if TcpStream::connect(&gateway.addr).await.is_ok() {
                return Ok(gateway);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("gateway {name} did not start listening on {}", gateway.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The process id (to kill it from another program, e.g. the browser tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still alive (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: the process dies at once, without draining.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM: the gateway drains; waits for it to exit.
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("already exited")?;
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await?;
        Ok(tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await??)
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking the gateway protocol.
pub struct WsClient {
    socket: Socket,
    /// The `hello` frame.
    pub hello: Value,
}

/// How a socket ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16, String),
    Abrupt,
}

impl WsClient {
    /// Connects with a bearer token; returns the HTTP status if the upgrade is refused.
    pub async fn connect(url: &str, token: &str) -> Result<Self, u16> {
        let mut request = url.into_client_request().map_err(|_| 0u16)?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().map_err(|_| 0u16)?,
        );
        Self::connect_request(request).await
    }

    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, u16> {
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => {
                let mut client = Self {
                    socket,
                    hello: Value::Null,
                };
                let hello = client
                    .next(Duration::from_secs(5))
                    .await
                    .map_err(|_| 1u16)?;
                if hello["type"] != "hello" {
                    return Err(2);
                }
                client.hello = hello;
                Ok(client)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(_) => Err(0),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(
        &mut self,
        message: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.socket.send(message).await
    }

    /// The next JSON frame (pings are answered by the library and skipped).
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("timed out waiting for a frame")?;
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
                Some(Ok(other)) => bail!("unexpected frame {other:?}"),
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// The next frame of the given `type`, skipping others.
    pub async fn next_of(&mut self, kind: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next(left).await?;
            if frame["type"] == kind {
                return Ok(frame);
            }
        }
    }

    /// Collects `message.created` events until `n` arrived (other frames are skipped).
    pub async fn messages(&mut self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .next(left)
                .await
                .with_context(|| format!("after {} of {n} messages", out.len()))?;
            if frame["type"] == "message.created" {
                out.push(frame);
            }
        }
        Ok(out)
    }

    /// Waits for the socket to close; returns the close code.
    pub async fn closed(&mut self, timeout: Duration) -> anyhow::Result<Closed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("not closed in time")?
            {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return Ok(Closed::Code(u16::from(code), reason.to_string()));
                }
                Some(Err(e)) => {
                    eprintln!("socket error while waiting for close: {e}");
                    return Ok(Closed::Abrupt);
                }
                Some(Ok(Message::Close(None))) | None => return Ok(Closed::Abrupt),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Asserts that nothing but pings arrives for `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> anyhow::Result<()> {
        match self.next(wait).await {
            Ok(frame) => bail!("unexpected frame {frame}"),
            Err(e) if e.to_string().contains("timed out") => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The seqs of some `message.created` events.
pub fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["data"]["message"]["seq"].as_i64().unwrap_or(-1))
        .collect()
}

/// A private `redis-server` process, for tests that restart Redis.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> anyhow::Result<Self> {
        let mut server = Self {
            port: free_port()?,
            child: None,
        };
        server.launch().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (installed by ./ops/test)")?;
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("redis-server did not start on {}", self.port)
    }

    /// Kills Redis (losing everything it held), waits `down`, and starts it again.
    pub async fn restart(&mut self, down: Duration) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        tokio::time::sleep(down).await;
        self.launch().await
    }
}

/// A `chat-worker` process on the same database, Redis prefix and storage as a test app.
pub struct Worker {
    child: Child,
}

impl Worker {
    pub async fn spawn(settings: &ServiceSettings) -> anyhow::Result<Self> {
        Self::spawn_with(settings, &[]).await
    }

    pub async fn spawn_with(
        settings: &ServiceSettings,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("chat-worker")?);
        cmd.arg("serve")
            .env("DATABASE_URL", &settings.database_url)
            .env("CHAT_DB_MAX_CONNECTIONS", "5")
            .env("REDIS_URL", &settings.redis_url)
            .env("CHAT_REDIS_PREFIX", &settings.redis_prefix)
            .env("CHAT_BUS_SHARDS", settings.bus_shards.to_string())
            .env("CHAT_JWT_SECRET", &settings.jwt_secret)
            .env("CHAT_STORAGE_DIR", &settings.storage.storage_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in s3_env(settings) {
            cmd.env(k, v);
        }
        for (k, v) in crate::LIMIT_ENV {
            cmd.env(k, v);
        }
        // Last, so that they win over the defaults above.
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Ok(Self {
            child: cmd.spawn().context("starting chat-worker")?,
        })
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
    }
}

/// The S3 settings of a test app, as the environment of a child process.
pub fn s3_env(settings: &ServiceSettings) -> Vec<(&'static str, String)> {
    let s = &settings.storage;
    let mut out = Vec::new();
    if let Some(b) = &s.s3_bucket {
        out.push(("CHAT_S3_BUCKET", b.clone()));
    }
    if let Some(e) = &s.s3_endpoint {
        out.push(("CHAT_S3_ENDPOINT", e.clone()));
    }
    if let Some(k) = &s.s3_access_key_id {
        out.push(("CHAT_S3_ACCESS_KEY_ID", k.clone()));
    }
    if let Some(k) = &s.s3_secret_access_key {
        out.push(("CHAT_S3_SECRET_ACCESS_KEY", k.clone()));
    }
    out
}
