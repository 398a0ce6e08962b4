//! The S3 path, against a real S3-compatible server (s3s-fs, started by ./ops/test) that
//! verifies signatures: uploads land in the bucket, downloads are short-lived signed
//! URLs, and a tampered URL is refused.

use std::time::Duration;

use chat_tests::TestApp;
use chat_tests::fleet::Worker;
use serde_json::{Value, json};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by ./ops/test"))
}

async fn s3_app() -> TestApp {
    TestApp::spawn_with(|s| {
        s.storage.s3_bucket = Some(env("CHAT_S3_TEST_BUCKET"));
        s.storage.s3_endpoint = Some(env("CHAT_S3_TEST_ENDPOINT"));
        s.storage.s3_access_key_id = Some(env("CHAT_S3_TEST_ACCESS_KEY"));
        s.storage.s3_secret_access_key = Some(env("CHAT_S3_TEST_SECRET_KEY"));
    })
    .await
    .expect("app")
}

#[tokio::test]
async fn files_live_in_s3_and_downloads_are_signed_urls() {
    let app = s3_app().await;
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let cid = app.direct(&alice, &bob).await;
    let text = "notes from the meeting\nline two\n"
        .repeat(200)
        .into_bytes();

    let resp = app
        .upload(&alice, cid, "notes.txt", "text/plain", text.clone())
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let id = resp.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut state = Value::Null;
    for _ in 0..200 {
        state = app
            .get(&format!("/api/chat/attachments/{id}"), &alice)
            .await
            .ok(200)
            .clone();
        if state["state"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state["state"], "ready", "{state}");
    assert_eq!(state["content_type"], "text/plain");

    // Participants are redirected to a signed URL that works without our token.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = no_redirects
        .get(format!("{}/api/chat/attachments/{id}/download", app.base))
        .bearer_auth(&bob.token)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 302);
    let url = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(url.starts_with(&env("CHAT_S3_TEST_ENDPOINT")), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let fetched = no_redirects.get(&url).send().await.expect("signed get");
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.bytes().await.expect("bytes").to_vec(), text);

    // A tampered signature (same length, one hex digit changed) is refused.
    let at = url.find("X-Amz-Signature=").expect("signature") + "X-Amz-Signature=".len();
    let mut tampered = url.clone();
    let flipped = if &url[at..at + 1] == "0" { "1" } else { "0" };
    tampered.replace_range(at..at + 1, flipped);
    assert_eq!(
        no_redirects
            .get(&tampered)
            .send()
            .await
            .expect("tampered")
            .status()
            .as_u16(),
        403
    );
    // Non-participants get no URL at all.
    assert_eq!(
        app.get(&format!("/api/chat/attachments/{id}/download"), &eve)
            .await
            .problem(404),
        "not_found"
    );

    // Exports land in the bucket too.
    app.send(&alice, cid, "hello @bob").await;
    let queued = app
        .post(
            &format!("/api/chat/conversations/{cid}/exports/"),
            &bob,
            json!({"format": "json"}),
        )
        .await;
    let export = queued.ok(202)["id"].as_str().expect("id").to_owned();
    let mut done = Value::Null;
    for _ in 0..300 {
        done = app
            .get(
                &format!("/api/chat/conversations/{cid}/exports/{export}"),
                &bob,
            )
            .await
            .ok(200)
            .clone();
        if done["state"] == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["state"], "done", "{done}");
    let resp = no_redirects
        .get(format!(
            "{}/api/chat/conversations/{cid}/exports/{export}/download",
            app.base
        ))
        .bearer_auth(&bob.token)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 302);
    let body = no_redirects
        .get(resp.headers()["location"].to_str().expect("location"))
        .send()
        .await
        .expect("get");
    let rows: Vec<Value> = body.json().await.expect("json");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["conteudo"], "hello @bob");
}
