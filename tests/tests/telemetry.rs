//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, `chat-api` exports traces and metrics over
//! OTLP/HTTP. The receiver is oteltap (installed by `./ops/test`), which prints what it
//! gets as NDJSON.

use std::process::Stdio;
use std::time::Duration;

use chat_tests::fleet::{binary, free_port};
use chat_tests::test_settings;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn chat_api_exports_traces_and_metrics_over_otlp() {
    let oteltap = std::env::var("TEST_OTELTAP").expect("TEST_OTELTAP is set by ./ops/test");
    let settings = test_settings().await.expect("settings");
    let otlp_port = free_port().expect("port");
    let mut receiver = Command::new(oteltap)
        .args(["--port", &otlp_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("oteltap");
    let lines = BufReader::new(receiver.stdout.take().expect("stdout")).lines();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", otlp_port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let api_port = free_port().expect("port");
    let mut api = Command::new(binary("chat-api").expect("chat-api binary"))
        .arg("serve")
        .env("CHAT_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("DATABASE_URL", &settings.database_url)
        .env("REDIS_URL", &settings.redis_url)
        .env("CHAT_REDIS_PREFIX", &settings.redis_prefix)
        .env("CHAT_JWT_SECRET", &settings.jwt_secret)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{otlp_port}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-api");
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "chat-api did not start");
    let reg = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": "otel_user", "password": "a long password"}))
        .send()
        .await
        .expect("register");
    assert_eq!(reg.status().as_u16(), 201);

    // Read what the receiver got until both a span and our request metric showed up.
    let mut lines = lines;
    let (mut span, mut metric) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(span && metric) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("telemetry arrived in time")
            .expect("read")
            .expect("oteltap still running");
        // A request span: it has a trace id and the request's path.
        span |= line.contains("\"traceId\"") && line.contains("/api/auth/register");
        metric |= line.contains("http.server.request.duration");
    }
    let _ = api.start_kill();
    let _ = receiver.start_kill();
}
