//! Login sessions, refresh-token rotation with reuse detection, and listing one's
//! sessions.

use chat_domain::{SessionId, UserId};
use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A live session, as its owner sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
}

/// What presenting a refresh token came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; this is its session, which now has the new token.
    Rotated { session: SessionId, user: UserId },
    /// The token was rotated away within the grace period (two tabs refreshing at once):
    /// refused, but the session lives on.
    JustRetired,
    /// The token was rotated away earlier: a copy is being replayed. Its session has been
    /// revoked, so that neither the thief nor the owner can go on with it.
    Replayed { session: SessionId },
    /// Unknown, expired or revoked.
    Refused,
}

/// A new session's facts.
pub struct NewSession<'a> {
    pub id: SessionId,
    pub user_id: UserId,
    pub refresh_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
}

impl Store {
    pub async fn insert_session(&self, new: &NewSession<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_hash, expires_at, absolute_expires_at, user_agent)
             VALUES ($1, $2, $3, least($4, $5), $5, $6)",
        )
        .bind(new.id)
        .bind(new.user_id)
        .bind(new.refresh_hash)
        .bind(new.expires_at)
        .bind(new.absolute_expires_at)
        .bind(new.user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces a live session's refresh token (the old one is retired) and pushes its
    /// expiry to `expires_at`, never past the session's absolute lifetime. A retired token
    /// presented more than `grace` after it was retired revokes its session.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        expires_at: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two refreshes with one token: the second waits for the first's row lock, then
        // finds the hash gone and goes on to the retired tokens below.
        let rotated = sqlx::query_as::<_, (SessionId, UserId)>(
            "WITH live AS (
                 SELECT id FROM sessions
                 WHERE refresh_hash = $1 AND revoked_at IS NULL AND expires_at > now()
                 FOR UPDATE
             ), retired AS (
                 INSERT INTO retired_refresh_tokens (refresh_hash, session_id)
                 SELECT $1, id FROM live
             )
             UPDATE sessions s
             SET refresh_hash = $2, expires_at = least($3, s.absolute_expires_at), last_used_at = now()
             FROM live WHERE s.id = live.id
             RETURNING s.id, s.user_id",
        )
        .bind(old_hash)
        .bind(new_hash)
        .bind(expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((session, user)) = rotated {
            tx.commit().await?;
            return Ok(Rotation::Rotated { session, user });
        }
        let retired = sqlx::query_as::<_, (SessionId, bool)>(
            "SELECT session_id, retired_at > now() - make_interval(secs => $2)
             FROM retired_refresh_tokens WHERE refresh_hash = $1",
        )
        .bind(old_hash)
        .bind(grace.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match retired {
            None => Rotation::Refused,
            Some((_, true)) => Rotation::JustRetired,
            Some((session, false)) => {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh_token_replayed'
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(session)
                .execute(&mut *tx)
                .await?;
                Rotation::Replayed { session }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Revokes a session. With `owner`, only if it is theirs; returns whether a live
    /// session was revoked.
    pub async fn revoke_session(
        &self,
        id: SessionId,
        owner: Option<UserId>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
             WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(owner)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes the session whose current refresh token this is (logging out with only
    /// the refresh cookie left). Returns its id.
    pub async fn revoke_session_by_refresh(
        &self,
        refresh_hash: &[u8],
        reason: &str,
    ) -> Result<Option<SessionId>, StoreError> {
        Ok(sqlx::query_scalar::<_, SessionId>(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
             WHERE refresh_hash = $1 AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(refresh_hash)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?)
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

    /// A user's live sessions, oldest first.
    pub async fn live_sessions(&self, user_id: UserId) -> Result<Vec<SessionRow>, StoreError> {
        Ok(sqlx::query_as::<_, SessionRow>(
            "SELECT id, created_at, last_used_at, expires_at, absolute_expires_at, user_agent
             FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
             ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a new password hash and revokes every other session of the user, at once.
    pub async fn change_password(
        &self,
        user_id: UserId,
        keep: SessionId,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_changed'
             WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes sessions that ended more than `after` ago (with their retired tokens).
    pub async fn forget_ended_sessions(
        &self,
        after: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM sessions
             WHERE coalesce(revoked_at, expires_at) < now() - make_interval(secs => $1)",
        )
        .bind(after.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The password hash of a user (to check it before a change).
    pub async fn password_hash(&self, user_id: UserId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
