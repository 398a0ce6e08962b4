//! The write path: group commit of sends (dense seqs, one message per `client_msg_id`,
//! a bad message failing alone), pipelined socket sends, and the outbox (no event lost
//! between commit and bus: a writer killed after its commit, Redis stopped under load).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chat_domain::{ConversationId, MessageId, MessageKind, UserId};
use chat_service::Caller;
use chat_service::messages::SendMessage;
use chat_store::messages::{InsertError, Inserted, NewMessage};
use chat_tests::fleet::{Gateway, RedisServer, WsClient};
use chat_tests::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

async fn caller_of(app: &TestApp, user: &TestUser) -> Caller {
    app.service.authenticate(&user.token).await.expect("caller")
}

fn new_message(conversation: Uuid, sender: Uuid, text: &str, key: Option<&str>) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        conversation_id: ConversationId(conversation),
        sender_id: UserId(sender),
        kind: MessageKind::Text,
        text: text.into(),
        client_msg_id: key.map(str::to_owned),
        reply_to: None,
        mentions: Vec::new(),
        attachments: Vec::new(),
    }
}

#[tokio::test]
async fn concurrent_sends_over_many_conversations_batch_with_dense_seqs_and_one_message_per_key() {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let mut members = Vec::new();
    for i in 0..8 {
        members.push(app.user(&format!("m{i}")).await);
    }
    let refs: Vec<&TestUser> = members.iter().collect();
    let mut conversations = Vec::new();
    for _ in 0..10 {
        conversations.push(app.group(&owner, &refs).await);
    }
    let mut callers = Vec::new();
    for m in &members {
        callers.push(caller_of(&app, m).await);
    }

    // Every member sends 10 messages to every conversation, all at once; every third
    // send is sent twice at the same moment (a racing retry with the same key).
    let mut sends = Vec::new();
    for (mi, caller) in callers.iter().enumerate() {
        for (ci, &cid) in conversations.iter().enumerate() {
            for k in 0..10 {
                let key = format!("m{mi}-c{ci}-{k}");
                let copies = if k % 3 == 0 { 2 } else { 1 };
                for _ in 0..copies {
                    let service = app.service.clone();
                    let caller = *caller;
                    let key = key.clone();
                    sends.push(async move {
                        let request = SendMessage {
                            text: format!("hello {key}"),
                            client_msg_id: Some(key.clone()),
                            ..Default::default()
                        };
                        let sent = service
                            .send_message(&caller, ConversationId(cid), request)
                            .await
                            .expect("send");
                        (key, cid, sent)
                    });
                }
            }
        }
    }
    let results = futures::future::join_all(sends).await;

    let mut by_key: HashMap<String, HashSet<MessageId>> = HashMap::new();
    let mut created_per_key: HashMap<String, usize> = HashMap::new();
    for (key, cid, sent) in &results {
        assert_eq!(sent.message.conversation_id.as_uuid(), *cid);
        by_key
            .entry(key.clone())
            .or_default()
            .insert(sent.message.id);
        *created_per_key.entry(key.clone()).or_default() += usize::from(sent.created);
    }
    assert_eq!(by_key.len(), 8 * 10 * 10);
    assert!(
        by_key.values().all(|ids| ids.len() == 1),
        "a key gave two messages"
    );
    assert!(
        created_per_key.values().all(|&n| n == 1),
        "a key was created twice or never"
    );

    for &cid in &conversations {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = $1")
                .bind(cid)
                .fetch_one(app.service.store().pool())
                .await
                .expect("count");
        assert_eq!(count, 80);
        let seqs: Vec<i64> =
            sqlx::query_scalar("SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq")
                .bind(cid)
                .fetch_all(app.service.store().pool())
                .await
                .expect("seqs");
        assert_eq!(
            seqs,
            (1..=80).collect::<Vec<_>>(),
            "seqs of {cid} are not dense"
        );
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = $1")
            .bind(cid)
            .fetch_one(app.service.store().pool())
            .await
            .expect("last_seq");
        assert_eq!(last, 80);
    }
    let stats = app.service.stats();
    let batches = stats
        .write_batches
        .load(std::sync::atomic::Ordering::Relaxed);
    let largest = stats
        .write_batch_largest
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(largest > 1, "sends were never batched");
    assert!(
        batches < results.len() as u64,
        "{batches} batches for {} sends",
        results.len()
    );
}

