//! Faults under a steady stream of messages: a gateway killed with SIGKILL, and Redis
//! restarted. Every client must end with every accepted message exactly once, in order.

use std::sync::Arc;
use std::time::Duration;

use chat_tests::fleet::{Gateway, RedisServer, WsClient};
use chat_tests::{TestApp, TestUser};
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

/// A client that reads until it has seen `total` messages, reconnecting (with its last
/// seq) to the next gateway in `urls` whenever its socket ends. Returns every seq it
/// received, in order of arrival.
async fn reader(
    urls: Vec<String>,
    user: TestUser,
    cid: Uuid,
    total: Arc<Mutex<Option<i64>>>,
) -> Vec<i64> {
    let mut seen: Vec<i64> = Vec::new();
    let mut attempt = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = seen.last().copied().unwrap_or(0);
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let full = format!("{url}?since={cid}:{last}");
        let mut ws = match WsClient::connect(&full, &user.token).await {
            Ok(ws) => ws,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            if let Some(t) = *total.lock().await
                && seen.last().copied().unwrap_or(0) >= t
            {
                return seen;
            }
            if tokio::time::Instant::now() > deadline {
                return seen;
            }
            match ws.next(Duration::from_millis(500)).await {
                Ok(frame) if frame["type"] == "message.created" => {
                    seen.push(frame["data"]["message"]["seq"].as_i64().unwrap_or(-1));
                }
                Ok(_) => {}
                Err(e) if e.to_string().contains("timed out") => {}
                // The socket died: reconnect elsewhere and resume.
                Err(_) => break,
            }
        }
    }
}

async fn steady_sender(
    app: &TestApp,
    sender: &TestUser,
    cid: Uuid,
    count: usize,
    pause: Duration,
) -> i64 {
    let mut last = 0;
    for i in 0..count {
        let m: Value = app.send(sender, cid, &format!("steady {i}")).await;
        last = m["seq"].as_i64().expect("seq");
        tokio::time::sleep(pause).await;
    }
    last
}

