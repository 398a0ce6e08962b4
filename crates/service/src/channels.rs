//! Channel features (seed 002): reactions, pins, threads, flags and moderation, search.
//!
//! Rules: any participant reacts, replies and flags; moderators and above pin, unpin and
//! review flags (approve or hide); hidden messages are seen by moderators only.

use chat_domain::{
    ConversationId, Decision, EventPayload, Flag, FlagState, Message, MessageId,
    ModerationDecision, ModerationState, Participant, Pin, ReactionSummary, ValidationError,
    validate,
};
use chat_store::messages::HistoryPage;
use chat_store::search::{Hit, SearchPosition};

use crate::{Caller, ChatService, ServiceError};

/// Most search results in one page.
pub const MAX_SEARCH_PAGE: i64 = 100;

impl ChatService {
    /// A message the caller may act on: visible to them and not deleted.
    async fn live_message(
        &self,
        me: &Participant,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Message, ServiceError> {
        let message = self
            .store
            .message(conversation, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        if message.moderation == ModerationState::Hidden && !me.role.can_moderate() {
            return Err(ServiceError::NotFound("message"));
        }
        if message.deleted_at.is_some() {
            return Err(ServiceError::conflict(
                "message_deleted",
                "the message was deleted",
            ));
        }
        Ok(message)
    }

    /// Adds (`add`) or removes a reaction. Idempotent: repeating it changes nothing and
    /// publishes nothing.
    pub async fn react(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<(), ServiceError> {
        let emoji = validate::emoji(emoji)?;
        let me = self.membership(caller, conversation).await?;
        let message = self.live_message(&me, conversation, id).await?;
        let (user_id, seq) = (caller.user_id, message.seq);
        let events = || {
            let emoji = emoji.clone();
            let payload = if add {
                EventPayload::ReactionAdded {
                    message_id: id,
                    seq,
                    user_id,
                    emoji,
                }
            } else {
                EventPayload::ReactionRemoved {
                    message_id: id,
                    seq,
                    user_id,
                    emoji,
                }
            };
            vec![self.event(conversation, Some(user_id), payload)]
        };
        use chat_store::reactions::{
            EMOJI_PER_MESSAGE, MAX_EMOJI_PER_MESSAGE, MAX_REACTIONS_PER_USER, REACTIONS_PER_USER,
        };
        let (_, outboxed) = match self
            .store
            .set_reaction(id, user_id, &emoji, add, events)
            .await
        {
            Ok(done) => done,
            Err(e) if e.is_conflict_on(REACTIONS_PER_USER) => {
                return Err(ServiceError::conflict(
                    "too_many_reactions",
                    format!(
                        "at most {MAX_REACTIONS_PER_USER} different reactions of yours per message"
                    ),
                ));
            }
            Err(e) if e.is_conflict_on(EMOJI_PER_MESSAGE) => {
                return Err(ServiceError::conflict(
                    "too_many_reactions",
                    format!("a message holds at most {MAX_EMOJI_PER_MESSAGE} different reactions"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.announce(outboxed);
        Ok(())
    }

    /// Reaction counts of some messages as the caller sees them. A rendering helper: the
    /// callers pass only ids of messages the caller was just allowed to read.
    pub async fn reactions(
        &self,
        caller: &Caller,
        messages: &[MessageId],
    ) -> Result<Vec<ReactionSummary>, ServiceError> {
        Ok(self.store.reactions_of(messages, caller.user_id).await?)
    }

    /// The pinned messages, newest pin first (hidden ones only for moderators).
    pub async fn pins(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<Vec<(Pin, Message)>, ServiceError> {
        let me = self.membership(caller, conversation).await?;
        let mut out = Vec::new();
        for pin in self.store.pins(conversation).await? {
            if let Some(m) = self.store.message(conversation, pin.message_id).await?
                && (m.moderation != ModerationState::Hidden || me.role.can_moderate())
            {
                out.push((pin, m));
            }
        }
        Ok(out)
    }

    /// Pins (`pin`) or unpins a message. Moderators, admins and owners.
    pub async fn set_pinned(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
        pin: bool,
    ) -> Result<(), ServiceError> {
        let me = self.membership(caller, conversation).await?;
        if !me.role.can_moderate() {
            return Err(ServiceError::Forbidden(
                "only moderators, admins and owners can pin messages",
            ));
        }
        let message = self
            .store
            .message(conversation, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        let events = || {
            let payload = if pin {
                EventPayload::MessagePinned {
                    message_id: id,
                    seq: message.seq,
                    pinned_by: caller.user_id,
                }
            } else {
                EventPayload::MessageUnpinned {
                    message_id: id,
                    seq: message.seq,
                    unpinned_by: caller.user_id,
                }
            };
            vec![self.event(conversation, Some(caller.user_id), payload)]
        };
        let (changed, outboxed) = if pin {
            if message.deleted_at.is_some() {
                return Err(ServiceError::conflict(
                    "message_deleted",
                    "a deleted message cannot be pinned",
                ));
            }
            self.store
                .pin(conversation, id, caller.user_id, events)
                .await?
        } else {
            self.store.unpin(conversation, id, events).await?
        };
        self.announce(outboxed);
        if !changed && !pin {
            return Err(ServiceError::NotFound("pin"));
        }
        Ok(())
    }

    /// A message and its direct replies (a thread), replies in seq order after `after`.
    pub async fn thread(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        root: MessageId,
        after: i64,
        limit: i64,
    ) -> Result<(Message, HistoryPage), ServiceError> {
        if !(1..=crate::messages::MAX_PAGE).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {}", crate::messages::MAX_PAGE),
            )
            .into());
        }
        let me = self.membership(caller, conversation).await?;
        let root_message = self
            .store
            .message(conversation, root)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        let moderator = me.role.can_moderate();
        if root_message.moderation == ModerationState::Hidden && !moderator {
            return Err(ServiceError::NotFound("message"));
        }
        if after < 0 {
            return Err(ValidationError::new("after", "must not be negative").into());
        }
        let mut replies = self
            .store
            .replies(conversation, root, after, limit, moderator)
            .await?;
        self.store.load_mentions(&mut replies.messages).await?;
        let mut root = [root_message];
        self.store.load_mentions(&mut root).await?;
        let [root_message] = root;
        Ok((root_message, replies))
    }

    /// Reports a message to the moderators. Any participant, once per message.
    pub async fn flag(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
        reason: &str,
    ) -> Result<Flag, ServiceError> {
        let reason = validate::flag_reason(reason)?;
        let me = self.membership(caller, conversation).await?;
        let message = self.live_message(&me, conversation, id).await?;
        // Who flagged is for moderators only: the event names no actor.
        let events = vec![self.event(
            conversation,
            None,
            EventPayload::MessageFlagged {
                message_id: id,
                seq: message.seq,
            },
        )];
        let flag = match self
            .store
            .flag_message(id, caller.user_id, &reason, events)
            .await
        {
            Ok((f, outboxed)) => {
                self.announce(outboxed);
                f
            }
            Err(e) if e.is_conflict_on("flags_once_per_user") => {
                return Err(ServiceError::conflict(
                    "already_flagged",
                    "you already flagged this message",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(flag)
    }

    /// Flags of a conversation for review. Moderators and above.
    pub async fn flags(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        state: Option<FlagState>,
    ) -> Result<Vec<Flag>, ServiceError> {
        self.require_moderator(caller, conversation).await?;
        Ok(self.store.flags(conversation, state).await?)
    }

    /// Approves or hides a message, recording who, when and why. Moderators and above.
    pub async fn moderate(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
        decision: Decision,
        reason: Option<&str>,
    ) -> Result<ModerationDecision, ServiceError> {
        let reason = reason.map(validate::flag_reason).transpose()?;
        self.require_moderator(caller, conversation).await?;
        let message = self
            .store
            .message(conversation, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        let (message_id, seq, moderator_id) = (id, message.seq, caller.user_id);
        let payload = match decision {
            Decision::Approve => EventPayload::MessageApproved {
                message_id,
                seq,
                moderator_id,
            },
            Decision::Hide => EventPayload::MessageHidden {
                message_id,
                seq,
                moderator_id,
            },
        };
        let events = vec![self.event(conversation, Some(caller.user_id), payload)];
        let (recorded, outboxed) = self
            .store
            .decide(id, caller.user_id, decision, reason.as_deref(), events)
            .await?;
        self.announce(outboxed);
        Ok(recorded)
    }

    /// The moderation record of a message: its flags and decisions. Moderators and above.
    pub async fn moderation_record(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<(Vec<Flag>, Vec<ModerationDecision>), ServiceError> {
        self.require_moderator(caller, conversation).await?;
        self.store
            .message(conversation, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        Ok((
            self.store.flags_of_message(id).await?,
            self.store.decisions(id).await?,
        ))
    }

    async fn require_moderator(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<Participant, ServiceError> {
        let me = self.membership(caller, conversation).await?;
        if !me.role.can_moderate() {
            return Err(ServiceError::Forbidden(
                "only moderators, admins and owners review flags",
            ));
        }
        Ok(me)
    }

    /// Searches the caller's conversations: a page of at most `limit` hits, after the
    /// hit at `after` when given (the previous page's last).
    pub async fn search(
        &self,
        caller: &Caller,
        query: &str,
        limit: i64,
        after: Option<SearchPosition>,
    ) -> Result<Vec<Hit>, ServiceError> {
        let query = validate::search_query(query)?;
        if !(1..=MAX_SEARCH_PAGE).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_SEARCH_PAGE}"),
            )
            .into());
        }
        let mut hits = self
            .store
            .search(caller.user_id, &query, limit, after)
            .await?;
        let mut messages: Vec<Message> = hits.iter().map(|h| h.message.clone()).collect();
        self.store.load_mentions(&mut messages).await?;
        for (hit, message) in hits.iter_mut().zip(messages) {
            hit.message = message;
        }
        Ok(hits)
    }

    /// For the worker: builds the search vectors of up to `limit` messages sent or edited
    /// and not indexed yet; returns how many. Search finds a message once this ran.
    pub async fn index_new_messages(&self, limit: i64) -> Result<u64, ServiceError> {
        Ok(self.store.index_pending_messages(limit).await?)
    }
}
