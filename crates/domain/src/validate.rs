//! Values validated once, where they enter the system, and trusted afterwards.
//!
//! Each `parse` returns a [`ValidationError`] that names the offending field, so that the
//! API can say exactly what was wrong.

use serde::Serialize;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Longest message text, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest conversation name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Most participants given when a conversation is created.
pub const MAX_INITIAL_PARTICIPANTS: usize = 1000;

fn char_len_between(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n < min {
        return Err(ValidationError::new(
            field,
            if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

fn no_control_chars(field: &'static str, value: &str, allow_newlines: bool) -> Result<(), ValidationError> {
    let bad = value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t' || c == '\r')));
    if bad {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// A login name: 3–32 of `a-z 0-9 _ . -`, stored lowercase, unique.
pub fn username(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim().to_lowercase();
    char_len_between("username", &value, 3, 32)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ValidationError::new(
            "username",
            "may contain only letters a-z, digits and _ . -",
        ));
    }
    Ok(value)
}

/// A password: 8–128 characters. Only its hash is stored.
pub fn password(raw: &str) -> Result<&str, ValidationError> {
    char_len_between("password", raw, 8, 128)?;
    Ok(raw)
}

/// A display name: 1–64 characters, trimmed, no control characters.
pub fn display_name(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between("display_name", value, 1, 64)?;
    no_control_chars("display_name", value, false)?;
    Ok(value.to_owned())
}

/// A conversation name: 1–100 characters, trimmed.
pub fn conversation_name(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between(field, value, 1, MAX_NAME_CHARS)?;
    no_control_chars(field, value, false)?;
    Ok(value.to_owned())
}

/// Message text: 1–4000 characters after trimming; newlines allowed.
pub fn message_text(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    char_len_between(field, raw, 1, MAX_MESSAGE_CHARS)?;
    no_control_chars(field, raw, true)?;
    Ok(raw.to_owned())
}

/// A client's idempotency key: 1–64 printable ASCII characters.
pub fn client_msg_id(raw: &str) -> Result<String, ValidationError> {
    char_len_between("client_msg_id", raw, 1, 64)?;
    if !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ValidationError::new("client_msg_id", "must be printable ASCII without spaces"));
    }
    Ok(raw.to_owned())
}

/// The id of a conversation's context (a nucleus, an event, …): 1–64 printable characters.
pub fn context_id(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between("context_id", value, 1, 64)?;
    no_control_chars("context_id", value, false)?;
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_folded_and_checked() {
        assert_eq!(username("  Alice.B ").ok().as_deref(), Some("alice.b"));
        assert!(username("al").is_err());
        assert!(username("al ice").is_err());
        assert!(username(&"a".repeat(33)).is_err());
    }

    #[test]
    fn message_text_limits() {
        assert!(message_text("text", "   ").is_err());
        assert!(message_text("text", "hi\nthere").is_ok());
        assert!(message_text("text", &"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(message_text("text", &"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(message_text("text", "bell\u{7}").is_err());
    }

    #[test]
    fn client_msg_id_is_printable_ascii() {
        assert!(client_msg_id("abc-123").is_ok());
        assert!(client_msg_id("").is_err());
        assert!(client_msg_id("a b").is_err());
    }
}
