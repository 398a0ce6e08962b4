//! Bad input on every endpoint: a clear 4xx problem+json, and nothing changes.

use chat_tests::{TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

async fn state(app: &TestApp, user: &TestUser, cid: Uuid) -> Value {
    let conv = app
        .get(&format!("/api/chat/conversations/{cid}/"), user)
        .await;
    let msgs = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?limit=200"),
            user,
        )
        .await;
    let list = app.get("/api/chat/conversations/", user).await;
    json!({"conv": conv.ok(200), "msgs": msgs.ok(200), "count": list.ok(200).as_array().map(Vec::len)})
}

#[tokio::test]
async fn malformed_and_invalid_bodies_are_refused_without_effect() {
    let app = TestApp::spawn().await.expect("app");
    let a = app.user("a").await;
    let b = app.user("b").await;
    let cid = app.group(&a, &[&b]).await;
    let m = app.send(&a, cid, "first").await;
    let mid = m["id"].as_str().expect("id").to_owned();
    let c = format!("/api/chat/conversations/{cid}");
    let before = state(&app, &a, cid).await;

    let long_text = "x".repeat(4001);
    // (method, path, body, expected status, expected code)
    let cases: Vec<(Method, String, Value, u16, &str)> = vec![
        // Malformed JSON and wrong types: 400.
        (
            Method::POST,
            format!("{c}/messages/"),
            json!("{\"text\": "),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!("not json at all"),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": 42}),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": "x", "reply_to": "not-a-uuid"}),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            format!("{c}/read"),
            json!({"seq": "three"}),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            format!("{c}/participants/"),
            json!({"user_id": "nope"}),
            400,
            "bad_request",
        ),
        (
            Method::PATCH,
            format!("{c}/participants/{}/", b.id),
            json!({"role": "emperor"}),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": "yes"}),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"participants": "everyone"}),
            400,
            "bad_request",
        ),
        // Well-formed but invalid: 422 naming the field.
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": ""}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": "   \n "}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": long_text}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": "x", "client_msg_id": ""}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": "x", "client_msg_id": "has space"}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": "x", "reply_to": Uuid::new_v4()}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/messages/"),
            json!({"text": "x", "attachments": [Uuid::new_v4()]}),
            422,
            "validation_failed",
        ),
        (
            Method::PATCH,
            format!("{c}/messages/{mid}/"),
            json!({"text": ""}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{c}/read"),
            json!({"seq": -1}),
            422,
            "validation_failed",
        ),
        (
            Method::PATCH,
            format!("{c}/"),
            json!({"name": ""}),
            422,
            "validation_failed",
        ),
        (
            Method::PATCH,
            format!("{c}/"),
            json!({"context_type": "planet"}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": true, "participants": [b.id]}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": false, "participants": []}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": false, "participants": [a.id]}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": false, "participants": [Uuid::new_v4()]}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": true, "name": "g", "participants": [b.id, Uuid::new_v4()]}),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/chat/conversations/".into(),
            json!({"is_group": true, "name": "g", "context_type": "galaxy"}),
            422,
            "validation_failed",
        ),
        // Unknown things: 404.
        (
            Method::POST,
            format!("{c}/participants/"),
            json!({"user_id": Uuid::new_v4()}),
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            format!("{c}/participants/{}/", Uuid::new_v4()),
            json!({"role": "admin"}),
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            format!("{c}/messages/{}/", Uuid::new_v4()),
            json!({"text": "x"}),
            404,
            "not_found",
        ),
        // State conflicts: 409.
        (
            Method::POST,
            format!("{c}/participants/"),
            json!({"user_id": b.id}),
            409,
            "already_participant",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let answer = app
            .raw(method.clone(), &path, Some(&a.token), Some(body.clone()))
            .await;
        assert_eq!(answer.problem(status), code, "{method} {path} {body}");
        if status == 422 {
            assert!(
                answer.body["errors"][0]["field"].is_string(),
                "422 names a field: {}",
                answer.body
            );
        }
    }
    assert_eq!(
        state(&app, &a, cid).await,
        before,
        "refused input changed something"
    );
}

