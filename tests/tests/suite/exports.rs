//! Exports of a 100,000-message conversation by real worker processes: exactly the
//! visible messages in both formats, bounded memory, and one correct file after the
//! worker running it is killed.

use std::time::Duration;

use chat_tests::fleet::Worker;
use chat_tests::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

const TOTAL: i64 = 100_000;

/// Fills a conversation with TOTAL messages straight in SQL: every 100th hidden, every
/// 777th deleted, every 1000th starting like a spreadsheet formula. Returns the seqs
/// that an export must contain.
async fn fill(app: &TestApp, cid: Uuid, sender: &TestUser) -> Vec<i64> {
    let pool = app.service.store().pool();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, kind, text, moderation, deleted_at, created_at)
         SELECT gen_random_uuid(), $1, g, $2, 'text',
                CASE WHEN g % 1000 = 0 THEN '=HYPERLINK(\"x\") ' || g ELSE 'message ' || g END,
                CASE WHEN g % 100 = 0 THEN 'hidden' ELSE 'visible' END,
                CASE WHEN g % 777 = 0 THEN now() END,
                now() - make_interval(secs => $3 - g)
           FROM generate_series(1, $3) AS g",
    )
    .bind(cid)
    .bind(sender.id)
    .bind(TOTAL)
    .execute(pool)
    .await
    .expect("fill");
    sqlx::query("UPDATE conversations SET last_seq = $2 WHERE id = $1")
        .bind(cid)
        .bind(TOTAL)
        .execute(pool)
        .await
        .expect("seq");
    (1..=TOTAL)
        .filter(|g| g % 100 != 0 && g % 777 != 0)
        .collect()
}

