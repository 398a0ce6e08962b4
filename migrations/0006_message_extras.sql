-- What a message has besides its text, kept on the row so that a history page knows
-- without probing other tables whether it must look up mentions, attachments or
-- reactions (most pages have none).
ALTER TABLE messages
    ADD COLUMN has_mentions boolean NOT NULL DEFAULT false,
    ADD COLUMN has_attachments boolean NOT NULL DEFAULT false,
    ADD COLUMN reaction_count integer NOT NULL DEFAULT 0;

UPDATE messages m SET has_mentions = true WHERE EXISTS (SELECT 1 FROM mentions x WHERE x.message_id = m.id);
UPDATE messages m SET has_attachments = true WHERE EXISTS (SELECT 1 FROM attachments x WHERE x.message_id = m.id);
UPDATE messages m SET reaction_count = (SELECT count(*) FROM reactions x WHERE x.message_id = m.id)
 WHERE EXISTS (SELECT 1 FROM reactions x WHERE x.message_id = m.id);
