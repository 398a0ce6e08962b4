//! The whole REST flow two people go through: register, start a direct conversation,
//! exchange messages, page through history, read, and watch statuses and unread counts.

use chat_tests::TestApp;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn two_users_hold_a_conversation_over_rest() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;

    // Alice finds Bob and starts a direct conversation; doing it again finds the same one.
    let found = app
        .get(&format!("/api/users?q={}", &bob.username[..6]), &alice)
        .await;
    assert!(
        found
            .ok(200)
            .as_array()
            .expect("list")
            .iter()
            .any(|u| u["id"] == bob.id.to_string())
    );
    let created = app
        .post(
            "/api/chat/conversations/",
            &alice,
            json!({"is_group": false, "participants": [bob.id]}),
        )
        .await;
    let conv = created.ok(201).clone();
    assert_eq!(conv["is_group"], false);
    assert_eq!(
        conv["participants"].as_array().expect("participants").len(),
        2
    );
    let again = app
        .post(
            "/api/chat/conversations/",
            &bob,
            json!({"is_group": false, "participants": [alice.id]}),
        )
        .await;
    assert_eq!(again.ok(200)["id"], conv["id"]);
    let cid = conv["id"].as_str().expect("id").to_owned();

    // They exchange 60 messages; seq is dense from 1.
    for i in 1..=60 {
        let sender = if i % 2 == 0 { &bob } else { &alice };
        let m = app
            .send(sender, cid.parse().expect("uuid"), &format!("message {i}"))
            .await;
        assert_eq!(m["seq"], i);
        assert_eq!(m["sender"], sender.id.to_string());
        assert_eq!(m["text"], format!("message {i}"));
    }

    // Newest page first, then page back by seq.
    let page = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?limit=25"),
            &bob,
        )
        .await;
    let newest = page.ok(200).as_array().expect("page").clone();
    assert_eq!(page.headers["x-has-more"], "true");
    let seqs: Vec<i64> = newest
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (36..=60).collect::<Vec<_>>());
    let older = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?limit=25&before=36"),
            &bob,
        )
        .await;
    let seqs: Vec<i64> = older
        .ok(200)
        .as_array()
        .expect("page")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (11..=35).collect::<Vec<_>>());
    let oldest = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?limit=25&before=11"),
            &bob,
        )
        .await;
    assert_eq!(oldest.ok(200).as_array().expect("page").len(), 10);
    assert_eq!(oldest.headers["x-has-more"], "false");
    let after = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?after=58"),
            &bob,
        )
        .await;
    let seqs: Vec<i64> = after
        .ok(200)
        .as_array()
        .expect("page")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![59, 60]);

    // Time filters: everything was created just now.
    let since = chrono_like_now_minus_minutes(5);
    let filtered = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?since={since}&limit=200"),
            &bob,
        )
        .await;
    assert_eq!(filtered.ok(200).as_array().expect("page").len(), 60);
    let until = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/?until={since}&limit=200"),
            &bob,
        )
        .await;
    assert_eq!(until.ok(200).as_array().expect("page").len(), 0);

    // Unread counts: each has 30 unread messages from the other; the preview is the last.
    let list = app.get("/api/chat/conversations/", &bob).await;
    let entry = list.ok(200).as_array().expect("list")[0].clone();
    assert_eq!(entry["unread_count"], 30);
    assert_eq!(entry["last_message"]["seq"], 60);
    assert_eq!(entry["last_message"]["text"], "message 60");

    // Message 59 is Alice's: Bob has neither received nor read it yet.
    let m59 = &newest[newest.len() - 2];
    assert_eq!(m59["sender"], alice.id.to_string());
    assert_eq!(
        m59["statuses"],
        json!([{"user_id": bob.id, "status": "sent"}])
    );

    // Bob's device gets it: delivered. Then he reads up to 59: read.
    let d = app
        .post(
            &format!("/api/chat/conversations/{cid}/delivered"),
            &bob,
            json!({"seq": 60}),
        )
        .await;
    assert_eq!(d.ok(200)["last_delivered_seq"], 60);
    let mid = m59["id"].as_str().expect("id");
    let st = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/{mid}/statuses/"),
            &alice,
        )
        .await;
    assert_eq!(
        st.ok(200)["statuses"],
        json!([{"user_id": bob.id, "status": "delivered"}])
    );
    let r = app
        .post(
            &format!("/api/chat/conversations/{cid}/read"),
            &bob,
            json!({"seq": 59}),
        )
        .await;
    assert_eq!(r.ok(200)["last_read_seq"], 59);
    let st = app
        .get(
            &format!("/api/chat/conversations/{cid}/messages/{mid}/statuses/"),
            &alice,
        )
        .await;
    assert_eq!(
        st.ok(200)["statuses"],
        json!([{"user_id": bob.id, "status": "read"}])
    );

    // Bob read everything of Alice's up to 59; message 60 is his own: nothing unread.
    let list = app.get("/api/chat/conversations/", &bob).await;
    assert_eq!(list.ok(200)[0]["unread_count"], 0);
    // Watermarks never move back, and are clamped to the last message.
    let r = app
        .post(
            &format!("/api/chat/conversations/{cid}/read"),
            &bob,
            json!({"seq": 3}),
        )
        .await;
    assert_eq!(r.ok(200)["last_read_seq"], 59);
    let r = app
        .post(
            &format!("/api/chat/conversations/{cid}/read"),
            &bob,
            json!({"seq": 1000}),
        )
        .await;
    assert_eq!(r.ok(200)["last_read_seq"], 60);
    let list = app.get("/api/chat/conversations/", &alice).await;
    assert_eq!(list.ok(200)[0]["unread_count"], 30);

    // Edit and delete: the seq stays, the text changes or goes.
    let mine = newest.last().expect("last").clone();
    let mine_id = mine["id"].as_str().expect("id");
    let edited = app
        .patch(
            &format!("/api/chat/conversations/{cid}/messages/{mine_id}/"),
            &bob,
            json!({"text": "edited"}),
        )
        .await;
    assert_eq!(edited.ok(200)["text"], "edited");
    assert!(edited.body["edited_at"].is_string());
    let deleted = app
        .delete(
            &format!("/api/chat/conversations/{cid}/messages/{mine_id}/"),
            &bob,
        )
        .await;
    assert_eq!(deleted.ok(200)["text"], "");
    assert!(deleted.body["deleted_at"].is_string());
    assert_eq!(deleted.body["seq"], 60);
    let edit_deleted = app
        .patch(
            &format!("/api/chat/conversations/{cid}/messages/{mine_id}/"),
            &bob,
            json!({"text": "again"}),
        )
        .await;
    assert_eq!(edit_deleted.problem(409), "message_deleted");

    // A reply names its parent.
    let reply = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"text": "replying", "reply_to": mid}),
        )
        .await;
    assert_eq!(reply.ok(201)["reply_to"], mid);
    assert_eq!(reply.body["seq"], 61);

    // Logout revokes the session: the old token stops working at once.
    let out = app
        .raw(Method::POST, "/api/auth/logout", Some(&alice.token), None)
        .await;
    assert_eq!(out.status.as_u16(), 204);
    let after_logout = app.get("/api/users/me", &alice).await;
    assert_eq!(after_logout.problem(401), "unauthenticated");
    let refresh = app
        .raw(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": alice.refresh_token})),
        )
        .await;
    assert_eq!(refresh.problem(401), "unauthenticated");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_are_single_use() {
    let app = TestApp::spawn().await.expect("app");
    let carol = app.user("carol").await;
    let first = app
        .raw(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": carol.refresh_token})),
        )
        .await;
    let body = first.ok(200).clone();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().expect("expires_in") > 0);
    let new_access = body["access_token"].as_str().expect("token");
    let me = app
        .raw(Method::GET, "/api/users/me", Some(new_access), None)
        .await;
    assert_eq!(me.ok(200)["username"], carol.username);
    let reuse = app
        .raw(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": carol.refresh_token})),
        )
        .await;
    assert_eq!(reuse.problem(401), "unauthenticated");
}

#[tokio::test]
async fn registration_and_login_errors_are_clear() {
    let app = TestApp::spawn().await.expect("app");
    let dave = app.user("dave").await;
    let taken = app
        .raw(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": dave.username.to_uppercase(), "password": "another password"})),
        )
        .await;
    assert_eq!(taken.problem(409), "username_taken");
    let wrong = app
        .raw(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": dave.username, "password": "nope nope nope"})),
        )
        .await;
    assert_eq!(wrong.problem(401), "invalid_credentials");
    let unknown = app
        .raw(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "nobody_here", "password": "nope nope nope"})),
        )
        .await;
    assert_eq!(unknown.problem(401), "invalid_credentials");
    let short = app
        .raw(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": "eve_new", "password": "short"})),
        )
        .await;
    assert_eq!(short.problem(422), "validation_failed");
    assert_eq!(short.body["errors"][0]["field"], "password");
}

/// RFC 3339 for "five minutes ago", URL-safe (no `+`).
fn chrono_like_now_minus_minutes(minutes: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        - minutes * 60;
    let days = now.div_euclid(86_400);
    let secs = now.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
