//! The fuzz pass: schemathesis over the live OpenAPI document (no input may make the API
//! answer 5xx), and a WebSocket fuzzer against a real gateway (malformed, oversized,
//! binary and fragmented frames, floods, abrupt closes: no crash, and the other sockets
//! on the gateway notice nothing).

use std::time::Duration;

use chat_tests::fleet::{Closed, Gateway, WsClient};
use chat_tests::{TestApp, TestUser};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// How many cases schemathesis tries per operation and phase (`TEST_FUZZ_EXAMPLES`).
fn examples() -> String {
    std::env::var("TEST_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".to_owned())
}

/// Schemathesis's seed (`TEST_FUZZ_SEED`): fixed, so a failure can be replayed.
fn seed() -> String {
    std::env::var("TEST_FUZZ_SEED").unwrap_or_else(|_| "11".to_owned())
}

/// Uploads a small text file into `conversation`; returns the attachment's id.
async fn attachment(app: &TestApp, user: &TestUser, conversation: Uuid) -> String {
    let resp = app
        .upload(
            user,
            conversation,
            "notes.txt",
            "text/plain",
            b"notes".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), 201, "upload");
    let body: serde_json::Value = resp.json().await.expect("json");
    body["id"].as_str().expect("id").to_owned()
}

/// Runs schemathesis (`st run`) against `app` with `config` as its `schemathesis.toml`
/// and these extra arguments; fails the test if any case got a 5xx (or no answer).
async fn schemathesis(app: &TestApp, user: &TestUser, config: &str, args: &[&str]) -> String {
    let program = std::env::var("TEST_SCHEMATHESIS")
        .expect("TEST_SCHEMATHESIS (schemathesis's `st`) is set by ./ops/test");
    let dir = std::env::temp_dir().join(format!("chat-fuzz-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config_file = dir.join("schemathesis.toml");
    std::fs::write(&config_file, config).expect("config");
    let output = tokio::process::Command::new(&program)
        .arg("--config-file")
        .arg(&config_file)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--url", &app.base])
        .args(["--checks", "not_a_server_error"])
        .args(["--max-examples", &examples()])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--seed",
            &seed(),
        ])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--header", &format!("Authorization: Bearer {}", user.token)])
        .args(args)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(900), output)
        .await
        .expect("schemathesis finishes within 15 minutes")
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "schemathesis found server errors ({}); see its output above",
        output.status
    );
    stdout
}

