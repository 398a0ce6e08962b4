//! Messages under concurrency (dense, gap-free seq; idempotent retries) and the events
//! every write publishes on the bus.

use std::collections::BTreeSet;
use std::time::Duration;

use chat_domain::EventPayload;
use chat_tests::{TestApp, types};
use serde_json::json;

#[tokio::test]
async fn fifty_concurrent_senders_get_dense_unique_seqs() {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let mut senders = Vec::new();
    for i in 0..49 {
        senders.push(app.user(&format!("s{i}")).await);
    }
    let refs: Vec<_> = senders.iter().collect();
    let cid = app.group(&owner, &refs).await;
    senders.push(owner);

    // Every sender sends 4 messages, all at once.
    let per_sender = 4;
    let tasks = senders.iter().map(|s| {
        let app = &app;
        async move {
            let mut seqs = Vec::new();
            for k in 0..per_sender {
                let m = app
                    .post(
                        &format!("/api/chat/conversations/{cid}/messages/"),
                        s,
                        json!({"text": format!("{} #{k}", s.username), "client_msg_id": format!("{}-{k}", s.username)}),
                    )
                    .await;
                seqs.push(m.ok(201)["seq"].as_i64().expect("seq"));
            }
            seqs
        }
    });
    let results = futures::future::join_all(tasks).await;
    let total = senders.len() * per_sender;
    let all: Vec<i64> = results.iter().flatten().copied().collect();
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), total);
    assert_eq!(unique.len(), total, "duplicate seqs");
    assert_eq!(
        unique,
        (1..=total as i64).collect::<BTreeSet<_>>(),
        "seqs are not 1..=N"
    );
    // Each sender's own messages are in the order they were sent.
    for seqs in &results {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a sender's messages out of order: {seqs:?}"
        );
    }

    // The store agrees: seq 1..N, last_seq N.
    let page = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?after=0&limit=200"),
            &senders[0],
        )
        .await;
    let seqs: Vec<i64> = page
        .ok(200)
        .as_array()
        .expect("page")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    let conv = app
        .get(&format!("/api/chat/conversations/{cid}/"), &senders[0])
        .await;
    assert_eq!(conv.ok(200)["last_seq"], total as i64);
}

#[tokio::test]
async fn a_retried_send_returns_the_original_message() {
    let app = TestApp::spawn().await.expect("app");
    let a = app.user("a").await;
    let b = app.user("b").await;
    let cid = app.direct(&a, &b).await;
    let path = format!("/api/chat/conversations/{cid}/messages/");
    let body = json!({"text": "hello once", "client_msg_id": "phone-42"});

    let first = app.post(&path, &a, body.clone()).await;
    let original = first.ok(201).clone();
    // Sequential retry.
    let retry = app.post(&path, &a, body.clone()).await;
    assert_eq!(retry.ok(200)["id"], original["id"]);
    assert_eq!(retry.body["seq"], original["seq"]);
    // Ten concurrent retries of a new key: exactly one creates.
    let racing = json!({"text": "raced", "client_msg_id": "phone-43"});
    let answers =
        futures::future::join_all((0..10).map(|_| app.post(&path, &a, racing.clone()))).await;
    let created = answers.iter().filter(|r| r.status.as_u16() == 201).count();
    let ids: BTreeSet<String> = answers
        .iter()
        .map(|r| r.body["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(created, 1, "{answers:?}");
    assert_eq!(ids.len(), 1);
    // No gap was left by the losers: the next message has seq 3.
    let next = app.send(&a, cid, "after the race").await;
    assert_eq!(next["seq"], 3);
    // The same key from another user is another message.
    let from_b = app.post(&path, &b, body.clone()).await;
    assert_eq!(from_b.ok(201)["seq"], 4);
    // The same key in another conversation is refused, not silently mapped.
    let c = app.user("c").await;
    let other = app.direct(&a, &c).await;
    let reused = app
        .post(
            &format!("/api/chat/conversations/{other}/messages/"),
            &a,
            body,
        )
        .await;
    assert_eq!(reused.problem(409), "client_msg_id_reused");
}

#[tokio::test]
async fn every_write_publishes_its_event_on_the_bus() {
    let app = TestApp::spawn().await.expect("app");
    let mut tail = app.bus_tail().await.expect("bus");
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let extra = app.user("extra").await;
    let cid = app.group(&owner, &[&member]).await;
    let conv = format!("/api/chat/conversations/{cid}");

    let m = app.send(&member, cid, "hi").await;
    let mid = m["id"].as_str().expect("id").to_owned();
    app.patch(
        &format!("{conv}/messages/{mid}/"),
        &member,
        json!({"text": "hi!"}),
    )
    .await
    .ok(200);
    app.post(&format!("{conv}/read"), &owner, json!({"seq": 1}))
        .await
        .ok(200);
    app.post(&format!("{conv}/delivered"), &member, json!({"seq": 1}))
        .await
        .ok(200);
    app.delete(&format!("{conv}/messages/{mid}/"), &member)
        .await
        .ok(200);
    app.post(
        &format!("{conv}/participants/"),
        &owner,
        json!({"user_id": extra.id}),
    )
    .await
    .ok(201);
    app.patch(
        &format!("{conv}/participants/{}/", extra.id),
        &owner,
        json!({"role": "moderator"}),
    )
    .await
    .ok(200);
    app.delete(&format!("{conv}/participants/{}/", extra.id), &owner)
        .await;
    app.patch(&format!("{conv}/"), &owner, json!({"name": "renamed"}))
        .await
        .ok(200);
    app.delete(&format!("{conv}/"), &owner).await;

    let expected = [
        "conversation.created",
        "message.created",
        "message.edited",
        "receipt.read",
        "receipt.delivered",
        "message.deleted",
        "participant.joined",
        "participant.role_changed",
        "participant.left",
        "conversation.updated",
        "conversation.deleted",
    ];
    let seen = tail
        .until(Duration::from_secs(10), |d| d.len() >= expected.len())
        .await
        .expect("events");
    // One conversation's events share a shard; these writes were sequential, so the
    // stream holds them in the order they were made.
    assert_eq!(types(&seen), expected);
    assert!(
        seen.iter()
            .all(|d| d.envelope.event.conversation_id.as_uuid() == cid)
    );
    match &seen[1].envelope.event.payload {
        EventPayload::MessageCreated { message } => {
            assert_eq!(message.seq, 1);
            assert_eq!(message.text, "hi");
            assert_eq!(seen[1].envelope.event.seq, Some(1));
        }
        other => panic!("unexpected {other:?}"),
    }
    match &seen[3].envelope.event.payload {
        EventPayload::ReadUpTo { user_id, seq } => {
            assert_eq!(user_id.as_uuid(), owner.id);
            assert_eq!(*seq, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A watermark that does not move publishes nothing; neither does a refused write.
    app.post(
        &format!(
            "/api/chat/conversations/{}/read",
            app.direct(&owner, &member).await
        ),
        &owner,
        json!({"seq": 0}),
    )
    .await
    .ok(200);
    let quiet = tail.until(Duration::from_millis(600), |_| false).await;
    let leftover = quiet.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        leftover.contains("conversation.created") && !leftover.contains("receipt"),
        "{leftover}"
    );
}
