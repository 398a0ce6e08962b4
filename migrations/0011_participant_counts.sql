-- A conversation's participant count, kept by the database itself (statement triggers, so a
-- group created with a thousand members is one update), for lists and message statuses that
-- must not count a thousand rows per conversation.
ALTER TABLE conversations ADD COLUMN participant_count integer NOT NULL DEFAULT 0;
UPDATE conversations c
   SET participant_count = (SELECT count(*) FROM participants p WHERE p.conversation_id = c.id);

CREATE FUNCTION chat_count_joined() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c SET participant_count = c.participant_count + j.n
      FROM (SELECT conversation_id, count(*) AS n FROM joined GROUP BY conversation_id) j
     WHERE c.id = j.conversation_id;
    RETURN NULL;
END $$;

CREATE FUNCTION chat_count_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c SET participant_count = c.participant_count - l.n
      FROM (SELECT conversation_id, count(*) AS n FROM left_rows GROUP BY conversation_id) l
     WHERE c.id = l.conversation_id;
    RETURN NULL;
END $$;

CREATE TRIGGER participants_joined AFTER INSERT ON participants
    REFERENCING NEW TABLE AS joined FOR EACH STATEMENT EXECUTE FUNCTION chat_count_joined();
CREATE TRIGGER participants_left AFTER DELETE ON participants
    REFERENCING OLD TABLE AS left_rows FOR EACH STATEMENT EXECUTE FUNCTION chat_count_left();
