-- Uploads not sent yet: counted per uploader for the quota at every upload, and swept by
-- age when they expire (`CHAT_UNSENT_UPLOAD_TTL_SECS`).
CREATE INDEX attachments_unsent_by_uploader ON attachments (uploader_id) WHERE message_id IS NULL;
CREATE INDEX attachments_unsent_by_age ON attachments (created_at) WHERE message_id IS NULL;
