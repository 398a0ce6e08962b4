//! The event outbox: events committed with the change they describe.
//!
//! A write that has events inserts one `event_outbox` row in its own transaction
//! ([`write`]). After the commit its process publishes the events and deletes the row
//! ([`Store::outbox_done`]); a row left behind (the process died between commit and
//! publish, or Redis was down) is taken by a relay ([`Store::claim_stale_outbox`]) and
//! published later. So an event is published at least once, never lost; readers drop
//! duplicates by envelope id. The store treats events as opaque serialised envelopes.

use std::time::Duration;

use chat_domain::ConversationId;
use sqlx::PgConnection;

use crate::{Store, StoreError};

/// One serialised bus envelope and the conversation it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub conversation_id: ConversationId,
    pub body: String,
}

/// The events of one committed transaction, as written to the outbox.
#[derive(Debug, Clone, Default)]
pub struct Outboxed {
    /// The outbox row; `None` when the transaction had no events.
    pub id: Option<i64>,
    /// In publish order.
    pub events: Vec<OutboxEvent>,
}

/// Inserts the outbox row of `events` in the caller's transaction (nothing when empty).
pub(crate) async fn write(
    conn: &mut PgConnection,
    events: Vec<OutboxEvent>,
) -> Result<Outboxed, StoreError> {
    if events.is_empty() {
        return Ok(Outboxed::default());
    }
    let conversations: Vec<uuid::Uuid> =
        events.iter().map(|e| e.conversation_id.as_uuid()).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO event_outbox (conversations, events) VALUES ($1, $2) RETURNING id",
    )
    .bind(&conversations)
    .bind(&bodies)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Outboxed {
        id: Some(id),
        events,
    })
}

impl Store {
    /// Forgets outbox rows whose events were published.
    pub async fn outbox_done(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM event_outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes up to `limit` rows older than `older_than` that no relay holds, oldest
    /// first, and holds them for `hold`: for publishing events their writer did not.
    pub async fn claim_stale_outbox(
        &self,
        older_than: Duration,
        hold: Duration,
        limit: i64,
    ) -> Result<Vec<Outboxed>, StoreError> {
        let rows: Vec<(i64, Vec<uuid::Uuid>, Vec<String>)> = sqlx::query_as(
            "UPDATE event_outbox o SET claimed_until = now() + make_interval(secs => $2)
               FROM (SELECT id FROM event_outbox
                      WHERE created_at < now() - make_interval(secs => $1)
                        AND (claimed_until IS NULL OR claimed_until < now())
                      ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) stale
              WHERE o.id = stale.id
              RETURNING o.id, o.conversations, o.events",
        )
        .bind(older_than.as_secs_f64())
        .bind(hold.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Outboxed> = rows
            .into_iter()
            .map(|(id, conversations, bodies)| Outboxed {
                id: Some(id),
                events: conversations
                    .into_iter()
                    .zip(bodies)
                    .map(|(c, body)| OutboxEvent {
                        conversation_id: ConversationId(c),
                        body,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by_key(|o| o.id);
        Ok(out)
    }

    /// Rows in the outbox (for readiness and tests).
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM event_outbox")
            .fetch_one(&self.pool)
            .await?)
    }
}
