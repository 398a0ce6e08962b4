//! The gateway fleet: several real `chat-gateway` processes on one Redis and PostgreSQL.

use std::time::Duration;

use chat_tests::TestApp;
use chat_tests::fleet::{Closed, Gateway, WsClient, seqs};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_message_sent_on_one_gateway_reaches_members_on_the_others_in_order() {
    let app = TestApp::spawn().await.expect("app");
    let (a, b, c) = (
        Gateway::spawn("a", &app.settings, &[])
            .await
            .expect("gateway a"),
        Gateway::spawn("b", &app.settings, &[])
            .await
            .expect("gateway b"),
        Gateway::spawn("c", &app.settings, &[])
            .await
            .expect("gateway c"),
    );
    let u1 = app.user("u1").await;
    let u2 = app.user("u2").await;
    let u3 = app.user("u3").await;
    let cid = app.group(&u1, &[&u2, &u3]).await;

    let mut s1 = WsClient::connect(&a.url("/ws"), &u1.token)
        .await
        .expect("u1 on a");
    let mut s2 = WsClient::connect(&b.url("/ws"), &u2.token)
        .await
        .expect("u2 on b");
    let mut s3 = WsClient::connect(&c.url(&format!("/ws/chat/{cid}/")), &u3.token)
        .await
        .expect("u3 on c");
    assert_eq!(s2.hello["gateway_id"], "b");

    let mut echoed = Vec::new();
    for i in 1..=20 {
        s1.send(json!({"type": "send", "id": format!("r{i}"), "conversation_id": cid, "text": format!("m{i}"), "client_msg_id": format!("k{i}")}))
            .await;
        let ack = loop {
            let frame = s1.next(WAIT).await.expect("frame");
            match frame["type"].as_str() {
                Some("ack") => break frame,
                Some("message.created") => echoed.push(frame),
                _ => {}
            }
        };
        assert_eq!(ack["id"], format!("r{i}"));
        assert_eq!(ack["seq"], i);
        assert_eq!(ack["created"], true);
    }
    for socket in [&mut s2, &mut s3] {
        let got = socket.messages(20, WAIT).await.expect("messages");
        assert_eq!(seqs(&got), (1..=20).collect::<Vec<_>>());
        assert_eq!(got[0]["data"]["message"]["text"], "m1");
        assert_eq!(got[0]["conversation_id"], cid.to_string());
        socket
            .silent_for(Duration::from_millis(300))
            .await
            .expect("no duplicates");
    }
    // The sender's own socket receives its messages too (for its other devices).
    let rest = 20 - echoed.len();
    echoed.extend(s1.messages(rest, WAIT).await.expect("echo"));
    assert_eq!(seqs(&echoed), (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn rest_sends_reach_sockets_and_receipts_and_typing_travel() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let mut bob_ws = WsClient::connect(&gw.url("/ws"), &bob.token)
        .await
        .expect("bob");
    let mut alice_ws = WsClient::connect(&gw.url(&format!("/ws/chat/{cid}/")), &alice.token)
        .await
        .expect("alice");

    let sent = app.send(&alice, cid, "over REST").await;
    let got = bob_ws.messages(1, WAIT).await.expect("message");
    assert_eq!(got[0]["data"]["message"]["id"], sent["id"]);

    // Bob reads over the socket: Alice sees the receipt.
    bob_ws
        .send(json!({"type": "read", "id": "r", "conversation_id": cid, "seq": 1}))
        .await;
    assert_eq!(bob_ws.next_of("ok", WAIT).await.expect("ok")["id"], "r");
    let receipt = alice_ws
        .next_of("receipt.read", WAIT)
        .await
        .expect("receipt");
    assert_eq!(receipt["data"], json!({"user_id": bob.id, "seq": 1}));

    // Typing is ephemeral but delivered.
    alice_ws
        .send(json!({"type": "typing", "typing": true}))
        .await;
    let typing = bob_ws.next_of("typing", WAIT).await.expect("typing");
    assert_eq!(typing["data"], json!({"user_id": alice.id, "typing": true}));
    let statuses = app
        .get(
            &format!(
                "/api/chat/conversations/{cid}/messages/{}/statuses/",
                sent["id"].as_str().expect("id")
            ),
            &alice,
        )
        .await;
    assert_eq!(statuses.ok(200)["statuses"][0]["status"], "read");
}

#[tokio::test]
async fn non_participants_are_refused_and_receive_nothing() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let cid = app.direct(&alice, &bob).await;

    // Refused before the upgrade: no token, a bad token, a non-participant, a bad id.
    let url = gw.url(&format!("/ws/chat/{cid}/"));
    assert_eq!(
        WsClient::connect(&url, "not-a-token").await.err(),
        Some(401)
    );
    assert_eq!(WsClient::connect(&url, &eve.token).await.err(), Some(404));
    assert_eq!(
        WsClient::connect(&gw.url("/ws/chat/nope/"), &alice.token)
            .await
            .err(),
        Some(400)
    );
    assert_eq!(
        WsClient::connect(&gw.url(&format!("/ws?since={cid}:0")), &eve.token)
            .await
            .err(),
        Some(404)
    );
    let unauthenticated = tokio_tungstenite::connect_async(gw.url("/ws")).await;
    assert!(unauthenticated.is_err());

    // On /ws, Eve can neither send to, read, type into nor resume the conversation.
    let mut eve_ws = WsClient::connect(&gw.url("/ws"), &eve.token)
        .await
        .expect("eve on /ws");
    for frame in [
        json!({"type": "send", "id": "1", "conversation_id": cid, "text": "intrusion"}),
        json!({"type": "read", "id": "2", "conversation_id": cid, "seq": 1}),
        json!({"type": "resume", "id": "3", "positions": {cid.to_string(): 0}}),
    ] {
        eve_ws.send(frame).await;
        let err = eve_ws.next_of("error", WAIT).await.expect("error");
        assert_eq!(err["code"], "not_found");
    }
    eve_ws
        .send(json!({"type": "typing", "conversation_id": cid, "typing": true}))
        .await;
    assert_eq!(
        eve_ws.next_of("error", WAIT).await.expect("error")["code"],
        "not_found"
    );
    app.send(&alice, cid, "private").await;
    eve_ws
        .silent_for(Duration::from_millis(500))
        .await
        .expect("eve receives nothing");
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &alice)
        .await;
    assert_eq!(
        page.ok(200).as_array().map(Vec::len),
        Some(1),
        "nothing was added by eve"
    );
}

