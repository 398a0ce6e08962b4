//! Accounts and sessions: register, login, refresh, logout, and checking access tokens.

use std::net::IpAddr;

use chat_auth::hasher::HasherBusy;
use chat_auth::{dummy_hash, new_refresh_token, refresh_token_hash};
use chat_domain::{SessionId, User, UserId, validate};
use chrono::Utc;

use chat_bus::invalidation::Invalidation;
use chat_store::sessions::{NewSession, Rotation, SessionRow};

use crate::{Caller, ChatService, ServiceError};

/// How long after a refresh the token it replaced is merely refused, not taken for a
/// replay: two tabs of one browser refreshing at once share the cookie.
pub const REFRESH_RACE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a login comes from: the address counts for the limits, the user agent names
/// the session in the owner's list.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: IpAddr,
    pub user_agent: Option<String>,
}

/// The tokens handed out at login and refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    pub user_id: UserId,
    pub session_id: SessionId,
}

impl Tokens {
    /// The caller these fresh tokens stand for (no need to check them again).
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.user_id,
            session_id: self.session_id,
        }
    }
}

/// A full hashing queue: the caller should come back shortly (429, not a 5xx).
fn hasher_busy(_: HasherBusy) -> ServiceError {
    ServiceError::RateLimited {
        retry_after: std::time::Duration::from_secs(1),
    }
}

/// Most users returned by one search.
pub const MAX_USER_SEARCH: i64 = 50;

