//! Each process caches live sessions and memberships; a logout, a removal or a role
//! change made through one replica holds on another within a second. The other replica
//! here trusts its cache for a minute, so only the invalidation it reads over Redis can
//! make it refuse in time.

use std::time::{Duration, Instant};

use chat_tests::{TestApp, TestUser};
use reqwest::Method;
use serde_json::json;

/// Polls `path` on `base` as `user` until it answers `status`; returns how long it took.
async fn refused_within(
    app: &TestApp,
    base: &str,
    user: &TestUser,
    path: &str,
    status: u16,
) -> Duration {
    let start = Instant::now();
    loop {
        let answer = app
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("request");
        if answer.status().as_u16() == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} still answers {} after 5 s",
            answer.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ok_on(app: &TestApp, base: &str, user: &TestUser, path: &str) {
    let answer = app
        .http
        .get(format!("{base}{path}"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 200, "{path}");
}

#[tokio::test]
async fn logout_removal_and_demotion_hold_on_every_replica_within_a_second() {
    let app = TestApp::spawn().await.expect("app");
    let other = app
        .replica(|s| s.access_cache_ms = 60_000)
        .await
        .expect("replica");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let group = app.group(&alice, &[&bob, &carol]).await;
    app.send(&alice, group, "hello").await;
    let history = format!("/api/chat/conversations/{group}/messages/");
    let flags = format!("/api/chat/conversations/{group}/flags/");

    // A removal: bob reads through the other replica (now cached there), alice removes
    // him through this one.
    ok_on(&app, &other, &bob, &history).await;
    ok_on(&app, &other, &bob, &history).await;
    let removed = app
        .delete(
            &format!("/api/chat/conversations/{group}/participants/{}/", bob.id),
            &alice,
        )
        .await;
    assert!(removed.status.is_success(), "{removed:?}");
    let took = refused_within(&app, &other, &bob, &history, 404).await;
    println!("removal held on the other replica after {took:?}");
    assert!(took < Duration::from_secs(1), "removal took {took:?}");

    // A demotion: carol, a moderator, reviews flags there; alice makes her a member.
    let promoted = app
        .patch(
            &format!("/api/chat/conversations/{group}/participants/{}/", carol.id),
            &alice,
            json!({"role": "moderator"}),
        )
        .await;
    promoted.ok(200);
    ok_on(&app, &other, &carol, &flags).await;
    ok_on(&app, &other, &carol, &flags).await;
    let demoted = app
        .patch(
            &format!("/api/chat/conversations/{group}/participants/{}/", carol.id),
            &alice,
            json!({"role": "member"}),
        )
        .await;
    demoted.ok(200);
    let took = refused_within(&app, &other, &carol, &flags, 403).await;
    println!("demotion held on the other replica after {took:?}");
    assert!(took < Duration::from_secs(1), "demotion took {took:?}");

    // A logout: alice's session, cached there, ends here.
    ok_on(&app, &other, &alice, "/api/users/me").await;
    let out = app
        .raw(Method::POST, "/api/auth/logout", Some(&alice.token), None)
        .await;
    assert!(out.status.is_success(), "{out:?}");
    let took = refused_within(&app, &other, &alice, "/api/users/me", 401).await;
    println!("logout held on the other replica after {took:?}");
    assert!(took < Duration::from_secs(1), "logout took {took:?}");
}
