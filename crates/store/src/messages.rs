//! Messages: the seq-assigning insert, history pages, edits and deletes.

use std::collections::{HashMap, HashSet};

use chat_domain::{
    Attachment, AttachmentId, ConversationId, Message, MessageId, MessageKind, ModerationState,
    UserId,
};
use chrono::{DateTime, Utc};

use sqlx::AssertSqlSafe;

use crate::outbox::{OutboxEvent, Outboxed};
use crate::{Store, StoreError};

/// The columns of a [`Message`], as a literal so statements can be built with `concat!`.
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, sender_id, kind, text, client_msg_id, reply_to, \
         created_at, edited_at, deleted_at, moderation"
    };
}
const MESSAGE_COLUMNS: &str = message_columns!();

/// A message to insert; its seq is assigned by [`Store::insert_batch`].
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub kind: MessageKind,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<MessageId>,
    /// Usernames mentioned with `@`; those who are participants are recorded.
    pub mentions: Vec<String>,
    /// Ready attachments the sender uploaded to this conversation and has not sent yet.
    pub attachments: Vec<chat_domain::AttachmentId>,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new message, committed with the next seq.
    New(Message),
    /// The sender had already used this `client_msg_id`: the original message.
    Existing(Message),
}

/// Why an insert was refused.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The conversation does not exist or the sender is not a participant.
    #[error("conversation not found")]
    ConversationNotFound,
    /// `reply_to` names no message of this conversation.
    #[error("reply_to is not a message of this conversation")]
    ReplyNotFound,
    /// An attachment is unknown, not ready, someone else's, of another conversation, or
    /// already sent.
    #[error("attachment not available")]
    AttachmentUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl InsertError {
    /// The same refusal, for the second of two retries of one message in a batch.
    fn same_again(&self) -> InsertError {
        match self {
            InsertError::ConversationNotFound => InsertError::ConversationNotFound,
            InsertError::ReplyNotFound => InsertError::ReplyNotFound,
            InsertError::AttachmentUnavailable => InsertError::AttachmentUnavailable,
            InsertError::Store(_) => {
                InsertError::Store(StoreError::Conflict("batch failed".into()))
            }
        }
    }
}

/// What a batch decided for one message before writing.
enum Outcome {
    New,
    /// Its `client_msg_id` is stored already: this message.
    Stored(Box<Message>),
    /// A retry of the message at this index of the same batch.
    SameAs(usize),
    Failed(InsertError),
}

fn has_repeats(ids: &[AttachmentId]) -> bool {
    ids.iter().enumerate().any(|(i, a)| ids[..i].contains(a))
}

impl From<sqlx::Error> for InsertError {
    fn from(err: sqlx::Error) -> Self {
        InsertError::Store(err.into())
    }
}

/// A window of history. Pages are keyset-paginated by seq.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only messages with a smaller seq (paging back).
    pub before: Option<i64>,
    /// Only messages with a greater seq (catching up); takes precedence over `before`.
    pub after: Option<i64>,
    /// Created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Created at or before this time.
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    /// Include messages hidden by moderation (moderators only).
    pub include_hidden: bool,
}

/// A page of history in ascending seq order.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// Whether more messages lie past the page in the direction of travel.
    pub has_more: bool,
    /// The messages of the page that have reactions (the others need no lookup).
    pub reacted: Vec<MessageId>,
}

/// A history row with what it has besides its own columns, so that the page's
/// mentions, attachments and reactions are looked up only when there are any.
#[derive(sqlx::FromRow)]
struct HistoryRow {
    #[sqlx(flatten)]
    message: Message,
    has_mentions: bool,
    has_attachments: bool,
    has_reactions: bool,
}

/// A page of history, newest first: `$1` conversation, `$2` < seq < `$3`, `$4` include
/// hidden messages, `$5` rows. Public for the plan test (`tests/tests/suite/read_plans.rs`).
pub const HISTORY_BACKWARD: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", has_mentions, has_attachments, reaction_count > 0 AS has_reactions \
     FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3 \
     AND ($4 OR moderation <> 'hidden') ORDER BY seq DESC LIMIT $5"
);

/// The same, oldest first (catching up after a seq).
pub const HISTORY_FORWARD: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", has_mentions, has_attachments, reaction_count > 0 AS has_reactions \
     FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3 \
     AND ($4 OR moderation <> 'hidden') ORDER BY seq ASC LIMIT $5"
);

