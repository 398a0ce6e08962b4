-- The write path at batch speed: an outbox for events, and full-text vectors built
-- after the send instead of inside it.

-- Events written in the transaction of the change they describe. The process that made
-- the change publishes them right after its commit and deletes the row; a row that is
-- still here a few seconds later (the process died between commit and publish, or Redis
-- was down) is published by any process's relay. `events` holds the serialised bus
-- envelopes, in publish order, and `conversations` the conversation of each (which picks
-- its stream); one row per transaction (a send batch is one row).
CREATE TABLE event_outbox (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- A relay that took the row publishes it before this time; past it, another may.
    claimed_until timestamptz,
    conversations uuid[] NOT NULL,
    events        text[] NOT NULL,
    CHECK (cardinality(conversations) = cardinality(events))
);
-- Rows live for milliseconds: compressing a batch's envelopes (hundreds of KB) costs more
-- CPU than storing them as they are.
ALTER TABLE event_outbox ALTER COLUMN events SET STORAGE EXTERNAL;

-- The vector of a text, in one place for the indexer.
CREATE FUNCTION chat_search_vector(text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT to_tsvector('portuguese', chat_fold($1))
              || to_tsvector('english', chat_fold($1))
              || to_tsvector('simple', chat_fold($1)) $$;

-- Search vectors are filled in batches by the worker's indexer (within about a second),
-- so a send no longer runs three text-search configurations inside its transaction.
-- NULL means "not indexed yet"; an edit sets it back to NULL.
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search tsvector;
UPDATE messages SET search = chat_search_vector(text);
CREATE INDEX messages_search ON messages USING gin (search);
CREATE INDEX messages_unindexed ON messages (created_at) WHERE search IS NULL;
