//! Health, readiness, the served OpenAPI document and docs UI, and behaviour while
//! PostgreSQL is unreachable.

use std::time::Duration;

use chat_tests::{TestApp, test_settings};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_readiness_spec_and_docs_are_served() {
    let app = TestApp::spawn().await.expect("app");
    let health = app.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.ok(200)["status"], "ok");
    let ready = app.raw(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready.ok(200),
        &json!({"status": "ok", "postgres": "ok", "redis": "ok"})
    );
    let spec = app.raw(Method::GET, "/openapi.json", None, None).await;
    // The seed paths as the seeds write them, the others without the slash; the served
    // document is the committed one.
    let paths = &spec.ok(200)["paths"];
    for seed_path in [
        "/api/chat/conversations/",
        "/api/chat/conversations/{conversation_pk}/messages/",
        "/api/chat/channels/",
        "/api/chat/channels/{id}/messages/",
        "/api/chat/channels/{id}/export/",
    ] {
        assert!(paths[seed_path].is_object(), "{seed_path}");
        assert!(
            paths[seed_path.trim_end_matches('/')].is_null(),
            "{seed_path}"
        );
    }
    assert!(paths["/api/chat/conversations/{id}"].is_object());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&chat_api::openapi_json()).expect("json"),
        *spec.ok(200)
    );
    let docs = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(
        docs.text()
            .await
            .expect("html")
            .to_lowercase()
            .contains("swagger")
    );
}

#[tokio::test]
async fn requests_get_a_retryable_503_while_postgres_is_unreachable() {
    let mut settings = test_settings().await.expect("settings");
    // Nothing listens on port 1.
    settings.database_url = "postgres://postgres@127.0.0.1:1/chat".into();
    settings.db_acquire_timeout_secs = 1;
    let service = settings.build().expect("service builds without a database");
    let bound = chat_api::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", bound.local_addr);
    tokio::spawn(chat_api::serve(
        bound,
        service,
        chat_tests::web_settings(Vec::new()),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "someone", "password": "whatever123"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "unavailable");
    let ready = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("send");
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["postgres"], "unavailable");
    assert_eq!(body["redis"], "ok");
}
