//! Participants and roles.
//!
//! Rules: admins and owners manage participants; an actor acts only on participants of a
//! lower rank than their own (owners also on other owners) and grants only roles up to
//! their own; anyone may leave; the last owner must hand over before leaving (while others
//! remain). Direct conversations keep their two participants.

use chat_domain::{ConversationId, EventPayload, Participant, Role, UserId};
use chat_store::participants::MembershipChange;

use chat_bus::invalidation::Invalidation;

use crate::{Caller, ChatService, ServiceError};

impl ChatService {
    /// Every participant, for rendering messages' statuses (the caller's membership is
    /// checked).
    pub async fn participants(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<Vec<Participant>, ServiceError> {
        self.membership(caller, conversation).await?;
        Ok(self.store.participants(conversation).await?)
    }

    /// A page of participants in user id order after `after` (1–200 at a time).
    pub async fn participants_page(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        after: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<Participant>, ServiceError> {
        if !(1..=crate::messages::MAX_PAGE).contains(&limit) {
            return Err(chat_domain::ValidationError::new(
                "limit",
                format!("must be between 1 and {}", crate::messages::MAX_PAGE),
            )
            .into());
        }
        self.membership(caller, conversation).await?;
        Ok(self
            .store
            .participants_page(conversation, after, limit)
            .await?)
    }

    /// Adds a user to a group.
    pub async fn add_participant(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        user: UserId,
        role: Option<Role>,
    ) -> Result<Participant, ServiceError> {
        let me = self.membership(caller, conversation).await?;
        self.require_group(conversation).await?;
        let role = role.unwrap_or(Role::Member);
        if !me.role.can_manage() {
            return Err(ServiceError::Forbidden(
                "only admins and owners can add participants",
            ));
        }
        if role.rank() > me.role.rank() {
            return Err(ServiceError::Forbidden(
                "cannot grant a role above your own",
            ));
        }
        if self.store.user(user).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        let actor = Some(caller.user_id);
        let events = |p: &Participant| {
            vec![self.event(
                conversation,
                actor,
                EventPayload::ParticipantJoined {
                    participant: p.clone(),
                },
            )]
        };
        let added = match self
            .store
            .add_participant(conversation, user, role, events)
            .await
        {
            Ok((p, outboxed)) => {
                self.announce(outboxed);
                p
            }
            Err(e) if e.is_conflict_on("participants_pkey") => {
                return Err(ServiceError::conflict(
                    "already_participant",
                    "the user is already a participant",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(added)
    }

    /// Changes a participant's role.
    pub async fn change_role(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        user: UserId,
        role: Role,
    ) -> Result<Participant, ServiceError> {
        let me = self.membership(caller, conversation).await?;
        self.require_group(conversation).await?;
        let target = self.target(conversation, user).await?;
        if !me.role.can_manage() {
            return Err(ServiceError::Forbidden(
                "only admins and owners can change roles",
            ));
        }
        if role.rank() > me.role.rank() {
            return Err(ServiceError::Forbidden(
                "cannot grant a role above your own",
            ));
        }
        if user != caller.user_id && !outranks(me.role, target.role) {
            return Err(ServiceError::Forbidden(
                "cannot change the role of a participant of equal or higher rank",
            ));
        }
        if target.role == role {
            return Ok(target);
        }
        let events = vec![self.event(
            conversation,
            Some(caller.user_id),
            EventPayload::ParticipantRoleChanged {
                user_id: user,
                role,
            },
        )];
        let (_, outboxed) = self
            .store
            .change_membership(conversation, user, MembershipChange::SetRole(role), events)
            .await?;
        self.announce(outboxed);
        self.invalidate(Invalidation::Membership { conversation, user })
            .await;
        self.target(conversation, user).await
    }

    /// Removes a participant, or lets the caller leave.
    pub async fn remove_participant(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<(), ServiceError> {
        let me = self.membership(caller, conversation).await?;
        self.require_group(conversation).await?;
        let target = self.target(conversation, user).await?;
        let leaving = user == caller.user_id;
        if !leaving {
            if !me.role.can_manage() {
                return Err(ServiceError::Forbidden(
                    "only admins and owners can remove participants",
                ));
            }
            if !outranks(me.role, target.role) {
                return Err(ServiceError::Forbidden(
                    "cannot remove a participant of equal or higher rank",
                ));
            }
        }
        let removed_by = (!leaving).then_some(caller.user_id);
        let events = vec![self.event(
            conversation,
            Some(caller.user_id),
            EventPayload::ParticipantLeft {
                user_id: user,
                removed_by,
            },
        )];
        let (_, outboxed) = self
            .store
            .change_membership(conversation, user, MembershipChange::Remove, events)
            .await?;
        self.announce(outboxed);
        self.invalidate(Invalidation::Membership { conversation, user })
            .await;
        Ok(())
    }

    async fn target(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<Participant, ServiceError> {
        self.store
            .participant(conversation, user)
            .await?
            .ok_or(ServiceError::NotFound("participant"))
    }

    async fn require_group(&self, conversation: ConversationId) -> Result<(), ServiceError> {
        let c = self
            .store
            .conversation(conversation)
            .await?
            .ok_or(ServiceError::NotFound("conversation"))?;
        if !c.is_group() {
            return Err(ServiceError::Forbidden(
                "direct conversations keep their two participants",
            ));
        }
        Ok(())
    }
}

/// Whether `actor` may act on a participant holding `target`: a strictly lower rank, or
/// owner on owner.
fn outranks(actor: Role, target: Role) -> bool {
    actor.rank() > target.rank() || (actor == Role::Owner && target == Role::Owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_rules() {
        assert!(outranks(Role::Owner, Role::Owner));
        assert!(outranks(Role::Owner, Role::Admin));
        assert!(outranks(Role::Admin, Role::Moderator));
        assert!(!outranks(Role::Admin, Role::Admin));
        assert!(!outranks(Role::Admin, Role::Owner));
        assert!(!outranks(Role::Member, Role::Member));
    }
}