#[tokio::test]
async fn a_bad_message_fails_alone_and_the_rest_of_its_batch_commits() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let cid = app.group(&alice, &[&bob]).await;
    let elsewhere = app.group(&eve, &[]).await;
    let earlier = app.send(&alice, cid, "earlier").await;
    let earlier_id: Uuid = earlier["id"].as_str().expect("id").parse().expect("uuid");
    let foreign = app.send(&eve, elsewhere, "not yours").await;
    let foreign_id: Uuid = foreign["id"].as_str().expect("id").parse().expect("uuid");

    let (a, b, e) = (alice.id, bob.id, eve.id);
    let mut reply_ok = new_message(cid, b, "a reply", Some("b-1"));
    reply_ok.reply_to = Some(MessageId(earlier_id));
    let mut reply_elsewhere = new_message(cid, a, "reply to another conversation", Some("a-2"));
    reply_elsewhere.reply_to = Some(MessageId(foreign_id));
    let mut mentions = new_message(cid, a, "hi @bob and @eve", None);
    mentions.mentions = vec![bob.username.clone(), eve.username.clone()];
    let batch = vec![
        new_message(cid, a, "first", Some("a-1")),
        new_message(cid, e, "not a member", Some("e-1")),
        reply_ok,
        reply_elsewhere,
        new_message(
            cid,
            a,
            "first again (a retry in the same batch)",
            Some("a-1"),
        ),
        mentions,
        new_message(cid, b, "last", None),
    ];
    let (outcomes, outboxed) = app
        .service
        .store()
        .insert_batch(&batch, |_, _| Vec::new())
        .await
        .expect("batch");
    assert!(outboxed.id.is_none(), "no events were given");
    let new_seq = |i: usize| match &outcomes[i] {
        Ok(Inserted::New(m)) => m.seq,
        other => panic!("message {i}: {other:?}"),
    };
    assert_eq!(new_seq(0), 2);
    assert!(
        matches!(outcomes[1], Err(InsertError::ConversationNotFound)),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(new_seq(2), 3);
    assert!(
        matches!(outcomes[3], Err(InsertError::ReplyNotFound)),
        "{:?}",
        outcomes[3]
    );
    match (&outcomes[0], &outcomes[4]) {
        (Ok(Inserted::New(first)), Ok(Inserted::Existing(again))) => assert_eq!(first.id, again.id),
        other => panic!("the retry was not answered with the original: {other:?}"),
    }
    assert_eq!(new_seq(5), 4);
    match &outcomes[5] {
        // Eve is not a participant: only Bob is recorded as mentioned.
        Ok(Inserted::New(m)) => assert_eq!(m.mentions, vec![UserId(b)]),
        other => panic!("{other:?}"),
    }
    assert_eq!(new_seq(6), 5);

    let stored: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, text FROM messages WHERE conversation_id = $1 ORDER BY seq")
            .bind(cid)
            .fetch_all(app.service.store().pool())
            .await
            .expect("rows");
    let texts: Vec<&str> = stored.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["earlier", "first", "a reply", "hi @bob and @eve", "last"]
    );
    let mentioned: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM mentions WHERE conversation_id = $1")
            .bind(cid)
            .fetch_all(app.service.store().pool())
            .await
            .expect("mentions");
    assert_eq!(mentioned, vec![b]);

    // Two batches racing with the same key: one message, and no seq skipped.
    let store = app.service.store().clone();
    let first = [
        new_message(cid, a, "race", Some("race")),
        new_message(cid, a, "x", None),
    ];
    let second = [
        new_message(cid, a, "race", Some("race")),
        new_message(cid, a, "y", None),
    ];
    let (x, y) = tokio::join!(
        store.insert_batch(&first, |_, _| Vec::new()),
        store.insert_batch(&second, |_, _| Vec::new())
    );
    let (x, y) = (x.expect("x").0, y.expect("y").0);
    let created = [&x[0], &y[0]]
        .iter()
        .filter(|o| matches!(o, Ok(Inserted::New(_))))
        .count();
    assert_eq!(created, 1, "{x:?} {y:?}");
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq")
            .bind(cid)
            .fetch_all(app.service.store().pool())
            .await
            .expect("seqs");
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_socket_pipelines_its_sends_and_gets_acks_with_their_keys_in_order() {
    let app = TestApp::spawn().await.expect("app");
    let gateway = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.group(&alice, &[&bob]).await;
    let mut ws = WsClient::connect(&gateway.url(&format!("/ws/chat/{cid}/")), &alice.token)
        .await
        .expect("ws");
    // 30 sends (within the per-user burst limit) without waiting for any answer; one bad.
    for i in 0..30 {
        let mut frame = json!({"type": "send", "id": format!("r{i}"), "text": format!("p{i}"), "client_msg_id": format!("k{i}")});
        if i == 15 {
            frame["reply_to"] = json!(Uuid::now_v7());
        }
        ws.send(frame).await;
    }
    let mut acks: BTreeMap<String, Value> = BTreeMap::new();
    let mut errors: Vec<Value> = Vec::new();
    while acks.len() + errors.len() < 30 {
        let frame = ws.next(Duration::from_secs(10)).await.expect("frame");
        match frame["type"].as_str() {
            Some("ack") => {
                acks.insert(
                    frame["client_msg_id"]
                        .as_str()
                        .expect("client_msg_id")
                        .to_owned(),
                    frame,
                );
            }
            Some("error") => errors.push(frame),
            _ => {}
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["id"], "r15");
    // Frame order is seq order, the bad one skipped.
    for (expected_seq, i) in (1..).zip((0..30).filter(|i| *i != 15)) {
        let ack = &acks[&format!("k{i}")];
        assert_eq!(ack["id"], format!("r{i}"));
        assert_eq!(ack["seq"], expected_seq, "k{i}");
    }
    // The gateway's counters tell what its writer did: 29 new messages in at most 30
    // batches (the bad one was refused inside its batch).
    let stats: Value = reqwest::get(gateway.url("/stats").replacen("ws://", "http://", 1))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    assert_eq!(stats["messages_persisted"], 29, "{stats}");
    assert_eq!(stats["write_batch_messages"], 30, "{stats}");
    let batches = stats["write_batches"].as_u64().expect("write_batches");
    assert!((1..=30).contains(&batches), "{stats}");
}

/// Collects the events of some types a socket receives until `done` says so.
async fn collect(
    ws: &mut WsClient,
    types: &[&str],
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "timed out; got {seen:?}");
        match ws.next(left.min(Duration::from_millis(500))).await {
            Ok(frame) if types.contains(&frame["type"].as_str().unwrap_or_default()) => {
                seen.push(frame)
            }
            Ok(_) => {}
            Err(e) if e.to_string().contains("timed out") => {}
            Err(e) => panic!("socket failed: {e}"),
        }
    }
    seen
}