#[tokio::test]
async fn a_resent_message_is_acknowledged_again_but_delivered_once() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let mut a = WsClient::connect(&gw.url(&format!("/ws/chat/{cid}/")), &alice.token)
        .await
        .expect("alice");
    let mut b = WsClient::connect(&gw.url("/ws"), &bob.token)
        .await
        .expect("bob");
    let frame = json!({"type": "send", "text": "once", "client_msg_id": "dup-1"});
    a.send(frame.clone()).await;
    let first = a.next_of("ack", WAIT).await.expect("ack");
    a.send(frame).await;
    let second = a.next_of("ack", WAIT).await.expect("ack");
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(
        (first["created"].clone(), second["created"].clone()),
        (json!(true), json!(false))
    );
    // Seed frames are sends too.
    a.send(json!({"tipo": "texto", "conteudo": "olá"})).await;
    assert_eq!(a.next_of("ack", WAIT).await.expect("ack")["seq"], 2);
    let got = b.messages(2, WAIT).await.expect("messages");
    assert_eq!(seqs(&got), vec![1, 2]);
    b.silent_for(Duration::from_millis(400))
        .await
        .expect("delivered once");
}

#[tokio::test]
async fn reconnecting_clients_resume_without_gaps_or_duplicates() {
    let app = TestApp::spawn().await.expect("app");
    let g1 = Gateway::spawn("g1", &app.settings, &[]).await.expect("g1");
    let g2 = Gateway::spawn("g2", &app.settings, &[]).await.expect("g2");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let mut b = WsClient::connect(&g1.url("/ws"), &bob.token)
        .await
        .expect("bob");
    for i in 1..=5 {
        app.send(&alice, cid, &format!("m{i}")).await;
    }
    let got = b.messages(5, WAIT).await.expect("first five");
    assert_eq!(seqs(&got), vec![1, 2, 3, 4, 5]);
    b.close().await;
    // 250 messages while Bob is away: more than one catch-up page.
    for i in 6..=255 {
        app.send(&alice, cid, &format!("m{i}")).await;
    }
    // Bob comes back on the other gateway with his position in the URL.
    let mut b = WsClient::connect(&g2.url(&format!("/ws?since={cid}:5")), &bob.token)
        .await
        .expect("bob again");
    let missed = b.messages(250, WAIT).await.expect("missed");
    assert_eq!(seqs(&missed), (6..=255).collect::<Vec<_>>());
    let resumed = b.next_of("resumed", WAIT).await.expect("resumed");
    assert_eq!(resumed["seq"], 255);
    app.send(&alice, cid, "live").await;
    let live = b.messages(1, WAIT).await.expect("live");
    assert_eq!(seqs(&live), vec![256]);
    // A resume frame on an open socket works the same way.
    b.send(json!({"type": "resume", "id": "again", "positions": {cid.to_string(): 250}}))
        .await;
    let again = b.messages(6, WAIT).await.expect("resent");
    assert_eq!(seqs(&again), (251..=256).collect::<Vec<_>>());
    b.silent_for(Duration::from_millis(300)).await.ok();
}

