-- The core data model: users and sessions, conversations, participants, messages and
-- attachment metadata. Enumerations are text with CHECK constraints so that adding a
-- value is a plain constraint change.

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL,
    display_name    text NOT NULL,
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_lower CHECK (username = lower(username))
);
-- Prefix search on usernames (`GET /api/users?q=`).
CREATE INDEX users_username_prefix ON users (username text_pattern_ops);

-- One row per login. Access tokens carry the session id; revoking the session revokes
-- them. Only a hash of the current refresh token is stored; it changes at every refresh.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash    bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    CONSTRAINT sessions_refresh_hash_key UNIQUE (refresh_hash)
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE conversations (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('direct', 'group')),
    name            text,
    context_type    text NOT NULL DEFAULT 'private'
                    CHECK (context_type IN ('private', 'nucleus', 'event', 'organization')),
    context_id      text,
    -- For direct conversations: the two user ids, smaller first. Unique, so that a
    -- direct conversation between two users exists once.
    direct_key      text,
    created_by      uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Highest seq handed out; incremented under the row lock when a message is inserted,
    -- which makes seq dense and gap-free per conversation.
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    CONSTRAINT conversations_direct_key UNIQUE (direct_key),
    CONSTRAINT conversations_direct_has_key CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);
CREATE INDEX conversations_context ON conversations (context_type, context_id);

CREATE TABLE participants (
    conversation_id     uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                text NOT NULL DEFAULT 'member'
                        CHECK (role IN ('owner', 'admin', 'moderator', 'member')),
    joined_at           timestamptz NOT NULL DEFAULT now(),
    last_delivered_seq  bigint NOT NULL DEFAULT 0,
    last_read_seq       bigint NOT NULL DEFAULT 0,
    muted               boolean NOT NULL DEFAULT false,
    PRIMARY KEY (conversation_id, user_id)
);
-- A user's conversations.
CREATE INDEX participants_user ON participants (user_id, conversation_id);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    sender_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    kind            text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'file', 'image', 'system')),
    text            text NOT NULL DEFAULT '',
    client_msg_id   text,
    reply_to        uuid REFERENCES messages (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    moderation      text NOT NULL DEFAULT 'visible' CHECK (moderation IN ('visible', 'flagged', 'hidden')),
    -- History pages and resume: keyset by seq.
    CONSTRAINT messages_conversation_seq UNIQUE (conversation_id, seq),
    -- Idempotent sends: the same sender and key never create two messages.
    CONSTRAINT messages_sender_client_msg_id UNIQUE (sender_id, client_msg_id)
);
-- `since`/`until` filters.
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at);
CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;

CREATE TABLE attachments (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      uuid REFERENCES messages (id) ON DELETE SET NULL,
    uploader_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    object_key      text NOT NULL,
    file_name       text NOT NULL,
    content_type    text,
    size_bytes      bigint NOT NULL,
    sha256          text,
    width           integer,
    height          integer,
    thumbnail_key   text,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'ready', 'rejected')),
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