/// Every operation, first with the ids of real rows (so inputs reach the handlers, not
/// only the 404 of an unknown id), then by a stranger with ids of schemathesis's own
/// choosing; the ones that end the caller's session or delete the conversation go last,
/// by a third user, so they do not leave the other runs unauthenticated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_the_live_openapi_document() {
    // Under the rest of the suite's load the database pool may be slow to hand out a
    // connection; a 503 for that is by design, not what this test looks for (inputs that
    // break the server), so waiting for one is allowed longer here.
    let app = TestApp::spawn_with(|s| s.db_acquire_timeout_secs = 30)
        .await
        .expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let group = app.group(&alice, &[&bob]).await;
    let message = app.send(&alice, group, "hello").await;
    let message_id = message["id"].as_str().expect("message id").to_owned();
    app.send(&bob, group, "a reply").await;
    let attachment_id = attachment(&app, &alice, group).await;
    let hook = app
        .post(
            "/api/notifications/webhooks",
            &alice,
            json!({"url": "https://hooks.example.com/chat"}),
        )
        .await;
    let webhook_id = hook.ok(201)["id"].as_str().expect("webhook id").to_owned();
    let export = app
        .post(
            &format!("/api/chat/conversations/{group}/exports"),
            &alice,
            json!({"format": "json"}),
        )
        .await;
    let export_id = export.body["id"].as_str().unwrap_or_default().to_owned();

    let deep = format!(
        r#"
[parameters]
conversation_pk = "{group}"
user_id = "{bob}"
message_id = "{message_id}"
export_id = "{export_id}"
emoji = "👍"

[[operations]]
include-path-regex = "^/api/chat/(conversations|channels)/\\{{id\\}}"
parameters = {{ id = "{group}" }}

[[operations]]
include-path-regex = "^/api/chat/conversations/\\{{conversation_pk\\}}/messages/\\{{id\\}}"
parameters = {{ id = "{message_id}" }}

[[operations]]
include-path-regex = "^/api/chat/attachments/"
parameters = {{ id = "{attachment_id}" }}

[[operations]]
include-path-regex = "^/api/notifications/webhooks/"
parameters = {{ id = "{webhook_id}" }}

[[operations]]
include-path-regex = "^/api/users/"
parameters = {{ id = "{bob}" }}
"#,
        bob = bob.id
    );
    // What would end this run's session or delete its conversation waits for the second run.
    let ending =
        "^/api/auth/(logout|session|password|sessions/)|^/api/chat/conversations/\\{id\\}$";
    schemathesis(&app, &alice, &deep, &["--exclude-path-regex", ending]).await;
    // Everything but those, as a stranger to all of it, with ids of schemathesis's own.
    let carol = app.user("carol").await;
    schemathesis(&app, &carol, "", &["--exclude-path-regex", ending]).await;
    // Then those, by someone else, on a group of their own.
    let dave = app.user("dave").await;
    let own = app.group(&dave, &[&bob]).await;
    let ends = format!(
        r#"
[[operations]]
include-path-regex = "^/api/chat/conversations/\\{{id\\}}$"
parameters = {{ id = "{own}" }}
"#
    );
    schemathesis(&app, &dave, &ends, &["--include-path-regex", ending]).await;
    // Still serving.
    let me = app.get("/api/users/me", &alice).await;
    assert_eq!(me.status, 200, "the API still answers after the fuzzing");
}

// ---------------------------------------------------------------------------
// The WebSocket fuzzer
// ---------------------------------------------------------------------------

/// A WebSocket spoken by hand over TCP, to send what no library would: fragments,
/// broken frames, bad UTF-8, unmasked frames, impossible lengths.
struct RawSocket {
    stream: TcpStream,
}

/// The largest frame the fuzzed gateway accepts (`CHAT_GATEWAY_MAX_FRAME_BYTES`).
const MAX_FRAME: usize = 16 * 1024;

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const PING: u8 = 0x9;

/// One client frame: `fin`, extra header bits (`rsv`, 0 for valid frames), the opcode,
/// and the payload, masked unless `masked` is false (which a server must refuse).
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x5a, 0x17, 0xc3, 0x81];
        out.extend(key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// What the gateway did with a raw socket.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// It answered with this text frame.
    Text(String),
    /// It closed the socket (close frame, with its code, or just the TCP connection).
    Closed(Option<u16>),
}

impl RawSocket {
    /// Opens `/ws` with a bearer token; the upgrade must succeed.
    async fn open(addr: &str, token: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("upgrade");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.expect("upgrade answer");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        let mut socket = Self { stream };
        match socket.outcome().await {
            Outcome::Text(hello) => assert!(hello.contains("\"hello\""), "{hello}"),
            other => panic!("no hello: {other:?}"),
        }
        socket
    }

    async fn write(&mut self, bytes: &[u8]) {
        // The gateway may have closed already, or stopped reading a socket it is about to
        // close; what it did is read by `outcome`.
        let write = self.stream.write_all(bytes);
        let _ = tokio::time::timeout(Duration::from_secs(10), write).await;
    }