impl ChatService {
    /// Creates an account. A taken username is a `username_taken` conflict. `from` is the
    /// client's address, for the registration limit.
    pub async fn register(
        &self,
        from: IpAddr,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<User, ServiceError> {
        let username = validate::username(username)?;
        let password = validate::password(password)?.to_owned();
        let display_name = match display_name {
            Some(name) => validate::display_name(name)?,
            None => username.clone(),
        };
        self.throttle_register(from).await?;
        let hash = self
            .hasher
            .hash(password)
            .await
            .map_err(hasher_busy)?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        match self
            .store
            .insert_user(UserId::new(), &username, &display_name, &hash)
            .await
        {
            Ok(user) => Ok(user),
            Err(e) if e.is_conflict_on("users_username_key") => Err(ServiceError::conflict(
                "username_taken",
                "this username is already taken",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a username and password and opens a session. Attempts are limited per
    /// client address (`from`) and per account, before any hashing.
    pub async fn login(
        &self,
        client: &Client,
        username: &str,
        password: &str,
    ) -> Result<Tokens, ServiceError> {
        let username = username.trim().to_lowercase();
        if username.is_empty() || username.len() > 64 || password.len() > 1024 {
            // No such account can exist; answer as for a wrong password, without hashing
            // (an unbounded password would be hashed at the attacker's chosen cost).
            return Err(ServiceError::InvalidCredentials);
        }
        self.throttle_login(client.address, &username).await?;
        let credentials = self.store.credentials_by_username(&username).await?;
        let (hash, user) = match credentials {
            Some(c) => (c.password_hash, Some(c.user)),
            // Verify against a dummy hash anyway, so that timing does not reveal which
            // usernames exist.
            None => (dummy_hash().to_owned(), None),
        };
        let password = password.to_owned();
        let ok = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(hasher_busy)?;
        match user {
            Some(user) if ok => self.open_session(user.id, client).await,
            _ => Err(ServiceError::InvalidCredentials),
        }
    }

    async fn open_session(&self, user_id: UserId, client: &Client) -> Result<Tokens, ServiceError> {
        let session = SessionId::new();
        let (refresh_token, refresh_hash) = new_refresh_token();
        let now = Utc::now();
        self.store
            .insert_session(&NewSession {
                id: session,
                user_id,
                refresh_hash: &refresh_hash,
                expires_at: now + self.keys.refresh_ttl,
                absolute_expires_at: now + self.keys.session_max_age,
                user_agent: client.user_agent.as_deref(),
            })
            .await?;
        self.tokens(user_id, session, refresh_token)
    }

    fn tokens(
        &self,
        user_id: UserId,
        session: SessionId,
        refresh_token: String,
    ) -> Result<Tokens, ServiceError> {
        let access_token = self
            .keys
            .issue_access(user_id, session)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Tokens {
            access_token,
            refresh_token,
            expires_in: self.keys.access_ttl.as_secs(),
            refresh_expires_in: self.keys.refresh_ttl.as_secs(),
            user_id,
            session_id: session,
        })
    }

    /// Trades a refresh token for new tokens. The old refresh token stops working; one
    /// presented again later (a stolen copy, or the owner's after a thief used it) ends
    /// the whole session. Within [`REFRESH_RACE_GRACE`] of its rotation it is only
    /// refused: that is two tabs refreshing at once.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ServiceError> {
        let (new_token, new_hash) = new_refresh_token();
        let expires_at = Utc::now() + self.keys.refresh_ttl;
        let rotation = self
            .store
            .rotate_refresh_token(
                &refresh_token_hash(refresh_token),
                &new_hash,
                expires_at,
                REFRESH_RACE_GRACE,
            )
            .await?;
        match rotation {
            Rotation::Rotated { session, user } => self.tokens(user, session, new_token),
            Rotation::Replayed { session } => {
                tracing::warn!(%session, "a retired refresh token was replayed; session revoked");
                self.invalidate(Invalidation::Session { session }).await;
                Err(ServiceError::Unauthenticated)
            }
            Rotation::JustRetired | Rotation::Refused => Err(ServiceError::Unauthenticated),
        }
    }

    /// Ends the caller's session: its access and refresh tokens stop working.
    pub async fn logout(&self, caller: &Caller) -> Result<(), ServiceError> {
        self.store
            .revoke_session(caller.session_id, Some(caller.user_id), "logout")
            .await?;
        self.invalidate(Invalidation::Session {
            session: caller.session_id,
        })
        .await;
        Ok(())
    }

    /// Ends a session from whatever credentials are left: an access token this server
    /// signed (expired or not) and/or a refresh token. Never fails for want of a valid
    /// token — logging out must work when the short-lived access token has expired.
    pub async fn logout_with(
        &self,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), ServiceError> {
        if let Some(token) = refresh_token
            && let Some(session) = self
                .store
                .revoke_session_by_refresh(&refresh_token_hash(token), "logout")
                .await?
        {
            self.invalidate(Invalidation::Session { session }).await;
        }
        if let Some(claims) = access_token.and_then(|t| self.keys.verify_signature_only(t).ok()) {
            self.store
                .revoke_session(claims.sid, Some(claims.sub), "logout")
                .await?;
            self.invalidate(Invalidation::Session {
                session: claims.sid,
            })
            .await;
        }
        Ok(())
    }

    /// Deletes sessions (and their retired refresh tokens) that ended over a week ago:
    /// the week keeps a replayed token recognisable for a while after its session ended.
    pub async fn forget_ended_sessions(&self) -> Result<u64, ServiceError> {
        Ok(self
            .store
            .forget_ended_sessions(std::time::Duration::from_secs(7 * 24 * 3600))
            .await?)
    }

    /// The caller's live sessions, oldest first.
    pub async fn sessions(&self, caller: &Caller) -> Result<Vec<SessionRow>, ServiceError> {
        Ok(self.store.live_sessions(caller.user_id).await?)
    }

    /// Ends one of the caller's sessions (another device, or this one). Someone else's
    /// session is `not_found`.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        session: SessionId,
    ) -> Result<(), ServiceError> {
        if self
            .store
            .revoke_session(session, Some(caller.user_id), "revoked_by_owner")
            .await?
        {
            self.invalidate(Invalidation::Session { session }).await;
            Ok(())
        } else {
            Err(ServiceError::NotFound("session"))
        }
    }

    /// Changes the caller's password after checking the current one, and ends every
    /// other session of theirs. Attempts count against the account's login limit.
    pub async fn change_password(
        &self,
        caller: &Caller,
        from: IpAddr,
        current: &str,
        new: &str,
    ) -> Result<(), ServiceError> {
        let new = validate::password(new)?.to_owned();
        let user = self.me(caller).await?;
        self.throttle_login(from, &user.username).await?;
        if current.len() > 1024 {
            return Err(ServiceError::Forbidden("the current password is wrong"));
        }
        let stored = self
            .store
            .password_hash(caller.user_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let ok = self
            .hasher
            .verify(current.to_owned(), stored)
            .await
            .map_err(hasher_busy)?;
        if !ok {
            return Err(ServiceError::Forbidden("the current password is wrong"));
        }
        let hash = self
            .hasher
            .hash(new)
            .await
            .map_err(hasher_busy)?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store
            .change_password(caller.user_id, caller.session_id, &hash)
            .await?;
        // Every other session ended; this one is asked again once, harmlessly.
        self.invalidate(Invalidation::Sessions {
            user: caller.user_id,
        })
        .await;
        Ok(())
    }

    /// Resolves an access token to its caller; revoked sessions are refused.
    pub async fn authenticate(&self, access_token: &str) -> Result<Caller, ServiceError> {
        let claims = self
            .keys
            .verify_access(access_token)
            .map_err(|_| ServiceError::Unauthenticated)?;
        if !self.access.session_live(claims.sid, claims.sub) {
            if !self.store.session_is_active(claims.sid, claims.sub).await? {
                return Err(ServiceError::Unauthenticated);
            }
            self.access.remember_session(claims.sid, claims.sub);
        }
        Ok(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
        })
    }

    pub async fn me(&self, caller: &Caller) -> Result<User, ServiceError> {
        self.store
            .user(caller.user_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)
    }

    /// Finds people to talk to by username prefix or display-name substring.
    pub async fn search_users(
        &self,
        _caller: &Caller,
        query: &str,
        limit: i64,
    ) -> Result<Vec<User>, ServiceError> {
        let query = chat_domain::validate::user_query(query)?;
        if !(1..=MAX_USER_SEARCH).contains(&limit) {
            return Err(chat_domain::ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_USER_SEARCH}"),
            )
            .into());
        }
        Ok(self.store.search_users(&query, limit).await?)
    }
}

impl ChatService {
    /// Whether each user is online. Only the caller and people who share a conversation
    /// with them are visible; others are `not_found`.
    pub async fn presence(
        &self,
        caller: &Caller,
        users: &[UserId],
    ) -> Result<Vec<(UserId, bool)>, ServiceError> {
        if users.is_empty() || users.len() > 100 {
            return Err(chat_domain::ValidationError::new(
                "user_ids",
                "give between 1 and 100 users",
            )
            .into());
        }
        let contacts = self.store.contacts_among(caller.user_id, users).await?;
        if users
            .iter()
            .any(|u| *u != caller.user_id && !contacts.contains(u))
        {
            return Err(ServiceError::NotFound("user"));
        }
        self.bus.presence_of(users).await.map_err(|e| {
            tracing::warn!(error = %e, "presence unavailable");
            ServiceError::Unavailable
        })
    }
}