#[tokio::test]
async fn killing_a_gateway_loses_and_duplicates_nothing() {
    let app = TestApp::spawn().await.expect("app");
    let mut doomed = Gateway::spawn("doomed", &app.settings, &[])
        .await
        .expect("doomed");
    let survivor = Gateway::spawn("survivor", &app.settings, &[])
        .await
        .expect("survivor");
    let sender = app.user("sender").await;
    let mut readers = Vec::new();
    for i in 0..5 {
        readers.push(app.user(&format!("reader{i}")).await);
    }
    let refs: Vec<&TestUser> = readers.iter().collect();
    let cid = app.group(&sender, &refs).await;

    let total = Arc::new(Mutex::new(None));
    let mut tasks = Vec::new();
    for (i, user) in readers.iter().enumerate() {
        // Three readers start on the gateway that will die, two on the survivor.
        let urls = if i < 3 {
            vec![doomed.url("/ws"), survivor.url("/ws")]
        } else {
            vec![survivor.url("/ws")]
        };
        tasks.push(tokio::spawn(reader(urls, user.clone(), cid, total.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = steady_sender(&app, &sender, cid, 100, Duration::from_millis(5)).await;
    doomed.kill().await;
    let last = steady_sender(&app, &sender, cid, 100, Duration::from_millis(5)).await;
    assert_eq!(last, first + 100);
    *total.lock().await = Some(last);
    for (i, task) in tasks.into_iter().enumerate() {
        let seen = task.await.expect("reader");
        assert_eq!(
            seen,
            (1..=last).collect::<Vec<_>>(),
            "reader {i} missed or repeated messages"
        );
    }
}

#[tokio::test]
async fn restarting_redis_loses_and_duplicates_nothing() {
    let mut redis = RedisServer::start().await.expect("redis");
    let app = TestApp::spawn_with(|s| s.redis_url = redis.url())
        .await
        .expect("app");
    let g1 = Gateway::spawn("g1", &app.settings, &[]).await.expect("g1");
    let g2 = Gateway::spawn("g2", &app.settings, &[]).await.expect("g2");
    let sender = app.user("sender").await;
    let r1 = app.user("r1").await;
    let r2 = app.user("r2").await;
    let cid = app.group(&sender, &[&r1, &r2]).await;
    let total = Arc::new(Mutex::new(None));
    let t1 = tokio::spawn(reader(
        vec![g1.url("/ws"), g2.url("/ws")],
        r1.clone(),
        cid,
        total.clone(),
    ));
    let t2 = tokio::spawn(reader(
        vec![g2.url("/ws"), g1.url("/ws")],
        r2.clone(),
        cid,
        total.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    steady_sender(&app, &sender, cid, 50, Duration::from_millis(5)).await;
    // Redis goes away (losing its streams) while messages keep being accepted.
    let restart = tokio::spawn(async move {
        redis
            .restart(Duration::from_millis(800))
            .await
            .map(|_| redis)
    });
    steady_sender(&app, &sender, cid, 10, Duration::from_millis(50)).await;
    let _redis = restart.await.expect("join").expect("redis back");
    let last = steady_sender(&app, &sender, cid, 50, Duration::from_millis(5)).await;
    *total.lock().await = Some(last);
    for (name, task) in [("r1", t1), ("r2", t2)] {
        let seen = task.await.expect("reader");
        assert_eq!(
            seen,
            (1..=last).collect::<Vec<_>>(),
            "{name} missed or repeated messages"
        );
    }
}

#[tokio::test]
async fn a_removal_whose_event_redis_lost_takes_effect_at_the_resync() {
    let mut redis = RedisServer::start().await.expect("redis");
    let app = TestApp::spawn_with(|s| s.redis_url = redis.url())
        .await
        .expect("app");
    let gateway = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.group(&alice, &[&bob]).await;
    let mut everything = WsClient::connect(&gateway.url("/ws"), &bob.token)
        .await
        .expect("bob /ws");
    let mut one = WsClient::connect(&gateway.url(&format!("/ws/chat/{cid}/")), &bob.token)
        .await
        .expect("bob one");

    // Bob is removed, and no `participant.left` reaches the gateway: as when it was in
    // the streams a restarting Redis lost.
    sqlx::query("DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2")
        .bind(cid)
        .bind(bob.id)
        .execute(app.service.store().pool())
        .await
        .expect("remove");
    redis
        .restart(Duration::from_millis(500))
        .await
        .expect("redis back");

    // The resync after the outage finds that Bob left: the one-conversation socket closes.
    match one.closed(Duration::from_secs(15)).await.expect("closed") {
        chat_tests::fleet::Closed::Code(code, _) => assert_eq!(code, 4003),
        other => panic!("closed without 4003: {other:?}"),
    }
    // And `/ws` no longer delivers the conversation.
    app.send(&alice, cid, "after bob left").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        match everything.next(Duration::from_millis(300)).await {
            Ok(frame) => assert_ne!(
                frame["type"], "message.created",
                "a removed member got {frame}"
            ),
            Err(e) if e.to_string().contains("timed out") => {}
            Err(e) => panic!("socket failed: {e}"),
        }
    }
}

#[tokio::test]
async fn a_removal_whose_event_never_arrives_takes_effect_at_the_next_heartbeat() {
    let app = TestApp::spawn().await.expect("app");
    let gateway = Gateway::spawn("g", &app.settings, &[("CHAT_GATEWAY_HEARTBEAT_MS", "1000")])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.group(&alice, &[&bob]).await;
    let mut everything = WsClient::connect(&gateway.url("/ws"), &bob.token)
        .await
        .expect("bob /ws");
    let mut one = WsClient::connect(&gateway.url(&format!("/ws/chat/{cid}/")), &bob.token)
        .await
        .expect("bob one");

    // Bob is removed and no `participant.left` is ever published (Redis stays up: the
    // event was simply lost). Typing and later messages must stop reaching him.
    sqlx::query("DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2")
        .bind(cid)
        .bind(bob.id)
        .execute(app.service.store().pool())
        .await
        .expect("remove");
    match one.closed(Duration::from_secs(5)).await.expect("closed") {
        chat_tests::fleet::Closed::Code(code, _) => assert_eq!(code, 4003),
        other => panic!("closed without 4003: {other:?}"),
    }
    // Past a heartbeat of /ws too (well within its idle timeout of three).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.send(&alice, cid, "after bob left").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        match everything.next(Duration::from_millis(300)).await {
            Ok(frame) => assert_ne!(
                frame["type"], "message.created",
                "a removed member got {frame}"
            ),
            Err(e) if e.to_string().contains("timed out") => {}
            Err(e) => panic!("socket failed: {e}"),
        }
    }
}