    /// The next text frame or the end of the socket, skipping pings and pongs; fails the
    /// test if the gateway does neither within 10 s.
    async fn outcome(&mut self) -> Outcome {
        let read = async {
            loop {
                let mut head = [0u8; 2];
                if self.stream.read_exact(&mut head).await.is_err() {
                    return Outcome::Closed(None);
                }
                let opcode = head[0] & 0x0f;
                let len = match head[1] & 0x7f {
                    126 => {
                        let mut l = [0u8; 2];
                        if self.stream.read_exact(&mut l).await.is_err() {
                            return Outcome::Closed(None);
                        }
                        u16::from_be_bytes(l) as usize
                    }
                    127 => {
                        let mut l = [0u8; 8];
                        if self.stream.read_exact(&mut l).await.is_err() {
                            return Outcome::Closed(None);
                        }
                        u64::from_be_bytes(l) as usize
                    }
                    n => n as usize,
                };
                let mut payload = vec![0u8; len];
                if self.stream.read_exact(&mut payload).await.is_err() {
                    return Outcome::Closed(None);
                }
                match opcode {
                    TEXT => return Outcome::Text(String::from_utf8_lossy(&payload).into()),
                    0x8 => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        return Outcome::Closed(code);
                    }
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the gateway answers or closes within 10 s")
    }

    /// Reads until the socket ends; returns the close code, if a close frame came.
    async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Outcome::Closed(code) = self.outcome().await {
                return code;
            }
        }
    }
}

