//! Login sessions and refresh-token rotation.

use chat_domain::{SessionId, UserId};
use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

impl Store {
    pub async fn insert_session(
        &self,
        id: SessionId,
        user_id: UserId,
        refresh_hash: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_hash, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(user_id)
        .bind(refresh_hash)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces a live session's refresh token: the old one stops working at once.
    /// `None` when the token is unknown, expired, already rotated or revoked.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<Option<(SessionId, UserId)>, StoreError> {
        Ok(sqlx::query_as::<_, (SessionId, UserId)>(
            "UPDATE sessions SET refresh_hash = $2, expires_at = $3
             WHERE refresh_hash = $1 AND revoked_at IS NULL AND expires_at > now()
             RETURNING id, user_id",
        )
        .bind(old_hash)
        .bind(new_hash)
        .bind(expires_at)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn revoke_session(&self, id: SessionId) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the session exists, belongs to `user_id`, and is neither revoked nor expired.
    pub async fn session_is_active(
        &self,
        id: SessionId,
        user_id: UserId,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM sessions
                            WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now())",
        )
        .bind(id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?)
    }
}
