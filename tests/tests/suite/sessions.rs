//! Sessions that end when they should: logout with only the refresh cookie left, replayed
//! refresh tokens ending their session, an absolute lifetime, listing and revoking one's
//! sessions, and changing the password.

use chat_tests::{TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};

/// The `name=value` of a cookie in a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

async fn login_as(app: &TestApp, user: &TestUser, user_agent: &str) -> Value {
    app.http
        .post(format!("{}/api/auth/login", app.base))
        .header("user-agent", user_agent)
        .json(&json!({"username": user.username, "password": "correct horse battery"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens")
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/auth/refresh", app.base))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("refresh")
}

async fn me(app: &TestApp, access_token: &str) -> u16 {
    app.raw(Method::GET, "/api/users/me", Some(access_token), None)
        .await
        .status
        .as_u16()
}

async fn sql(app: &TestApp, statement: &str) {
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.settings.database_url)
        .await
        .expect("database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut db)
        .await
        .expect("statement");
}

#[tokio::test]
async fn web_logout_works_with_only_the_refresh_cookie_left() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let opened = app
        .http
        .post(format!("{}/api/auth/session", app.base))
        .header("x-requested-with", "test")
        .json(&json!({"username": alice.username, "password": "correct horse battery"}))
        .send()
        .await
        .expect("open");
    assert_eq!(opened.status(), 200);
    let access = set_cookie(&opened, "chat_token").expect("access cookie");
    let refresh_cookie = set_cookie(&opened, "chat_refresh").expect("refresh cookie");

    // Without the CSRF header nothing happens.
    let forged = app
        .http
        .delete(format!("{}/api/auth/session", app.base))
        .header("cookie", &refresh_cookie)
        .send()
        .await
        .expect("forged logout");
    assert_eq!(forged.status(), 403);

    // The access cookie has expired and the browser dropped it: the refresh cookie is
    // all the request carries, and it is enough.
    let closed = app
        .http
        .delete(format!("{}/api/auth/session", app.base))
        .header("cookie", &refresh_cookie)
        .header("x-requested-with", "test")
        .send()
        .await
        .expect("logout");
    assert_eq!(closed.status(), 204);
    assert_eq!(
        set_cookie(&closed, "chat_refresh").as_deref(),
        Some("chat_refresh="),
        "the refresh cookie is cleared"
    );
    let again = app
        .http
        .post(format!("{}/api/auth/session/refresh", app.base))
        .header("cookie", &refresh_cookie)
        .header("x-requested-with", "test")
        .send()
        .await
        .expect("refresh");
    assert_eq!(again.status(), 401, "the session is over");
    let token = access.trim_start_matches("chat_token=");
    assert_eq!(me(&app, token).await, 401, "its access token too");

    // With no cookie at all, logout still clears and answers 204.
    let bare = app
        .http
        .delete(format!("{}/api/auth/session", app.base))
        .header("x-requested-with", "test")
        .send()
        .await
        .expect("bare logout");
    assert_eq!(bare.status(), 204);
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_its_session() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let first = refresh(&app, &alice.refresh_token).await;
    assert_eq!(first.status(), 200);
    let second: Value = first.json().await.expect("tokens");
    let current = second["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // Two tabs refreshing at once: the loser is refused, the session lives on.
    assert_eq!(refresh(&app, &alice.refresh_token).await.status(), 401);
    let third: Value = refresh(&app, &current).await.json().await.expect("tokens");
    let current = third["refresh_token"].as_str().expect("refresh").to_owned();
    let access = third["access_token"].as_str().expect("access").to_owned();
    assert_eq!(me(&app, &access).await, 200);

    // Later, the first token comes back: someone kept a copy. The whole session ends.
    sql(
        &app,
        "UPDATE retired_refresh_tokens SET retired_at = now() - interval '1 minute'",
    )
    .await;
    assert_eq!(refresh(&app, &alice.refresh_token).await.status(), 401);
    assert_eq!(
        refresh(&app, &current).await.status(),
        401,
        "the live token of the session no longer works"
    );
    assert_eq!(me(&app, &access).await, 401, "nor its access token");
    // Other sessions of the user are not affected.
    let other = login_as(&app, &alice, "other device").await;
    assert_eq!(
        me(&app, other["access_token"].as_str().expect("access")).await,
        200
    );
}

#[tokio::test]
async fn refreshing_never_outlives_the_absolute_lifetime() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let sessions = app.get("/api/auth/sessions", &alice).await;
    let session = &sessions.ok(200)[0];
    let opened: chrono::DateTime<chrono::Utc> = session["created_at"]
        .as_str()
        .expect("created")
        .parse()
        .expect("date");
    let absolute: chrono::DateTime<chrono::Utc> = session["absolute_expires_at"]
        .as_str()
        .expect("absolute")
        .parse()
        .expect("date");
    let lifetime = (absolute - opened).num_seconds();
    assert!(
        (7195..=7205).contains(&lifetime),
        "the test app's sessions live 7200 s, got {lifetime}"
    );

    // The session is at the end of its life: refreshing cannot extend it.
    sql(
        &app,
        "UPDATE sessions SET absolute_expires_at = now() + interval '30 seconds',
                             expires_at = now() + interval '30 seconds'",
    )
    .await;
    let refreshed: Value = refresh(&app, &alice.refresh_token)
        .await
        .json()
        .await
        .expect("tokens");
    let token = refreshed["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let access = refreshed["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let listed = app
        .raw(Method::GET, "/api/auth/sessions", Some(&access), None)
        .await;
    let session = &listed.ok(200)[0];
    assert_eq!(
        session["expires_at"], session["absolute_expires_at"],
        "a refresh moves the expiry up to the absolute lifetime, not past it"
    );
    sql(
        &app,
        "UPDATE sessions SET absolute_expires_at = now() - interval '1 second',
                             expires_at = now() - interval '1 second'",
    )
    .await;
    assert_eq!(refresh(&app, &token).await.status(), 401);
}

#[tokio::test]
async fn users_list_and_revoke_their_own_sessions_only() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let phone = login_as(&app, &alice, "Phone/1.0").await;
    let phone_token = phone["access_token"].as_str().expect("access").to_owned();

    let listed = app.get("/api/auth/sessions", &alice).await;
    let sessions = listed.ok(200).as_array().expect("list").clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "{sessions:?}"
    );
    let phone_session = sessions
        .iter()
        .find(|s| s["user_agent"] == "Phone/1.0")
        .expect("the phone's session")
        .clone();
    assert_eq!(phone_session["current"], false);
    let path = format!(
        "/api/auth/sessions/{}",
        phone_session["id"].as_str().expect("id")
    );

    // Bob neither sees nor ends Alice's sessions.
    let bobs = app.get("/api/auth/sessions", &bob).await;
    assert_eq!(bobs.ok(200).as_array().map(Vec::len), Some(1));
    assert_eq!(app.delete(&path, &bob).await.problem(404), "not_found");
    assert_eq!(me(&app, &phone_token).await, 200);

    app.delete(&path, &alice).await.ok(204);
    assert_eq!(me(&app, &phone_token).await, 401, "the phone is signed out");
    assert_eq!(me(&app, &alice.token).await, 200, "this session goes on");
    assert_eq!(app.delete(&path, &alice).await.problem(404), "not_found");
    assert_eq!(
        app.get("/api/auth/sessions", &alice)
            .await
            .ok(200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let laptop = login_as(&app, &alice, "Laptop").await;
    let laptop_token = laptop["access_token"].as_str().expect("access").to_owned();
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let wrong = app
        .post(
            "/api/auth/password",
            &alice,
            change("not my password", "a brand new password"),
        )
        .await;
    assert_eq!(wrong.problem(403), "forbidden");
    let weak = app
        .post(
            "/api/auth/password",
            &alice,
            change("correct horse battery", "short"),
        )
        .await;
    assert_eq!(weak.problem(422), "validation_failed");
    assert_eq!(me(&app, &laptop_token).await, 200, "nothing changed yet");

    app.post(
        "/api/auth/password",
        &alice,
        change("correct horse battery", "a brand new password"),
    )
    .await
    .ok(204);
    assert_eq!(
        me(&app, &laptop_token).await,
        401,
        "the other session ended"
    );
    assert_eq!(
        refresh(&app, laptop["refresh_token"].as_str().expect("refresh"))
            .await
            .status(),
        401
    );
    assert_eq!(me(&app, &alice.token).await, 200, "this one goes on");
    let login = |password: &'static str| {
        let app = &app;
        let username = alice.username.clone();
        async move {
            app.raw(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await
            .status
            .as_u16()
        }
    };
    assert_eq!(login("correct horse battery").await, 401);
    assert_eq!(login("a brand new password").await, 200);
    // Without credentials there is nothing to change.
    let anonymous = app
        .raw(
            Method::POST,
            "/api/auth/password",
            None,
            Some(change("a brand new password", "another new password")),
        )
        .await;
    assert_eq!(anonymous.problem(401), "unauthenticated");
}
