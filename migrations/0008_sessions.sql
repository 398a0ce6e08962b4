-- Sessions that end: an absolute lifetime that refreshing cannot extend, when and from
-- what each was last used (so a user can list and revoke them), and the refresh tokens
-- a session has retired, so that a replayed one is recognised and ends its session.

ALTER TABLE sessions
    ADD COLUMN absolute_expires_at timestamptz,
    ADD COLUMN last_used_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN user_agent text,
    ADD COLUMN revoked_reason text;
UPDATE sessions SET absolute_expires_at = created_at + interval '90 days';
ALTER TABLE sessions ALTER COLUMN absolute_expires_at SET NOT NULL;

-- Listing a user's live sessions.
CREATE INDEX sessions_user_live ON sessions (user_id, created_at) WHERE revoked_at IS NULL;

CREATE TABLE retired_refresh_tokens (
    refresh_hash    bytea PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    retired_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_refresh_tokens_session ON retired_refresh_tokens (session_id);
