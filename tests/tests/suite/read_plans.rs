//! Reads whose cost is bounded by their page, not by the conversation: each hot statement
//! is `EXPLAIN ANALYZE`d as a prepared statement under `plan_cache_mode =
//! force_generic_plan` (the plan PostgreSQL switches to after a few executions) in a
//! conversation of 100,000 messages, beside another as large, and must read no more
//! rows than a few pages' worth.

use chat_store::conversations::{
    CONVERSATION_LIST, LAST_MESSAGES, PARTICIPANT_PREVIEWS, UNREAD_CAP, UNREAD_WINDOW,
};
use chat_store::messages::{
    FIRST_SEQ_SINCE, HISTORY_BACKWARD, HISTORY_FORWARD, LAST_SEQ_UNTIL, REPLIES,
};
use chat_store::search::{Hit, SEARCH};
use chat_tests::{TestApp, TestUser};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

const TOTAL: i64 = 100_000;
/// The page the API asks for: 50 messages, plus one to know whether there are more.
const PAGE: i64 = 51;

/// Fills a conversation with TOTAL messages, one a second ending now: every 100th hidden,
/// every 10th a reply to the first, every 1,000th with the word "rare"; all searchable.
/// Returns the first message's id.
async fn fill(app: &TestApp, cid: Uuid, sender: &TestUser) -> Uuid {
    let pool = app.service.store().pool();
    let root = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, text, created_at)
         VALUES ($1, $2, 1, $3, 'root', now() - make_interval(secs => $4))",
    )
    .bind(root)
    .bind(cid)
    .bind(sender.id)
    .bind(TOTAL as f64)
    .execute(pool)
    .await
    .expect("root");
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, text, moderation, reply_to, created_at)
         SELECT gen_random_uuid(), $1, g, $2,
                'message ' || g || CASE WHEN g % 1000 = 7 THEN ' rare' ELSE '' END,
                CASE WHEN g % 100 = 0 THEN 'hidden' ELSE 'visible' END,
                CASE WHEN g % 10 = 0 THEN $4 END,
                now() - make_interval(secs => $3 - g)
           FROM generate_series(2, $3) AS g",
    )
    .bind(cid)
    .bind(sender.id)
    .bind(TOTAL)
    .bind(root)
    .execute(pool)
    .await
    .expect("fill");
    sqlx::query("UPDATE messages SET search = chat_search_vector(text) WHERE conversation_id = $1")
        .bind(cid)
        .execute(pool)
        .await
        .expect("index");
    sqlx::query("UPDATE conversations SET last_seq = $2 WHERE id = $1")
        .bind(cid)
        .bind(TOTAL)
        .execute(pool)
        .await
        .expect("seq");
    root
}

/// Rows a plan node and its children read: what they returned plus what their filters
/// threw away, for every loop.
fn rows_read(node: &Value) -> f64 {
    let n = |k: &str| node[k].as_f64().unwrap_or(0.0);
    let loops = n("Actual Loops").max(1.0);
    let here = if node["Node Type"]
        .as_str()
        .unwrap_or_default()
        .contains("Scan")
    {
        (n("Actual Rows") + n("Rows Removed by Filter") + n("Rows Removed by Index Recheck"))
            * loops
    } else {
        0.0
    };
    here + node["Plans"]
        .as_array()
        .map(|children| children.iter().map(rows_read).sum())
        .unwrap_or(0.0)
}

/// `EXPLAIN ANALYZE` of `sql` prepared, with its generic plan, run with `args` (SQL
/// literals); returns the plan and the rows it read.
async fn generic_plan(conn: &mut PgConnection, name: &str, sql: &str, args: &str) -> (Value, f64) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE {name} AS {sql}"
    )))
    .execute(&mut *conn)
    .await
    .expect("prepare");
    let explained: Value = sqlx::query_scalar(AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})"
    )))
    .fetch_one(&mut *conn)
    .await
    .expect("explain");
    let plan = explained[0]["Plan"].clone();
    let read = rows_read(&plan);
    (plan, read)
}