/// The first seq created at or after `$2` in conversation `$1`.
pub const FIRST_SEQ_SINCE: &str = "SELECT seq FROM messages WHERE conversation_id = $1 AND created_at >= $2 \
     ORDER BY created_at, seq LIMIT 1";

/// The last seq created at or before `$2` in conversation `$1`.
pub const LAST_SEQ_UNTIL: &str = "SELECT seq FROM messages WHERE conversation_id = $1 AND created_at <= $2 \
     ORDER BY created_at DESC, seq DESC LIMIT 1";

/// Direct replies to `$2` in conversation `$1` after seq `$3`, `$4` include hidden,
/// `$5` rows.
pub const REPLIES: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE reply_to = $2 AND conversation_id = $1 AND seq > $3 \
     AND ($4 OR moderation <> 'hidden') ORDER BY seq LIMIT $5"
);

impl Store {
    /// Inserts a batch of messages in one transaction: the group commit of sends.
    ///
    /// Each message gets its own outcome, in the batch's order; a bad one (sender not a
    /// participant, unknown `reply_to`, attachment not available) fails alone and the
    /// others commit. What holds for every message:
    /// - **dense seq**: each conversation's row is locked (in id order, so two batches
    ///   never deadlock) and its `last_seq` moves by the number of its messages that
    ///   commit, once per batch; messages take the numbers in batch order;
    /// - **membership** is checked after those locks, which membership changes also
    ///   take: a participant removed concurrently cannot slip a message in;
    /// - **one message per `client_msg_id`**: a key already stored returns the stored
    ///   message ([`Inserted::Existing`]), and so does the second of two retries in one
    ///   batch; a stored key is found by the unique index (the insert skips its row), and
    ///   the batch is then rolled back and run again with a lookup of its keys, so no seq
    ///   is ever skipped;
    /// - mentions and attachments are written with their message, all or none.
    ///
    /// `events` gives the serialised bus events of each new message (by batch index);
    /// they go to the outbox in the same transaction.
    pub async fn insert_batch(
        &self,
        batch: &[NewMessage],
        events: impl Fn(usize, &Message) -> Vec<OutboxEvent>,
    ) -> Result<(Vec<Result<Inserted, InsertError>>, Outboxed), StoreError> {
        // First optimistically, without looking the keys up: retries are rare, and the
        // unique index finds them anyway. If the insert skipped a row (a retry, or a
        // concurrent batch that took the key), everything is rolled back and run again
        // with the lookup, which then finds the key stored.
        let mut look_up_keys = false;
        for _ in 0..5 {
            match self.try_insert_batch(batch, &events, look_up_keys).await? {
                Some(done) => return Ok(done),
                None => look_up_keys = true,
            }
        }
        Err(StoreError::Conflict(
            "client_msg_id raced repeatedly".into(),
        ))
    }

    /// One attempt of [`Store::insert_batch`]; `None` when a `client_msg_id` of the
    /// batch was already stored (not looked up, or committed by a concurrent transaction
    /// after the lookup): everything is rolled back.
    async fn try_insert_batch(
        &self,
        batch: &[NewMessage],
        events: &impl Fn(usize, &Message) -> Vec<OutboxEvent>,
        look_up_keys: bool,
    ) -> Result<Option<(Vec<Result<Inserted, InsertError>>, Outboxed)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut conversations: Vec<uuid::Uuid> =
            batch.iter().map(|m| m.conversation_id.as_uuid()).collect();
        conversations.sort_unstable();
        conversations.dedup();
        // Locks in id order. Under the lock `last_seq` cannot move, so the seqs can be
        // computed here; `now()` is the transaction's time, every message's created_at.
        let locked: Vec<(ConversationId, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, last_seq, now() FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&conversations)
        .fetch_all(&mut *tx)
        .await?;
        let now = locked.first().map(|(_, _, t)| *t).unwrap_or_else(Utc::now);
        let last_seqs: HashMap<ConversationId, i64> =
            locked.into_iter().map(|(c, s, _)| (c, s)).collect();

