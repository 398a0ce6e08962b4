//! Invalidations of what each process caches about access (live sessions, memberships):
//! one small stream that every process reads from its tail, so that a logout, a removal
//! or a role change holds on every replica at once rather than when a cache entry ages
//! out (which it also does, within a second, if an invalidation is ever missed).

use std::time::Duration;

use chat_domain::{ConversationId, SessionId, UserId};
use fred::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Bus, BusError};

/// Entries kept on the stream: a reader that falls further behind than this forgets its
/// whole cache instead (see [`Bus::read_invalidations`]).
const KEPT: i64 = 10_000;

/// What a process must forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// This session ended (logout, revocation, a replayed refresh token).
    Session { session: SessionId },
    /// Sessions of this user ended (a password change): forget every cached session of
    /// theirs.
    Sessions { user: UserId },
    /// This participant left, was removed, or changed role.
    Membership {
        conversation: ConversationId,
        user: UserId,
    },
    /// Every membership of this conversation (it was deleted).
    Conversation { conversation: ConversationId },
}

/// What a read of the invalidation stream brought.
#[derive(Debug, Default)]
pub struct Invalidations {
    pub items: Vec<Invalidation>,
    /// Where to read next.
    pub position: String,
    /// The stream was trimmed past our position: forget everything.
    pub lost_track: bool,
}

impl Bus {
    fn invalidation_key(&self) -> String {
        format!("{}{{access}}", self.config.prefix)
    }

    /// Tells every process to forget what `invalidation` names.
    pub async fn publish_invalidation(&self, invalidation: &Invalidation) -> Result<(), BusError> {
        let body = serde_json::to_string(invalidation)?;
        let _: String = self
            .client
            .xadd(
                self.invalidation_key(),
                false,
                ("MAXLEN", "~", KEPT),
                "*",
                vec![("i", body)],
            )
            .await?;
        Ok(())
    }

    /// The id of the newest invalidation, to start reading after it.
    pub async fn invalidations_tail(&self) -> Result<String, BusError> {
        let last: crate::StreamEntries = self
            .client
            .xrevrange(self.invalidation_key(), "+", "-", Some(1))
            .await?;
        Ok(last
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_else(|| "0-0".into()))
    }

    /// The invalidations after `position`, waiting up to `block` for one. Call on a
    /// dedicated connection (the read blocks it).
    pub async fn read_invalidations(
        &self,
        position: &str,
        block: Duration,
    ) -> Result<Invalidations, BusError> {
        let key = self.invalidation_key();
        let raw: Value = self
            .client
            .xread(
                Some(1000),
                Some(block.as_millis() as u64),
                key.clone(),
                position.to_owned(),
            )
            .await?;
        let mut out = Invalidations {
            position: position.to_owned(),
            ..Invalidations::default()
        };
        if !raw.is_null() {
            let response = raw.into_xread_response::<String, String, String, String>()?;
            for (_, entries) in response {
                for (id, fields) in entries {
                    match fields.get("i").map(|b| serde_json::from_str(b)) {
                        Some(Ok(item)) => out.items.push(item),
                        _ => tracing::warn!(%id, "skipping unreadable invalidation"),
                    }
                    out.position = id;
                }
            }
        }
        // Trimmed past us (or Redis restarted and lost it): we cannot know what we missed.
        if position != "0-0" {
            let first: crate::StreamEntries = self.client.xrange(&key, "-", "+", Some(1)).await?;
            let oldest = first.into_iter().next().map(|(id, _)| id);
            out.lost_track = match oldest {
                Some(oldest) => stream_id_after(&oldest, position),
                None => false,
            };
        }
        Ok(out)
    }
}

/// Whether stream id `a` comes after `b` (`ms-seq` ids compare numerically).
fn stream_id_after(a: &str, b: &str) -> bool {
    let parse = |id: &str| -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    };
    parse(a) > parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(stream_id_after("1700000000010-0", "1700000000009-5"));
        assert!(stream_id_after("5-10", "5-9"));
        assert!(!stream_id_after("5-9", "5-9"));
    }

    #[test]
    fn invalidations_read_back_as_written() {
        let item = Invalidation::Membership {
            conversation: ConversationId::from(uuid::Uuid::nil()),
            user: UserId::from(uuid::Uuid::nil()),
        };
        let text = serde_json::to_string(&item).expect("encode");
        assert!(text.contains("\"kind\":\"membership\""), "{text}");
        assert_eq!(
            serde_json::from_str::<Invalidation>(&text).expect("decode"),
            item
        );
    }
}
