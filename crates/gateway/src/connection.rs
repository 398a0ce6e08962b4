//! One WebSocket connection: subscribe, catch up, then serve requests and deliver events.
//!
//! Order of work at connect (the rule that makes resume gap-free): register in the hub
//! first, then read the start positions (and any backlog) from PostgreSQL, then deliver
//! live events past what was already sent. Events that arrive meanwhile wait in the
//! connection's queue.
//!
//! Per conversation the connection remembers the last message seq it sent. A
//! `message.created` at or below it is a duplicate and is dropped; one more than one past
//! it reveals a gap (an event lost or reordered on the bus), which is filled from
//! PostgreSQL before the event is sent. So every client gets every message exactly once,
//! in seq order.
//!
//! Sends are pipelined: a `send` is validated and queued for the process's group commit
//! at once, in frame order, and its `ack` (which carries the `client_msg_id`) is written
//! when its batch commits, while the connection goes on reading frames and delivering
//! events. At most [`MAX_SENDS_IN_FLIGHT`] per socket; past that the connection waits
//! for the oldest before reading more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chat_domain::{ConversationId, Event, EventPayload, UserId};

use crate::positions::{Positions, Verdict};
use chat_service::messages::SendMessage;
use chat_service::{Caller, HistoryQuery, ServiceError, Watermark};
use std::future::Future;
use std::pin::Pin;

use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use tokio::sync::{Notify, mpsc};

use crate::GatewayState;
use crate::hub::{Member, Outbound};
use crate::protocol::{ClientFrame, Position, ServerFrame, close, codes, parse_client_frame};

/// Which conversations a connection receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/ws`: all of the user's conversations, including ones joined later.
    All,
    /// `/ws/chat/{conversation_id}/`: one conversation.
    One(ConversationId),
}

/// Why the connection loop ended, and how to close.
enum Exit {
    /// The client closed or the socket failed: nothing more to send.
    Gone,
    Close(u16, String),
}

/// Messages read from PostgreSQL per catch-up query.
const CATCH_UP_PAGE: i64 = 200;
/// Sends of one socket queued for commit and not acknowledged yet.
pub const MAX_SENDS_IN_FLIGHT: usize = 256;

struct Connection {
    state: Arc<GatewayState>,
    caller: Caller,
    scope: Scope,
    id: String,
    /// Last message seq sent per subscribed conversation (`None`: not known yet, after a
    /// join; the first message sets it).
    sent: Positions,
    sink: futures::stream::SplitSink<WebSocketStream, Message>,
    /// Set by the hub when this connection's queue overflowed.
    kicked: Arc<AtomicBool>,
    /// Sends waiting for their commit; each yields its `ack` or `error` frame.
    /// `Sync` because the connection is borrowed across awaits.
    in_flight: FuturesUnordered<Pin<Box<dyn Future<Output = ServerFrame> + Send + Sync>>>,
}

fn slow_consumer() -> Exit {
    Exit::Close(
        close::SLOW_CONSUMER,
        "slow consumer: reconnect and resume from your last seq".into(),
    )
}

