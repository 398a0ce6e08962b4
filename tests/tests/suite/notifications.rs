//! Webhook notifications from a real worker: signed, once each, retried with backoff
//! after errors, dead-lettered after the last attempt; nothing for muted or online,
//! unmentioned participants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_tests::fleet::{Gateway, Worker, WsClient};
use chat_tests::{TestApp, TestUser};
use hmac::{Hmac, Mac};
use poem::web::Data;
use poem::{EndpointExt, Route, handler};
use serde_json::{Value, json};
use sha2::Sha256;

/// One call the receiver answered: its headers, its body, and the status it got.
type Call = (HashMap<String, String>, Vec<u8>, u16);

/// What the receiver saw, per path.
#[derive(Default)]
struct Inbox {
    calls: HashMap<String, Vec<Call>>,
    /// Paths that answer 500 this many more times.
    failures: HashMap<String, usize>,
}

#[handler]
async fn receive(
    req: &poem::Request,
    body: Vec<u8>,
    inbox: Data<&Arc<Mutex<Inbox>>>,
) -> poem::http::StatusCode {
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut inbox = inbox.lock().expect("lock");
    let status = match inbox.failures.get_mut(&path) {
        Some(n) if *n > 0 => {
            *n -= 1;
            500
        }
        _ => 200,
    };
    inbox
        .calls
        .entry(path)
        .or_default()
        .push((headers, body, status));
    poem::http::StatusCode::from_u16(status).unwrap_or(poem::http::StatusCode::OK)
}

