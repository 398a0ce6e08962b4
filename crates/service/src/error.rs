use chat_domain::ValidationError;
use chat_store::StoreError;

/// Why an operation was refused. Each variant maps to one HTTP status and WebSocket
/// error code in the adapters; the `code` strings are stable and documented.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input broke a rule; nothing was changed. (422)
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Missing, invalid, expired or revoked credentials. (401)
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong username or password. (401)
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The thing does not exist, or the caller may not know it exists. (404)
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may see the thing but not do this to it. (403)
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request conflicts with the current state. (409)
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The upload is larger than allowed; nothing was kept. (413)
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Too many requests of this kind; nothing was done. Retry after the wait. (429)
    #[error("too many requests; retry in {} s", crate::limits::retry_after_secs(*retry_after))]
    RateLimited { retry_after: std::time::Duration },
    /// A dependency (PostgreSQL) is down; retrying later may succeed. (503)
    #[error("service temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure; details are logged, not shown. (500)
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The stable, snake_case error code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Validation(_) => "validation_failed",
            ServiceError::Unauthenticated => "unauthenticated",
            ServiceError::InvalidCredentials => "invalid_credentials",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::Conflict { code, .. } => code,
            ServiceError::TooLarge { .. } => "payload_too_large",
            ServiceError::RateLimited { .. } => "rate_limited",
            ServiceError::Unavailable => "unavailable",
            ServiceError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ServiceError::NotFound("resource"),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ServiceError::Unavailable
            }
            StoreError::InvalidText(reason) => {
                tracing::warn!(%reason, "text refused by PostgreSQL got past validation");
                ValidationError::new("text", "must not contain NUL characters").into()
            }
            StoreError::LastOwner => ServiceError::conflict(
                "last_owner",
                "the last owner cannot leave or be demoted; make another participant owner first",
            ),
            other => {
                tracing::error!(error = %other, "store error");
                ServiceError::Internal(other.to_string())
            }
        }
    }
}

impl From<chat_store::messages::InsertError> for ServiceError {
    fn from(err: chat_store::messages::InsertError) -> Self {
        use chat_store::messages::InsertError;
        match err {
            InsertError::ConversationNotFound => ServiceError::NotFound("conversation"),
            InsertError::ReplyNotFound => {
                ValidationError::new("reply_to", "is not a message of this conversation").into()
            }
            InsertError::AttachmentUnavailable => ValidationError::new(
                "attachments",
                "each attachment must be a ready file you uploaded to this conversation and not sent yet",
            )
            .into(),
            InsertError::Store(e) => e.into(),
        }
    }
}
