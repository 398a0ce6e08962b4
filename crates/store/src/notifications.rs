//! Webhook endpoints, muting, and notification deliveries.

use chat_domain::{ConversationId, MessageId, UserId};

use crate::{Store, StoreError};

/// A user's webhook endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub url: String,
    pub secret: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One notification to one endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: uuid::Uuid,
    pub webhook_id: Option<uuid::Uuid>,
    pub endpoint: String,
    pub message_id: MessageId,
    pub user_id: UserId,
    pub reason: String,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, endpoint, message_id, user_id, reason, state, attempts, last_status, last_error";

impl Store {
    pub async fn add_webhook(
        &self,
        user: UserId,
        url: &str,
        secret: &str,
    ) -> Result<Webhook, StoreError> {
        Ok(sqlx::query_as::<_, Webhook>(
            "INSERT INTO webhooks (id, user_id, url, secret) VALUES ($1, $2, $3, $4)
             RETURNING id, user_id, url, secret, created_at",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(user)
        .bind(url)
        .bind(secret)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn webhooks_of(&self, user: UserId) -> Result<Vec<Webhook>, StoreError> {
        Ok(sqlx::query_as::<_, Webhook>(
            "SELECT id, user_id, url, secret, created_at FROM webhooks WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes one of the user's webhooks; `false` if there was none.
    pub async fn delete_webhook(&self, user: UserId, id: uuid::Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The participants of these conversations who may be notified: not muted, and
    /// with a webhook of their own unless `everyone` (the installation has an endpoint).
    pub async fn notification_candidates(
        &self,
        conversations: &[ConversationId],
        everyone: bool,
    ) -> Result<Vec<(ConversationId, UserId)>, StoreError> {
        let ids: Vec<uuid::Uuid> = conversations.iter().map(|c| c.as_uuid()).collect();
        Ok(sqlx::query_as(
            "SELECT p.conversation_id, p.user_id FROM participants p
              WHERE p.conversation_id = ANY($1) AND NOT p.muted
                AND ($2 OR EXISTS (SELECT 1 FROM webhooks w WHERE w.user_id = p.user_id))",
        )
        .bind(&ids)
        .bind(everyone)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_muted(
        &self,
        conversation: ConversationId,
        user: UserId,
        muted: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE participants SET muted = $3 WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conversation)
        .bind(user)
        .bind(muted)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records a delivery to make, once per endpoint, message and recipient. Returns the
    /// existing row when it was recorded before (a re-run).
    pub async fn delivery(
        &self,
        webhook: Option<uuid::Uuid>,
        endpoint: &str,
        message: MessageId,
        user: UserId,
        reason: &str,
    ) -> Result<Delivery, StoreError> {
        let inserted = sqlx::query_as::<_, Delivery>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO notification_deliveries (id, webhook_id, endpoint, message_id, user_id, reason)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (endpoint, message_id, user_id) DO NOTHING
             RETURNING {DELIVERY_COLUMNS}"
        )))
        .bind(uuid::Uuid::now_v7())
        .bind(webhook)
        .bind(endpoint)
        .bind(message)
        .bind(user)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        match inserted {
            Some(d) => Ok(d),
            None => sqlx::query_as::<_, Delivery>(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries
                  WHERE endpoint = $1 AND message_id = $2 AND user_id = $3"
            )))
            .bind(endpoint)
            .bind(message)
            .bind(user)
            .fetch_one(&self.pool)
            .await
            .map_err(Into::into),
        }
    }

    pub async fn delivery_by_id(&self, id: uuid::Uuid) -> Result<Option<Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, Delivery>(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records one attempt: delivered, or failed (dead when `dead`).
    pub async fn delivery_attempt(
        &self,
        id: uuid::Uuid,
        delivered: bool,
        dead: bool,
        status: Option<i32>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let state = if delivered {
            "delivered"
        } else if dead {
            "dead"
        } else {
            "pending"
        };
        sqlx::query(
            "UPDATE notification_deliveries
                SET attempts = attempts + 1, state = $2, last_status = $3, last_error = $4,
                    finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
              WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .bind(status)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
