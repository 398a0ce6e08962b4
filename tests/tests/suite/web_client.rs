//! The web client at `/chat/`: its cookie sessions, how it is served, the gateway's
//! guard against other sites' pages, and the end-to-end run in headless Chromium
//! (`web/e2e/chat.e2e.mjs`).

use std::time::Duration;

use chat_tests::fleet::{Gateway, Worker, WsClient};
use chat_tests::{Answer, TestApp, web_root, web_settings};
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "correct horse battery";

/// The `Set-Cookie` headers of an answer, by cookie name.
fn set_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            v.split_once('=')
                .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
        })
        .collect()
}

fn cookie_value(cookies: &[(String, String)], name: &str) -> Option<String> {
    cookies
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, rest)| rest.split(';').next().unwrap_or_default().to_owned())
}

struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: &'a str,
    cookie: Option<String>,
    csrf: bool,
    body: Option<Value>,
}

impl<'a> Call<'a> {
    fn new(app: &'a TestApp, method: Method, path: &'a str) -> Self {
        Self {
            app,
            method,
            path,
            cookie: None,
            csrf: true,
            body: None,
        }
    }
    fn cookie(mut self, cookie: String) -> Self {
        self.cookie = Some(cookie);
        self
    }
    fn without_csrf(mut self) -> Self {
        self.csrf = false;
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    async fn send(self) -> Answer {
        let mut req = self
            .app
            .http
            .request(self.method, format!("{}{}", self.app.base, self.path));
        if let Some(c) = self.cookie {
            req = req.header(COOKIE, c);
        }
        if self.csrf {
            req = req.header("X-Requested-With", "chat-web");
        }
        if let Some(b) = self.body {
            req = req.json(&b);
        }
        Answer::read(req.send().await.expect("request")).await
    }
}

#[tokio::test]
async fn session_cookies_log_in_refresh_and_log_out() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let login = json!({"username": alice.username, "password": PASSWORD});

    // Wrong password: 401 and no cookies.
    let wrong = Call::new(&app, Method::POST, "/api/auth/session")
        .json(json!({"username": alice.username, "password": "wrong password!"}))
        .send()
        .await;
    assert_eq!(wrong.problem(401), "invalid_credentials");
    assert!(set_cookies(&wrong.headers).is_empty());
    // Without X-Requested-With (what another site's form could send): 403, no cookies.
    let forged = Call::new(&app, Method::POST, "/api/auth/session")
        .without_csrf()
        .json(login.clone())
        .send()
        .await;
    assert_eq!(forged.problem(403), "forbidden");
    assert!(set_cookies(&forged.headers).is_empty());

    let opened = Call::new(&app, Method::POST, "/api/auth/session")
        .json(login)
        .send()
        .await;
    let body = opened.ok(200);
    assert_eq!(body["user"]["username"], alice.username.as_str());
    assert_eq!(body["expires_in"], 900);
    let cookies = set_cookies(&opened.headers);
    let (_, access_attrs) = cookies
        .iter()
        .find(|(n, _)| n == "chat_token")
        .expect("chat_token cookie");
    let (_, refresh_attrs) = cookies
        .iter()
        .find(|(n, _)| n == "chat_refresh")
        .expect("chat_refresh cookie");
    for attrs in [access_attrs, refresh_attrs] {
        assert!(attrs.contains("HttpOnly"), "{attrs}");
        assert!(attrs.contains("SameSite=Strict"), "{attrs}");
    }
    assert!(
        access_attrs.contains("Path=/;") || access_attrs.ends_with("Path=/"),
        "{access_attrs}"
    );
    assert!(
        refresh_attrs.contains("Path=/api/auth/session"),
        "{refresh_attrs}"
    );
    let access = format!(
        "chat_token={}",
        cookie_value(&cookies, "chat_token").expect("cookie")
    );
    let refresh = format!(
        "chat_refresh={}",
        cookie_value(&cookies, "chat_refresh").expect("cookie")
    );

    // GET /api/auth/session: who is signed in, never a 401.
    let state = Call::new(&app, Method::GET, "/api/auth/session")
        .without_csrf()
        .send()
        .await;
    let state = state.ok(200);
    assert!(
        state["user"].is_null() && state["refreshable"] == false,
        "{state}"
    );
    let state = Call::new(&app, Method::GET, "/api/auth/session")
        .cookie(access.clone())
        .send()
        .await;
    assert_eq!(state.ok(200)["user"]["id"], alice.id.to_string());
    let state = Call::new(&app, Method::GET, "/api/auth/session")
        .cookie(refresh.clone())
        .send()
        .await;
    let state = state.ok(200);
    assert!(
        state["user"].is_null() && state["refreshable"] == true,
        "{state}"
    );

