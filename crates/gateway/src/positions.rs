//! The per-connection seq rule, apart from the socket so it can be tested alone: for each
//! conversation a connection receives, the last message seq it sent (`None` right after a
//! join, until the first message). A `message.created` at or below it is a duplicate; more
//! than one past it is a gap, filled from PostgreSQL before it is sent.

use std::collections::HashMap;

use chat_domain::ConversationId;

/// What to do with a message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a conversation this connection receives: drop it.
    NotReceived,
    /// Sent already: drop it.
    Duplicate,
    /// The next one (or the first since a join): send it.
    Next,
    /// Messages after `after` are missing before it: fill them, this one included.
    Gap { after: i64 },
}

/// The conversations a connection receives and the last seq sent in each.
#[derive(Debug, Default)]
pub struct Positions {
    sent: HashMap<ConversationId, Option<i64>>,
}

impl Positions {
    /// Starts receiving `conversation` after `seq` (a known position), or at its next
    /// message (`None`). A conversation already received keeps its position.
    pub fn join(&mut self, conversation: ConversationId, seq: Option<i64>) {
        self.sent.entry(conversation).or_insert(seq);
    }

    pub fn leave(&mut self, conversation: ConversationId) {
        self.sent.remove(&conversation);
    }

    /// Keeps only the conversations `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&ConversationId) -> bool) {
        self.sent.retain(|c, _| keep(c));
    }

    pub fn receives(&self, conversation: ConversationId) -> bool {
        self.sent.contains_key(&conversation)
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    pub fn conversations(&self) -> impl Iterator<Item = ConversationId> + '_ {
        self.sent.keys().copied()
    }

    /// The last seq sent, if the conversation is received and a position is known.
    pub fn last(&self, conversation: ConversationId) -> Option<i64> {
        self.sent.get(&conversation).copied().flatten()
    }

    /// Each received conversation with its position (`None`: not known yet).
    pub fn iter(&self) -> impl Iterator<Item = (ConversationId, Option<i64>)> + '_ {
        self.sent.iter().map(|(c, s)| (*c, *s))
    }

    /// What to do with message `seq` of `conversation`.
    pub fn judge(&self, conversation: ConversationId, seq: i64) -> Verdict {
        match self.sent.get(&conversation) {
            None => Verdict::NotReceived,
            Some(None) => Verdict::Next,
            Some(Some(last)) if seq <= *last => Verdict::Duplicate,
            Some(Some(last)) if seq > *last + 1 => Verdict::Gap { after: *last },
            Some(Some(_)) => Verdict::Next,
        }
    }

    /// Records that everything through `seq` was sent (never moves back). A conversation
    /// not received is left alone.
    pub fn sent_through(&mut self, conversation: ConversationId, seq: i64) {
        if let Some(position) = self.sent.get_mut(&conversation) {
            *position = Some(position.map_or(seq, |last| last.max(seq)));
        }
    }

    /// Like `sent_through`, receiving the conversation if it was not (a resume).
    pub fn resumed_through(&mut self, conversation: ConversationId, seq: i64) {
        self.join(conversation, Some(seq));
        self.sent_through(conversation, seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> ConversationId {
        ConversationId::from(uuid::Uuid::now_v7())
    }

    #[test]
    fn next_duplicate_and_gap() {
        let mut p = Positions::default();
        let a = c();
        p.join(a, Some(5));
        assert_eq!(p.judge(a, 6), Verdict::Next);
        assert_eq!(p.judge(a, 5), Verdict::Duplicate);
        assert_eq!(p.judge(a, 3), Verdict::Duplicate);
        assert_eq!(p.judge(a, 9), Verdict::Gap { after: 5 });
        p.sent_through(a, 9);
        assert_eq!(p.last(a), Some(9));
        // Never backwards.
        p.sent_through(a, 7);
        assert_eq!(p.last(a), Some(9));
        assert_eq!(p.judge(a, 10), Verdict::Next);
    }

    #[test]
    fn a_join_takes_the_first_message_and_a_leave_drops_everything_after() {
        let mut p = Positions::default();
        let a = c();
        assert_eq!(p.judge(a, 1), Verdict::NotReceived);
        p.join(a, None);
        assert!(p.receives(a));
        assert_eq!(p.last(a), None);
        assert_eq!(p.judge(a, 42), Verdict::Next, "the first since the join");
        p.sent_through(a, 42);
        assert_eq!(p.judge(a, 43), Verdict::Next);
        // Joining again keeps the position.
        p.join(a, Some(0));
        assert_eq!(p.last(a), Some(42));
        p.leave(a);
        assert!(!p.receives(a));
        assert_eq!(p.judge(a, 43), Verdict::NotReceived);
        p.sent_through(a, 50);
        assert!(!p.receives(a), "recording does not receive again");
    }

    #[test]
    fn a_resume_receives_and_moves_forward_only() {
        let mut p = Positions::default();
        let (a, b) = (c(), c());
        p.resumed_through(a, 10);
        assert_eq!(p.last(a), Some(10));
        p.resumed_through(a, 4);
        assert_eq!(p.last(a), Some(10));
        p.join(b, Some(1));
        p.retain(|x| *x == a);
        assert_eq!(p.conversations().collect::<Vec<_>>(), vec![a]);
        assert!(!p.is_empty());
    }
}
