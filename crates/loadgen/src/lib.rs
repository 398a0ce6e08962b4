//! The load generator behind `chat-load`.
//!
//! It sets itself up through the REST API (users, logins, conversations), then opens
//! WebSocket connections across the gateways and runs one scenario:
//! - `latency`: `groups` conversations, each with one sender on the first gateway and
//!   `receivers` members on the others; messages go out at a fixed total `rate`,
//!   open-loop: each send has an intended time on a fixed schedule, and latency is
//!   measured from that intended time to delivery, so a stall shows up as latency
//!   instead of silently lowering the rate;
//! - `fanout`: the same engine with one conversation of `receivers + 1` members;
//! - `persist`: `groups` conversations of `senders` members, every one sending, spread
//!   over all the gateways, no one else listening: how many messages per second the
//!   platform commits, the time from intended send to `ack`, and the commit batch sizes
//!   the gateways report (`/stats`);
//! - `idle`: opens `connections` authenticated sockets, reports the handshake rate, and
//!   holds them for `duration` (measure the gateways' memory meanwhile);
//! - `catchup`: a member misses `backlog` messages, reconnects with its last seq, and
//!   the time until the last one arrives is measured, `rounds` times.
//!
//! Every receiver checks seqs: a seq at or below the last one is a duplicate, a jump is a
//! gap. Losses are acknowledged sends that never arrived. Sends are pipelined: a sender
//! does not wait for one ack before the next send. Every sending scenario also reports
//! CPU per message, whole machine and per process ([`cpu`]).

