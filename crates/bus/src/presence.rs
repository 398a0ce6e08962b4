//! Presence: who is online, kept in Redis only (ephemeral, with a TTL).
//!
//! One sorted set per user, `{prefix}presence:{user_id}`, holds the user's live
//! connections (any gateway) scored by when each expires. Gateways refresh their
//! connections' scores on every heartbeat and remove them on close; a crashed gateway's
//! entries simply expire. A user is online while any entry is unexpired. One key per
//! user keeps this Redis Cluster friendly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_domain::UserId;
use fred::prelude::*;

use crate::{Bus, BusError};

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

impl Bus {
    fn presence_key(&self, user: UserId) -> String {
        format!("{}presence:{user}", self.config.prefix)
    }

    /// Marks a connection live for `ttl`. Returns true when the user was offline before
    /// (this connection brought them online).
    pub async fn presence_touch(
        &self,
        user: UserId,
        connection: &str,
        ttl: Duration,
    ) -> Result<bool, BusError> {
        let key = self.presence_key(user);
        let now = now_ms();
        let expires = now + ttl.as_millis() as f64;
        let _: () = self
            .client
            .zremrangebyscore(&key, f64::NEG_INFINITY, now)
            .await?;
        let before: u64 = self.client.zcard(&key).await?;
        let _: () = self
            .client
            .zadd(&key, None, None, false, false, (expires, connection))
            .await?;
        let _: () = self
            .client
            .pexpire(&key, ttl.as_millis() as i64 * 2, None)
            .await?;
        Ok(before == 0)
    }

    /// Removes a connection. Returns true when the user has no live connection left.
    pub async fn presence_drop(&self, user: UserId, connection: &str) -> Result<bool, BusError> {
        let key = self.presence_key(user);
        let _: () = self.client.zrem(&key, connection).await?;
        let live: u64 = self.client.zcount(&key, now_ms(), f64::INFINITY).await?;
        Ok(live == 0)
    }

    /// Whether each user has a live connection.
    pub async fn presence_of(&self, users: &[UserId]) -> Result<Vec<(UserId, bool)>, BusError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // One round trip for all of them.
        let pipeline = self.client.pipeline();
        for user in users {
            let _: () = pipeline
                .zcount(self.presence_key(*user), now, f64::INFINITY)
                .await?;
        }
        let live: Vec<u64> = pipeline.all().await?;
        Ok(users
            .iter()
            .copied()
            .zip(live.into_iter().map(|n| n > 0))
            .collect())
    }
}