#[tokio::test]
async fn hot_reads_have_plans_bounded_by_the_page_in_a_conversation_of_100000_messages() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.group(&alice, &[&bob]).await;
    let other = app.group(&bob, &[&alice]).await;
    let root = fill(&app, cid, &alice).await;
    fill(&app, other, &bob).await;
    sqlx::query("ANALYZE messages")
        .execute(app.service.store().pool())
        .await
        .expect("analyze");

    let mut conn = PgConnection::connect(&app.settings.database_url)
        .await
        .expect("connect");
    let max = i64::MAX;
    let middle = format!("now() - interval '{} seconds'", TOTAL / 2);
    let both = format!("'{{{cid},{other}}}'::uuid[]");
    // (what, statement, arguments, rows it returns, rows it may read)
    let list_bound = 2.0 * (UNREAD_WINDOW + UNREAD_CAP) as f64 + 50.0;
    let mut listed: Vec<(&str, &str, String, f64, f64)> = vec![
        // Bob has read nothing of 200,000 messages: his unread counts stop at the window.
        (
            "the conversation list",
            CONVERSATION_LIST,
            format!(
                "'{}', NULL, NULL, 50, 0, NULL, {UNREAD_WINDOW}, {UNREAD_CAP}",
                bob.id
            ),
            2.0,
            list_bound,
        ),
        ("last messages", LAST_MESSAGES, both.clone(), 2.0, 12.0),
        (
            "participant previews",
            PARTICIPANT_PREVIEWS,
            format!("{both}, 10"),
            4.0,
            20.0,
        ),
    ];
    // Search reads its matches through the GIN index, never the conversations: "rare" is
    // in 200 of Bob's 200,000 messages. A deep page, after the 150th hit,
    // reads no more than the first.
    let hits: Vec<Hit> = sqlx::query_as(SEARCH)
        .bind(bob.id)
        .bind("rare")
        .bind(150_i64)
        .bind(None::<f32>)
        .bind(None::<chrono::DateTime<chrono::Utc>>)
        .bind(None::<Uuid>)
        .fetch_all(&mut conn)
        .await
        .expect("search");
    assert_eq!(hits.len(), 150);
    let deep = hits.last().expect("hit").position();
    let matches = 2.0 * (TOTAL / 1000) as f64;
    let search_bound = 3.0 * matches + 10.0;
    listed.extend([
        (
            "a search",
            SEARCH,
            format!("'{}', 'rare', 20, NULL, NULL, NULL", bob.id),
            20.0,
            search_bound,
        ),
        (
            "a search page deep down",
            SEARCH,
            format!(
                "'{}', 'rare', 20, {:?}, '{}', '{}'",
                bob.id,
                deep.rank,
                deep.created_at.to_rfc3339(),
                deep.id.as_uuid()
            ),
            20.0,
            search_bound,
        ),
    ]);
    let cases: Vec<(&str, &str, String, f64)> = vec![
        // The newest page, a page in the middle, and moderators' pages with hidden ones.
        (
            "latest page",
            HISTORY_BACKWARD,
            format!("'{cid}', 0, {max}, false, {PAGE}"),
            PAGE as f64,
        ),
        (
            "a page back",
            HISTORY_BACKWARD,
            format!("'{cid}', 0, {}, false, {PAGE}", TOTAL / 2),
            PAGE as f64,
        ),
        (
            "a page with hidden messages",
            HISTORY_BACKWARD,
            format!("'{cid}', 0, {max}, true, {PAGE}"),
            PAGE as f64,
        ),
        // Catching up from an old seq (resume, `after`).
        (
            "catching up",
            HISTORY_FORWARD,
            format!("'{cid}', 10, {max}, false, {PAGE}"),
            PAGE as f64,
        ),
        (
            "a page between two seqs",
            HISTORY_FORWARD,
            format!("'{cid}', 40000, 60000, false, {PAGE}"),
            PAGE as f64,
        ),
        // `since` and `until`, each resolved to a seq by one probe.
        ("since", FIRST_SEQ_SINCE, format!("'{cid}', {middle}"), 1.0),
        ("until", LAST_SEQ_UNTIL, format!("'{cid}', {middle}"), 1.0),
        // A thread of 10,000 replies, from its start and from the middle.
        (
            "a thread",
            REPLIES,
            format!("'{cid}', '{root}', 0, false, {PAGE}"),
            PAGE as f64,
        ),
        (
            "a thread further on",
            REPLIES,
            format!("'{cid}', '{root}', 50000, false, {PAGE}"),
            PAGE as f64,
        ),
    ];
    // One row in a hundred is hidden: a page reads a few more than it returns.
    let paged = cases
        .into_iter()
        .map(|(what, sql, args, returned)| (what, sql, args, returned, 2.0 * returned + 10.0));
    for (i, (what, sql, args, returned, bound)) in paged.chain(listed).enumerate() {
        let (plan, read) = generic_plan(&mut conn, &format!("case_{i}"), sql, &args).await;
        println!("{what}: {read} rows read for {returned} (bound {bound})");
        assert!(
            read <= bound,
            "{what}: the generic plan reads {read} rows for a page of {returned}:\n{plan:#}"
        );
        assert!(
            plan["Actual Rows"].as_f64().unwrap_or(0.0) >= returned.min(1.0),
            "{what}: found nothing, so the bound proves nothing:\n{plan:#}"
        );
    }
}