#[tokio::test]
async fn events_of_a_writer_killed_between_commit_and_publish_are_relayed() {
    let app = TestApp::spawn().await.expect("app");
    let mut doomed = Gateway::spawn(
        "doomed",
        &app.settings,
        &[("CHAT_FAULT_EXIT_AFTER_COMMIT", "true")],
    )
    .await
    .expect("doomed");
    let survivor = Gateway::spawn("survivor", &app.settings, &[])
        .await
        .expect("survivor");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.group(&alice, &[&bob]).await;
    let mut watcher = WsClient::connect(&survivor.url(&format!("/ws/chat/{cid}/")), &bob.token)
        .await
        .expect("bob");
    let mut sender = WsClient::connect(&doomed.url(&format!("/ws/chat/{cid}/")), &alice.token)
        .await
        .expect("alice");
    sender.send(json!({"type": "send", "id": "1", "text": "committed, then the gateway died", "client_msg_id": "c1"})).await;
    // The gateway exits after committing, before publishing and before acknowledging.
    sender
        .closed(Duration::from_secs(10))
        .await
        .expect("doomed gateway closed the socket");
    let status = doomed.terminate().await.expect("exit status");
    assert_eq!(status.code(), Some(86), "the fault hook did not fire");

    // Another process's relay publishes the event from the outbox.
    let started = tokio::time::Instant::now();
    let got = collect(
        &mut watcher,
        &["message.created"],
        Duration::from_secs(10),
        |s| !s.is_empty(),
    )
    .await;
    assert_eq!(
        got[0]["data"]["message"]["text"],
        "committed, then the gateway died"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "relayed after {:?}",
        started.elapsed()
    );
    // Exactly once: nothing more arrives, and the outbox is empty again.
    watcher
        .silent_for(Duration::from_secs(3))
        .await
        .expect("no repeat");
    assert_eq!(app.service.store().outbox_len().await.expect("outbox"), 0);
    // The client's retry gets the committed message, not a second one.
    let retry = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"text": "committed, then the gateway died", "client_msg_id": "c1"}),
        )
        .await;
    assert_eq!(retry.status.as_u16(), 200, "{:?}", retry.body);
    assert_eq!(retry.body["seq"], 1);
}

