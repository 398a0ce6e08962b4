//! Channels (seed 002): the seed document walked as a client would, a permission matrix
//! of every channel action, search, mentions, and the events of each action.

use std::time::Duration;

use chat_tests::fleet::{Gateway, WsClient};
use chat_tests::{TestApp, TestUser, types};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

async fn set_role(app: &TestApp, owner: &TestUser, cid: Uuid, user: &TestUser, role: &str) {
    app.patch(
        &format!("/api/chat/conversations/{cid}/participants/{}/", user.id),
        owner,
        json!({"role": role}),
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn a_seed_002_client_works_unchanged() {
    let app = TestApp::spawn().await.expect("app");
    let dono = app.user("dono").await;
    let membro = app.user("membro").await;
    let moderador = app.user("moderador").await;

    // POST /api/chat/channels/ with the document's payload.
    let created = app
        .post(
            "/api/chat/channels/",
            &dono,
            json!({"contexto_tipo": "privado", "titulo": "Bate-papo"}),
        )
        .await;
    let canal = created.ok(201).clone();
    assert_eq!(canal["contexto_tipo"], "privado");
    assert_eq!(canal["titulo"], "Bate-papo");
    assert_eq!(canal["context_type"], "private");
    assert_eq!(canal["my_role"], "owner");
    let id = canal["id"].as_str().expect("id").to_owned();
    let cid: Uuid = id.parse().expect("uuid");
    // Other contexts, in Portuguese, with a context id; listing filters by them.
    let nucleo = app
        .post(
            "/api/chat/channels/",
            &dono,
            json!({"contexto_tipo": "núcleo", "titulo": "Núcleo Sul", "contexto_id": "n-42"}),
        )
        .await;
    assert_eq!(nucleo.ok(201)["contexto_tipo"], "núcleo");
    let listed = app
        .get("/api/chat/channels/?contexto_tipo=n%C3%BAcleo", &dono)
        .await;
    let listed = listed.ok(200).as_array().expect("list").clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["contexto_id"], "n-42");
    let by_context = app
        .get(
            "/api/chat/conversations/?context_type=nucleus&context_id=n-42",
            &dono,
        )
        .await;
    assert_eq!(by_context.ok(200).as_array().map(Vec::len), Some(1));

    // Participants, and a moderator.
    for u in [&membro, &moderador] {
        app.post(
            &format!("/api/chat/conversations/{id}/participants/"),
            &dono,
            json!({"user_id": u.id}),
        )
        .await
        .ok(201);
    }
    set_role(&app, &dono, cid, &moderador, "moderator").await;

    // Messages, a reaction, a pin.
    let m1 = app.send(&membro, cid, "Olá, pessoal!").await;
    let m2 = app.send(&dono, cid, "Mensagem ofensiva").await;
    let m3 = app.send(&moderador, cid, "Bem-vindos").await;
    let m1_id = m1["id"].as_str().expect("id");
    let m2_id = m2["id"].as_str().expect("id");
    let react = app
        .raw(
            Method::PUT,
            &format!("/api/chat/conversations/{id}/messages/{m1_id}/reactions/%F0%9F%91%8D"),
            Some(&dono.token),
            None,
        )
        .await;
    assert_eq!(react.status.as_u16(), 204);
    app.post(
        &format!("/api/chat/conversations/{id}/pins/"),
        &moderador,
        json!({"message_id": m1_id}),
    )
    .await
    .ok(204);
    let pins = app
        .get(&format!("/api/chat/conversations/{id}/pins/"), &membro)
        .await;
    assert_eq!(pins.ok(200)[0]["message"]["id"], m1_id);

    // Flag, then hide: gone for members, kept for moderators, with the decision recorded.
    let flag = app
        .post(
            &format!("/api/chat/conversations/{id}/messages/{m2_id}/flags/"),
            &membro,
            json!({"reason": "ofensivo"}),
        )
        .await;
    assert_eq!(flag.ok(201)["state"], "open");
    let hide = app
        .post(
            &format!("/api/chat/conversations/{id}/messages/{m2_id}/moderation/"),
            &moderador,
            json!({"decision": "hide", "reason": "viola as regras"}),
        )
        .await;
    assert_eq!(hide.ok(200)["decision"], "hide");
    let record = app
        .get(
            &format!("/api/chat/conversations/{id}/messages/{m2_id}/moderation/"),
            &moderador,
        )
        .await;
    let record = record.ok(200).clone();
    assert_eq!(record["flags"][0]["state"], "hidden");
    assert_eq!(
        record["decisions"][0]["moderator_id"],
        moderador.id.to_string()
    );
    assert_eq!(record["decisions"][0]["reason"], "viola as regras");

    // GET …/messages/ with desde/ate: seed fields, hidden message left out.
    let today = chrono_today();
    let page = app
        .get(
            &format!("/api/chat/channels/{id}/messages/?desde={today}&ate={today}"),
            &membro,
        )
        .await;
    let page = page.ok(200).as_array().expect("messages").clone();
    let texts: Vec<&str> = page
        .iter()
        .map(|m| m["conteudo"].as_str().expect("conteudo"))
        .collect();
    assert_eq!(texts, vec!["Olá, pessoal!", "Bem-vindos"]);
    assert_eq!(page[0]["remetente"], membro.id.to_string());
    assert_eq!(page[0]["tipo"], "text");
    assert!(page[0]["timestamp"].is_string());
    assert_eq!(
        page[0]["reactions"],
        json!([{"emoji": "👍", "count": 1, "reacted_by_me": false}])
    );
    let for_moderator = app
        .get(
            &format!("/api/chat/channels/{id}/messages/?desde={today}"),
            &moderador,
        )
        .await;
    assert_eq!(for_moderator.ok(200).as_array().map(Vec::len), Some(3));
    let before = app
        .get(
            &format!("/api/chat/channels/{id}/messages/?ate=2000-01-01"),
            &membro,
        )
        .await;
    assert_eq!(before.ok(200), &json!([]));
    let bad = app
        .get(
            &format!("/api/chat/channels/{id}/messages/?desde=ontem"),
            &membro,
        )
        .await;
    assert_eq!(bad.problem(422), "validation_failed");

    // A non-participant sees neither the channel nor its messages.
    let estranho = app.user("estranho").await;
    let listed = app.get("/api/chat/channels/", &estranho).await;
    assert_eq!(listed.ok(200), &json!([]));
    let hidden = app
        .get(&format!("/api/chat/channels/{id}/messages/"), &estranho)
        .await;
    assert_eq!(hidden.problem(404), "not_found");
    let _ = m3;
}

fn chrono_today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One conversation with a participant of each role, and an outsider.
struct Cast {
    app: TestApp,
    owner: TestUser,
    cid: Uuid,
    by_role: Vec<(&'static str, TestUser)>,
}

async fn cast() -> Cast {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let moderator = app.user("moderator").await;
    let member = app.user("member").await;
    let outsider = app.user("outsider").await;
    let cid = app.group(&owner, &[&admin, &moderator, &member]).await;
    set_role(&app, &owner, cid, &admin, "admin").await;
    set_role(&app, &owner, cid, &moderator, "moderator").await;
    let by_role = vec![
        ("owner", owner.clone()),
        ("admin", admin),
        ("moderator", moderator),
        ("member", member),
        ("non-participant", outsider),
    ];
    Cast {
        app,
        owner,
        cid,
        by_role,
    }
}

/// What everyone can observe, as the owner sees it.
async fn observable(c: &Cast, message: &str) -> Value {
    let base = format!("/api/chat/conversations/{}", c.cid);
    let conv = c
        .app
        .get(&format!("{base}/"), &c.owner)
        .await
        .ok(200)
        .clone();
    let msgs = c
        .app
        .get(&format!("{base}/messages/?limit=200"), &c.owner)
        .await
        .ok(200)
        .clone();
    let pins = c
        .app
        .get(&format!("{base}/pins/"), &c.owner)
        .await
        .ok(200)
        .clone();
    let flags = c
        .app
        .get(&format!("{base}/flags/"), &c.owner)
        .await
        .ok(200)
        .clone();
    let record = c
        .app
        .get(&format!("{base}/messages/{message}/moderation/"), &c.owner)
        .await
        .ok(200)
        .clone();
    json!({"name": conv["name"], "participants": conv["participants"], "messages": msgs, "pins": pins, "flags": flags, "record": record})
}

#[tokio::test]
async fn every_channel_action_checks_the_callers_role() {
    // (action, roles allowed)
    let everyone = ["owner", "admin", "moderator", "member"];
    let staff = ["owner", "admin", "moderator"];
    let managers = ["owner", "admin"];
    let matrix: Vec<(&str, &[&str])> = vec![
        ("react", &everyone),
        ("unreact", &everyone),
        ("list_pins", &everyone),
        ("pin", &staff),
        ("unpin", &staff),
        ("thread", &everyone),
        ("flag", &everyone),
        ("list_flags", &staff),
        ("moderation_record", &staff),
        ("approve", &staff),
        ("hide", &staff),
        ("rename", &managers),
        ("add_participant", &managers),
    ];
    let c = cast().await;
    let base = format!("/api/chat/conversations/{}", c.cid);
    let newcomer = c.app.user("newcomer").await;
    for (role, user) in &c.by_role {
        // A fresh message per role keeps the actions independent.
        let m = c
            .app
            .send(&c.owner, c.cid, &format!("target for {role}"))
            .await;
        let mid = m["id"].as_str().expect("id").to_owned();
        // Pinned beforehand, so that `unpin` has something to remove.
        c.app
            .post(
                &format!("{base}/pins/"),
                &c.owner,
                json!({"message_id": mid}),
            )
            .await
            .ok(204);
        c.app
            .raw(
                Method::PUT,
                &format!("{base}/messages/{mid}/reactions/%E2%9D%A4"),
                Some(&c.owner.token),
                None,
            )
            .await;
        let calls: Vec<(&str, Method, String, Option<Value>)> = vec![
            (
                "react",
                Method::PUT,
                format!("{base}/messages/{mid}/reactions/%F0%9F%91%8D"),
                None,
            ),
            (
                "unreact",
                Method::DELETE,
                format!("{base}/messages/{mid}/reactions/%F0%9F%91%8D"),
                None,
            ),
            ("list_pins", Method::GET, format!("{base}/pins/"), None),
            ("unpin", Method::DELETE, format!("{base}/pins/{mid}/"), None),
            (
                "pin",
                Method::POST,
                format!("{base}/pins/"),
                Some(json!({"message_id": mid})),
            ),
            (
                "thread",
                Method::GET,
                format!("{base}/messages/{mid}/thread/"),
                None,
            ),
            (
                "flag",
                Method::POST,
                format!("{base}/messages/{mid}/flags/"),
                Some(json!({"reason": "check this"})),
            ),
            ("list_flags", Method::GET, format!("{base}/flags/"), None),
            (
                "moderation_record",
                Method::GET,
                format!("{base}/messages/{mid}/moderation/"),
                None,
            ),
            (
                "approve",
                Method::POST,
                format!("{base}/messages/{mid}/moderation/"),
                Some(json!({"decision": "approve"})),
            ),
            (
                "hide",
                Method::POST,
                format!("{base}/messages/{mid}/moderation/"),
                Some(json!({"decision": "hide"})),
            ),
            (
                "rename",
                Method::PATCH,
                format!("{base}/"),
                Some(json!({"name": format!("renamed by {role}")})),
            ),
            (
                "add_participant",
                Method::POST,
                format!("{base}/participants/"),
                Some(json!({"user_id": newcomer.id})),
            ),
        ];
        for (action, method, path, body) in calls {
            let allowed = matrix
                .iter()
                .find(|(a, _)| *a == action)
                .map(|(_, r)| r.contains(role))
                .unwrap_or(false);
            let before = observable(&c, &mid).await;
            let answer = c
                .app
                .raw(method.clone(), &path, Some(&user.token), body)
                .await;
            if allowed {
                assert!(
                    answer.status.is_success(),
                    "{role} {action}: {} {}",
                    answer.status,
                    answer.body
                );
                if action == "add_participant" {
                    // Undo, so the next role can add them too.
                    c.app
                        .delete(&format!("{base}/participants/{}/", newcomer.id), &c.owner)
                        .await;
                }
            } else {
                let expected = if *role == "non-participant" { 404 } else { 403 };
                answer.problem(expected);
                assert_eq!(
                    observable(&c, &mid).await,
                    before,
                    "{role} {action} was refused but changed something"
                );
            }
        }
    }
}

#[tokio::test]
async fn search_folds_accents_and_case_and_never_leaks() {
    let app = TestApp::spawn().await.expect("app");
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let eve = app.user("eve").await;
    let mods = app.user("mods").await;
    let ours = app.group(&ana, &[&bia, &mods]).await;
    set_role(&app, &ana, ours, &mods, "moderator").await;
    let private = app.direct(&bia, &eve).await;
    app.send(&ana, ours, "Reunião em São Paulo amanhã").await;
    app.send(&bia, ours, "As conversas de ontem foram ótimas")
        .await;
    let hidden = app.send(&bia, ours, "São Paulo segredo escondido").await;
    let deleted = app.send(&bia, ours, "São Paulo apagado").await;
    app.send(&eve, private, "São Paulo só entre Bia e Eve")
        .await;
    let hid = hidden["id"].as_str().expect("id");
    app.post(
        &format!("/api/chat/conversations/{ours}/messages/{hid}/moderation/"),
        &mods,
        json!({"decision": "hide"}),
    )
    .await
    .ok(200);
    app.delete(
        &format!(
            "/api/chat/conversations/{ours}/messages/{}/",
            deleted["id"].as_str().expect("id")
        ),
        &bia,
    )
    .await
    .ok(200);

    // Search vectors are built by the worker's indexer, within two seconds of a send.
    let _worker = chat_tests::fleet::Worker::spawn(&app.settings)
        .await
        .expect("worker");
    let indexed = tokio::time::Instant::now();
    while app
        .get("/api/chat/search?q=ontem", &ana)
        .await
        .ok(200)
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        assert!(
            indexed.elapsed() < Duration::from_secs(2),
            "not searchable within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let texts = |body: &Value| -> Vec<String> {
        body.as_array()
            .expect("hits")
            .iter()
            .map(|h| h["message"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // Accents and case folded.
    let hits = app.get("/api/chat/search?q=sao%20paulo", &ana).await;
    assert_eq!(texts(hits.ok(200)), vec!["Reunião em São Paulo amanhã"]);
    let hits = app.get("/api/chat/search?q=REUNIAO", &ana).await;
    assert_eq!(texts(hits.ok(200)), vec!["Reunião em São Paulo amanhã"]);
    // Portuguese stems: "conversa" finds "conversas"; English too.
    let hits = app.get("/api/chat/search?q=conversa", &ana).await;
    assert_eq!(
        texts(hits.ok(200)),
        vec!["As conversas de ontem foram ótimas"]
    );
    // Bia sees her direct conversation too, never the hidden or deleted message.
    let hits = app.get("/api/chat/search?q=S%C3%A3o%20Paulo", &bia).await;
    let found = texts(hits.ok(200));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|t| !t.contains("escondido") && !t.contains("apagado"))
    );
    // Pages follow each other by cursor: one hit at a time gives the same two, in order.
    let all = app.get("/api/chat/search?q=S%C3%A3o%20Paulo", &bia).await;
    let all = all.ok(200).as_array().expect("hits").clone();
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .get(
                &format!("/api/chat/search?q=S%C3%A3o%20Paulo&limit=1{after}"),
                &bia,
            )
            .await;
        let page = page.ok(200).as_array().expect("hits").clone();
        let Some(last) = page.last() else { break };
        assert_eq!(page.len(), 1);
        after = format!("&after={}", last["cursor"].as_str().expect("cursor"));
        paged.extend(page);
        assert!(paged.len() <= all.len(), "pages repeat: {paged:?}");
    }
    assert_eq!(paged, all);
    // Not even moderators find hidden messages in search; outsiders find nothing of ours.
    let hits = app.get("/api/chat/search?q=escondido", &mods).await;
    assert_eq!(hits.ok(200), &json!([]));
    let hits = app.get("/api/chat/search?q=reuniao", &eve).await;
    assert_eq!(hits.ok(200), &json!([]));
    // Bad queries are 422.
    assert_eq!(
        app.get("/api/chat/search?q=%20", &ana).await.problem(422),
        "validation_failed"
    );
    for bad in [
        "limit=0",
        "after=nonsense",
        "after=00000000.1.not-a-uuid",
        "offset=20",
    ] {
        assert_eq!(
            app.get(&format!("/api/chat/search?q=x&{bad}"), &ana)
                .await
                .problem(422),
            "validation_failed",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn mentions_are_stored_and_counted_until_read() {
    let app = TestApp::spawn().await.expect("app");
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let cid = app.group(&ana, &[&bia]).await;
    let m = app
        .send(&ana, cid, &format!("oi @{} e @nobody_here", bia.username))
        .await;
    assert_eq!(m["mentions"], json!([bia.id]));
    app.send(&ana, cid, "sem menção").await;
    let list = app.get("/api/chat/conversations/", &bia).await;
    assert_eq!(list.ok(200)[0]["unread_mentions"], 1);
    assert_eq!(list.body[0]["unread_count"], 2);
    app.post(
        &format!("/api/chat/conversations/{cid}/read"),
        &bia,
        json!({"seq": 2}),
    )
    .await
    .ok(200);
    let list = app.get("/api/chat/conversations/", &bia).await;
    assert_eq!(list.ok(200)[0]["unread_mentions"], 0);
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &bia)
        .await;
    assert_eq!(page.ok(200)[0]["mentions"], json!([bia.id]));
}

#[tokio::test]
async fn channel_actions_publish_events_seen_on_the_bus_and_on_sockets() {
    let app = TestApp::spawn().await.expect("app");
    let gw = Gateway::spawn("g", &app.settings, &[])
        .await
        .expect("gateway");
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let cid = app.group(&owner, &[&member]).await;
    let mut tail = app.bus_tail().await.expect("bus");
    let mut socket = WsClient::connect(&gw.url("/ws"), &member.token)
        .await
        .expect("socket");
    let m = app.send(&owner, cid, "hello").await;
    let mid = m["id"].as_str().expect("id");
    let base = format!("/api/chat/conversations/{cid}");
    // A reaction over the socket itself.
    socket.send(json!({"type": "react", "id": "r", "conversation_id": cid, "message_id": mid, "emoji": "🎉"})).await;
    assert_eq!(socket.next_of("ok", WAIT).await.expect("ok")["id"], "r");
    app.raw(
        Method::DELETE,
        &format!("{base}/messages/{mid}/reactions/%F0%9F%8E%89"),
        Some(&member.token),
        None,
    )
    .await;
    app.post(&format!("{base}/pins/"), &owner, json!({"message_id": mid}))
        .await
        .ok(204);
    app.delete(&format!("{base}/pins/{mid}/"), &owner).await;
    app.post(
        &format!("{base}/messages/{mid}/flags/"),
        &member,
        json!({"reason": "spam"}),
    )
    .await
    .ok(201);
    app.post(
        &format!("{base}/messages/{mid}/moderation/"),
        &owner,
        json!({"decision": "approve"}),
    )
    .await
    .ok(200);
    app.post(
        &format!("{base}/messages/{mid}/moderation/"),
        &owner,
        json!({"decision": "hide"}),
    )
    .await
    .ok(200);
    let expected = [
        "message.created",
        "reaction.added",
        "reaction.removed",
        "message.pinned",
        "message.unpinned",
        "message.flagged",
        "message.approved",
        "message.hidden",
    ];
    // (The member's socket also announced their presence: not part of this.)
    let changes = |d: &[chat_bus::Delivery]| {
        types(d)
            .into_iter()
            .filter(|t| *t != "presence")
            .collect::<Vec<_>>()
    };
    let seen = tail
        .until(WAIT, |d| changes(d).len() >= expected.len())
        .await
        .expect("bus events");
    assert_eq!(changes(&seen), expected);
    for kind in &expected[1..] {
        let frame = socket.next_of(kind, WAIT).await.expect("socket event");
        assert_eq!(frame["data"]["message_id"], mid);
    }
    // Flag events say which message, not who flagged it or why.
    let flagged = seen
        .iter()
        .find(|d| d.envelope.event.payload.type_name() == "message.flagged")
        .expect("flagged");
    let json = serde_json::to_string(&flagged.envelope.event).expect("json");
    assert!(
        !json.contains("spam") && !json.contains(&member.id.to_string()),
        "{json}"
    );
}

#[tokio::test]
async fn a_hidden_message_cannot_be_edited_back_into_everyones_view() {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let cid = app.group(&owner, &[&member]).await;
    let sent = app.send(&owner, cid, "regrettable").await;
    let message = format!(
        "/api/chat/conversations/{cid}/messages/{}/",
        sent["id"].as_str().expect("id")
    );
    app.post(
        &format!("{message}moderation/"),
        &owner,
        json!({"decision": "hide", "reason": "self-moderation"}),
    )
    .await
    .ok(200);
    let mut tail = app.bus_tail().await.expect("bus");
    // The owner still sees it (a moderator), but an edit would publish its text to all.
    let edit = app
        .patch(&message, &owner, json!({"text": "now everyone reads this"}))
        .await;
    assert_eq!(edit.problem(409), "message_hidden");
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &member)
        .await;
    assert_eq!(page.ok(200).as_array().map(Vec::len), Some(0));
    // Nothing was published: a message sent afterwards is the next event.
    app.send(&owner, cid, "next").await;
    let seen = tail
        .until(WAIT, |d| types(d).contains(&"message.created"))
        .await
        .expect("events");
    assert_eq!(
        types(&seen),
        vec!["message.created"],
        "no edit was published"
    );
}

#[tokio::test]
async fn reactions_per_user_and_per_message_are_bounded() {
    let app = TestApp::spawn().await.expect("app");
    let a = app.user("a").await;
    let b = app.user("b").await;
    let c = app.user("c").await;
    let cid = app.group(&a, &[&b, &c]).await;
    let m = app.send(&a, cid, "react to me").await;
    let base = format!(
        "/api/chat/conversations/{cid}/messages/{}/reactions",
        m["id"].as_str().expect("id")
    );
    let react = |user: &TestUser, emoji: String| {
        let path = format!("{base}/{emoji}");
        let app = &app;
        let token = user.token.clone();
        async move { app.raw(Method::PUT, &path, Some(&token), None).await }
    };
    for i in 0..20 {
        assert_eq!(react(&a, format!("e{i}")).await.status.as_u16(), 204);
    }
    let over = react(&a, "e20".into()).await;
    assert_eq!(over.problem(409), "too_many_reactions");
    assert_eq!(
        react(&a, "e3".into()).await.status.as_u16(),
        204,
        "repeating one is still fine"
    );
    for i in 20..40 {
        assert_eq!(react(&b, format!("e{i}")).await.status.as_u16(), 204);
    }
    for i in 40..50 {
        assert_eq!(react(&c, format!("e{i}")).await.status.as_u16(), 204);
    }
    let fifty_first = react(&c, "e50".into()).await;
    assert_eq!(fifty_first.problem(409), "too_many_reactions");
    assert_eq!(
        react(&c, "e0".into()).await.status.as_u16(),
        204,
        "joining an existing reaction is fine"
    );
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &b)
        .await;
    let kinds = page.ok(200)[0]["reactions"].as_array().map(Vec::len);
    assert_eq!(kinds, Some(50));
}
