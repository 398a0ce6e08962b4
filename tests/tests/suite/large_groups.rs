//! A group of 1,000: its pages and listings stay the size of a small group's (counts
//! instead of one status per recipient, a bounded preview of participants), and the
//! per-recipient detail is paged by its own endpoints.

use std::collections::BTreeSet;

use chat_tests::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

const MEMBERS: usize = 1000;

/// `n` accounts straight in SQL (hashing a thousand passwords would take the test's time):
/// they exist, and are only ever talked about, never logged in.
async fn accounts(app: &TestApp, n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let names: Vec<String> = ids
        .iter()
        .map(|id| format!("m_{}", &id.simple().to_string()[20..]))
        .collect();
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash)
         SELECT id, name, name, 'not-a-hash' FROM unnest($1::uuid[], $2::text[]) AS u(id, name)",
    )
    .bind(&ids)
    .bind(&names)
    .execute(app.service.store().pool())
    .await
    .expect("accounts");
    ids
}

/// The bytes of the newest page of 50 messages.
async fn page_bytes(app: &TestApp, user: &TestUser, cid: Uuid) -> (usize, Vec<Value>) {
    let resp = app
        .http
        .get(format!(
            "{}/api/chat/conversations/{cid}/messages/?limit=50",
            app.base
        ))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.expect("body");
    let page: Vec<Value> = serde_json::from_slice(&body).expect("json");
    (body.len(), page)
}

/// Everything an endpoint pages with `after`, until a short page (or no `next`).
async fn all_pages(app: &TestApp, user: &TestUser, path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..20 {
        let url = match &after {
            Some(a) => format!("{path}?limit=200&after={a}"),
            None => format!("{path}?limit=200"),
        };
        let answer = app.get(&url, user).await;
        let body = answer.ok(200).clone();
        let (items, next) = match body {
            Value::Array(items) => {
                let next = (items.len() == 200)
                    .then(|| items[199]["user_id"].as_str().map(str::to_owned))
                    .flatten();
                (items, next)
            }
            page => (
                page["statuses"].as_array().expect("statuses").clone(),
                page["next"].as_str().map(str::to_owned),
            ),
        };
        assert!(items.len() <= 200, "a page is bounded");
        all.extend(items);
        match next {
            Some(n) => after = Some(n),
            None => return all,
        }
    }
    panic!("{path} never ended");
}