#[tokio::test]
async fn invalid_ids_unknown_conversations_and_bad_queries_are_4xx() {
    let app = TestApp::spawn().await.expect("app");
    let a = app.user("a").await;
    let b = app.user("b").await;
    let cid = app.direct(&a, &b).await;
    let unknown = Uuid::new_v4();
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (
            Method::GET,
            "/api/chat/conversations/not-a-uuid/".into(),
            None,
            400,
        ),
        (
            Method::GET,
            "/api/chat/conversations/not-a-uuid/messages/".into(),
            None,
            400,
        ),
        (
            Method::PATCH,
            format!("/api/chat/conversations/{cid}/messages/123/"),
            Some(json!({"text": "x"})),
            400,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{unknown}/"),
            None,
            404,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{unknown}/messages/"),
            None,
            404,
        ),
        (
            Method::POST,
            format!("/api/chat/conversations/{unknown}/messages/"),
            Some(json!({"text": "x"})),
            404,
        ),
        (
            Method::POST,
            format!("/api/chat/conversations/{unknown}/read"),
            Some(json!({"seq": 1})),
            404,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{cid}/messages/?limit=0"),
            None,
            422,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{cid}/messages/?limit=100000"),
            None,
            422,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{cid}/messages/?limit=abc"),
            None,
            400,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{cid}/messages/?before=-5"),
            None,
            422,
        ),
        (
            Method::GET,
            format!("/api/chat/conversations/{cid}/messages/?since=yesterday"),
            None,
            400,
        ),
        (
            Method::GET,
            format!(
                "/api/chat/conversations/{cid}/messages/?since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z"
            ),
            None,
            422,
        ),
        (
            Method::GET,
            "/api/chat/conversations/?limit=0".into(),
            None,
            422,
        ),
        (
            Method::GET,
            "/api/chat/conversations/?offset=-1".into(),
            None,
            422,
        ),
        (Method::GET, "/api/users?q=".into(), None, 422),
        // A NUL, which PostgreSQL cannot store (found by schemathesis: it was a 500).
        (Method::GET, "/api/users?q=a%00b".into(), None, 422),
        (Method::GET, "/api/chat/search?q=a%00b".into(), None, 422),
        (Method::GET, "/api/users".into(), None, 400),
        (Method::GET, "/api/no/such/route".into(), None, 404),
        (Method::PUT, "/api/chat/conversations/".into(), None, 405),
    ];
    for (method, path, body, status) in cases {
        let answer = app.raw(method.clone(), &path, Some(&a.token), body).await;
        answer.problem(status);
        let _ = (&method, &path);
    }
    // Nothing was sent anywhere.
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &a)
        .await;
    assert_eq!(page.ok(200), &json!([]));
}

/// The net under validation: text PostgreSQL refuses (a NUL) is the caller's bad input,
/// a 422, wherever it got through, never a 500.
#[tokio::test]
async fn text_postgresql_cannot_store_is_bad_input_not_a_server_error() {
    let app = TestApp::spawn().await.expect("app");
    let refused = sqlx::query("SELECT $1::text")
        .bind("a\0b")
        .execute(app.service.store().pool())
        .await
        .expect_err("PostgreSQL refuses a NUL");
    let store = chat_store::StoreError::from(refused);
    assert!(
        matches!(store, chat_store::StoreError::InvalidText(_)),
        "{store:?}"
    );
    let service = chat_service::ServiceError::from(store);
    assert!(
        matches!(service, chat_service::ServiceError::Validation(_)),
        "{service:?}"
    );
}

#[tokio::test]
async fn oversized_and_wrongly_typed_bodies_are_refused() {
    let app = TestApp::spawn().await.expect("app");
    let a = app.user("a").await;
    let b = app.user("b").await;
    let cid = app.direct(&a, &b).await;
    let path = format!("{}/api/chat/conversations/{cid}/messages/", app.base);
    // A body larger than the JSON limit.
    let huge = json!({"text": "y".repeat(400 * 1024)}).to_string();
    let resp = app
        .http
        .post(&path)
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 413);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/problem+json")
    );
    // Not JSON at all.
    let resp = app
        .http
        .post(&path)
        .bearer_auth(&a.token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/problem+json")
    );
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &a)
        .await;
    assert_eq!(page.ok(200), &json!([]));
}

#[tokio::test]
async fn text_direction_and_invisible_characters_cannot_disguise_names_or_messages() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let before = state(&app, &alice, cid).await;
    let name = format!("mallory_{}", &Uuid::new_v4().simple().to_string()[..6]);
    let register = app
        .raw(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": name, "password": "correct horse battery", "display_name": "ad\u{200B}min"})),
        )
        .await;
    assert_eq!(register.problem(422), "validation_failed");
    assert_eq!(register.body["errors"][0]["field"], "display_name");
    let message = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"text": "open invoice\u{202E}fdp.exe"}),
        )
        .await;
    assert_eq!(message.problem(422), "validation_failed");
    let group = app
        .post(
            "/api/chat/conversations/",
            &alice,
            json!({"name": "Pay\u{2066}roll", "is_group": true, "participants": [bob.id]}),
        )
        .await;
    assert_eq!(group.problem(422), "validation_failed");
    assert_eq!(state(&app, &alice, cid).await, before, "nothing changed");
    // Writing that needs joiners and marks still goes through.
    app.send(
        &alice,
        cid,
        "família 👨\u{200D}👩\u{200D}👧 — שלום\u{200F}!",
    )
    .await;
}
