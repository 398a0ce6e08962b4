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
    let settings = test_settings().await.expect("settings");
    let (_receiver, mut lines, otlp) = oteltap().await;
    let (_api, base) = api_process(&settings, &otlp).await;
    let http = reqwest::Client::new();
    let reg = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": "otel_user", "password": "a long password"}))
        .send()
        .await
        .expect("register");
    assert_eq!(reg.status().as_u16(), 201);

    // Read what the receiver got until both a span and our request metric showed up.
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
}

/// Spawns `chat-api serve` on a free port exporting to `otlp`; returns (process, base URL).
async fn api_process(
    settings: &chat_service::ServiceSettings,
    otlp: &str,
) -> (tokio::process::Child, String) {
    let api_port = free_port().expect("port");
    let child = Command::new(binary("chat-api").expect("chat-api binary"))
        .arg("serve")
        .env("CHAT_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("DATABASE_URL", &settings.database_url)
        .env("REDIS_URL", &settings.redis_url)
        .env("CHAT_REDIS_PREFIX", &settings.redis_prefix)
        .env("CHAT_JWT_SECRET", &settings.jwt_secret)
        .env("CHAT_STORAGE_DIR", &settings.storage.storage_dir)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-api");
    let base = format!("http://127.0.0.1:{api_port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("chat-api did not start");
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Starts oteltap on a free port; returns it, its NDJSON output, and the OTLP endpoint.
async fn oteltap() -> (tokio::process::Child, Lines, String) {
    let program = std::env::var("TEST_OTELTAP").expect("TEST_OTELTAP is set by ./ops/test");
    let port = free_port().expect("port");
    let mut receiver = Command::new(program)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("oteltap");
    let lines = BufReader::new(receiver.stdout.take().expect("stdout")).lines();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (receiver, lines, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn an_upload_s_trace_continues_into_the_worker_job() {
    let settings = test_settings().await.expect("settings");
    let (_receiver, mut lines, otlp) = oteltap().await;
    let (_api, base) = api_process(&settings, &otlp).await;
    let _worker = chat_tests::fleet::Worker::spawn_with(
        &settings,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("RUST_LOG", "info"),
        ],
    )
    .await
    .expect("worker");

    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for name in ["tracer_a", "tracer_b"] {
        let creds = json!({"username": name, "password": "a long password"});
        http.post(format!("{base}/api/auth/register"))
            .json(&creds)
            .send()
            .await
            .expect("register");
        let login: serde_json::Value = http
            .post(format!("{base}/api/auth/login"))
            .json(&creds)
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        tokens.push((
            login["access_token"].as_str().expect("token").to_owned(),
            login["user_id"].as_str().expect("id").to_owned(),
        ));
    }
    let conv: serde_json::Value = http
        .post(format!("{base}/api/chat/conversations/"))
        .bearer_auth(&tokens[0].0)
        .json(&json!({"is_group": false, "participants": [tokens[1].1]}))
        .send()
        .await
        .expect("conversation")
        .json()
        .await
        .expect("json");
    let cid = conv["id"].as_str().expect("id");
    let part = reqwest::multipart::Part::bytes(b"traced text\n".to_vec()).file_name("t.txt");
    let up = http
        .post(format!("{base}/api/chat/conversations/{cid}/attachments/"))
        .bearer_auth(&tokens[0].0)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status().as_u16(), 201);

    // The upload's request span and the worker's job span share one trace id.
    let (mut request_trace, mut job_traces) = (None::<String>, Vec::<String>::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = &request_trace
            && job_traces.contains(t)
        {
            break;
        }
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no matching spans: request trace {request_trace:?}, job traces {job_traces:?}"
                )
            })
            .expect("read")
            .expect("oteltap running");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(trace) = v["traceId"].as_str() else {
            continue;
        };
        if v["name"] == "request" && line.contains("/attachments") {
            request_trace = Some(trace.to_owned());
        }
        if v["name"] == "process_attachment" {
            job_traces.push(trace.to_owned());
        }
    }
}