/// A random text frame: garbage, broken JSON, or a valid frame with mutated fields.
fn garbage(rng: &mut StdRng, conversation: Uuid) -> String {
    let valid = [
        json!({"type": "send", "conversation_id": conversation, "text": "fuzz"}),
        json!({"type": "typing", "conversation_id": conversation, "typing": true}),
        json!({"type": "read", "conversation_id": conversation, "seq": 1}),
        json!({"type": "react", "conversation_id": conversation, "message_id": Uuid::new_v4(), "emoji": "👍"}),
        json!({"type": "resume", "positions": {conversation.to_string(): 0}}),
        json!({"type": "edit", "conversation_id": conversation, "message_id": Uuid::new_v4(), "text": "x"}),
        json!({"type": "ping", "id": "p"}),
    ];
    let odd_values = [
        json!(null),
        json!(-1),
        json!(i64::MAX),
        json!(1e308),
        json!(""),
        json!("\u{202e}\u{200b}"),
        json!([1, [2, [3]]]),
        json!({"$": {}}),
        json!(true),
        json!("x".repeat(2000)),
        json!(Uuid::nil()),
    ];
    match rng.random_range(0..6) {
        // Random bytes, made text.
        0 => {
            let n = rng.random_range(0..300);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // A valid frame cut short.
        1 => {
            let text = valid[rng.random_range(0..valid.len())].to_string();
            let cut = rng.random_range(0..text.len());
            text.char_indices()
                .take_while(|(i, _)| *i < cut)
                .map(|(_, c)| c)
                .collect()
        }
        // Nesting far past any parser's patience.
        2 => {
            let depth = rng.random_range(100..5000);
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
        // A valid frame with a field of the wrong type, or an unknown one.
        3 | 4 => {
            let mut frame = valid[rng.random_range(0..valid.len())].clone();
            let object = frame.as_object_mut().expect("object");
            let keys: Vec<String> = object.keys().cloned().collect();
            let key = if rng.random_bool(0.2) {
                "unexpected".to_owned()
            } else {
                keys[rng.random_range(0..keys.len())].clone()
            };
            object.insert(
                key,
                odd_values[rng.random_range(0..odd_values.len())].clone(),
            );
            frame.to_string()
        }
        // A valid frame as it is.
        _ => valid[rng.random_range(0..valid.len())].to_string(),
    }
}

/// Everything a hostile or broken client can do to one gateway, while an innocent
/// participant of the same conversation, on the same gateway, receives a steady stream
/// of messages: the gateway must not crash, must end each broken socket, and the
/// innocent socket must get every message, in order, and stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_survives_a_websocket_fuzzer_and_other_sockets_notice_nothing() {
    let app = TestApp::spawn().await.expect("app");
    let max_frame = MAX_FRAME.to_string();
    let mut gateway = Gateway::spawn(
        "fuzzed",
        &app.settings,
        &[
            ("CHAT_GATEWAY_MAX_FRAME_BYTES", max_frame.as_str()),
            // Enough that the garbage reaches the parser; the flood still goes past it.
            ("CHAT_GATEWAY_RATE_PER_SEC", "500"),
            ("CHAT_GATEWAY_RATE_BURST", "500"),
        ],
    )
    .await
    .expect("gateway");
    let mallory = app.user("mallory").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let group = app.group(&carol, &[&bob, &mallory]).await;

    // The innocent socket reads everything until told to stop.
    let mut innocent = WsClient::connect(&gateway.url("/ws"), &bob.token)
        .await
        .expect("bob connects");
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => return (innocent, texts),
                frame = innocent.next(Duration::from_secs(60)) => {
                    let frame = frame.expect("the innocent socket stays open");
                    if frame["type"] == "message.created" {
                        let text = frame["data"]["message"]["text"].as_str().unwrap_or_default();
                        if text.starts_with("carol-") {
                            texts.push(text.to_owned());
                        }
                    }
                }
            }
        }
    });
    // Carol talks through the API all along.
    let talker = {
        let (base, token, http) = (app.base.clone(), carol.token.clone(), app.http.clone());
        let (stop_talking, talking) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut sent = 0usize;
            while !*talking.borrow() {
                let resp = http
                    .post(format!("{base}/api/chat/conversations/{group}/messages/"))
                    .bearer_auth(&token)
                    .json(&json!({"text": format!("carol-{sent}")}))
                    .send()
                    .await
                    .expect("carol sends");
                assert_eq!(resp.status(), 201, "carol's message is accepted");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent
        });
        (stop_talking, task)
    };

    let addr = gateway.addr.clone();
    let mut rng = StdRng::seed_from_u64(0xC4A7);

    // 1. Garbage text frames: each is answered (an error, an ack, nothing for typing)
    // and the socket stays usable.
    let mut fuzzer = WsClient::connect(&gateway.url("/ws"), &mallory.token)
        .await
        .expect("mallory connects");
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..8 {
        for _ in 0..50 {
            let text = garbage(&mut rng, group);
            fuzzer
                .send_raw(Message::text(text))
                .await
                .expect("a garbage frame is taken");
        }
        fuzzer
            .send(json!({"type": "ping", "id": format!("alive-{round}")}))
            .await;
        loop {
            let frame = fuzzer.next(Duration::from_secs(10)).await.expect("answers");
            if frame["type"] == "pong" && frame["id"] == format!("alive-{round}") {
                break;
            }
            let kind = match frame["code"].as_str() {
                Some(code) => format!("error {code}"),
                None => frame["type"].as_str().unwrap_or("?").to_owned(),
            };
            *answers.entry(kind).or_default() += 1;
        }
    }
    println!("answers to 400 garbage frames: {answers:?}");
    // 2. Binary frames are refused, the socket stays.
    fuzzer
        .send_raw(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .expect("binary");
    let refused = fuzzer
        .next_of("error", Duration::from_secs(5))
        .await
        .expect("error");
    assert_eq!(refused["code"], "binary_unsupported");
    // 3. A text frame one byte over the limit ends the socket with 1009.
    fuzzer
        .send_raw(Message::text("x".repeat(MAX_FRAME + 1)))
        .await
        .expect("oversized");
    match fuzzer.closed(Duration::from_secs(5)).await.expect("closed") {
        Closed::Code(code, _) => assert_eq!(code, 1009, "message too big"),
        Closed::Abrupt => {}
    }
    drop(fuzzer);

    // 4. Frames by hand.
    // A message in three fragments with a ping between them is one message.
    let mut raw = RawSocket::open(&addr, &mallory.token).await;
    let ping = br#"{"type":"ping","id":"fragmented"}"#;
    raw.write(&frame(false, 0, TEXT, &ping[..10], true)).await;
    raw.write(&frame(true, 0, PING, b"hi", true)).await;
    raw.write(&frame(false, 0, CONTINUATION, &ping[10..20], true))
        .await;
    raw.write(&frame(true, 0, CONTINUATION, &ping[20..], true))
        .await;
    // (Events of the group may come first.)
    loop {
        match raw.outcome().await {
            Outcome::Text(t) if t.contains("\"fragmented\"") => break,
            Outcome::Text(_) => continue,
            other => panic!("a fragmented message was not answered: {other:?}"),
        }
    }
    drop(raw);
    // Each broken stream is ended by the gateway.
    let too_long = vec![b'x'; 1024];
    let broken: Vec<(&str, Vec<u8>)> = vec![
        (
            "a continuation with no start",
            frame(true, 0, CONTINUATION, b"{}", true),
        ),
        (
            "invalid UTF-8",
            frame(true, 0, TEXT, &[0xff, 0xfe, b'{', b'}'], true),
        ),
        (
            "an unmasked client frame",
            frame(true, 0, TEXT, br#"{"type":"ping"}"#, false),
        ),
        (
            "reserved bits",
            frame(true, 0b111, TEXT, br#"{"type":"ping"}"#, true),
        ),
        ("a reserved opcode", frame(true, 0, 0x3, b"??", true)),
        (
            "a ping over 125 bytes",
            frame(true, 0, PING, &[b'p'; 200], true),
        ),
        ("a fragmented ping", frame(false, 0, PING, b"p", true)),
        ("fragments past the limit", {
            let mut all = frame(false, 0, TEXT, &too_long, true);
            for _ in 0..(MAX_FRAME / 1024 + 2) {
                all.extend(frame(false, 0, CONTINUATION, &too_long, true));
            }
            all
        }),
        ("a length of 2^63", {
            let mut header = vec![0x81, 0x80 | 127];
            header.extend((1u64 << 63).to_be_bytes());
            header.extend([1, 2, 3, 4]);
            header
        }),
    ];
    for (what, bytes) in broken {
        let mut raw = RawSocket::open(&addr, &mallory.token).await;
        raw.write(&bytes).await;
        let code = raw.closed().await;
        assert!(
            matches!(code, None | Some(1002 | 1007 | 1009)),
            "{what}: closed with {code:?}"
        );
    }
    // Abrupt ends: half a frame, half a handshake, no close frame.
    let mut raw = RawSocket::open(&addr, &mallory.token).await;
    raw.write(&frame(true, 0, TEXT, br#"{"type":"ping"}"#, true)[..5])
        .await;
    drop(raw);
    let mut half = TcpStream::connect(&addr).await.expect("connect");
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .expect("half a handshake");
    drop(half);

    // 5. A flood from a socket that never reads, and a crowd that connects and vanishes.
    let mut flooder = RawSocket::open(&addr, &mallory.token).await;
    let typing = json!({"type": "typing", "conversation_id": group, "typing": true}).to_string();
    let one = frame(true, 0, TEXT, typing.as_bytes(), true);
    let burst: Vec<u8> = std::iter::repeat_n(one, 2000).flatten().collect();
    for _ in 0..5 {
        flooder.write(&burst).await;
    }
    drop(flooder);
    let crowd = (0..10).map(|_| {
        let (url, token) = (gateway.url("/ws"), mallory.token.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                // Dropped without a close frame.
                drop(WsClient::connect(&url, &token).await.expect("connects"));
            }
        })
    });
    for task in futures::future::join_all(crowd).await {
        task.expect("the crowd connects");
    }

    // The gateway is alive and well, and bob noticed nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stop_talking, talker) = talker;
    stop_talking.send(true).expect("stop carol");
    let sent = talker.await.expect("carol talked");
    assert!(gateway.is_running(), "the gateway crashed");
    let expected: Vec<String> = (0..sent).map(|i| format!("carol-{i}")).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Give the last messages time to arrive before stopping the reader.
        let stats: serde_json::Value = app
            .http
            .get(format!("http://{addr}/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json");
        if stats["connections"] == 1 || tokio::time::Instant::now() > deadline {
            println!("carol sent {sent} messages during the fuzzing; gateway stats {stats}");
            assert_eq!(
                stats["connections"], 1,
                "only bob is left connected: {stats}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).expect("stop bob");
    let (mut innocent, texts) = reader.await.expect("bob read");
    assert_eq!(
        texts, expected,
        "bob got every message of carol's, in order, once"
    );
    innocent
        .send(json!({"type": "ping", "id": "still-here"}))
        .await;
    let pong = innocent
        .next_of("pong", Duration::from_secs(5))
        .await
        .expect("bob's socket still works");
    assert_eq!(pong["id"], "still-here");
    let health = app
        .http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
}