fn verify(secret: &str, headers: &HashMap<String, String>, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(headers["x-chat-timestamp"].as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    headers["x-chat-signature"] == format!("sha256={expected}")
}

async fn webhook(app: &TestApp, user: &TestUser, url: String) -> String {
    let created = app
        .post("/api/notifications/webhooks", user, json!({"url": url}))
        .await;
    created.ok(201)["secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

#[tokio::test]
async fn notifications_are_signed_retried_and_dead_lettered() {
    let app = TestApp::spawn().await.expect("app");
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    // The webhook receiver: a small HTTP server of the test's own.
    let bound = chat_api::bind("127.0.0.1:0").await.expect("receiver");
    let hooks = format!("http://{}", bound.local_addr);
    let receiver = Route::new()
        .at("/*path", poem::post(receive))
        .data(inbox.clone());
    tokio::spawn(poem::Server::new_with_acceptor(bound.into_acceptor()).run(receiver));

    let installation_secret = "installation-secret-0123456789";
    let _worker = Worker::spawn_with(
        &app.settings,
        &[
            ("CHAT_NOTIFY_MAX_ATTEMPTS", "3"),
            // The receiver is on loopback.
            ("CHAT_NOTIFY_ALLOW_PRIVATE", "true"),
            ("CHAT_NOTIFY_BACKOFF_MS", "1000"),
            ("CHAT_NOTIFY_WEBHOOK_URL", &format!("{hooks}/installation")),
            ("CHAT_NOTIFY_WEBHOOK_SECRET", installation_secret),
        ],
    )
    .await
    .expect("worker");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");

    let alice = app.user("alice").await;
    let bob = app.user("bob").await; // offline; his endpoint fails twice first
    let carol = app.user("carol").await; // offline but muted
    let dave = app.user("dave").await; // online and mentioned
    let erin = app.user("erin").await; // online, not mentioned
    let frank = app.user("frank").await; // offline; his endpoint always fails
    let cid = app
        .group(&alice, &[&bob, &carol, &dave, &erin, &frank])
        .await;
    let mut secrets = HashMap::new();
    for (user, path) in [
        (&bob, "/bob"),
        (&carol, "/carol"),
        (&dave, "/dave"),
        (&erin, "/erin"),
        (&frank, "/frank"),
    ] {
        secrets.insert(path, webhook(&app, user, format!("{hooks}{path}")).await);
    }
    inbox
        .lock()
        .expect("lock")
        .failures
        .insert("/bob".into(), 2);
    inbox
        .lock()
        .expect("lock")
        .failures
        .insert("/frank".into(), usize::MAX);
    let muted = app
        .raw(
            reqwest::Method::PUT,
            &format!("/api/chat/conversations/{cid}/mute"),
            Some(&carol.token),
            Some(json!({"muted": true})),
        )
        .await;
    assert_eq!(muted.status.as_u16(), 204);
    let _dave_ws = WsClient::connect(&gw.url("/ws"), &dave.token)
        .await
        .expect("dave online");
    let _erin_ws = WsClient::connect(&gw.url("/ws"), &erin.token)
        .await
        .expect("erin online");

    let sent = app
        .send(&alice, cid, &format!("hello @{}", dave.username))
        .await;

    // Wait until bob's third attempt succeeded and frank's third failed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        {
            let inbox = inbox.lock().expect("lock");
            let count = |p: &str| inbox.calls.get(p).map_or(0, Vec::len);
            if count("/bob") >= 3
                && count("/frank") >= 3
                && count("/dave") >= 1
                && count("/installation") >= 3
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications did not arrive in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // nothing more must come

    {
        let inbox = inbox.lock().expect("lock");
        // Bob: two failures, then one success; the same delivery every time, each signed.
        let bob_calls = &inbox.calls["/bob"];
        assert_eq!(
            bob_calls.iter().map(|c| c.2).collect::<Vec<_>>(),
            vec![500, 500, 200]
        );
        let ids: std::collections::BTreeSet<&String> =
            bob_calls.iter().map(|c| &c.0["x-chat-delivery"]).collect();
        assert_eq!(ids.len(), 1);
        for (headers, body, _) in bob_calls {
            assert!(verify(&secrets["/bob"], headers, body), "bad signature");
            assert!(!verify("wrong secret", headers, body));
            let payload: Value = serde_json::from_slice(body).expect("json");
            assert_eq!(payload["reason"], "offline");
            assert_eq!(payload["message"]["id"], sent["id"]);
        }
        // Dave: once, because he was mentioned (though online).
        let dave_calls = &inbox.calls["/dave"];
        assert_eq!(dave_calls.len(), 1);
        let payload: Value = serde_json::from_slice(&dave_calls[0].1).expect("json");
        assert_eq!(payload["reason"], "mention");
        assert!(verify(
            &secrets["/dave"],
            &dave_calls[0].0,
            &dave_calls[0].1
        ));
        // Nothing for muted Carol or online, unmentioned Erin; never for the sender.
        assert!(!inbox.calls.contains_key("/carol"));
        assert!(!inbox.calls.contains_key("/erin"));
        // The installation's endpoint hears about bob, dave and frank, signed with its secret.
        let installation = &inbox.calls["/installation"];
        assert_eq!(installation.len(), 3);
        assert!(
            installation
                .iter()
                .all(|(h, b, _)| verify(installation_secret, h, b))
        );
        // Frank: three failed attempts, then dead-lettered.
        assert_eq!(inbox.calls["/frank"].len(), 3);
    }
    let states: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT endpoint, state, attempts FROM notification_deliveries ORDER BY endpoint",
    )
    .fetch_all(app.service.store().pool())
    .await
    .expect("deliveries");
    let state_of = |suffix: &str| {
        states
            .iter()
            .find(|(e, _, _)| e.ends_with(suffix))
            .map(|(_, s, a)| (s.clone(), *a))
    };
    assert_eq!(state_of("/bob"), Some(("delivered".into(), 3)));
    assert_eq!(state_of("/frank"), Some(("dead".into(), 3)));
    assert_eq!(state_of("/dave"), Some(("delivered".into(), 1)));
}

#[tokio::test]
async fn webhooks_are_the_callers_own_and_validated() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let created = app
        .post(
            "/api/notifications/webhooks",
            &alice,
            json!({"url": "https://example.invalid/hook"}),
        )
        .await;
    let id = created.ok(201)["id"].as_str().expect("id").to_owned();
    let listed = app.get("/api/notifications/webhooks", &alice).await;
    assert_eq!(listed.ok(200).as_array().map(Vec::len), Some(1));
    assert!(
        listed.body[0].get("secret").is_none(),
        "secrets are shown once"
    );
    assert_eq!(
        app.get("/api/notifications/webhooks", &bob).await.ok(200),
        &json!([])
    );
    assert_eq!(
        app.delete(&format!("/api/notifications/webhooks/{id}"), &bob)
            .await
            .problem(404),
        "not_found"
    );
    for bad in ["ftp://x", "not a url", "javascript:alert(1)"] {
        let r = app
            .post("/api/notifications/webhooks", &alice, json!({"url": bad}))
            .await;
        assert_eq!(r.problem(422), "validation_failed", "{bad}");
    }
    assert_eq!(
        app.delete(&format!("/api/notifications/webhooks/{id}"), &alice)
            .await
            .status
            .as_u16(),
        204
    );
    // Muting needs membership.
    let c = app.direct(&alice, &bob).await;
    let eve = app.user("eve").await;
    let r = app
        .raw(
            reqwest::Method::PUT,
            &format!("/api/chat/conversations/{c}/mute"),
            Some(&eve.token),
            Some(json!({"muted": true})),
        )
        .await;
    assert_eq!(r.problem(404), "not_found");
}

/// A webhook receiver on loopback; returns its base URL and inbox.
async fn receiver() -> (String, std::net::SocketAddr, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let bound = chat_api::bind("127.0.0.1:0").await.expect("receiver");
    let addr = bound.local_addr;
    let app = Route::new()
        .at("/*path", poem::post(receive))
        .data(inbox.clone());
    tokio::spawn(poem::Server::new_with_acceptor(bound.into_acceptor()).run(app));
    (format!("http://{addr}"), addr, inbox)
}

/// Waits until `path` has had at least `n` calls.
async fn calls_reach(inbox: &Arc<Mutex<Inbox>>, path: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while inbox
        .lock()
        .expect("lock")
        .calls
        .get(path)
        .map_or(0, Vec::len)
        < n
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} was not called {n} times in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn user_webhooks_never_reach_internal_addresses_however_written() {
    let app = TestApp::spawn().await.expect("app");
    let (hooks, addr, inbox) = receiver().await;
    // The installation's webhook (the operator's) may be internal; users' may not.
    let _worker = Worker::spawn_with(
        &app.settings,
        &[
            ("CHAT_NOTIFY_WEBHOOK_URL", &format!("{hooks}/installation")),
            (
                "CHAT_NOTIFY_WEBHOOK_SECRET",
                "installation-secret-0123456789",
            ),
        ],
    )
    .await
    .expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    // The receiver's own address, written as an IPv4-mapped IPv6 address.
    let port = addr.port();
    webhook(
        &app,
        &bob,
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
    )
    .await;
    app.send(&alice, cid, "hi bob").await;
    calls_reach(&inbox, "/installation", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inbox = inbox.lock().expect("lock");
    assert!(
        !inbox.calls.contains_key("/mapped"),
        "a mapped loopback address was called"
    );
}

#[tokio::test]
async fn a_message_hidden_after_fan_out_is_not_sent_on_retry() {
    let app = TestApp::spawn().await.expect("app");
    let (hooks, _, inbox) = receiver().await;
    let _worker = Worker::spawn_with(
        &app.settings,
        &[
            ("CHAT_NOTIFY_ALLOW_PRIVATE", "true"),
            ("CHAT_NOTIFY_BACKOFF_MS", "1000"),
        ],
    )
    .await
    .expect("worker");
    let owner = app.user("owner").await;
    let sender = app.user("sender").await;
    let bob = app.user("bob").await;
    let cid = app.group(&owner, &[&sender, &bob]).await;
    webhook(&app, &bob, format!("{hooks}/bob")).await;
    inbox
        .lock()
        .expect("lock")
        .failures
        .insert("/bob".into(), 1);
    let sent = app.send(&sender, cid, "something nobody should see").await;
    // The first attempt fails; before the retry, a moderator hides the message.
    calls_reach(&inbox, "/bob", 1).await;
    app.post(
        &format!(
            "/api/chat/conversations/{cid}/messages/{}/moderation/",
            sent["id"].as_str().expect("id")
        ),
        &owner,
        json!({"decision": "hide", "reason": "spam"}),
    )
    .await
    .ok(200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let inbox = inbox.lock().expect("lock");
    assert_eq!(
        inbox.calls["/bob"].len(),
        1,
        "the retry of a hidden message's notification must not be sent"
    );
}