pub mod cpu;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-load",
    version,
    about = "Load generator for the chat gateway fleet"
)]
pub struct LoadArgs {
    /// Scenario: latency, fanout, persist, idle or catchup.
    #[arg(long, default_value = "latency", value_parser = ["latency", "fanout", "persist", "idle", "catchup"])]
    pub scenario: String,
    /// REST API base URL (for set-up).
    #[arg(long, env = "CHAT_LOAD_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Gateways, comma-separated. Senders use the first, receivers the others.
    #[arg(
        long,
        env = "CHAT_LOAD_GATEWAYS",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8081,ws://127.0.0.1:8082"
    )]
    pub gateways: Vec<String>,
    /// Messages per second, in total (latency, fanout).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of load (latency, fanout) or of holding (idle).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Conversations (latency).
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// Receivers per conversation (latency; fanout uses one conversation of these plus
    /// the senders).
    #[arg(long, default_value_t = 1)]
    pub receivers: usize,
    /// Senders per conversation (each its own user and socket; sends are pipelined).
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Where the receivers connect (latency, fanout): `others` (every gateway but the
    /// senders' first) or `all` (spread over every gateway, the senders' included).
    #[arg(long, default_value = "others", value_parser = ["others", "all"])]
    pub receivers_on: String,
    /// Sockets to open (idle).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Missed messages per round (catchup).
    #[arg(long, default_value_t = 1000)]
    pub backlog: usize,
    /// Rounds (catchup).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Sockets opened at once while connecting.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// The set-up side: the REST API.
struct Api {
    base: String,
    http: reqwest::Client,
    run: String,
}

struct Account {
    id: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {body}");
        }
        Ok(body)
    }

    async fn account(&self, n: usize) -> anyhow::Result<Account> {
        let username = format!("load{}_{n}", self.run);
        let credentials = json!({"username": username, "password": "load-test-password"});
        self.call(
            reqwest::Method::POST,
            "/api/auth/register",
            None,
            credentials.clone(),
        )
        .await?;
        let login = self
            .call(reqwest::Method::POST, "/api/auth/login", None, credentials)
            .await?;
        Ok(Account {
            id: login["user_id"].as_str().unwrap_or_default().to_owned(),
            token: login["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    async fn accounts(&self, n: usize) -> anyhow::Result<Vec<Account>> {
        let mut out = Vec::with_capacity(n);
        let mut pending = futures::stream::iter(0..n)
            .map(|i| self.account(i))
            .buffered(16);
        while let Some(account) = pending.next().await {
            out.push(account?);
            if out.len() % 200 == 0 {
                eprintln!("  {} accounts", out.len());
            }
        }
        Ok(out)
    }

    async fn group(&self, owner: &Account, members: &[&Account]) -> anyhow::Result<String> {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let body = json!({"name": "load", "is_group": true, "participants": ids});
        let c = self
            .call(
                reqwest::Method::POST,
                "/api/chat/conversations/",
                Some(&owner.token),
                body,
            )
            .await?;
        Ok(c["id"].as_str().unwrap_or_default().to_owned())
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gateway: &str, path: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = format!("{gateway}{path}").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}

/// Shared counters of a run.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    gaps: AtomicU64,
}

/// What a run measured.
pub struct Report {
    lines: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

fn describe(h: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}

pub async fn run(args: LoadArgs) -> anyhow::Result<Report> {
    if args.gateways.is_empty() {
        bail!("give at least one gateway");
    }
    if args.groups == 0 || args.rate == 0 {
        bail!("--groups and --rate must be at least 1");
    }
    let api = Api {
        base: args.api.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
    };
    match args.scenario.as_str() {
        "latency" => stream(&api, &args, args.groups, args.receivers).await,
        "fanout" => stream(&api, &args, 1, args.receivers.max(1)).await,
        "persist" => stream(&api, &args, args.groups, 0).await,
        "idle" => idle(&api, &args).await,
        "catchup" => catchup(&api, &args).await,
        other => bail!("unknown scenario {other}"),
    }
}

/// Fixed-rate sends into `groups` conversations of `senders + receivers` members.
async fn stream(
    api: &Api,
    args: &LoadArgs,
    groups: usize,
    receivers: usize,
) -> anyhow::Result<Report> {
    let senders_per_group = args.senders.max(1);
    let size = senders_per_group + receivers;
    eprintln!(
        "setting up {groups} conversation(s) of {size} members ({senders_per_group} sending)"
    );
    let accounts = api.accounts(groups * size).await?;
    let tally = Arc::new(Tally::default());
    let latency = Arc::new(Mutex::new(histogram()));
    let receiver_gateways: Vec<&String> =
        if args.gateways.len() > 1 && args.receivers_on == "others" {
            args.gateways[1..].iter().collect()
        } else {
            args.gateways.iter().collect()
        };
    let ack_latency = Arc::new(Mutex::new(histogram()));
    let mut sender_index = 0usize;
    let mut senders = Vec::new();
    let mut receiver_tasks = Vec::new();
    let mut receiver_index = 0usize;
    for g in 0..groups {
        let members: Vec<&Account> = accounts[g * size..(g + 1) * size].iter().collect();
        let cid = api.group(members[0], &members[1..]).await?;
        for member in &members[senders_per_group..] {
            let gateway = receiver_gateways[receiver_index % receiver_gateways.len()];
            receiver_index += 1;
            let socket = connect(gateway, "/ws", &member.token).await?;
            receiver_tasks.push(tokio::spawn(receive(
                socket,
                tally.clone(),
                latency.clone(),
            )));
        }
        for sender in &members[..senders_per_group] {
            // Persist spreads senders over every gateway; the others send from the first.
            let gateway = if receivers == 0 {
                &args.gateways[sender_index % args.gateways.len()]
            } else {
                &args.gateways[0]
            };
            sender_index += 1;
            let socket = connect(gateway, "/ws", &sender.token).await?;
            let (tx, rx) = mpsc::unbounded_channel::<u64>();
            let deliveries = (receivers == 0).then(|| latency.clone());
            tokio::spawn(send(
                socket,
                cid.clone(),
                rx,
                tally.clone(),
                ack_latency.clone(),
                deliveries,
            ));
            senders.push(tx);
        }
    }
    eprintln!(
        "{} receivers connected; sending {} msg/s for {} s",
        receiver_index, args.rate, args.duration
    );
    let total = args.rate * args.duration;
    let interval_ns = 1_000_000_000 / args.rate.max(1);
    let start_ns = now_ns() + 100_000_000;
    let start = Instant::now() + Duration::from_millis(100);
    let progress = tokio::spawn(progress(
        tally.clone(),
        if receivers == 0 {
            ack_latency.clone()
        } else {
            latency.clone()
        },
    ));
    let stats_before = gateway_stats(&api.http, &args.gateways).await;
    let cpu_before = cpu::CpuSample::take();
    for k in 0..total {
        let due = start + Duration::from_nanos(k * interval_ns);
        tokio::time::sleep_until(due.into()).await;
        let intended = start_ns + k * interval_ns;
        let _ = senders[(k as usize) % senders.len()].send(intended);
        tally.sent.fetch_add(1, Ordering::Relaxed);
    }
    // Let the last messages be acknowledged and arrive (in `persist`, at every sender).
    let listeners = if receivers == 0 {
        senders_per_group
    } else {
        receivers
    };
    let expected = total * listeners as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (tally.received.load(Ordering::Relaxed) < expected
        || tally.acked.load(Ordering::Relaxed) + tally.errors.load(Ordering::Relaxed) < total)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = cpu::CpuSample::take();
    let stats_after = gateway_stats(&api.http, &args.gateways).await;
    progress.abort();
    drop(senders);
    for t in receiver_tasks {
        t.abort();
    }
    let acked = tally.acked.load(Ordering::Relaxed);
    let received = tally.received.load(Ordering::Relaxed);
    let h = latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let acks = ack_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut lines = vec![
        format!(
            "scenario {}: {groups} conversation(s) × ({senders_per_group} sender(s) + {receivers} receiver(s)), {} gateways, {} msg/s for {} s",
            args.scenario,
            args.gateways.len(),
            args.rate,
            args.duration
        ),
        format!(
            "sent {}, acknowledged {acked} ({:.0}/s over {elapsed:.1} s), refused {}",
            tally.sent.load(Ordering::Relaxed),
            acked as f64 / elapsed,
            tally.errors.load(Ordering::Relaxed)
        ),
    ];
    let listeners = listeners as u64;
    lines.push(format!(
        "deliveries: {received} of {} expected ({:.0}/s over {elapsed:.1} s)",
        acked * listeners,
        received as f64 / elapsed
    ));
    lines.push(format!(
        "lost {}, duplicates {}, gaps {}",
        (acked * listeners).saturating_sub(received),
        tally.duplicates.load(Ordering::Relaxed),
        tally.gaps.load(Ordering::Relaxed)
    ));
    lines.push(format!(
        "end-to-end latency (from intended send time): {}",
        describe(&h)
    ));
    lines.push(format!(
        "ack latency (from intended send time): {}",
        describe(&acks)
    ));
    lines.push(batch_line(&stats_before, &stats_after));
    lines.extend(cpu_before.report(&cpu_after, acked));
    Ok(Report { lines })
}

/// Each gateway's `/stats` counters (empty for one that does not answer).
async fn gateway_stats(http: &reqwest::Client, gateways: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for g in gateways {
        let url = format!(
            "{}/stats",
            g.replacen("ws://", "http://", 1)
                .replacen("wss://", "https://", 1)
        );
        let stats = match http.get(&url).send().await {
            Ok(resp) => resp.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        out.push(stats);
    }
    out
}

/// The commit batches the gateways made during the run.
fn batch_line(before: &[Value], after: &[Value]) -> String {
    let delta = |field: &str| -> u64 {
        before
            .iter()
            .zip(after)
            .map(|(b, a)| {
                a[field]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(b[field].as_u64().unwrap_or(0))
            })
            .sum()
    };
    let (batches, messages) = (delta("write_batches"), delta("write_batch_messages"));
    let largest = after
        .iter()
        .filter_map(|a| a["write_batch_largest"].as_u64())
        .max()
        .unwrap_or(0);
    if batches == 0 {
        return "commit batches: none reported by the gateways' /stats".into();
    }
    format!(
        "commit batches (gateways): {batches} for {messages} sends, {:.1} messages per batch on average, largest so far {largest}",
        messages as f64 / batches as f64
    )
}

async fn send(
    socket: Socket,
    cid: String,
    mut orders: mpsc::UnboundedReceiver<u64>,
    tally: Arc<Tally>,
    ack_latency: Arc<Mutex<Histogram<u64>>>,
    deliveries: Option<Arc<Mutex<Histogram<u64>>>>,
) {
    // Distinguishes this sender's keys from other runs'; the intended send time rides
    // in the key, so that the ack tells how long the commit took.
    let key = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (mut sink, mut stream) = socket.split();
    let reader_tally = tally.clone();
    tokio::spawn(async move {
        let mut local = histogram();
        // Senders of `persist` are members like any other: they get every message of
        // their conversation, their own included.
        let mut check = deliveries.map(|latency| Deliveries::new(reader_tally.clone(), latency));
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(t) = msg {
                if let Some(check) = check.as_mut() {
                    check.frame(&t);
                }
                if t.contains("\"type\":\"ack\"") {
                    let arrived = now_ns();
                    reader_tally.acked.fetch_add(1, Ordering::Relaxed);
                    let intended = serde_json::from_str::<AckFrame>(&t).ok().and_then(|ack| {
                        ack.client_msg_id
                            .and_then(|k| k.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()))
                    });
                    if let Some(intended) = intended {
                        let _ = local.record(arrived.saturating_sub(intended) / 1000);
                    }
                    if local.len() >= 10 {
                        let _ = ack_latency
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .add(&local);
                        local.reset();
                    }
                } else if t.contains("\"type\":\"error\"") {
                    reader_tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let _ = ack_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&local);
    });
    while let Some(intended) = orders.recv().await {
        let frame = json!({"type": "send", "conversation_id": cid, "text": intended.to_string(), "client_msg_id": format!("{key}-{intended}")});
        if sink.send(Message::text(frame.to_string())).await.is_err() {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

async fn receive(socket: Socket, tally: Arc<Tally>, latency: Arc<Mutex<Histogram<u64>>>) {
    let (_sink, mut stream) = socket.split();
    let mut check = Deliveries::new(tally, latency);
    while let Some(Ok(msg)) = stream.next().await {
        if let Message::Text(text) = msg {
            check.frame(&text);
        }
    }
}

/// The parts of a `message.created` frame the receivers read.
#[derive(serde::Deserialize)]
struct CreatedFrame<'a> {
    #[serde(borrow)]
    conversation_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: CreatedData<'a>,
}

#[derive(serde::Deserialize)]
struct CreatedData<'a> {
    #[serde(borrow)]
    message: CreatedMessage<'a>,
}

#[derive(serde::Deserialize)]
struct CreatedMessage<'a> {
    seq: i64,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
}

/// The part of an `ack` frame the senders read: the key carries the intended send time.
#[derive(serde::Deserialize)]
struct AckFrame<'a> {
    #[serde(borrow)]
    client_msg_id: Option<std::borrow::Cow<'a, str>>,
}

/// Checks the `message.created` events one socket receives (seq order per
/// conversation: duplicates, gaps) and records their latency from the intended send
/// time, which the load tool puts in the text.
struct Deliveries {
    tally: Arc<Tally>,
    latency: Arc<Mutex<Histogram<u64>>>,
    last: std::collections::HashMap<String, i64>,
    local: Histogram<u64>,
}

impl Deliveries {
    fn new(tally: Arc<Tally>, latency: Arc<Mutex<Histogram<u64>>>) -> Self {
        Self {
            tally,
            latency,
            last: Default::default(),
            local: histogram(),
        }
    }

    fn frame(&mut self, text: &str) {
        if !text.contains("\"message.created\"") {
            return;
        }
        let arrived = now_ns();
        // Only the fields it needs, borrowed: the tool shares the box it measures.
        let Ok(event) = serde_json::from_str::<CreatedFrame>(text) else {
            return;
        };
        let (seq, sent_text) = (event.data.message.seq, event.data.message.text);
        let prev = self
            .last
            .get(event.conversation_id.as_ref())
            .copied()
            .unwrap_or(0);
        if seq <= prev {
            self.tally.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if seq > prev + 1 {
            self.tally.gaps.fetch_add(1, Ordering::Relaxed);
        }
        self.last.insert(event.conversation_id.into_owned(), seq);
        self.tally.received.fetch_add(1, Ordering::Relaxed);
        if let Ok(intended) = sent_text.parse::<u64>() {
            let _ = self.local.record(arrived.saturating_sub(intended) / 1000);
        }
        if self.local.len() >= 10 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let _ = self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&self.local);
        self.local.reset();
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.flush();
    }
}

async fn progress(tally: Arc<Tally>, latency: Arc<Mutex<Histogram<u64>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut second = 0;
    loop {
        tick.tick().await;
        second += 1;
        let h = latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
        eprintln!(
            "[{second:>3}s] sent {} acked {} received {} refused {} | p99 so far {:.2} ms",
            tally.sent.load(Ordering::Relaxed),
            tally.acked.load(Ordering::Relaxed),
            tally.received.load(Ordering::Relaxed),
            tally.errors.load(Ordering::Relaxed),
            h.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
}

/// Opens many sockets, reports the handshake rate, and holds them.
async fn idle(api: &Api, args: &LoadArgs) -> anyhow::Result<Report> {
    let users = args.connections.clamp(1, 100);
    eprintln!("setting up {users} users");
    let accounts = api.accounts(users).await?;
    // Everyone in one group, so that each socket has a conversation to listen to.
    let refs: Vec<&Account> = accounts.iter().collect();
    api.group(refs[0], &refs[1..]).await?;
    let started = Instant::now();
    let opened = AtomicU64::new(0);
    let sockets: Vec<Socket> = futures::stream::iter(0..args.connections)
        .map(|i| {
            let gateway = &args.gateways[i % args.gateways.len()];
            let token = &accounts[i % users].token;
            let opened = &opened;
            async move {
                let s = connect(gateway, "/ws", token).await;
                let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(1000) {
                    eprintln!("  {n} sockets open");
                }
                s
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .filter_map(|s| async move { s.ok() })
        .collect()
        .await;
    let took = started.elapsed().as_secs_f64();
    let ok = sockets.len();
    eprintln!(
        "holding {ok} sockets for {} s (measure the gateways now)",
        args.duration
    );
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    drop(sockets);
    Ok(Report {
        lines: vec![
            format!(
                "scenario idle: {ok} of {} sockets opened over {} gateway(s) in {took:.2} s",
                args.connections,
                args.gateways.len()
            ),
            format!(
                "authenticated handshakes: {:.0}/s (concurrency {})",
                ok as f64 / took,
                args.concurrency
            ),
        ],
    })
}

/// A member misses `backlog` messages and catches up on reconnect, `rounds` times.
async fn catchup(api: &Api, args: &LoadArgs) -> anyhow::Result<Report> {
    let accounts = api.accounts(2).await?;
    let cid = api.group(&accounts[0], &[&accounts[1]]).await?;
    let mut sender = connect(&args.gateways[0], "/ws", &accounts[0].token).await?;
    let receiver_gateway = args.gateways.last().unwrap_or(&args.gateways[0]);
    let mut times = histogram();
    let mut last_seq = 0i64;
    for round in 0..args.rounds {
        // Send the backlog and wait for every ack (so it is committed).
        let mut acked = 0;
        for i in 0..args.backlog {
            let frame = json!({"type": "send", "conversation_id": cid, "text": format!("backlog {round}/{i}")});
            sender.send(Message::text(frame.to_string())).await?;
        }
        while acked < args.backlog {
            match sender.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"type\":\"ack\"") => acked += 1,
                Some(Ok(Message::Text(t))) if t.contains("\"type\":\"error\"") => {
                    bail!("send refused: {t} (raise CHAT_GATEWAY_RATE_PER_SEC)")
                }
                Some(Ok(_)) => {}
                _ => bail!("sender socket closed"),
            }
        }
        let target = last_seq + args.backlog as i64;
        let started = Instant::now();
        let mut socket = connect(
            receiver_gateway,
            &format!("/ws?since={cid}:{last_seq}"),
            &accounts[1].token,
        )
        .await?;
        let mut expected = last_seq + 1;
        while expected <= target {
            match socket.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"message.created\"") => {
                    let v: Value = serde_json::from_str(&t)?;
                    let seq = v["data"]["message"]["seq"].as_i64().unwrap_or(0);
                    if seq != expected {
                        bail!("round {round}: expected seq {expected}, got {seq}");
                    }
                    expected += 1;
                }
                Some(Ok(_)) => {}
                _ => bail!("receiver socket closed"),
            }
        }
        let _ = times.record(started.elapsed().as_micros() as u64);
        last_seq = target;
        eprintln!(
            "  round {round}: {} messages in {:.1} ms",
            args.backlog,
            started.elapsed().as_secs_f64() * 1000.0
        );
        let _ = socket.close(None).await;
    }
    Ok(Report {
        lines: vec![
            format!(
                "scenario catchup: {} rounds of {} missed messages, receiver on {receiver_gateway}",
                args.rounds, args.backlog
            ),
            format!(
                "time from connect to the last missed message: {}",
                describe(&times)
            ),
        ],
    })
}
