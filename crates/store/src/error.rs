use thiserror::Error;

/// A failed store operation, classified for the callers.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The row the operation needs does not exist (or the caller may not see it).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the constraint's name says which.
    #[error("conflict on {0}")]
    Conflict(String),
    /// A foreign key named a row that does not exist.
    #[error("missing referenced row ({0})")]
    MissingReference(String),
    /// The change would leave a conversation that still has participants without an owner.
    #[error("the last owner cannot leave or be demoted")]
    LastOwner,
    /// PostgreSQL refused a text it cannot store (a NUL character): bad input that got
    /// past validation, never a fault of the database.
    #[error("text PostgreSQL cannot store: {0}")]
    InvalidText(String),
    /// PostgreSQL could not be reached in time; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("invalid database configuration: {0}")]
    Config(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// "Unavailable" for a reason outside PostgreSQL (the process's writer stopped).
    pub fn unavailable(reason: &str) -> StoreError {
        StoreError::Unavailable(sqlx::Error::Protocol(reason.into()))
    }

    /// The same failure for one more of several callers that waited on one operation
    /// (a send batch): the kind is kept, the source as text.
    pub fn for_another_waiter(&self) -> StoreError {
        match self {
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Conflict(c) => StoreError::Conflict(c.clone()),
            StoreError::MissingReference(r) => StoreError::MissingReference(r.clone()),
            StoreError::LastOwner => StoreError::LastOwner,
            StoreError::InvalidText(t) => StoreError::InvalidText(t.clone()),
            StoreError::Unavailable(e) => {
                StoreError::Unavailable(sqlx::Error::Protocol(e.to_string()))
            }
            StoreError::Config(e) => StoreError::Config(sqlx::Error::Protocol(e.to_string())),
            StoreError::Migration(m) => StoreError::Migration(m.clone()),
            StoreError::Database(e) => StoreError::Database(sqlx::Error::Protocol(e.to_string())),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(err)
            }
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().unwrap_or_default().to_owned();
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(constraint),
                    sqlx::error::ErrorKind::ForeignKeyViolation => {
                        StoreError::MissingReference(constraint)
                    }
                    _ => match db.code().as_deref() {
                        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
                        Some("57P01" | "57P02" | "57P03" | "53300") => StoreError::Unavailable(err),
                        // character_not_in_repertoire (a NUL), untranslatable_character
                        Some("22021" | "22P05") => StoreError::InvalidText(db.message().to_owned()),
                        _ => StoreError::Database(err),
                    },
                }
            }
            _ => StoreError::Database(err),
        }
    }
}

impl StoreError {
    /// Whether this is a conflict on the named unique constraint.
    pub fn is_conflict_on(&self, name: &str) -> bool {
        matches!(self, StoreError::Conflict(c) if c == name)
    }
}