async fn wait_export(
    app: &TestApp,
    user: &TestUser,
    cid: Uuid,
    id: &str,
    until: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..3000 {
        let e = app
            .get(&format!("/api/chat/conversations/{cid}/exports/{id}"), user)
            .await;
        let body = e.ok(200).clone();
        if until(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("export {id} did not get there in time");
}

async fn download(app: &TestApp, user: &TestUser, cid: Uuid, id: &str) -> Vec<u8> {
    let resp = app
        .http
        .get(format!(
            "{}/api/chat/conversations/{cid}/exports/{id}/download",
            app.base
        ))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    resp.bytes().await.expect("bytes").to_vec()
}

#[tokio::test]
async fn a_killed_worker_s_export_is_retried_into_one_correct_file() {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let reader = app.user("reader").await;
    let outsider = app.user("outsider").await;
    let cid = app.group(&owner, &[&reader]).await;
    let visible = fill(&app, cid, &owner).await;

    // CSV through the seed-002 alias, with a worker that dies half-way.
    let mut first = Worker::spawn(&app.settings).await.expect("worker");
    let queued = app
        .get(
            &format!("/api/chat/channels/{cid}/export/?formato=csv"),
            &reader,
        )
        .await;
    let export = queued.ok(202).clone();
    assert_eq!(export["state"], "queued");
    let id = export["id"].as_str().expect("id").to_owned();
    // A client written from the seed finds the job to poll in `Location` and the body.
    let job = format!("/api/chat/conversations/{cid}/exports/{id}");
    assert_eq!(queued.headers["location"], job.as_str());
    assert_eq!(export["url"], job.as_str());
    assert_eq!(app.get(&job, &reader).await.ok(200)["id"], id.as_str());
    let running = wait_export(&app, &reader, cid, &id, |e| {
        e["state"] == "running" && e["progress"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(running["total"], visible.len());
    first.kill().await;
    let second = Worker::spawn(&app.settings).await.expect("second worker");
    let done = wait_export(&app, &reader, cid, &id, |e| e["state"] == "done").await;
    assert!(done["attempts"].as_i64().expect("attempts") >= 2, "{done}");
    assert_eq!(done["row_count"], visible.len());
    let peak = second.peak_rss_kib().expect("rss");
    eprintln!("peak RSS of the worker that ran the whole export: {peak} KiB");
    assert!(
        peak < 200 * 1024,
        "worker memory is not bounded: {peak} KiB"
    );

    let csv = download(&app, &reader, cid, &id).await;
    let mut rows = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(
        rows.headers().expect("header").iter().collect::<Vec<_>>(),
        ["id", "remetente", "tipo", "conteudo", "timestamp"]
    );
    let records: Vec<csv::StringRecord> = rows.records().map(|r| r.expect("record")).collect();
    assert_eq!(
        records.len(),
        visible.len(),
        "exactly the visible messages, once each"
    );
    let texts: Vec<&str> = records.iter().map(|r| &r[3]).collect();
    let expected: Vec<String> = visible
        .iter()
        .map(|g| {
            if g % 1000 == 0 {
                format!("'=HYPERLINK(\"x\") {g}")
            } else {
                format!("message {g}")
            }
        })
        .collect();
    assert!(
        texts.iter().zip(&expected).all(|(a, b)| a == b),
        "rows out of order or not escaped"
    );
    assert!(
        records
            .iter()
            .all(|r| &r[1] == owner.username.as_str() && &r[2] == "text")
    );

    // Only participants see or download it.
    let path = format!("/api/chat/conversations/{cid}/exports/{id}");
    assert_eq!(app.get(&path, &outsider).await.problem(404), "not_found");
    assert_eq!(
        app.get(&format!("{path}/download"), &outsider)
            .await
            .problem(404),
        "not_found"
    );
    assert_eq!(
        app.get(
            &format!("/api/chat/channels/{cid}/export/?formato=csv"),
            &outsider
        )
        .await
        .problem(404),
        "not_found"
    );
    let refused = app
        .post(
            &format!("/api/chat/conversations/{cid}/exports/"),
            &outsider,
            json!({"format": "csv"}),
        )
        .await;
    assert_eq!(refused.problem(404), "not_found");

    // JSON through the canonical endpoint, with a time window.
    let queued = app
        .post(
            &format!("/api/chat/conversations/{cid}/exports/"),
            &owner,
            json!({"format": "json"}),
        )
        .await;
    let id = queued.ok(202)["id"].as_str().expect("id").to_owned();
    assert_eq!(
        queued.headers["location"],
        format!("/api/chat/conversations/{cid}/exports/{id}").as_str()
    );
    let done = wait_export(&app, &owner, cid, &id, |e| e["state"] == "done").await;
    assert_eq!(done["row_count"], visible.len());
    let body = download(&app, &owner, cid, &id).await;
    let parsed: Vec<Value> = serde_json::from_slice(&body).expect("one JSON array");
    assert_eq!(parsed.len(), visible.len());
    assert_eq!(parsed[0]["conteudo"], "message 1");
    for field in ["id", "remetente", "tipo", "conteudo", "timestamp"] {
        assert!(parsed[0].get(field).is_some(), "{field}");
    }
    assert_eq!(
        app.get(
            &format!("/api/chat/channels/{cid}/export/?formato=xml"),
            &owner
        )
        .await
        .problem(422),
        "validation_failed"
    );
}

#[tokio::test]
async fn two_workers_share_the_queues_without_running_a_job_twice() {
    let app = TestApp::spawn().await.expect("app");
    let _a = Worker::spawn(&app.settings).await.expect("worker a");
    let _b = Worker::spawn(&app.settings).await.expect("worker b");
    let owner = app.user("owner").await;
    let other = app.user("other").await;
    let cid = app.group(&owner, &[&other]).await;
    for i in 0..20 {
        app.send(&owner, cid, &format!("m{i}")).await;
    }
    let mut ids = Vec::new();
    for i in 0..16 {
        let format = if i % 2 == 0 { "csv" } else { "json" };
        let queued = app
            .post(
                &format!("/api/chat/conversations/{cid}/exports/"),
                &owner,
                json!({"format": format}),
            )
            .await;
        ids.push(queued.ok(202)["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        let done = wait_export(&app, &owner, cid, id, |e| e["state"] == "done").await;
        // Started exactly once: no job ran on both workers.
        assert_eq!(done["attempts"], 1, "{done}");
        assert_eq!(done["row_count"], 20);
    }
}

#[tokio::test]
async fn the_export_get_is_safe_to_repeat_and_to_link_to() {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let cid = app.group(&owner, &[&member]).await;
    app.send(&owner, cid, "something to export").await;
    // No worker: the exports stay queued.
    let path = format!("/api/chat/channels/{cid}/export/?formato=csv");
    let first = app.get(&path, &member).await.ok(202).clone();
    let again = app.get(&path, &member).await.ok(202).clone();
    assert_eq!(
        first["id"], again["id"],
        "the same request is the same export"
    );
    let post = app
        .post(
            &format!("/api/chat/conversations/{cid}/exports/"),
            &member,
            json!({"format": "csv"}),
        )
        .await;
    assert_eq!(post.ok(202)["id"], first["id"], "whichever way it is asked");
    // Different requests are different exports, up to three unfinished at once.
    let json_export = app
        .get(
            &format!("/api/chat/channels/{cid}/export/?formato=json"),
            &member,
        )
        .await;
    assert_ne!(json_export.ok(202)["id"], first["id"]);
    let ranged = app
        .get(
            &format!("/api/chat/channels/{cid}/export/?formato=json&desde=2020-01-01"),
            &member,
        )
        .await;
    ranged.ok(202);
    let fourth = app
        .get(
            &format!("/api/chat/channels/{cid}/export/?formato=json&desde=2021-01-01"),
            &member,
        )
        .await;
    assert_eq!(fourth.problem(409), "too_many_exports");
    // Another user has their own allowance.
    app.get(&path, &owner).await.ok(202);

    // With the session cookie, a page of another site could make the browser send this
    // GET (a link, an <img>): without the CSRF header it is refused.
    let cookie = format!("chat_token={}", owner.token);
    let forged = app
        .http
        .get(format!(
            "{}/api/chat/channels/{cid}/export/?formato=json",
            app.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 403);
    let own_page = app
        .http
        .get(format!(
            "{}/api/chat/channels/{cid}/export/?formato=json",
            app.base
        ))
        .header("cookie", &cookie)
        .header("x-requested-with", "chat")
        .send()
        .await
        .expect("own page");
    assert_eq!(own_page.status(), 202);
}
