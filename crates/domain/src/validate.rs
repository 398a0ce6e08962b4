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
        Self {
            field,
            message: message.into(),
        }
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
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn no_control_chars(
    field: &'static str,
    value: &str,
    allow_newlines: bool,
) -> Result<(), ValidationError> {
    let bad = value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t' || c == '\r')));
    if bad {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// How strictly [`no_hidden_chars`] refuses invisible characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hidden {
    /// Message text: bidi embeddings, overrides and isolates (which reorder what follows,
    /// the "Trojan Source" trick) and invisible spaces are refused; the marks right-to-left
    /// writing needs (LRM, RLM, ALM) and the joiners of emoji and Indic scripts are not.
    Text,
    /// Names people are told apart by: also no directional marks.
    Name,
    /// File names, whose extension decides what a reader dares open: no invisible
    /// character at all, joiners included.
    FileName,
}

fn no_hidden_chars(field: &'static str, value: &str, level: Hidden) -> Result<(), ValidationError> {
    let refused = |c: char| match c {
        // Embeddings, overrides (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI PDI).
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => true,
        // Zero-width space, word joiner, invisible operators, BOM, Mongolian separator.
        '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' => true,
        // Left-to-right, right-to-left and Arabic letter marks.
        '\u{200E}' | '\u{200F}' | '\u{061C}' => level != Hidden::Text,
        // Zero-width non-joiner and joiner; soft hyphen.
        '\u{200C}' | '\u{200D}' | '\u{00AD}' => level == Hidden::FileName,
        _ => false,
    };
    if let Some(c) = value.chars().find(|c| refused(*c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "must not contain invisible or text-direction characters (found U+{:04X})",
                c as u32
            ),
        ));
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
    no_hidden_chars("display_name", value, Hidden::Name)?;
    Ok(value.to_owned())
}

/// A conversation name: 1–100 characters, trimmed.
pub fn conversation_name(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between(field, value, 1, MAX_NAME_CHARS)?;
    no_control_chars(field, value, false)?;
    no_hidden_chars(field, value, Hidden::Name)?;
    Ok(value.to_owned())
}

/// Message text: 1–4000 characters after trimming; newlines allowed.
pub fn message_text(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    char_len_between(field, raw, 1, MAX_MESSAGE_CHARS)?;
    no_control_chars(field, raw, true)?;
    no_hidden_chars(field, raw, Hidden::Text)?;
    Ok(raw.to_owned())
}

/// A client's idempotency key: 1–64 printable ASCII characters.
pub fn client_msg_id(raw: &str) -> Result<String, ValidationError> {
    char_len_between("client_msg_id", raw, 1, 64)?;
    if !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "client_msg_id",
            "must be printable ASCII without spaces",
        ));
    }
    Ok(raw.to_owned())
}

/// The id of a conversation's context (a nucleus, an event, …): 1–64 printable characters.
pub fn context_id(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between("context_id", value, 1, 64)?;
    no_control_chars("context_id", value, false)?;
    no_hidden_chars("context_id", value, Hidden::Name)?;
    Ok(value.to_owned())
}

/// A reaction: one emoji (or short shortcode), 1–32 characters, no spaces.
pub fn emoji(raw: &str) -> Result<String, ValidationError> {
    char_len_between("emoji", raw, 1, 32)?;
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(
            "emoji",
            "must not contain spaces or control characters",
        ));
    }
    no_hidden_chars("emoji", raw, Hidden::Text)?;
    Ok(raw.to_owned())
}

/// Why a message is flagged: 1–500 characters.
pub fn flag_reason(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between("reason", value, 1, 500)?;
    no_control_chars("reason", value, true)?;
    no_hidden_chars("reason", value, Hidden::Text)?;
    Ok(value.to_owned())
}

/// An uploaded file's name: its last path component, 1–255 characters, no control
/// characters. (Only shown to people; never used as a storage key.)
pub fn file_name(raw: &str) -> Result<String, ValidationError> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    char_len_between("file_name", base, 1, 255)?;
    no_control_chars("file_name", base, false)?;
    no_hidden_chars("file_name", base, Hidden::FileName)?;
    if base == "." || base == ".." {
        return Err(ValidationError::new("file_name", "is not a file name"));
    }
    Ok(base.to_owned())
}

/// A search query: 1–200 characters.
pub fn search_query(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between("q", value, 1, 200)?;
    no_control_chars("q", value, false)?;
    Ok(value.to_owned())
}

/// A people search (`GET /api/users?q=`): 1–64 characters, no control characters.
pub fn user_query(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    char_len_between("q", value, 1, 64)?;
    no_control_chars("q", value, false)?;
    Ok(value.to_owned())
}

/// The usernames a text mentions as `@username` (lowercased, each once, in order).
pub fn mentioned_usernames(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars = text.char_indices().peekable();
    let mut prev: Option<char> = None;
    for (i, c) in chars {
        let starts_word = prev.is_none_or(|p| !(p.is_alphanumeric() || p == '_' || p == '.'));
        prev = Some(c);
        if c != '@' || !starts_word {
            continue;
        }
        let rest = &text[i + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .collect::<String>()
            .trim_end_matches(['.', '-'])
            .to_lowercase();
        if (3..=32).contains(&name.len()) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentions_are_found_once_and_lowercased() {
        assert_eq!(
            mentioned_usernames("hi @Alice and @bob_1, also @alice."),
            vec!["alice", "bob_1"]
        );
        assert!(mentioned_usernames("mail me at x@example.com").is_empty());
        assert!(mentioned_usernames("@ab is too short").is_empty());
    }

    #[test]
    fn emoji_and_reasons() {
        assert!(emoji("👍").is_ok());
        assert!(emoji(":thumbsup:").is_ok());
        assert!(emoji("a b").is_err());
        assert!(emoji("").is_err());
        assert!(flag_reason("  ").is_err());
        assert!(flag_reason("spam").is_ok());
    }

    use super::*;

    #[test]
    fn invisible_and_direction_characters_cannot_disguise_names_or_text() {
        // "photo\u{202E}gnp.zip" shows as "photopiz.png".
        assert!(file_name("photo\u{202E}gnp.zip").is_err());
        assert!(file_name("report\u{200D}.pdf").is_err());
        assert!(display_name("ad\u{200B}min").is_err());
        assert!(display_name("\u{200F}alice").is_err());
        assert!(conversation_name("name", "team\u{2066}x\u{2069}").is_err());
        assert!(message_text("text", "see \u{202E}txt.exe").is_err());
        assert!(message_text("text", "zero\u{FEFF}width").is_err());
        assert!(emoji("\u{202E}👍").is_err());
        // What real writing needs stays allowed.
        assert!(message_text("text", "family 👨\u{200D}👩\u{200D}👧").is_ok());
        assert!(message_text("text", "שלום\u{200F} (hi)").is_ok());
        assert!(emoji("👍🏽").is_ok());
        assert!(display_name("José 👩\u{200D}💻").is_ok());
        assert!(file_name("relatório final.pdf").is_ok());
    }

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
