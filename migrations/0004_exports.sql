-- History exports (seed 002's RelatorioChatExport): requested by a participant, run by
-- a worker, written to object storage.
CREATE TABLE exports (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    requested_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    format          text NOT NULL CHECK (format IN ('json', 'csv')),
    since           timestamptz,
    until           timestamptz,
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- Messages written so far, and how many the export will hold.
    progress        bigint NOT NULL DEFAULT 0,
    total           bigint,
    attempts        integer NOT NULL DEFAULT 0,
    object_key      text,
    row_count       bigint,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX exports_conversation ON exports (conversation_id, created_at);
