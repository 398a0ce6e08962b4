//! Abuse limits against the real stack: login and registration throttled per address
//! and per account, a per-user REST budget, one send budget shared by REST and sockets
//! on any replica (Redis), every gateway frame counted (resume included), the gateway's
//! limiter forgetting quiet users. Refusals are 429 with `Retry-After`, or a
//! `rate_limited` frame with `retry_after_ms`.

use std::time::Duration;

use chat_bus::Rate;
use chat_tests::fleet::{Gateway, WsClient};
use chat_tests::{TestApp, web_settings};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

fn rate(text: &str) -> Rate {
    Rate::parse(text).expect("a valid rate")
}

async fn register(app: &TestApp, username: &str) -> u16 {
    app.raw(
        Method::POST,
        "/api/auth/register",
        None,
        Some(json!({"username": username, "password": "correct horse battery"})),
    )
    .await
    .status
    .as_u16()
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": username, "password": password}));
    if let Some(address) = forwarded_for {
        req = req.header("x-forwarded-for", address);
    }
    req.send().await.expect("login request")
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds")
}

#[tokio::test]
async fn guessing_one_accounts_password_is_throttled_from_anywhere() {
    let app = TestApp::spawn_with(|s| s.limits.login_per_account = rate("3/min"))
        .await
        .expect("app");
    let name = format!("victim_{}", &Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(register(&app, &name).await, 201);
    for _ in 0..3 {
        let wrong = login(&app.http, &app.base, &name, "wrong password", None).await;
        assert_eq!(wrong.status(), 401);
    }
    // The fourth attempt is refused before any hashing, even with the right password.
    let refused = login(&app.http, &app.base, &name, "correct horse battery", None).await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    let body: Value = refused.json().await.expect("problem");
    assert_eq!(body["code"], "rate_limited");
    // Casing and spaces do not make it another account.
    let folded = login(
        &app.http,
        &app.base,
        &format!(" {} ", name.to_uppercase()),
        "x",
        None,
    )
    .await;
    assert_eq!(folded.status(), 429);
    // Other accounts are not affected.
    let other = app.user("bystander").await;
    assert!(!other.token.is_empty());
}

#[tokio::test]
async fn logins_are_counted_per_client_address_behind_trusted_proxies() {
    let app = TestApp::spawn_with(|s| s.limits.login_per_address = rate("2/min"))
        .await
        .expect("app");
    let mut web = web_settings(Vec::new());
    web.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
    let proxied = app.serve_web(web).await.expect("proxied api");
    let account = |n: usize| format!("nobody_{n}_{}", &Uuid::new_v4().simple().to_string()[..6]);

    // Two clients behind the proxy have their own budgets.
    for n in 0..2 {
        let r = login(&app.http, &proxied, &account(n), "x", Some("203.0.113.5")).await;
        assert_eq!(r.status(), 401);
    }
    let third = login(&app.http, &proxied, &account(2), "x", Some("203.0.113.5")).await;
    assert_eq!(third.status(), 429, "the third try from 203.0.113.5");
    let elsewhere = login(
        &app.http,
        &proxied,
        &account(3),
        "x",
        Some("198.51.100.1, 203.0.113.9"),
    )
    .await;
    assert_eq!(
        elsewhere.status(),
        401,
        "another client (the proxy saw 203.0.113.9; the left hop is the client's own say)"
    );
    let forged = login(
        &app.http,
        &proxied,
        &account(4),
        "x",
        Some("203.0.113.5, 203.0.113.10"),
    )
    .await;
    assert_eq!(
        forged.status(),
        401,
        "a forged left hop does not move the client onto someone else's budget"
    );

    // Without trusted proxies the header is ignored: every try is 127.0.0.1's.
    for n in 10..12 {
        let r = login(
            &app.http,
            &app.base,
            &account(n),
            "x",
            Some(&format!("192.0.2.{n}")),
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let spoofing = login(&app.http, &app.base, &account(12), "x", Some("192.0.2.99")).await;
    assert_eq!(
        spoofing.status(),
        429,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
}

#[tokio::test]
async fn registrations_are_throttled_per_address() {
    let app = TestApp::spawn_with(|s| s.limits.register_per_address = rate("2/h"))
        .await
        .expect("app");
    let name = |n: usize| format!("signup_{n}_{}", &Uuid::new_v4().simple().to_string()[..6]);
    assert_eq!(register(&app, &name(0)).await, 201);
    assert_eq!(register(&app, &name(1)).await, 201);
    let refused = app
        .raw(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": name(2), "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(refused.problem(429), "rate_limited");
}

#[tokio::test]
async fn each_user_has_a_rest_budget() {
    let app = TestApp::spawn_with(|s| s.limits.requests_per_user = rate("3/min"))
        .await
        .expect("app");
    // Registering and logging in are not authenticated calls: they have their own limits.
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for _ in 0..3 {
        app.get("/api/users/me", &alice).await.ok(200);
    }
    let refused = app.get("/api/users/me", &alice).await;
    assert_eq!(refused.problem(429), "rate_limited");
    // Other users are unaffected.
    app.get("/api/users/me", &bob).await.ok(200);
}

#[tokio::test]
async fn rest_and_socket_sends_share_one_budget_across_processes() {
    let app = TestApp::spawn_with(|s| s.limits.sends_per_user = rate("4/min"))
        .await
        .expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    // The gateway is another process, with the same limit.
    let gw = Gateway::spawn(
        "limits",
        &app.settings,
        &[("CHAT_LIMIT_SENDS_PER_USER", "4/min")],
    )
    .await
    .expect("gateway");
    for i in 0..2 {
        app.send(&alice, cid, &format!("rest {i}")).await;
    }
    let mut ws = WsClient::connect(&gw.url("/ws"), &alice.token)
        .await
        .expect("socket");
    for i in 0..2 {
        ws.send(
            json!({"type": "send", "id": format!("s{i}"), "conversation_id": cid, "text": "ws"}),
        )
        .await;
        let ack = ws
            .next_of("ack", Duration::from_secs(5))
            .await
            .expect("ack");
        assert_eq!(ack["id"], format!("s{i}"));
    }
    // The budget is spent, on both paths.
    ws.send(json!({"type": "send", "id": "over", "conversation_id": cid, "text": "ws"}))
        .await;
    let refused = ws
        .next_of("error", Duration::from_secs(5))
        .await
        .expect("error");
    assert_eq!(refused["id"], "over");
    assert_eq!(refused["code"], "rate_limited");
    assert!(refused["retry_after_ms"].as_u64().expect("retry_after_ms") > 0);
    let rest = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"text": "one more"}),
        )
        .await;
    assert_eq!(rest.problem(429), "rate_limited");
    // Nothing refused was stored.
    let history = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &bob)
        .await;
    let count = history.ok(200).as_array().map(Vec::len).expect("items");
    assert_eq!(count, 4);
    // Bob's budget is his own.
    app.send(&bob, cid, "bob is fine").await;
}

#[tokio::test]
async fn resume_frames_count_against_the_gateway_limit() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let gw = Gateway::spawn(
        "resume-limit",
        &app.settings,
        &[
            ("CHAT_GATEWAY_RATE_PER_SEC", "1"),
            ("CHAT_GATEWAY_RATE_BURST", "3"),
        ],
    )
    .await
    .expect("gateway");
    let mut ws = WsClient::connect(&gw.url("/ws"), &alice.token)
        .await
        .expect("socket");
    let mut positions = serde_json::Map::new();
    positions.insert(cid.to_string(), json!(0));
    for i in 0..5 {
        ws.send(json!({"type": "resume", "id": format!("r{i}"), "positions": positions}))
            .await;
    }
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match ws.next(Duration::from_millis(500)).await {
            Ok(frame) if frame["type"] == "error" => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                refused += 1;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(refused >= 1, "a resume flood must be limited");
}

#[tokio::test]
async fn the_gateway_forgets_the_limiter_state_of_quiet_users() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let gw = Gateway::spawn(
        "sweep",
        &app.settings,
        &[("CHAT_GATEWAY_LIMITER_SWEEP_SECS", "1")],
    )
    .await
    .expect("gateway");
    let stats = || async {
        let url = format!("http://{}/stats", gw.addr);
        let body: Value = reqwest::get(url)
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        body["limiter_users"].as_u64().expect("limiter_users")
    };
    let mut ws = WsClient::connect(&gw.url("/ws"), &alice.token)
        .await
        .expect("socket");
    ws.send(json!({"type": "ping", "id": "p"})).await;
    ws.next_of("pong", Duration::from_secs(5))
        .await
        .expect("pong");
    assert_eq!(stats().await, 1);
    ws.close().await;
    // A burst of 40 at 20/s is full again two seconds later; the sweep runs each second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quiet user was never forgotten"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
