//! Conversations: create (direct or group), list, read, change, delete.

use std::collections::BTreeSet;

use chat_domain::validate::{self, MAX_INITIAL_PARTICIPANTS};
use chat_domain::{
    ContextType, Conversation, ConversationId, ConversationKind, ConversationSummary, EventPayload,
    Role, UserId, ValidationError,
};
use chat_store::conversations::NewConversation;

use crate::{Caller, ChatService, ConversationChanges, ConversationFilter, ServiceError};

/// What a client asks for when it creates a conversation.
#[derive(Debug, Clone, Default)]
pub struct CreateConversation {
    pub name: Option<String>,
    pub is_group: bool,
    /// The other participants (the caller is added anyway).
    pub participants: Vec<UserId>,
    pub context_type: Option<ContextType>,
    pub context_id: Option<String>,
}

/// Most conversations returned by one list call.
pub const MAX_CONVERSATION_PAGE: i64 = 200;

impl ChatService {
    /// Creates a conversation. A direct conversation that already exists between the two
    /// users is returned instead, with `false`.
    pub async fn create_conversation(
        &self,
        caller: &Caller,
        request: CreateConversation,
    ) -> Result<(ConversationSummary, bool), ServiceError> {
        let others: BTreeSet<UserId> = request
            .participants
            .iter()
            .copied()
            .filter(|u| *u != caller.user_id)
            .collect();
        if others.len() > MAX_INITIAL_PARTICIPANTS {
            return Err(ValidationError::new(
                "participants",
                format!("at most {MAX_INITIAL_PARTICIPANTS} participants at creation"),
            )
            .into());
        }
        let (kind, name) = if request.is_group {
            let name = validate::conversation_name("name", request.name.as_deref().unwrap_or(""))?;
            (ConversationKind::Group, Some(name))
        } else {
            if others.len() != 1 {
                return Err(ValidationError::new(
                    "participants",
                    "a direct conversation needs exactly one other participant",
                )
                .into());
            }
            let name = match request.name.as_deref() {
                Some(n) if !n.trim().is_empty() => Some(validate::conversation_name("name", n)?),
                _ => None,
            };
            (ConversationKind::Direct, name)
        };
        let context_id = request
            .context_id
            .as_deref()
            .map(validate::context_id)
            .transpose()?;
        let others: Vec<UserId> = others.into_iter().collect();
        let existing = self.store.existing_users(&others).await?;
        if let Some(missing) = others.iter().find(|u| !existing.contains(u)) {
            return Err(
                ValidationError::new("participants", format!("unknown user {missing}")).into(),
            );
        }
        let creator_role = match kind {
            ConversationKind::Group => Role::Owner,
            // Direct conversations have no one to administer them: both are members.
            ConversationKind::Direct => Role::Member,
        };
        let mut participants = vec![(caller.user_id, creator_role)];
        participants.extend(others.iter().map(|u| (*u, Role::Member)));
        let new = NewConversation {
            id: ConversationId::new(),
            kind,
            name,
            context_type: request.context_type.unwrap_or(ContextType::Private),
            context_id,
            created_by: caller.user_id,
            participants,
        };
        let ids: Vec<_> = new.participants.iter().map(|(u, _)| *u).collect();
        let events = |c: &chat_domain::Conversation| {
            let payload = EventPayload::ConversationCreated {
                conversation: c.clone(),
                participants: ids.clone(),
            };
            vec![self.event(c.id, Some(caller.user_id), payload)]
        };
        let (conversation, created, outboxed) =
            self.store.create_conversation(&new, events).await?;
        self.announce(outboxed);
        let summary = self.conversation(caller, conversation.id).await?;
        Ok((summary, created))
    }

    /// The caller's conversations, most recently active first.
    pub async fn conversations(
        &self,
        caller: &Caller,
        mut filter: ConversationFilter,
    ) -> Result<Vec<ConversationSummary>, ServiceError> {
        if !(1..=MAX_CONVERSATION_PAGE).contains(&filter.limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_CONVERSATION_PAGE}"),
            )
            .into());
        }
        if filter.offset < 0 {
            return Err(ValidationError::new("offset", "must not be negative").into());
        }
        filter.context_id = filter
            .context_id
            .as_deref()
            .map(validate::context_id)
            .transpose()?;
        Ok(self.store.conversations_of(caller.user_id, &filter).await?)
    }

    /// One of the caller's conversations, with the same fields as a list entry.
    pub async fn conversation(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<ConversationSummary, ServiceError> {
        let filter = ConversationFilter {
            only: Some(id),
            limit: 1,
            ..Default::default()
        };
        self.store
            .conversations_of(caller.user_id, &filter)
            .await?
            .pop()
            .ok_or(ServiceError::NotFound("conversation"))
    }

    /// Renames a group or changes its context. Admins and owners only.
    pub async fn update_conversation(
        &self,
        caller: &Caller,
        id: ConversationId,
        mut changes: ConversationChanges,
    ) -> Result<Conversation, ServiceError> {
        let me = self.membership(caller, id).await?;
        let conversation = self
            .store
            .conversation(id)
            .await?
            .ok_or(ServiceError::NotFound("conversation"))?;
        if !conversation.is_group() {
            return Err(ServiceError::Forbidden(
                "direct conversations cannot be changed",
            ));
        }
        if !me.role.can_manage() {
            return Err(ServiceError::Forbidden(
                "only admins and owners can change a conversation",
            ));
        }
        changes.name = changes
            .name
            .as_deref()
            .map(|n| validate::conversation_name("name", n))
            .transpose()?;
        changes.context_id = changes
            .context_id
            .as_deref()
            .map(validate::context_id)
            .transpose()?;
        let events = |c: &chat_domain::Conversation| {
            vec![self.event(
                id,
                Some(caller.user_id),
                EventPayload::ConversationUpdated {
                    conversation: c.clone(),
                },
            )]
        };
        let (updated, outboxed) = self.store.update_conversation(id, &changes, events).await?;
        self.announce(outboxed);
        Ok(updated)
    }

    /// Deletes a group with all its messages. Owners only.
    pub async fn delete_conversation(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<(), ServiceError> {
        let me = self.membership(caller, id).await?;
        if me.role != Role::Owner {
            return Err(ServiceError::Forbidden(
                "only owners can delete a conversation",
            ));
        }
        let events = vec![self.event(
            id,
            Some(caller.user_id),
            EventPayload::ConversationDeleted {},
        )];
        let outboxed = self.store.delete_conversation(id, events).await?;
        self.announce(outboxed);
        self.invalidate(chat_bus::invalidation::Invalidation::Conversation { conversation: id })
            .await;
        Ok(())
    }
}