#[tokio::test]
async fn bad_frames_get_errors_and_never_break_the_gateway() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn(
        "g",
        &app.settings,
        &[
            ("CHAT_GATEWAY_RATE_PER_SEC", "5"),
            ("CHAT_GATEWAY_RATE_BURST", "12"),
        ],
    )
    .await
    .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let other = app.direct(&alice, &app.user("carol").await).await;
    let mut a = WsClient::connect(&gw.url(&format!("/ws/chat/{cid}/")), &alice.token)
        .await
        .expect("alice");

    let cases = [
        ("{not json", "malformed_frame"),
        ("[1, 2]", "malformed_frame"),
        (r#"{"type": "teleport", "id": "x"}"#, "unknown_action"),
        (r#"{"type": "send", "id": "y"}"#, "invalid_frame"),
        (r#"{"type": "send", "text": 5}"#, "invalid_frame"),
        (r#"{"type": "read", "seq": "many"}"#, "invalid_frame"),
        (r#"{"type": "send", "text": ""}"#, "validation_failed"),
    ];
    for (raw, code) in cases {
        a.send_raw(tokio_tungstenite::tungstenite::Message::text(raw))
            .await
            .expect("send");
        let err = a.next_of("error", WAIT).await.expect("error");
        assert_eq!(err["code"], code, "{raw}");
    }
    a.send(json!({"type": "send", "conversation_id": other, "text": "wrong place"}))
        .await;
    assert_eq!(
        a.next_of("error", WAIT).await.expect("error")["code"],
        "wrong_conversation"
    );
    // Still alive and well.
    a.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(a.next_of("pong", WAIT).await.expect("pong")["id"], "p");

    // Flooding: past the burst, requests are refused with rate_limited (and not carried out).
    let mut limited = 0;
    for i in 0..30 {
        a.send(json!({"type": "send", "text": format!("flood {i}")}))
            .await;
    }
    let mut acked = 0;
    while acked + limited < 30 {
        let frame = a.next(WAIT).await.expect("answer");
        match frame["type"].as_str() {
            Some("ack") => acked += 1,
            Some("error") if frame["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
    }
    // The burst of 12 was mostly spent by the frames above: every frame counts, refused
    // and unparsable ones and pings included.
    assert!(
        limited > 0 && acked >= 2,
        "acked {acked}, limited {limited}"
    );
    let page = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?limit=200"),
            &alice,
        )
        .await;
    assert_eq!(
        page.ok(200).as_array().map(Vec::len),
        Some(acked),
        "only acknowledged sends exist"
    );

    // An oversized frame closes the socket with 1009; the gateway keeps serving.
    let mut big = WsClient::connect(&gw.url(&format!("/ws/chat/{cid}/")), &alice.token)
        .await
        .expect("alice again");
    let _ = big
        .send_raw(tokio_tungstenite::tungstenite::Message::text(
            "x".repeat(200 * 1024),
        ))
        .await;
    match big.closed(WAIT).await.expect("closed") {
        Closed::Code(code, _) => assert_eq!(code, 1009),
        Closed::Abrupt => {}
    }
    let mut fresh = WsClient::connect(&gw.url("/ws"), &bob.token)
        .await
        .expect("gateway still serves");
    fresh.send(json!({"type": "ping"})).await;
    fresh.next_of("pong", WAIT).await.expect("pong");
}

#[tokio::test]
async fn a_draining_gateway_tells_clients_to_reconnect() {
    let app = TestApp::spawn().await.expect("app");
    let mut gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let mut ws = WsClient::connect(&gw.url("/ws"), &alice.token)
        .await
        .expect("alice");
    let stopping = tokio::spawn(async move { gw.terminate().await });
    let frame = ws
        .next_of("reconnect", WAIT)
        .await
        .expect("reconnect frame");
    assert_eq!(frame["reason"], "gateway draining");
    assert_eq!(
        ws.closed(WAIT).await.expect("closed"),
        Closed::Code(1001, "gateway draining: reconnect and resume".into())
    );
    let status = stopping.await.expect("join").expect("exited");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn joining_a_group_subscribes_open_sockets_and_leaving_unsubscribes() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let owner = app.user("owner").await;
    let newcomer = app.user("newcomer").await;
    let mut ws = WsClient::connect(&gw.url("/ws"), &newcomer.token)
        .await
        .expect("newcomer");
    // A group created with them in it: subscribed from seq 0.
    let cid = app.group(&owner, &[&newcomer]).await;
    ws.next_of("conversation.created", WAIT)
        .await
        .expect("created");
    app.send(&owner, cid, "welcome").await;
    assert_eq!(seqs(&ws.messages(1, WAIT).await.expect("message")), vec![1]);
    // Removed: they see their removal, then nothing more.
    app.delete(
        &format!(
            "/api/chat/conversations/{cid}/participants/{}/",
            newcomer.id
        ),
        &owner,
    )
    .await;
    ws.next_of("participant.left", WAIT).await.expect("left");
    app.send(&owner, cid, "after you left").await;
    ws.silent_for(Duration::from_millis(500))
        .await
        .expect("no more events");
    // Added back: subscribed again.
    app.post(
        &format!("/api/chat/conversations/{cid}/participants/"),
        &owner,
        json!({"user_id": newcomer.id}),
    )
    .await
    .ok(201);
    ws.next_of("participant.joined", WAIT)
        .await
        .expect("joined");
    app.send(&owner, cid, "welcome back").await;
    assert_eq!(seqs(&ws.messages(1, WAIT).await.expect("message")), vec![3]);
}

#[tokio::test]
async fn presence_follows_connections_and_is_visible_to_contacts_only() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let stranger = app.user("stranger").await;
    let cid = app.direct(&alice, &bob).await;
    let presence = |u: &chat_tests::TestUser| format!("/api/users/{}/presence", u.id);
    assert_eq!(
        app.get(&presence(&bob), &alice).await.ok(200)["online"],
        false
    );

    let mut a = WsClient::connect(&gw.url("/ws"), &alice.token)
        .await
        .expect("alice");
    let b = WsClient::connect(&gw.url(&format!("/ws/chat/{cid}/")), &bob.token)
        .await
        .expect("bob");
    // Alice also hears her own presence, in any order with Bob's: skip hers.
    let online = presence_of(&mut a, bob.id).await;
    assert_eq!(online["data"], json!({"user_id": bob.id, "online": true}));
    assert_eq!(
        app.get(&presence(&bob), &alice).await.ok(200)["online"],
        true
    );
    assert_eq!(
        app.get(&presence(&bob), &stranger).await.problem(404),
        "not_found"
    );
    assert_eq!(
        app.get(&presence(&stranger), &stranger).await.ok(200)["online"],
        false
    );

    b.close().await;
    let offline = presence_of(&mut a, bob.id).await;
    assert_eq!(offline["data"], json!({"user_id": bob.id, "online": false}));
    assert_eq!(
        app.get(&presence(&bob), &alice).await.ok(200)["online"],
        false
    );
}

#[tokio::test]
async fn silent_connections_time_out() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[("CHAT_GATEWAY_HEARTBEAT_MS", "200")])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    // A raw client that completes the handshake and then never answers a ping (a
    // WebSocket library would answer them by itself).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(&gw.addr).await.expect("tcp");
    let handshake = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        alice.token, gw.addr
    );
    tcp.write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut received = Vec::new();
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut received))
        .await
        .expect("the gateway closes the socket");
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 101"));
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "closed too early"
    );
    // Somewhere after the pings: a close frame (0x88) whose code is 4000 (0x0FA0).
    let close = received
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2] == 0x0F && w[3] == 0xA0);
    assert!(close, "no close frame with code 4000");
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_with_a_reason_and_can_resume() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn(
        "g",
        &app.settings,
        &[
            ("CHAT_GATEWAY_QUEUE", "8"),
            ("CHAT_GATEWAY_WRITE_TIMEOUT_MS", "3000"),
        ],
    )
    .await
    .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let mut slow = WsClient::connect(&gw.url("/ws"), &bob.token)
        .await
        .expect("bob");
    // Bob stops reading while big messages pour in, faster than any socket buffer takes.
    let caller = app
        .service
        .authenticate(&alice.token)
        .await
        .expect("caller");
    let text = "x".repeat(3900);
    let total = 1500;
    for _ in 0..total {
        let request = chat_service::messages::SendMessage {
            text: text.clone(),
            ..Default::default()
        };
        app.service
            .send_message(&caller, chat_domain::ConversationId::from(cid), request)
            .await
            .expect("send");
    }
    // Reading again, Bob finds the gateway gave up on him, with the reason.
    let mut last_seen = 0;
    let closed = loop {
        match slow.next(WAIT).await {
            Ok(frame) if frame["type"] == "message.created" => {
                last_seen = frame["data"]["message"]["seq"].as_i64().expect("seq");
            }
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        closed.contains("4008")
            || closed.contains("slow consumer")
            || closed.contains("ended")
            || closed.contains("error"),
        "{closed}"
    );
    assert!(last_seen < total, "bob was not cut off");
    // He resumes from what he saw and gets the rest, exactly once.
    let mut again = WsClient::connect(&gw.url(&format!("/ws?since={cid}:{last_seen}")), &bob.token)
        .await
        .expect("resume");
    let rest = again
        .messages((total - last_seen) as usize, Duration::from_secs(30))
        .await
        .expect("rest");
    assert_eq!(seqs(&rest), ((last_seen + 1)..=total).collect::<Vec<_>>());
}