    // Reads with the cookie work without the CSRF header.
    let me = Call::new(&app, Method::GET, "/api/users/me")
        .cookie(access.clone())
        .without_csrf()
        .send()
        .await;
    assert_eq!(me.ok(200)["id"], alice.id.to_string());

    // A write with the cookie but without X-Requested-With is refused and changes nothing.
    let create = json!({"is_group": false, "participants": [bob.id]});
    let forged = Call::new(&app, Method::POST, "/api/chat/conversations")
        .cookie(access.clone())
        .without_csrf()
        .json(create.clone())
        .send()
        .await;
    assert_eq!(forged.problem(403), "forbidden");
    let list = app.get("/api/chat/conversations", &alice).await;
    assert_eq!(
        list.ok(200).as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );

    let created = Call::new(&app, Method::POST, "/api/chat/conversations")
        .cookie(access.clone())
        .json(create)
        .send()
        .await;
    created.ok(201);

    // Refresh without the header: refused, nothing rotated.
    let forged = Call::new(&app, Method::POST, "/api/auth/session/refresh")
        .cookie(refresh.clone())
        .without_csrf()
        .send()
        .await;
    assert_eq!(forged.problem(403), "forbidden");
    // Refresh: new cookies.
    let renewed = Call::new(&app, Method::POST, "/api/auth/session/refresh")
        .cookie(refresh.clone())
        .send()
        .await;
    renewed.ok(200);
    let renewed = set_cookies(&renewed.headers);
    let new_access = format!(
        "chat_token={}",
        cookie_value(&renewed, "chat_token").expect("new access cookie")
    );
    assert!(
        cookie_value(&renewed, "chat_refresh")
            .is_some_and(|v| format!("chat_refresh={v}") != refresh)
    );
    // The refresh cookie is single use: a replay is a 401 that clears the cookies.
    let replay = Call::new(&app, Method::POST, "/api/auth/session/refresh")
        .cookie(refresh)
        .send()
        .await;
    assert_eq!(replay.problem(401), "unauthenticated");
    let cleared = set_cookies(&replay.headers);
    assert!(
        cleared
            .iter()
            .any(|(n, a)| n == "chat_token" && a.contains("Max-Age=0")),
        "{cleared:?}"
    );

    // Logout ends the session at once.
    let closed = Call::new(&app, Method::DELETE, "/api/auth/session")
        .cookie(new_access.clone())
        .send()
        .await;
    closed.ok(204);
    let me = Call::new(&app, Method::GET, "/api/users/me")
        .cookie(new_access)
        .send()
        .await;
    me.problem(401);
    // A user with a bearer token is not affected by the cookie rules.
    app.post(
        "/api/chat/conversations",
        &bob,
        json!({"is_group": true, "name": "bearer group", "participants": []}),
    )
    .await
    .ok(201);
}

fn require_built_client() {
    let index = web_root().join("dist/index.html");
    assert!(
        index.is_file(),
        "{} is missing: build the web client first (`npm ci && npm run build` in web/; ./ops/test does)",
        index.display()
    );
}