#[tokio::test]
async fn a_thousand_member_group_reads_like_a_small_one() {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let reader = app.user("reader").await;
    let outsider = app.user("outsider").await;
    let mut members = accounts(&app, MEMBERS - 2).await;
    members.push(reader.id);
    let created = app
        .post(
            "/api/chat/conversations/",
            &owner,
            json!({"name": "everyone", "is_group": true, "participants": members}),
        )
        .await;
    let big: Uuid = created.ok(201)["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let small = app.direct(&owner, &reader).await;
    for cid in [big, small] {
        for i in 0..50 {
            app.send(&owner, cid, &format!("message number {i} of the day"))
                .await;
        }
    }
    // Three members read everything in the big group (two here, the reader by the API).
    for user in &members[..2] {
        sqlx::query(
            "UPDATE participants SET last_read_seq = 50, last_delivered_seq = 50
              WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(big)
        .bind(user)
        .execute(app.service.store().pool())
        .await
        .expect("read");
    }
    app.post(
        &format!("/api/chat/conversations/{big}/read"),
        &reader,
        json!({"seq": 50}),
    )
    .await
    .ok(200);

    // Pages: counts instead of a thousand statuses per message.
    let (big_bytes, big_page) = page_bytes(&app, &owner, big).await;
    let (small_bytes, small_page) = page_bytes(&app, &owner, small).await;
    println!(
        "a page of 50: {big_bytes} bytes in a group of {MEMBERS}, {small_bytes} in a direct conversation"
    );
    assert!(
        big_bytes <= 2 * small_bytes,
        "{big_bytes} bytes in the large group against {small_bytes}"
    );
    let newest = big_page.last().expect("messages");
    assert_eq!(
        newest["delivery"],
        json!({"state": "sent", "recipients": MEMBERS - 1, "delivered": 3, "read": 3})
    );
    assert_eq!(newest["statuses"], json!([]));
    let direct = small_page.last().expect("messages");
    assert_eq!(direct["delivery"]["recipients"], 1);
    assert_eq!(direct["statuses"].as_array().map(Vec::len), Some(1));

    // The per-recipient detail, paged: every recipient once, in user id order.
    let message_id = newest["id"].as_str().expect("id");
    let statuses = all_pages(
        &app,
        &owner,
        &format!("/api/chat/conversations/{big}/messages/{message_id}/statuses/"),
    )
    .await;
    let ids: Vec<&str> = statuses
        .iter()
        .map(|s| s["user_id"].as_str().expect("user"))
        .collect();
    assert_eq!(ids.len(), MEMBERS - 1);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in user id order, once each"
    );
    assert!(
        !ids.contains(&owner.id.to_string().as_str()),
        "not the sender"
    );
    let read: usize = statuses.iter().filter(|s| s["status"] == "read").count();
    assert_eq!(read, 3);

    // The listing: the count and a preview; participants paged by their endpoint.
    let list = app.get("/api/chat/conversations/", &owner).await;
    let listed = list
        .ok(200)
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["id"] == big.to_string())
        .expect("listed")
        .clone();
    assert_eq!(listed["participant_count"], MEMBERS);
    assert_eq!(listed["participants"].as_array().map(Vec::len), Some(10));
    let participants = all_pages(
        &app,
        &reader,
        &format!("/api/chat/conversations/{big}/participants/"),
    )
    .await;
    let unique: BTreeSet<&str> = participants
        .iter()
        .map(|p| p["user_id"].as_str().expect("user"))
        .collect();
    assert_eq!(unique.len(), MEMBERS);
    assert_eq!(participants.len(), MEMBERS);
    // Unread counts stop at 100 ("99+"), however far behind the reader is.
    let unread = |list: &Value, cid: Uuid| {
        list.as_array()
            .expect("list")
            .iter()
            .find(|c| c["id"] == cid.to_string())
            .map(|c| c["unread_count"].clone())
    };
    let before = app.get("/api/chat/conversations/", &reader).await;
    assert_eq!(unread(before.ok(200), small), Some(json!(50)));
    for i in 0..60 {
        app.send(&owner, small, &format!("more {i}")).await;
    }
    let after = app.get("/api/chat/conversations/", &reader).await;
    assert_eq!(unread(after.ok(200), small), Some(json!(100)));
    assert_eq!(
        unread(after.ok(200), big),
        Some(json!(0)),
        "read in the big group"
    );

    // Counted when members come and go.
    let removed = app
        .delete(
            &format!("/api/chat/conversations/{big}/participants/{}/", reader.id),
            &owner,
        )
        .await;
    assert!(removed.status.is_success(), "{removed:?}");
    let one = app
        .get(&format!("/api/chat/conversations/{big}/"), &owner)
        .await;
    assert_eq!(one.ok(200)["participant_count"], MEMBERS - 1);

    // Bad pages and strangers.
    let bad = app
        .get(
            &format!("/api/chat/conversations/{big}/participants/?limit=0"),
            &owner,
        )
        .await;
    bad.problem(422);
    let bad = app
        .get(
            &format!("/api/chat/conversations/{big}/messages/{message_id}/statuses/?limit=0"),
            &owner,
        )
        .await;
    bad.problem(422);
    for path in [
        format!("/api/chat/conversations/{big}/participants/?limit=5"),
        format!("/api/chat/conversations/{big}/messages/{message_id}/statuses/?limit=5"),
    ] {
        let refused = app.get(&path, &outsider).await;
        assert_eq!(refused.problem(404), "not_found", "{path}");
    }
}
