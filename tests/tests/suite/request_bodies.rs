//! Request bodies are capped whatever their headers say, and an upload is admitted (its
//! caller authenticated, their membership checked) before a byte of it is read.

use std::time::Duration;

use chat_tests::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A JSON body of `len` bytes: `{"text": "aaaa…"}`.
fn big_json(len: usize) -> String {
    format!(r#"{{"text": "{}"}}"#, "a".repeat(len))
}

#[tokio::test]
async fn an_http2_body_without_a_length_is_capped() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    // A stream has no length: over HTTP/2 the request carries neither Content-Length
    // nor Transfer-Encoding.
    let body = big_json(1024 * 1024);
    let chunks: Vec<Result<String, std::io::Error>> = body
        .as_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let response = h2
        .post(format!(
            "{}/api/chat/conversations/{cid}/messages/",
            app.base
        ))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 413);
    let problem: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "payload_too_large");
    // Nothing was sent.
    let history = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &bob)
        .await;
    assert_eq!(history.ok(200).as_array().map(Vec::len), Some(0));
    // A small one over HTTP/2 goes through.
    let small = h2
        .post(format!(
            "{}/api/chat/conversations/{cid}/messages/",
            app.base
        ))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(vec![
            Ok::<_, std::io::Error>(big_json(10)),
        ])))
        .send()
        .await
        .expect("request");
    assert_eq!(small.status(), 201);
}

/// Sends the headers of an upload that announces `announced` bytes, and only a little of
/// its body; returns the status line if an answer comes within two seconds.
async fn upload_headers_only(
    app: &TestApp,
    cid: uuid::Uuid,
    authorization: &str,
    announced: usize,
) -> Option<String> {
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/chat/conversations/{cid}/attachments/ HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Authorization: {authorization}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\n\
         Content-Length: {announced}\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(2), socket.read(&mut answer)).await {
        Ok(Ok(n)) if n > 0 => Some(
            String::from_utf8_lossy(&answer[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => None,
    }
}

#[tokio::test]
async fn uploads_are_refused_before_their_body_is_read() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let cid = app.direct(&alice, &bob).await;
    let announced = 1024 * 1024;

    let forged = upload_headers_only(&app, cid, "Bearer x", announced).await;
    assert_eq!(
        forged.as_deref(),
        Some("HTTP/1.1 401 Unauthorized"),
        "a bad token is refused without waiting for the body"
    );
    let outsider =
        upload_headers_only(&app, cid, &format!("Bearer {}", mallory.token), announced).await;
    assert_eq!(
        outsider.as_deref(),
        Some("HTTP/1.1 404 Not Found"),
        "so is a caller who is not in the conversation"
    );
    // A participant's upload is read: no answer until the body is complete.
    let member =
        upload_headers_only(&app, cid, &format!("Bearer {}", alice.token), announced).await;
    assert_eq!(member, None, "a participant's body is awaited");
}