#[tokio::test]
async fn logging_out_closes_open_sockets_and_bound_sockets_stay_bound() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[("CHAT_GATEWAY_HEARTBEAT_MS", "200")])
        .await
        .expect("gateway");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let mine = app.direct(&alice, &bob).await;
    let theirs = app.direct(&bob, &carol).await;
    let also_mine = app.direct(&alice, &carol).await;
    // A socket bound to one conversation cannot resume others, member or not.
    for other in [theirs, also_mine] {
        let url = gw.url(&format!("/ws/chat/{mine}/?since={other}:0"));
        assert_eq!(WsClient::connect(&url, &alice.token).await.err(), Some(404));
    }
    // Typing frames may carry an id like every other frame.
    let mut ws = WsClient::connect(&gw.url(&format!("/ws/chat/{mine}/")), &alice.token)
        .await
        .expect("alice");
    ws.send(json!({"type": "typing", "id": "t1", "typing": true}))
        .await;
    ws.send(json!({"type": "ping", "id": "p1"})).await;
    assert_eq!(ws.next_of("pong", WAIT).await.expect("pong")["id"], "p1");
    // Logging out ends the session, and with it the socket.
    let out = app
        .raw(
            reqwest::Method::POST,
            "/api/auth/logout",
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(out.status.as_u16(), 204);
    let closed = loop {
        match ws.next(WAIT).await {
            Ok(_) => continue,
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        closed.contains("4001") && closed.contains("session ended"),
        "{closed}"
    );
}

/// The next presence event about `user`, skipping others'.
async fn presence_of(ws: &mut WsClient, user: uuid::Uuid) -> serde_json::Value {
    loop {
        let p = ws.next_of("presence", WAIT).await.expect("presence");
        if p["data"]["user_id"] == user.to_string() {
            return p;
        }
    }
}