/// Serves one upgraded connection until it closes.
pub async fn serve(
    socket: WebSocketStream,
    state: Arc<GatewayState>,
    caller: Caller,
    scope: Scope,
    conversations: Vec<ConversationId>,
    resume: BTreeMap<ConversationId, i64>,
) {
    let conn_id = state.next_connection_id();
    let (tx, mut rx) = mpsc::channel(state.settings.queue_capacity);
    let kick = Arc::new(Notify::new());
    let kicked = Arc::new(AtomicBool::new(false));
    let member = Arc::new(Member {
        conn: conn_id,
        user: caller.user_id,
        all_conversations: scope == Scope::All,
        tx,
        kick: kick.clone(),
        kicked: kicked.clone(),
    });
    // 1. Subscribe first.
    state.hub.register(member, &conversations);
    let (sink, mut stream) = socket.split();
    let mut conn = Connection {
        id: format!("{}-{conn_id}", state.gateway_id),
        state: state.clone(),
        caller,
        scope,
        sent: Positions::default(),
        sink,
        kicked,
        in_flight: FuturesUnordered::new(),
    };
    let exit = conn
        .run(&mut stream, &mut rx, &kick, &conversations, resume)
        .await;
    state.hub.unregister(conn_id, caller.user_id);
    if let Exit::Close(code, reason) = exit {
        let close = Message::Close(Some((CloseCode::from(code), reason)));
        let _ = tokio::time::timeout(state.settings.write_timeout(), conn.sink.send(close)).await;
    }
    let _ = tokio::time::timeout(state.settings.write_timeout(), conn.sink.close()).await;
    conn.presence_offline().await;
}

