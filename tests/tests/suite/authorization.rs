//! Authorization of every endpoint: without credentials, as a non-participant, and with
//! a role too low. Refused calls must leak nothing and change nothing.

use chat_tests::{Answer, TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

struct Fixture {
    app: TestApp,
    owner: TestUser,
    admin: TestUser,
    moderator: TestUser,
    member: TestUser,
    outsider: TestUser,
    cid: Uuid,
    /// A message sent by `member`.
    mid: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await.expect("app");
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let moderator = app.user("moderator").await;
    let member = app.user("member").await;
    let outsider = app.user("outsider").await;
    let cid = app.group(&owner, &[&admin, &moderator, &member]).await;
    for (user, role) in [(&admin, "admin"), (&moderator, "moderator")] {
        app.patch(
            &format!("/api/chat/conversations/{cid}/participants/{}/", user.id),
            &owner,
            json!({"role": role}),
        )
        .await
        .ok(200);
    }
    let m = app.send(&member, cid, "member's message").await;
    let mid = m["id"].as_str().expect("id").to_owned();
    Fixture {
        app,
        owner,
        admin,
        moderator,
        member,
        outsider,
        cid,
        mid,
    }
}

/// Everything a participant can observe about the conversation.
async fn snapshot(f: &Fixture) -> Value {
    let conv = f
        .app
        .get(&format!("/api/chat/conversations/{}/", f.cid), &f.owner)
        .await;
    let msgs = f
        .app
        .get(
            &format!("/api/chat/conversations/{}/messages/", f.cid),
            &f.owner,
        )
        .await;
    let mut conv = conv.ok(200).clone();
    // The owner's own unread count is not state the others can change.
    conv["unread_count"] = Value::Null;
    json!({"conversation": conv, "messages": msgs.ok(200)})
}

/// Every operation on the conversation, as (method, path, body).
fn operations(f: &Fixture) -> Vec<(Method, String, Option<Value>)> {
    let c = format!("/api/chat/conversations/{}", f.cid);
    let m = format!("{c}/messages/{}", f.mid);
    vec![
        (Method::GET, format!("{c}/"), None),
        (
            Method::PATCH,
            format!("{c}/"),
            Some(json!({"name": "hijacked"})),
        ),
        (Method::DELETE, format!("{c}/"), None),
        (Method::GET, format!("{c}/participants/"), None),
        (
            Method::POST,
            format!("{c}/participants/"),
            Some(json!({"user_id": f.outsider.id})),
        ),
        (
            Method::PATCH,
            format!("{c}/participants/{}/", f.member.id),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("{c}/participants/{}/", f.member.id),
            None,
        ),
        (Method::GET, format!("{c}/messages/"), None),
        (
            Method::POST,
            format!("{c}/messages/"),
            Some(json!({"text": "intruder"})),
        ),
        (
            Method::PATCH,
            format!("{m}/"),
            Some(json!({"text": "tampered"})),
        ),
        (Method::DELETE, format!("{m}/"), None),
        (Method::GET, format!("{m}/statuses/"), None),
        (Method::POST, format!("{c}/read"), Some(json!({"seq": 1}))),
        (
            Method::POST,
            format!("{c}/delivered"),
            Some(json!({"seq": 1})),
        ),
    ]
}

#[tokio::test]
async fn a_non_participant_can_neither_see_nor_change_a_conversation() {
    let f = fixture().await;
    let before = snapshot(&f).await;
    for (method, path, body) in operations(&f) {
        let answer = f
            .app
            .raw(method.clone(), &path, Some(&f.outsider.token), body)
            .await;
        assert_eq!(answer.problem(404), "not_found", "{method} {path}");
        // The answer says nothing about the conversation.
        let text = answer.body.to_string();
        assert!(
            !text.contains("member's message") && !text.contains(&f.member.id.to_string()),
            "{method} {path}: {text}"
        );
    }
    // Not in the outsider's list either.
    let list = f.app.get("/api/chat/conversations/", &f.outsider).await;
    assert_eq!(list.ok(200), &json!([]));
    assert_eq!(
        snapshot(&f).await,
        before,
        "a refused call changed something"
    );
}

#[tokio::test]
async fn every_endpoint_requires_a_valid_token() {
    let f = fixture().await;
    let mut ops = operations(&f);
    ops.push((Method::GET, "/api/chat/conversations/".into(), None));
    ops.push((
        Method::POST,
        "/api/chat/conversations/".into(),
        Some(json!({"is_group": true, "name": "x"})),
    ));
    ops.push((Method::GET, "/api/users/me".into(), None));
    ops.push((Method::GET, "/api/users?q=own".into(), None));
    ops.push((Method::POST, "/api/auth/logout".into(), None));
    let before = snapshot(&f).await;
    let forged = forge_token(&f.owner.token);
    for (method, path, body) in ops {
        for token in [None, Some("not-a-jwt"), Some(forged.as_str())] {
            let answer: Answer = f.app.raw(method.clone(), &path, token, body.clone()).await;
            assert_eq!(
                answer.problem(401),
                "unauthenticated",
                "{method} {path} with {token:?}"
            );
        }
    }
    assert_eq!(snapshot(&f).await, before);
}

/// The owner's token with its signature replaced.
fn forge_token(token: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[2] = "c2lnbmF0dXJlLWZvcmdlZC1ieS1hbi1hdHRhY2tlcg";
    parts.join(".")
}

#[tokio::test]
async fn lower_roles_are_refused_and_change_nothing() {
    let f = fixture().await;
    let c = format!("/api/chat/conversations/{}", f.cid);
    let before = snapshot(&f).await;
    let refused: Vec<(&TestUser, Method, String, Option<Value>, &str)> = vec![
        // Metadata: admins and owners only.
        (
            &f.member,
            Method::PATCH,
            format!("{c}/"),
            Some(json!({"name": "x"})),
            "member renames",
        ),
        (
            &f.moderator,
            Method::PATCH,
            format!("{c}/"),
            Some(json!({"name": "x"})),
            "moderator renames",
        ),
        // Deleting the conversation: owners only.
        (
            &f.admin,
            Method::DELETE,
            format!("{c}/"),
            None,
            "admin deletes conversation",
        ),
        (
            &f.member,
            Method::DELETE,
            format!("{c}/"),
            None,
            "member deletes conversation",
        ),
        // Participants: admins and owners, on lower ranks, granting up to their own role.
        (
            &f.member,
            Method::POST,
            format!("{c}/participants/"),
            Some(json!({"user_id": f.outsider.id})),
            "member adds",
        ),
        (
            &f.moderator,
            Method::POST,
            format!("{c}/participants/"),
            Some(json!({"user_id": f.outsider.id})),
            "moderator adds",
        ),
        (
            &f.admin,
            Method::POST,
            format!("{c}/participants/"),
            Some(json!({"user_id": f.outsider.id, "role": "owner"})),
            "admin adds an owner",
        ),
        (
            &f.member,
            Method::PATCH,
            format!("{c}/participants/{}/", f.moderator.id),
            Some(json!({"role": "member"})),
            "member demotes",
        ),
        (
            &f.moderator,
            Method::PATCH,
            format!("{c}/participants/{}/", f.member.id),
            Some(json!({"role": "moderator"})),
            "moderator promotes",
        ),
        (
            &f.admin,
            Method::PATCH,
            format!("{c}/participants/{}/", f.owner.id),
            Some(json!({"role": "member"})),
            "admin demotes owner",
        ),
        (
            &f.admin,
            Method::PATCH,
            format!("{c}/participants/{}/", f.member.id),
            Some(json!({"role": "owner"})),
            "admin grants owner",
        ),
        (
            &f.member,
            Method::PATCH,
            format!("{c}/participants/{}/", f.member.id),
            Some(json!({"role": "admin"})),
            "member promotes self",
        ),
        (
            &f.member,
            Method::DELETE,
            format!("{c}/participants/{}/", f.moderator.id),
            None,
            "member removes",
        ),
        (
            &f.moderator,
            Method::DELETE,
            format!("{c}/participants/{}/", f.member.id),
            None,
            "moderator removes",
        ),
        (
            &f.admin,
            Method::DELETE,
            format!("{c}/participants/{}/", f.owner.id),
            None,
            "admin removes owner",
        ),
        // Messages: only the sender edits; sender or moderator deletes.
        (
            &f.admin,
            Method::PATCH,
            format!("{c}/messages/{}/", f.mid),
            Some(json!({"text": "x"})),
            "admin edits another's message",
        ),
        (
            &f.moderator,
            Method::PATCH,
            format!("{c}/messages/{}/", f.mid),
            Some(json!({"text": "x"})),
            "moderator edits another's message",
        ),
        (
            &f.owner,
            Method::PATCH,
            format!("{c}/messages/{}/", f.mid),
            Some(json!({"text": "x"})),
            "owner edits another's message",
        ),
    ];
    for (user, method, path, body, what) in refused {
        let answer = f.app.raw(method, &path, Some(&user.token), body).await;
        assert_eq!(answer.problem(403), "forbidden", "{what}");
    }
    // A member may not delete someone else's message.
    let admins_msg = f.app.send(&f.admin, f.cid, "admin's message").await;
    let path = format!("{c}/messages/{}/", admins_msg["id"].as_str().expect("id"));
    assert_eq!(
        f.app.delete(&path, &f.member).await.problem(403),
        "forbidden"
    );
    let mut after = snapshot(&f).await;
    // Drop the admin's new message before comparing.
    after["messages"]
        .as_array_mut()
        .expect("messages")
        .retain(|m| m["id"] != admins_msg["id"]);
    after["conversation"]["last_seq"] = before["conversation"]["last_seq"].clone();
    after["conversation"]["last_message"] = before["conversation"]["last_message"].clone();
    assert_eq!(
        after["conversation"]["participants"],
        before["conversation"]["participants"]
    );
    assert_eq!(
        after["conversation"]["name"],
        before["conversation"]["name"]
    );
    assert_eq!(after["messages"], before["messages"]);
}

#[tokio::test]
async fn allowed_role_actions_succeed() {
    let f = fixture().await;
    let c = format!("/api/chat/conversations/{}", f.cid);
    // A moderator deletes another's message.
    let del = f
        .app
        .delete(&format!("{c}/messages/{}/", f.mid), &f.moderator)
        .await;
    assert!(del.ok(200)["deleted_at"].is_string());
    // An admin renames, adds a member, promotes them to moderator, removes them.
    f.app
        .patch(&format!("{c}/"), &f.admin, json!({"name": "renamed"}))
        .await
        .ok(200);
    let added = f
        .app
        .post(
            &format!("{c}/participants/"),
            &f.admin,
            json!({"user_id": f.outsider.id}),
        )
        .await;
    assert_eq!(added.ok(201)["role"], "member");
    let promoted = f
        .app
        .patch(
            &format!("{c}/participants/{}/", f.outsider.id),
            &f.admin,
            json!({"role": "moderator"}),
        )
        .await;
    assert_eq!(promoted.ok(200)["role"], "moderator");
    assert_eq!(
        f.app
            .delete(&format!("{c}/participants/{}/", f.outsider.id), &f.admin)
            .await
            .status,
        204
    );
    // Once removed, the user is an outsider again.
    assert_eq!(
        f.app
            .get(&format!("{c}/messages/"), &f.outsider)
            .await
            .problem(404),
        "not_found"
    );
    // A member may leave.
    assert_eq!(
        f.app
            .delete(&format!("{c}/participants/{}/", f.member.id), &f.member)
            .await
            .status,
        204
    );
    // The last owner may not leave while others remain, nor step down.
    let leave = f
        .app
        .delete(&format!("{c}/participants/{}/", f.owner.id), &f.owner)
        .await;
    assert_eq!(leave.problem(409), "last_owner");
    let step_down = f
        .app
        .patch(
            &format!("{c}/participants/{}/", f.owner.id),
            &f.owner,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(step_down.problem(409), "last_owner");
    // After handing over, they can.
    f.app
        .patch(
            &format!("{c}/participants/{}/", f.admin.id),
            &f.owner,
            json!({"role": "owner"}),
        )
        .await
        .ok(200);
    assert_eq!(
        f.app
            .delete(&format!("{c}/participants/{}/", f.owner.id), &f.owner)
            .await
            .status,
        204
    );
    // Only an owner deletes the conversation.
    assert_eq!(f.app.delete(&format!("{c}/"), &f.admin).await.status, 204);
    assert_eq!(
        f.app.get(&format!("{c}/"), &f.admin).await.problem(404),
        "not_found"
    );
}

#[tokio::test]
async fn direct_conversations_keep_their_two_participants() {
    let app = TestApp::spawn().await.expect("app");
    let a = app.user("a").await;
    let b = app.user("b").await;
    let c = app.user("c").await;
    let cid = app.direct(&a, &b).await;
    let base = format!("/api/chat/conversations/{cid}");
    let add = app
        .post(
            &format!("{base}/participants/"),
            &a,
            json!({"user_id": c.id}),
        )
        .await;
    assert_eq!(add.problem(403), "forbidden");
    let rename = app
        .patch(&format!("{base}/"), &a, json!({"name": "x"}))
        .await;
    assert_eq!(rename.problem(403), "forbidden");
    let leave = app
        .delete(&format!("{base}/participants/{}/", b.id), &b)
        .await;
    assert_eq!(leave.problem(403), "forbidden");
    assert_eq!(
        app.get(&format!("{base}/"), &c).await.problem(404),
        "not_found"
    );
}
