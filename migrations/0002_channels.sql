-- Channels as in seed 002: reactions, pins, mentions, flags and moderation decisions,
-- and full-text search with accents folded.

CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (its dictionary could change); pinning the dictionary makes
-- it safe to declare IMMUTABLE, which indexes and generated columns need.
CREATE FUNCTION chat_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

-- Portuguese and English stems plus the bare words, all accent-folded.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('portuguese', chat_fold(text))
    || to_tsvector('english', chat_fold(text))
    || to_tsvector('simple', chat_fold(text))
) STORED;
CREATE INDEX messages_search ON messages USING gin (search);

CREATE TABLE reactions (
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);

CREATE TABLE pins (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    pinned_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    pinned_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, message_id)
);

-- Who a message mentions (`@username` of a participant), with its seq so that unread
-- mentions count by watermark.
CREATE TABLE mentions (
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user ON mentions (user_id, conversation_id, seq);

CREATE TABLE flags (
    id          uuid PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    flagged_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    reason      text NOT NULL,
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'approved', 'hidden')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT flags_once_per_user UNIQUE (message_id, flagged_by)
);
CREATE INDEX flags_open ON flags (message_id) WHERE state = 'open';

-- Every moderation decision, kept: who, when, why.
CREATE TABLE moderation_decisions (
    id           uuid PRIMARY KEY,
    message_id   uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    moderator_id uuid REFERENCES users (id) ON DELETE SET NULL,
    decision     text NOT NULL CHECK (decision IN ('approve', 'hide')),
    reason       text,
    decided_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderation_decisions_message ON moderation_decisions (message_id, decided_at);