#[tokio::test]
async fn the_page_is_served_with_its_config_and_protective_headers() {
    require_built_client();
    let app = TestApp::spawn().await.expect("app");
    let web = app
        .serve_web(web_settings(vec![
            ":9001".into(),
            "wss://chat.example.com".into(),
        ]))
        .await
        .expect("web");
    let http = &app.http;

    for path in [
        "/chat/",
        "/chat",
        "/chat/c/0190b5a4-6f6e-7a3c-9e1f-3c2d1b0a9f8e",
    ] {
        let resp = http
            .get(format!("{web}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let csp = resp.headers()["content-security-policy"]
            .to_str()
            .expect("header text")
            .to_owned();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        let html = resp.text().await.expect("body");
        assert!(html.contains(r#"<div id="app">"#), "{path}: {html}");
    }

    let head = http
        .head(format!("{web}/chat/"))
        .send()
        .await
        .expect("request");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.text().await.expect("request").is_empty());

    let config: Value = http
        .get(format!("{web}/chat/config.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json body");
    assert_eq!(
        config,
        json!({"gateways": [":9001", "wss://chat.example.com"]})
    );

    // Hashed assets are cached for good.
    let html = http
        .get(format!("{web}/chat/"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("script tag")
        .to_owned();
    assert!(script.starts_with("/chat/assets/"), "{script}");
    let resp = http
        .get(format!("{web}{script}"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .expect("header text")
            .contains("immutable")
    );
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("header text")
            .contains("javascript")
    );

    // Nothing outside the build directory is reachable.
    let resp = http
        .get(format!("{web}/chat/..%2f..%2fCargo.toml"))
        .send()
        .await
        .expect("request");
    let body = resp.text().await.expect("body");
    assert!(!body.contains("[workspace]"), "escaped the web directory");

    // Without a built client: a clear 503, not an empty page.
    let mut missing = web_settings(Vec::new());
    missing.web_dir = std::env::temp_dir().join("chat-web-not-built");
    let bare = app.serve_web(missing).await.expect("web");
    let resp = http
        .get(format!("{bare}/chat/"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = resp.json().await.expect("request");
    assert_eq!(problem["code"], "web_client_not_built");
}

#[tokio::test]
async fn gateways_accept_the_session_cookie_only_from_the_chats_own_pages() {
    let app = TestApp::spawn().await.expect("app");
    let gateway = Gateway::spawn(
        "cookie",
        &app.settings,
        &[(
            "CHAT_ALLOWED_ORIGINS",
            "https://chat.example.com,http://*:8080",
        )],
    )
    .await
    .expect("gateway");
    let alice = app.user("alice").await;
    let connect = |origin: Option<&'static str>| {
        let mut request = gateway.url("/ws").into_client_request().expect("request");
        request.headers_mut().insert(
            "cookie",
            format!("theme=dark; chat_token={}", alice.token)
                .parse()
                .expect("header value"),
        );
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("header value"));
        }
        WsClient::connect_request(request)
    };
    // Another site's page, or no Origin at all: refused before the upgrade.
    assert_eq!(connect(Some("https://evil.example")).await.err(), Some(403));
    assert_eq!(
        connect(Some("http://127.0.0.1.evil.example:8080"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(connect(None).await.err(), Some(403));
    assert_eq!(connect(Some("null")).await.err(), Some(403));
    // Cookies go to every port of a host: another service's page on this host, or the
    // allowed origin under another scheme or port, is another site.
    for other in [
        "http://127.0.0.1:5555",
        "https://127.0.0.1:8080",
        "http://chat.example.com",
        "https://chat.example.com:8443",
    ] {
        assert_eq!(connect(Some(other)).await.err(), Some(403), "{other}");
    }
    // The page on the gateway's own host at the API's port, or an allowed origin: accepted.
    let own = connect(Some("http://127.0.0.1:8080"))
        .await
        .expect("own host");
    assert_eq!(own.hello["user_id"], alice.id.to_string());
    connect(Some("https://chat.example.com"))
        .await
        .expect("allowed origin");
    // Explicit tokens do not depend on the Origin.
    WsClient::connect(&gateway.url("/ws"), &alice.token)
        .await
        .expect("bearer");
}

/// The whole page in headless Chromium: two people sign up, talk live (typing, receipts,
/// reactions, replies, edits, deletes, an image), reload, survive the death of their
/// gateway and the draining of the next, and a third person cannot open their conversation. See
/// `web/e2e/chat.e2e.mjs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_works_end_to_end_in_headless_chromium() {
    require_built_client();
    let e2e = web_root().join("e2e/chat.e2e.mjs");
    assert!(
        web_root().join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in web/ first (./ops/test does)"
    );
    let app = TestApp::spawn().await.expect("app");
    // The page's port first: the gateways accept its cookie only from that origin.
    let web = app.bind_web().await.expect("web port");
    let page = [("CHAT_ALLOWED_ORIGINS", web.base.as_str())];
    let gateways = [
        Gateway::spawn("gw-a", &app.settings, &page)
            .await
            .expect("gateway a"),
        Gateway::spawn("gw-b", &app.settings, &page)
            .await
            .expect("gateway b"),
        Gateway::spawn("gw-c", &app.settings, &page)
            .await
            .expect("gateway c"),
    ];
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let urls = gateways
        .iter()
        .map(|g| format!("ws://{}", g.addr))
        .collect();
    let base = web.serve(web_settings(urls));
    let pids: serde_json::Map<String, Value> = gateways
        .iter()
        .map(|g| (g.name.clone(), json!(g.pid().expect("running"))))
        .collect();

    let artifacts = web_root().join("e2e/artifacts");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&e2e)
        .current_dir(web_root())
        .env("CHAT_E2E_BASE_URL", &base)
        .env("CHAT_E2E_GATEWAY_PIDS", Value::Object(pids).to_string())
        .env("CHAT_E2E_ARTIFACTS", &artifacts)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the browser test finishes within 4 minutes")
        .expect("node runs (install Node.js; ./ops/test does)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}); screenshots in {}",
        output.status,
        artifacts.display()
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
}
