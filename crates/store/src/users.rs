//! Users.

use chat_domain::{User, UserId};

use crate::{Store, StoreError};

/// A user row with the password hash, for login only.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
}

impl Store {
    /// Inserts a user. A taken username is `Conflict("users_username_key")`.
    pub async fn insert_user(
        &self,
        id: UserId,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let user = sqlx::query_as::<_, User>(
            "INSERT INTO users (id, username, display_name, password_hash)
             VALUES ($1, $2, $3, $4)
             RETURNING id, username, display_name, created_at",
        )
        .bind(id)
        .bind(username)
        .bind(display_name)
        .bind(password_hash)
        .fetch_one(&self.pool)
        .await?;
        Ok(user)
    }

    pub async fn credentials_by_username(
        &self,
        username: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        Ok(sqlx::query_as::<_, Credentials>(
            "SELECT id, username, display_name, created_at, password_hash FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>(
            "SELECT id, username, display_name, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Users whose username starts with `query` or whose display name contains it
    /// (case-insensitive), usernames first, alphabetically.
    pub async fn search_users(&self, query: &str, limit: i64) -> Result<Vec<User>, StoreError> {
        let escaped = escape_like(&query.to_lowercase());
        Ok(sqlx::query_as::<_, User>(
            "SELECT id, username, display_name, created_at FROM users
             WHERE username LIKE $1 || '%' OR lower(display_name) LIKE '%' || $1 || '%'
             ORDER BY (username LIKE $1 || '%') DESC, username
             LIMIT $2",
        )
        .bind(escaped)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Which of `ids` exist.
    pub async fn existing_users(&self, ids: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(UserId::as_uuid).collect();
        Ok(
            sqlx::query_scalar::<_, UserId>("SELECT id FROM users WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Escapes LIKE wildcards so that user input matches literally.
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::escape_like("a_b%c\\"), "a\\_b\\%c\\\\");
    }
}