impl Connection {
    async fn run(
        &mut self,
        stream: &mut futures::stream::SplitStream<WebSocketStream>,
        rx: &mut mpsc::Receiver<Outbound>,
        kick: &Notify,
        conversations: &[ConversationId],
        resume: BTreeMap<ConversationId, i64>,
    ) -> Exit {
        // 2. Then read where live delivery starts.
        let positions = match self.state.service.positions(&self.caller).await {
            Ok(p) => p,
            Err(e) => return Exit::Close(1011, format!("could not load conversations: {e}")),
        };
        for (c, last_seq) in positions {
            if conversations.contains(&c) {
                self.sent.join(c, Some(last_seq));
            }
        }
        let hello = ServerFrame::Hello {
            connection_id: self.id.clone(),
            user_id: self.caller.user_id,
            gateway_id: self.state.gateway_id.clone(),
            heartbeat_ms: self.state.settings.heartbeat().as_millis() as u64,
            conversations: self
                .sent
                .iter()
                .map(|(c, s)| Position {
                    conversation_id: c,
                    seq: resume.get(&c).copied().unwrap_or(s.unwrap_or(0)),
                })
                .collect(),
        };
        if self.frame(&hello).await.is_err() {
            return Exit::Gone;
        }
        self.presence_online().await;
        // 3. Catch up where the client asked to resume (only conversations this socket
        // receives; the upgrade refused any other).
        for (c, after) in resume {
            if !self.sent.receives(c) {
                continue;
            }
            if let Err(exit) = self.resume(c, after, None).await {
                return exit;
            }
        }
        let mut shutdown = self.state.shutdown.clone();
        let heartbeat = self.state.settings.heartbeat();
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let mut last_heard = Instant::now();
        loop {
            let step = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    // Sends already queued commit anyway: tell the client before leaving.
                    let _ = tokio::time::timeout(self.state.settings.write_timeout(), self.finish_sends()).await;
                    let _ = self.frame(&ServerFrame::Reconnect { reason: "gateway draining".into() }).await;
                    return Exit::Close(close::GOING_AWAY, "gateway draining: reconnect and resume".into());
                }
                _ = kick.notified() => return slow_consumer(),
                // Deliveries before requests: delivering is quick, while a request may wait
                // on PostgreSQL, and a client that floods requests must not starve its own
                // deliveries into a slow-consumer disconnect.
                outbound = rx.recv() => match outbound {
                    Some(out) => self.outbound(out).await,
                    None => return Exit::Gone,
                },
                Some(answer) = self.in_flight.next(), if !self.in_flight.is_empty() => self.frame(&answer).await,
                incoming = stream.next() => match incoming {
                    None | Some(Err(_)) => return Exit::Gone,
                    Some(Ok(message)) => {
                        last_heard = Instant::now();
                        self.incoming(message).await
                    }
                },
                _ = ticker.tick() => {
                    if last_heard.elapsed() > heartbeat * 3 {
                        return Exit::Close(close::IDLE_TIMEOUT, "idle timeout".into());
                    }
                    // A logout revokes the session: its open sockets close too.
                    let session = (self.caller.session_id, self.caller.user_id);
                    if let Ok(false) = self.state.service.store().session_is_active(session.0, session.1).await {
                        return Exit::Close(close::UNAUTHENTICATED, "session ended".into());
                    }
                    // So does a removal, even one whose `participant.left` never arrived.
                    if let Err(exit) = self.forget_left_conversations().await {
                        return exit;
                    }
                    self.presence_refresh().await;
                    self.write(Message::Ping(Vec::new())).await
                }
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    /// Writes one message, giving up (and dropping the connection) when the client does
    /// not take it within the write timeout.
    async fn write(&mut self, message: Message) -> Result<(), Exit> {
        match tokio::time::timeout(self.state.settings.write_timeout(), self.sink.send(message))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Exit::Gone),
            Err(_) if self.kicked.load(Ordering::Relaxed) => Err(slow_consumer()),
            Err(_) => Err(Exit::Close(
                close::SLOW_CONSUMER,
                "write timed out: reconnect and resume".into(),
            )),
        }
    }

    /// Sends one of our frames.
    async fn frame(&mut self, frame: &ServerFrame) -> Result<(), Exit> {
        let json = serde_json::to_string(frame).map_err(|e| Exit::Close(1011, e.to_string()))?;
        self.write(Message::Text(json)).await
    }

    async fn error(
        &mut self,
        id: Option<String>,
        code: &str,
        message: impl Into<String>,
    ) -> Result<(), Exit> {
        self.frame(&ServerFrame::Error {
            id,
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        })
        .await
    }

    /// The answer to a request that broke a rate limit.
    async fn rate_limited(&mut self, id: Option<String>, wait: Duration) -> Result<(), Exit> {
        self.frame(&ServerFrame::Error {
            id,
            code: codes::RATE_LIMITED.into(),
            message: "too many requests; slow down".into(),
            retry_after_ms: Some(wait.as_millis().max(1) as u64),
        })
        .await
    }

    async fn incoming(&mut self, message: Message) -> Result<(), Exit> {
        // Every data frame counts, whatever it holds: garbage, pings and resumes cost a
        // parse and a write (a resume, database reads too).
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && let Err(not_until) = self.state.limiter.check_key(&self.caller.user_id)
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return self.rate_limited(None, wait).await;
        }
        match message {
            Message::Text(text) => match parse_client_frame(&text) {
                Ok(frame) => self.request(frame).await,
                Err(e) => self.error(e.id, e.code, e.message).await,
            },
            Message::Binary(_) => {
                self.error(None, codes::BINARY_UNSUPPORTED, "frames are JSON text")
                    .await
            }
            Message::Close(_) => Err(Exit::Gone),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    /// The conversation a request is about: the frame's, or the socket's own.
    fn target(
        &self,
        requested: Option<ConversationId>,
    ) -> Result<ConversationId, (&'static str, String)> {
        match (self.scope, requested) {
            (Scope::One(c), None) => Ok(c),
            (Scope::One(c), Some(r)) if r == c => Ok(c),
            (Scope::One(_), Some(_)) => Err((
                codes::WRONG_CONVERSATION,
                "this socket is bound to another conversation".into(),
            )),
            (Scope::All, Some(r)) => Ok(r),
            (Scope::All, None) => Err((
                codes::INVALID_FRAME,
                "conversation_id is required on /ws".into(),
            )),
        }
    }

    async fn request(&mut self, frame: ClientFrame) -> Result<(), Exit> {
        let (id, conversation) = match &frame {
            ClientFrame::Ping { id } => {
                return self.frame(&ServerFrame::Pong { id: id.clone() }).await;
            }
            ClientFrame::Resume { id, positions } => {
                let (id, positions) = (id.clone(), positions.clone());
                return self.resume_many(id, positions).await;
            }
            ClientFrame::Send {
                id,
                conversation_id,
                ..
            }
            | ClientFrame::Edit {
                id,
                conversation_id,
                ..
            }
            | ClientFrame::Delete {
                id,
                conversation_id,
                ..
            }
            | ClientFrame::React {
                id,
                conversation_id,
                ..
            }
            | ClientFrame::Read {
                id,
                conversation_id,
                ..
            }
            | ClientFrame::Delivered {
                id,
                conversation_id,
                ..
            } => (id.clone(), *conversation_id),
            ClientFrame::Typing {
                id,
                conversation_id,
                ..
            } => (id.clone(), *conversation_id),
        };
        let conversation = match self.target(conversation) {
            Ok(c) => c,
            Err((code, message)) => return self.error(id, code, message).await,
        };
        let service = &self.state.service;
        let caller = &self.caller;
        let result: Result<ServerFrame, ServiceError> = match frame {
            ClientFrame::Send {
                text,
                client_msg_id,
                reply_to,
                ..
            } => {
                while self.in_flight.len() >= MAX_SENDS_IN_FLIGHT {
                    if let Some(answer) = self.in_flight.next().await {
                        self.frame(&answer).await?;
                    }
                }
                let request = SendMessage {
                    text,
                    client_msg_id,
                    reply_to,
                    attachments: Vec::new(),
                };
                match self
                    .state
                    .service
                    .submit_message(&self.caller, conversation, request)
                    .await
                {
                    Ok(pending) => {
                        self.in_flight.push(Box::pin(ack_when_committed(
                            id,
                            conversation,
                            pending,
                        )));
                        return Ok(());
                    }
                    Err(e) => Err(e),
                }
            }
            ClientFrame::Edit {
                message_id, text, ..
            } => service
                .edit_message(caller, conversation, message_id, &text)
                .await
                .map(|_| ServerFrame::Ok { id: id.clone() }),
            ClientFrame::Delete { message_id, .. } => service
                .delete_message(caller, conversation, message_id)
                .await
                .map(|_| ServerFrame::Ok { id: id.clone() }),
            ClientFrame::React {
                message_id,
                emoji,
                add,
                ..
            } => service
                .react(caller, conversation, message_id, &emoji, add)
                .await
                .map(|_| ServerFrame::Ok { id: id.clone() }),
            ClientFrame::Typing { typing, .. } => {
                if !self.sent.receives(conversation) {
                    return self
                        .error(id, codes::NOT_FOUND, "conversation not found")
                        .await;
                }
                let user_id = caller.user_id;
                service
                    .publish_ephemeral(
                        conversation,
                        user_id,
                        EventPayload::Typing { user_id, typing },
                    )
                    .await;
                return Ok(());
            }
            ClientFrame::Read { seq, .. } => service
                .advance_watermark(caller, conversation, Watermark::Read, seq)
                .await
                .map(|_| ServerFrame::Ok { id: id.clone() }),
            ClientFrame::Delivered { seq, .. } => service
                .advance_watermark(caller, conversation, Watermark::Delivered, seq)
                .await
                .map(|_| ServerFrame::Ok { id: id.clone() }),
            ClientFrame::Ping { .. } | ClientFrame::Resume { .. } => return Ok(()),
        };
        match result {
            Ok(frame) => self.frame(&frame).await,
            Err(ServiceError::RateLimited { retry_after }) => {
                self.rate_limited(id, retry_after).await
            }
            Err(e) => {
                let code = e.code();
                self.error(id, code, e.to_string()).await
            }
        }
    }

    /// Writes the answers of every send still in flight.
    async fn finish_sends(&mut self) -> Result<(), Exit> {
        while let Some(answer) = self.in_flight.next().await {
            self.frame(&answer).await?;
        }
        Ok(())
    }

    async fn resume_many(
        &mut self,
        id: Option<String>,
        positions: BTreeMap<ConversationId, i64>,
    ) -> Result<(), Exit> {
        for (c, after) in positions {
            if self.target(Some(c)).is_err() || !self.sent.receives(c) {
                self.error(
                    id.clone(),
                    codes::NOT_FOUND,
                    format!("conversation {c} not found"),
                )
                .await?;
                continue;
            }
            if after < 0 {
                self.error(
                    id.clone(),
                    codes::INVALID_FRAME,
                    "positions must not be negative",
                )
                .await?;
                continue;
            }
            self.resume(c, after, None).await?;
        }
        self.frame(&ServerFrame::Ok { id }).await
    }

    /// Sends every message of `conversation` after `after` (up to `upto` when given), in
    /// order, from PostgreSQL; then `resumed`.
    async fn resume(
        &mut self,
        conversation: ConversationId,
        after: i64,
        upto: Option<i64>,
    ) -> Result<(), Exit> {
        let last = self.catch_up(conversation, after, upto).await?;
        let seq = last.max(after);
        self.sent.resumed_through(conversation, seq);
        self.frame(&ServerFrame::Resumed {
            conversation_id: conversation,
            seq,
        })
        .await
    }

    /// Sends the messages after `after` (through `upto`) as `message.created` events.
    /// Returns the last seq sent (or `after`).
    async fn catch_up(
        &mut self,
        conversation: ConversationId,
        after: i64,
        upto: Option<i64>,
    ) -> Result<i64, Exit> {
        let mut last = after;
        loop {
            let query = HistoryQuery {
                after: Some(last),
                limit: CATCH_UP_PAGE,
                ..Default::default()
            };
            let (page, _) = match self
                .state
                .service
                .history(&self.caller, conversation, query)
                .await
            {
                Ok(p) => p,
                Err(ServiceError::NotFound(_)) => return Ok(last),
                Err(e) => return Err(Exit::Close(1011, format!("catch-up failed: {e}"))),
            };
            let has_more = page.has_more;
            for message in page.messages {
                if upto.is_some_and(|u| message.seq > u) {
                    return Ok(last);
                }
                last = message.seq;
                let event = Event {
                    conversation_id: conversation,
                    seq: Some(message.seq),
                    actor_id: message.sender_id,
                    at: message.created_at,
                    payload: EventPayload::MessageCreated { message },
                };
                let json =
                    serde_json::to_string(&event).map_err(|e| Exit::Close(1011, e.to_string()))?;
                self.write(Message::Text(json)).await?;
            }
            if !has_more || upto.is_some_and(|u| last >= u) {
                return Ok(last);
            }
        }
    }

    async fn outbound(&mut self, out: Outbound) -> Result<(), Exit> {
        match out {
            Outbound::Event(shared) => {
                let c = shared.event.conversation_id;
                if !self.sent.receives(c) {
                    return Ok(());
                }
                if let EventPayload::MessageCreated { message } = &shared.event.payload {
                    let seq = message.seq;
                    match self.sent.judge(c, seq) {
                        Verdict::NotReceived | Verdict::Duplicate => return Ok(()),
                        Verdict::Gap { after } => {
                            // Fill it from PostgreSQL, this message included.
                            let through = self.catch_up(c, after, Some(seq)).await?;
                            self.sent.sent_through(c, through.max(after));
                            return Ok(());
                        }
                        Verdict::Next => self.sent.sent_through(c, seq),
                    }
                }
                self.write(Message::Text(shared.json.clone())).await
            }
            Outbound::Subscribed {
                conversation,
                start,
            } => {
                if self.scope == Scope::All {
                    self.sent.join(conversation, start);
                }
                Ok(())
            }
            Outbound::Unsubscribed { conversation } => {
                self.sent.leave(conversation);
                if self.scope == Scope::One(conversation) {
                    return Err(Exit::Close(
                        close::FORBIDDEN,
                        "no longer a participant".into(),
                    ));
                }
                Ok(())
            }
            Outbound::Resync => self.resync().await,
        }
    }

    /// Stops receiving the conversations the user has left, and closes a socket bound to
    /// one of them (4003). Run at each heartbeat; a failed check changes nothing.
    async fn forget_left_conversations(&mut self) -> Result<(), Exit> {
        if self.sent.is_empty() {
            return Ok(());
        }
        let receiving: Vec<ConversationId> = self.sent.conversations().collect();
        let Ok(kept) = self
            .state
            .service
            .still_participant_of(&self.caller, &receiving)
            .await
        else {
            return Ok(());
        };
        self.sent.retain(|c| kept.contains(c));
        if let Scope::One(c) = self.scope
            && !kept.contains(&c)
        {
            return Err(Exit::Close(
                close::FORBIDDEN,
                "no longer a participant".into(),
            ));
        }
        Ok(())
    }

    /// After a bus outage: compare each conversation's newest seq with what was sent and
    /// send what is missing, and stop receiving the conversations the user is no longer
    /// in (their `participant.left` may have been in the streams Redis lost).
    async fn resync(&mut self) -> Result<(), Exit> {
        let positions = match self.state.service.positions(&self.caller).await {
            Ok(p) => p,
            Err(_) => return Ok(()),
        };
        let current: std::collections::HashSet<ConversationId> =
            positions.iter().map(|(c, _)| *c).collect();
        self.sent.retain(|c| current.contains(c));
        if let Scope::One(c) = self.scope
            && !current.contains(&c)
        {
            return Err(Exit::Close(
                close::FORBIDDEN,
                "no longer a participant".into(),
            ));
        }
        for (c, newest) in positions {
            if let Some(last) = self.sent.last(c)
                && newest > last
            {
                let through = self.catch_up(c, last, Some(newest)).await?;
                self.sent.sent_through(c, through);
            }
        }
        Ok(())
    }

    async fn presence_online(&self) {
        let bus = self.state.service.bus();
        match bus
            .presence_touch(
                self.caller.user_id,
                &self.id,
                self.state.settings.presence_ttl(),
            )
            .await
        {
            Ok(true) => self.announce_presence(true).await,
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "presence not recorded"),
        }
    }

    async fn presence_refresh(&self) {
        let bus = self.state.service.bus();
        let _ = bus
            .presence_touch(
                self.caller.user_id,
                &self.id,
                self.state.settings.presence_ttl(),
            )
            .await;
    }

    async fn presence_offline(&self) {
        let bus = self.state.service.bus();
        if let Ok(true) = bus.presence_drop(self.caller.user_id, &self.id).await {
            self.announce_presence(false).await;
        }
    }

    /// Tells every conversation of the user (not only this socket's) that they came
    /// online or went offline.
    async fn announce_presence(&self, online: bool) {
        let user_id: UserId = self.caller.user_id;
        let Ok(conversations) = self.state.service.positions(&self.caller).await else {
            return;
        };
        for (c, _) in conversations {
            self.state
                .service
                .publish_ephemeral(c, user_id, EventPayload::Presence { user_id, online })
                .await;
        }
    }
}

/// The frame that answers a queued send once its batch has committed.
async fn ack_when_committed(
    id: Option<String>,
    conversation: ConversationId,
    pending: chat_service::messages::PendingSend,
) -> ServerFrame {
    match pending.committed().await {
        Ok(sent) => ServerFrame::Ack {
            id,
            conversation_id: conversation,
            message_id: sent.message.id,
            seq: sent.message.seq,
            client_msg_id: sent.message.client_msg_id,
            created: sent.created,
        },
        Err(e) => ServerFrame::Error {
            id,
            code: e.code().into(),
            message: e.to_string(),
            retry_after_ms: match e {
                ServiceError::RateLimited { retry_after } => Some(retry_after.as_millis() as u64),
                _ => None,
            },
        },
    }
}
