-- Attachments as uploaded and processed: the type the client declared (never trusted),
-- and a lookup by conversation.
ALTER TABLE attachments ADD COLUMN declared_type text;
CREATE INDEX attachments_conversation ON attachments (conversation_id, created_at);
