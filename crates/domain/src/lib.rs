//! Domain types of the chat platform, shared by every other crate.
//!
//! Layout:
//! - [`ids`]: typed identifiers (`UserId`, `ConversationId`, …) so that ids of different
//!   things cannot be mixed up.
//! - [`model`]: the records of the data model (users, conversations, participants,
//!   messages) and their enums (roles, kinds, moderation states).
//! - [`validate`]: values checked once at the edge (usernames, message text, …) and then
//!   trusted everywhere else.
//! - [`event`]: the catalogue of events that every committed change publishes.
//!
//! Invariant: this crate does no I/O. It knows nothing about HTTP, Redis or PostgreSQL
//! (the optional `sqlx` feature only derives row-mapping traits for the store).

pub mod event;
pub mod ids;
pub mod model;
pub mod validate;

pub use event::{Event, EventPayload};
pub use ids::{AttachmentId, ConversationId, MessageId, SessionId, UserId};
pub use model::*;
pub use validate::ValidationError;