#[tokio::test]
async fn redis_stopped_under_load_delays_events_but_loses_none() {
    let mut redis = RedisServer::start().await.expect("redis");
    let app = TestApp::spawn_with(|s| s.redis_url = redis.url())
        .await
        .expect("app");
    let g1 = Gateway::spawn("g1", &app.settings, &[]).await.expect("g1");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.group(&alice, &[&bob]).await;
    let conv = format!("/api/chat/conversations/{cid}");
    let mut ws = WsClient::connect(&g1.url(&format!("/ws/chat/{cid}/")), &bob.token)
        .await
        .expect("bob");
    for i in 0..5 {
        app.send(&alice, cid, &format!("before {i}")).await;
    }

    // Redis goes away (with its streams) while writes of every kind keep committing.
    let restart =
        tokio::spawn(async move { redis.restart(Duration::from_secs(3)).await.map(|_| redis) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = app.send(&alice, cid, &format!("during {i}")).await;
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    let react = app
        .raw(
            reqwest::Method::PUT,
            &format!("{conv}/messages/{}/reactions/%F0%9F%91%8D", ids[0]),
            Some(&alice.token),
            None,
        )
        .await;
    assert!(react.status.is_success(), "{react:?}");
    app.patch(
        &format!("{conv}/messages/{}/", ids[1]),
        &alice,
        json!({"text": "during 1, edited"}),
    )
    .await
    .ok(200);
    app.post(&format!("{conv}/read"), &alice, json!({"seq": 10}))
        .await
        .ok(200);
    let _redis = restart.await.expect("join").expect("redis back");
    for i in 0..5 {
        app.send(&alice, cid, &format!("after {i}")).await;
    }

    let kinds = [
        "message.created",
        "reaction.added",
        "message.edited",
        "receipt.read",
    ];
    let seen = collect(&mut ws, &kinds, Duration::from_secs(20), |s| {
        s.iter().filter(|f| f["type"] == "message.created").count() >= 15
            && ["reaction.added", "message.edited", "receipt.read"]
                .iter()
                .all(|t| s.iter().any(|f| f["type"] == *t))
    })
    .await;
    ws.silent_for(Duration::from_secs(3))
        .await
        .expect("nothing more");
    let seqs: Vec<i64> = seen
        .iter()
        .filter(|f| f["type"] == "message.created")
        .map(|f| f["data"]["message"]["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=15).collect::<Vec<_>>(),
        "messages missed, repeated or out of order"
    );
    for kind in ["reaction.added", "message.edited", "receipt.read"] {
        assert_eq!(
            seen.iter().filter(|f| f["type"] == kind).count(),
            1,
            "{kind} not exactly once: {seen:?}"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.service.store().outbox_len().await.expect("outbox") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