        let (conv_col, sender_col): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) = batch
            .iter()
            .map(|m| (m.conversation_id.as_uuid(), m.sender_id.as_uuid()))
            .unzip();
        let members: HashSet<(ConversationId, UserId)> = sqlx::query_as(
            "SELECT conversation_id, user_id FROM participants
              WHERE (conversation_id, user_id) IN (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]))",
        )
        .bind(&conv_col)
        .bind(&sender_col)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();

        let keyed: Vec<&NewMessage> = batch.iter().filter(|m| m.client_msg_id.is_some()).collect();
        let mut stored_keys: HashMap<(UserId, String), Message> = HashMap::new();
        if look_up_keys && !keyed.is_empty() {
            let senders: Vec<uuid::Uuid> = keyed.iter().map(|m| m.sender_id.as_uuid()).collect();
            let keys: Vec<&str> = keyed
                .iter()
                .filter_map(|m| m.client_msg_id.as_deref())
                .collect();
            let rows = sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                  WHERE (sender_id, client_msg_id) IN (SELECT * FROM UNNEST($1::uuid[], $2::text[]))"
            )))
            .bind(&senders)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
            for m in rows {
                if let (Some(sender), Some(key)) = (m.sender_id, m.client_msg_id.clone()) {
                    stored_keys.insert((sender, key), m);
                }
            }
        }

        let replies: Vec<uuid::Uuid> = batch
            .iter()
            .filter_map(|m| m.reply_to.map(|r| r.as_uuid()))
            .collect();
        let reply_targets: HashMap<MessageId, ConversationId> = if replies.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as("SELECT id, conversation_id FROM messages WHERE id = ANY($1)")
                .bind(&replies)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
        };

        let wanted: Vec<uuid::Uuid> = batch
            .iter()
            .flat_map(|m| m.attachments.iter().map(|a| a.as_uuid()))
            .collect();
        let mut files: HashMap<AttachmentId, Attachment> = if wanted.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<_, Attachment>(AssertSqlSafe(format!(
                "SELECT {} FROM attachments WHERE id = ANY($1) FOR UPDATE",
                crate::attachments::ATTACHMENT_COLUMNS
            )))
            .bind(&wanted)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect()
        };

        let (mention_convs, mention_names): (Vec<uuid::Uuid>, Vec<&str>) = batch
            .iter()
            .flat_map(|m| {
                m.mentions
                    .iter()
                    .map(|u| (m.conversation_id.as_uuid(), u.as_str()))
            })
            .unzip();
        let mentionable: HashMap<(ConversationId, String), UserId> = if mention_names.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<_, (ConversationId, String, UserId)>(
                "SELECT p.conversation_id, u.username, u.id FROM participants p JOIN users u ON u.id = p.user_id
                  WHERE (p.conversation_id, u.username) IN (SELECT * FROM UNNEST($1::uuid[], $2::text[]))",
            )
            .bind(&mention_convs)
            .bind(&mention_names)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(c, name, id)| ((c, name), id))
            .collect()
        };

        // Decide each message in batch order.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let mut first_of_key: HashMap<(UserId, &str), usize> = HashMap::new();
        let mut per_conversation: HashMap<ConversationId, i64> = HashMap::new();
        for (i, new) in batch.iter().enumerate() {
            let outcome = if !last_seqs.contains_key(&new.conversation_id)
                || !members.contains(&(new.conversation_id, new.sender_id))
            {
                Outcome::Failed(InsertError::ConversationNotFound)
            } else if let Some(stored) = new
                .client_msg_id
                .as_ref()
                // Only a rerun looked keys up: skip the key copy otherwise.
                .filter(|_| !stored_keys.is_empty())
                .and_then(|k| stored_keys.get(&(new.sender_id, k.clone())))
            {
                Outcome::Stored(Box::new(stored.clone()))
            } else if let Some(&j) = new
                .client_msg_id
                .as_deref()
                .and_then(|k| first_of_key.get(&(new.sender_id, k)))
            {
                Outcome::SameAs(j)
            } else if new
                .reply_to
                .is_some_and(|r| reply_targets.get(&r) != Some(&new.conversation_id))
            {
                Outcome::Failed(InsertError::ReplyNotFound)
            } else if !new.attachments.iter().all(|a| {
                files.get(a).is_some_and(|f| {
                    f.conversation_id == new.conversation_id
                        && f.uploader_id == Some(new.sender_id)
                        && f.state == chat_domain::AttachmentState::Ready
                        && f.message_id.is_none()
                })
            }) || has_repeats(&new.attachments)
            {
                Outcome::Failed(InsertError::AttachmentUnavailable)
            } else {
                // Claimed here: a later message of the batch cannot send the same file.
                for a in &new.attachments {
                    if let Some(f) = files.get_mut(a) {
                        f.message_id = Some(new.id);
                    }
                }
                if let Some(k) = new.client_msg_id.as_deref() {
                    first_of_key.insert((new.sender_id, k), i);
                }
                *per_conversation.entry(new.conversation_id).or_default() += 1;
                Outcome::New
            };
            outcomes.push(outcome);
        }

        // Each conversation's messages take the numbers after its `last_seq`, in batch order.
        let mut next_seq: HashMap<ConversationId, i64> = per_conversation
            .keys()
            .map(|c| (*c, last_seqs[c] + 1))
            .collect();

        // The new messages, as committed.
        let mut created: Vec<(usize, Message)> = Vec::new();
        for (i, new) in batch.iter().enumerate() {
            if !matches!(outcomes[i], Outcome::New) {
                continue;
            }
            let seq = next_seq
                .get_mut(&new.conversation_id)
                .expect("allocated above");
            let mut mentions: Vec<UserId> = Vec::new();
            for name in &new.mentions {
                if let Some(&u) = mentionable.get(&(new.conversation_id, name.clone()))
                    && u != new.sender_id
                    && !mentions.contains(&u)
                {
                    mentions.push(u);
                }
            }
            let attachments: Vec<Attachment> = new
                .attachments
                .iter()
                .filter_map(|a| files.get(a).cloned())
                .collect();
            created.push((
                i,
                Message {
                    id: new.id,
                    conversation_id: new.conversation_id,
                    seq: *seq,
                    sender_id: Some(new.sender_id),
                    kind: new.kind,
                    text: new.text.clone(),
                    client_msg_id: new.client_msg_id.clone(),
                    reply_to: new.reply_to,
                    created_at: now,
                    edited_at: None,
                    deleted_at: None,
                    moderation: ModerationState::Visible,
                    mentions,
                    attachments,
                },
            ));
            *seq += 1;
        }

        let serialised: Vec<OutboxEvent> =
            created.iter().flat_map(|(i, m)| events(*i, m)).collect();
        let mut outboxed = Outboxed::default();
        if !created.is_empty() {
            let ms = || created.iter().map(|(_, m)| m);
            let ids: Vec<uuid::Uuid> = ms().map(|m| m.id.as_uuid()).collect();
            let convs: Vec<uuid::Uuid> = ms().map(|m| m.conversation_id.as_uuid()).collect();
            let seqs: Vec<i64> = ms().map(|m| m.seq).collect();
            let senders: Vec<Option<uuid::Uuid>> =
                ms().map(|m| m.sender_id.map(|s| s.as_uuid())).collect();
            let kinds: Vec<&str> = ms().map(|m| m.kind.as_str()).collect();
            let texts: Vec<&str> = ms().map(|m| m.text.as_str()).collect();
            let keys: Vec<Option<&str>> = ms().map(|m| m.client_msg_id.as_deref()).collect();
            let reply_tos: Vec<Option<uuid::Uuid>> =
                ms().map(|m| m.reply_to.map(|r| r.as_uuid())).collect();
            let with_mentions: Vec<bool> = ms().map(|m| !m.mentions.is_empty()).collect();
            let with_files: Vec<bool> = ms().map(|m| !m.attachments.is_empty()).collect();
            let (tops, top_seqs): (Vec<uuid::Uuid>, Vec<i64>) = next_seq
                .iter()
                .map(|(c, next)| (c.as_uuid(), next - 1))
                .unzip();
            let event_convs: Vec<uuid::Uuid> = serialised
                .iter()
                .map(|e| e.conversation_id.as_uuid())
                .collect();
            let event_bodies: Vec<&str> = serialised.iter().map(|e| e.body.as_str()).collect();
            // One round trip for the seqs, the rows and the outbox row. Each part only
            // writes (no part reads another's rows), so the single snapshot is no issue.
            let (inserted, outbox_id): (i64, Option<i64>) = sqlx::query_as(
                "WITH seqs AS (
                     UPDATE conversations c SET last_seq = x.top, last_message_at = $11
                       FROM UNNEST($12::uuid[], $13::bigint[]) AS x(id, top)
                      WHERE c.id = x.id
                 ), rows AS (
                     INSERT INTO messages (id, conversation_id, seq, sender_id, kind, text, client_msg_id, reply_to,
                                           created_at, has_mentions, has_attachments)
                     SELECT id, conversation_id, seq, sender_id, kind, text, client_msg_id, reply_to, $11, m, a
                       FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                                   $7::text[], $8::uuid[], $9::bool[], $10::bool[])
                            AS x(id, conversation_id, seq, sender_id, kind, text, client_msg_id, reply_to, m, a)
                     ON CONFLICT (sender_id, client_msg_id) DO NOTHING
                     RETURNING 1
                 ), outbox AS (
                     INSERT INTO event_outbox (conversations, events)
                     SELECT $14, $15 WHERE cardinality($15::text[]) > 0
                     RETURNING id
                 )
                 SELECT (SELECT count(*) FROM rows), (SELECT id FROM outbox)",
            )
            .bind(&ids)
            .bind(&convs)
            .bind(&seqs)
            .bind(&senders)
            .bind(&kinds)
            .bind(&texts)
            .bind(&keys)
            .bind(&reply_tos)
            .bind(&with_mentions)
            .bind(&with_files)
            .bind(now)
            .bind(&tops)
            .bind(&top_seqs)
            .bind(&event_convs)
            .bind(&event_bodies)
            .fetch_one(&mut *tx)
            .await?;
            if inserted != created.len() as i64 {
                // A key is stored already: roll back (seqs included) and run again with
                // the lookup, which will find it.
                tx.rollback().await?;
                return Ok(None);
            }
            let (mention_msgs, mention_users, mention_convs, mention_seqs) = created.iter().fold(
                (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
                |mut cols, (_, m)| {
                    for u in &m.mentions {
                        cols.0.push(m.id.as_uuid());
                        cols.1.push(u.as_uuid());
                        cols.2.push(m.conversation_id.as_uuid());
                        cols.3.push(m.seq);
                    }
                    cols
                },
            );
            if !mention_msgs.is_empty() {
                sqlx::query(
                    "INSERT INTO mentions (message_id, user_id, conversation_id, seq)
                     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[])",
                )
                .bind(&mention_msgs)
                .bind(&mention_users)
                .bind(&mention_convs)
                .bind(&mention_seqs)
                .execute(&mut *tx)
                .await?;
            }
            let (file_ids, file_msgs): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) = created
                .iter()
                .flat_map(|(_, m)| {
                    m.attachments
                        .iter()
                        .map(|a| (a.id.as_uuid(), m.id.as_uuid()))
                })
                .unzip();
            if !file_ids.is_empty() {
                sqlx::query(
                    "UPDATE attachments a SET message_id = x.m FROM UNNEST($1::uuid[], $2::uuid[]) AS x(a, m)
                      WHERE a.id = x.a",
                )
                .bind(&file_ids)
                .bind(&file_msgs)
                .execute(&mut *tx)
                .await?;
            }
            outboxed = Outboxed {
                id: outbox_id,
                events: serialised,
            };
        }
        tx.commit().await?;

        let mut created: HashMap<usize, Message> = created.into_iter().collect();
        let mut results: Vec<Result<Inserted, InsertError>> = Vec::with_capacity(batch.len());
        for (i, outcome) in outcomes.into_iter().enumerate() {
            results.push(match outcome {
                Outcome::New => Ok(Inserted::New(
                    created.get(&i).cloned().expect("created above"),
                )),
                Outcome::Stored(m) => Ok(Inserted::Existing(*m)),
                Outcome::SameAs(j) => match &results[j] {
                    Ok(Inserted::New(m)) | Ok(Inserted::Existing(m)) => {
                        Ok(Inserted::Existing(m.clone()))
                    }
                    Err(e) => Err(e.same_again()),
                },
                Outcome::Failed(e) => Err(e),
            });
        }
        created.clear();
        Ok(Some((results, outboxed)))
    }

    pub async fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError> {
        Ok(sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation_id = $2"
        )))
        .bind(id)
        .bind(conversation)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A message by id alone (for workers that already know it is theirs to handle).
    pub async fn message_by_id(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        Ok(sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A page of a conversation's history (see [`HistoryQuery`]), in ascending seq order,
    /// with mentions and attachments filled in.
    pub async fn history(
        &self,
        conversation: ConversationId,
        q: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        let forward = q.after.is_some();
        // Exclusive seq bounds; `after` takes precedence over `before`.
        let (mut above, mut below) = match q.after {
            Some(after) => (after, i64::MAX),
            None => (0, q.before.unwrap_or(i64::MAX)),
        };
        // Time bounds become seq bounds first, one index probe each: the page itself is
        // then read by (conversation_id, seq) alone, in a plan bounded by the page
        // whatever the parameters (a generic plan included). Seqs follow commit order and
        // `created_at` is set at commit, so a time range is a seq range.
        if let Some(since) = q.since {
            match self.seq_bound(FIRST_SEQ_SINCE, conversation, since).await? {
                Some(first) => above = above.max(first - 1),
                None => return Ok(HistoryPage::default()),
            }
        }
        if let Some(until) = q.until {
            match self.seq_bound(LAST_SEQ_UNTIL, conversation, until).await? {
                Some(last) => below = below.min(last + 1),
                None => return Ok(HistoryPage::default()),
            }
        }
        if above + 1 >= below {
            return Ok(HistoryPage::default());
        }
        let sql = if forward {
            HISTORY_FORWARD
        } else {
            HISTORY_BACKWARD
        };
        let mut rows = sqlx::query_as::<_, HistoryRow>(sql)
            .bind(conversation)
            .bind(above)
            .bind(below)
            .bind(q.include_hidden)
            .bind(q.limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let has_more = rows.len() as i64 > q.limit;
        rows.truncate(q.limit.max(0) as usize);
        if !forward {
            rows.reverse();
        }
        let any_mentions = rows.iter().any(|r| r.has_mentions);
        let any_attachments = rows.iter().any(|r| r.has_attachments);
        let reacted = rows
            .iter()
            .filter(|r| r.has_reactions)
            .map(|r| r.message.id)
            .collect();
        let mut messages: Vec<Message> = rows.into_iter().map(|r| r.message).collect();
        if any_mentions {
            self.load_mentions(&mut messages).await?;
        }
        if any_attachments {
            self.load_attachments(&mut messages).await?;
        }
        Ok(HistoryPage {
            messages,
            has_more,
            reacted,
        })
    }

    /// A seq found by [`FIRST_SEQ_SINCE`] or [`LAST_SEQ_UNTIL`].
    async fn seq_bound(
        &self,
        sql: &'static str,
        conversation: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql)
            .bind(conversation)
            .bind(at)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Fills in the mentions of some messages.
    pub async fn load_mentions(&self, messages: &mut [Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.id.as_uuid()).collect();
        let rows: Vec<(MessageId, UserId)> =
            sqlx::query_as("SELECT message_id, user_id FROM mentions WHERE message_id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        for (message_id, user_id) in rows {
            if let Some(m) = messages.iter_mut().find(|m| m.id == message_id) {
                m.mentions.push(user_id);
            }
        }
        Ok(())
    }

    /// Direct replies to a message, in seq order, after `after`.
    pub async fn replies(
        &self,
        conversation: ConversationId,
        root: MessageId,
        after: i64,
        limit: i64,
        include_hidden: bool,
    ) -> Result<HistoryPage, StoreError> {
        let mut messages = sqlx::query_as::<_, Message>(REPLIES)
            .bind(conversation)
            .bind(root)
            .bind(after)
            .bind(include_hidden)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let has_more = messages.len() as i64 > limit;
        messages.truncate(limit.max(0) as usize);
        Ok(HistoryPage {
            messages,
            has_more,
            reacted: Vec::new(),
        })
    }

    /// Replaces the text of a message that is neither deleted nor hidden; sets `edited_at`.
    pub async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        text: &str,
        events: impl FnOnce(&Message) -> Vec<OutboxEvent>,
    ) -> Result<(Message, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        // `search` goes back to "not indexed": the indexer builds the new text's vector.
        let mut edited = sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "UPDATE messages SET text = $3, edited_at = now(), search = NULL
              WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL AND moderation <> 'hidden'
              RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(id)
        .bind(conversation)
        .bind(text)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        edited.mentions = sqlx::query_scalar("SELECT user_id FROM mentions WHERE message_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let outboxed = crate::commit_with_events(tx, events(&edited)).await?;
        Ok((edited, outboxed))
    }

    /// Deletes a message: the row and its seq stay, the text goes, and so do its files
    /// (their rows here; the returned object keys are for the caller to delete from
    /// storage after the commit).
    pub async fn delete_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        events: impl FnOnce(&Message) -> Vec<OutboxEvent>,
    ) -> Result<(Message, Vec<String>, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "UPDATE messages SET text = '', deleted_at = now(), search = NULL
              WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL
              RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(id)
        .bind(conversation)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let files = sqlx::query_as::<_, (String, Option<String>)>(
            "DELETE FROM attachments WHERE message_id = $1 RETURNING object_key, thumbnail_key",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let keys = files
            .into_iter()
            .flat_map(|(object, thumbnail)| std::iter::once(object).chain(thumbnail))
            .collect();
        let outboxed = crate::commit_with_events(tx, events(&deleted)).await?;
        Ok((deleted, keys, outboxed))
    }
}
